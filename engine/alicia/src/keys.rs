//! `alicia keys add KEY_ID --file FILE`: a new signing key for `[security.signing]`
//! (32 random bytes, base64), appended to the key file, which is created with mode 0600.
//! The key is printed once so it can be given to the device that signs with it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use alicia_signing::Keyring;
use anyhow::{bail, Context};

#[derive(clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Append a new key KEY_ID to FILE (created 0600 if absent) and print its line.
    Add {
        key_id: String,
        #[arg(long)]
        file: PathBuf,
    },
}

pub(crate) fn run(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Add { key_id, file } = command;
    let existing = if file.exists() {
        let keyring = Keyring::load(&file).with_context(|| format!("{} is not a valid key file", file.display()))?;
        if keyring.contains(&key_id) {
            bail!("{} already has a key {key_id:?}", file.display());
        }
        std::fs::read_to_string(&file)?
    } else {
        String::new()
    };
    let line = Keyring::generate_line(&key_id)?;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    // A file that does not end in a newline would glue the new key to its last line.
    if !existing.is_empty() && !existing.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    writeln!(out, "{line}")?;
    println!("{line}");
    eprintln!("added {key_id} to {}; send the engine SIGHUP to use it", file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_appended_private_and_never_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# devices\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        run(KeysCommand::Add { key_id: "kitchen".into(), file: file.clone() }).unwrap();
        run(KeysCommand::Add { key_id: "hall".into(), file: file.clone() }).unwrap();
        let again = run(KeysCommand::Add { key_id: "hall".into(), file: file.clone() }).unwrap_err();
        assert!(again.to_string().contains("already has a key \"hall\""), "{again}");
        let keyring = Keyring::load(&file).unwrap();
        assert!(keyring.contains("kitchen") && keyring.contains("hall"));
        assert_eq!(keyring.len(), 2);

        let fresh = dir.path().join("new-keys");
        run(KeysCommand::Add { key_id: "engine".into(), file: fresh.clone() }).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o600);

        std::fs::write(&file, "kitchen not-base64\n").unwrap();
        let broken = run(KeysCommand::Add { key_id: "porch".into(), file }).unwrap_err();
        assert!(broken.to_string().contains("not a valid key file"), "{broken}");
    }
}
