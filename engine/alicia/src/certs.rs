//! `alicia certs`: the development PKI for the TLS listener (a front for
//! `alicia_tls::pki`, which does the work).

use std::path::PathBuf;
use std::process::ExitCode;

use alicia_tls::pki;

#[derive(clap::Subcommand)]
pub(crate) enum CertsCommand {
    /// Create a CA (ca.crt, ca.key), a server certificate (server.crt, server.key) and
    /// an empty CRL (crl.pem) in DIR. Refuses to replace an existing CA without --force.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// A DNS name or IP address the server certificate is valid for; repeat for
        /// several [default: localhost, 127.0.0.1, ::1].
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
        /// Replace the existing CA: every certificate it signed stops working.
        #[arg(long)]
        force: bool,
    },
    /// Issue a client certificate NAME.crt / NAME.key (CN = NAME, the device's MQTT
    /// username) signed by the CA in DIR.
    Issue {
        name: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = pki::DEFAULT_CLIENT_DAYS)]
        days: u32,
    },
    /// Revoke NAME.crt: add it to crl.pem and re-sign it. A running engine picks the
    /// new CRL up on SIGHUP.
    Revoke {
        name: String,
        #[arg(long)]
        dir: PathBuf,
    },
}

pub(crate) fn run(command: CertsCommand) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alicia certs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: CertsCommand) -> Result<(), alicia_tls::PkiError> {
    match command {
        CertsCommand::Init { dir, names, force } => {
            for path in pki::init(&dir, &names, force)? {
                println!("wrote {}", path.display());
            }
            let names = if names.is_empty() { pki::DEFAULT_SERVER_NAMES.join(", ") } else { names.join(", ") };
            println!("server certificate valid for: {names}");
        }
        CertsCommand::Issue { name, dir, days } => {
            let issued = pki::issue(&dir, &name, days)?;
            println!("wrote {} and {}", issued.cert.display(), issued.key.display());
            println!("serial {} valid until {}", issued.serial, issued.not_after.date());
        }
        CertsCommand::Revoke { name, dir } => {
            let revoked = pki::revoke(&dir, &name)?;
            if revoked.already {
                println!("{name} (serial {}) was already revoked; crl.pem unchanged", revoked.serial);
            } else {
                println!(
                    "revoked {name} (serial {}); {} is now CRL number {}; send the engine SIGHUP to apply it",
                    revoked.serial,
                    dir.join(pki::CRL).display(),
                    revoked.crl_number
                );
            }
        }
    }
    Ok(())
}
