//! `alicia passwd`: manage a mosquitto password file, like `mosquitto_passwd`.
//!
//! Same flags and file format as `mosquitto_passwd`, so either tool can edit a file the
//! other wrote and the broker (ours or mosquitto) reads both. New hashes are always
//! `$7$` (PBKDF2-SHA512, 101 iterations), mosquitto_passwd's default; there is no `-H`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use alicia_auth::PasswordFile;
use anyhow::{bail, Context};

#[derive(clap::Args)]
pub(crate) struct PasswdArgs {
    /// Create a new password file, overwriting any that exists.
    #[arg(short = 'c', conflicts_with_all = ["delete", "upgrade"])]
    create: bool,
    /// Batch mode: the password is given on the command line.
    #[arg(short = 'b', conflicts_with_all = ["delete", "upgrade"])]
    batch: bool,
    /// Delete USER rather than set a password.
    #[arg(short = 'D', conflicts_with = "upgrade")]
    delete: bool,
    /// Upgrade a file of plain-text passwords to hashes (lines already hashed stay).
    #[arg(short = 'U')]
    upgrade: bool,
    /// The password file.
    file: PathBuf,
    username: Option<String>,
    password: Option<String>,
}

pub(crate) fn run(args: PasswdArgs) -> anyhow::Result<()> {
    let path = &args.file;
    if args.upgrade {
        if args.username.is_some() {
            bail!("-U takes only the file");
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = PasswordFile::upgrade_plain_text(&text, &path.display().to_string())?;
        file.save(path)?;
        return Ok(());
    }
    let Some(username) = args.username.as_deref() else {
        bail!("missing USER (usage: alicia passwd [-c] [-b] [-D] [-U] FILE USER [PASSWORD])");
    };
    if args.password.is_some() && !args.batch {
        bail!("a password on the command line needs -b");
    }
    let mut file = if args.create {
        PasswordFile::new()
    } else if path.exists() {
        PasswordFile::load(path)?
    } else {
        bail!("{} does not exist (use -c to create it)", path.display());
    };
    if args.delete {
        if !file.remove(username) {
            bail!("user {username} is not in {}", path.display());
        }
    } else {
        let password = match (args.batch, args.password) {
            (true, Some(password)) => password,
            (true, None) => bail!("-b needs the password on the command line"),
            (false, _) => ask_password()?,
        };
        if password.is_empty() {
            bail!("empty password");
        }
        file.set(username, password.as_bytes())?;
    }
    file.save(path)?;
    Ok(())
}

/// Twice, as mosquitto_passwd does: from the terminal without echo, or two lines of
/// standard input when it is not a terminal (scripts).
fn ask_password() -> anyhow::Result<String> {
    let (first, second) = if std::io::stdin().is_terminal() {
        (rpassword::prompt_password("Password: ")?, rpassword::prompt_password("Reenter password: ")?)
    } else {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = || -> anyhow::Result<String> {
            lines.next().transpose()?.context("standard input ended before the password was given twice")
        };
        (next()?, next()?)
    };
    if first != second {
        bail!("passwords do not match");
    }
    Ok(first)
}
