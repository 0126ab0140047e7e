//! The development PKI of a run, made by the binary under test (`alicia certs init` and
//! `alicia certs issue`), so the scenario also tests the command a user runs; and the
//! rustls client config that trusts its CA and, with `--client-cert`, presents a client
//! certificate it issued.
//!
//! The client config disables session resumption: every device in a house is its own
//! client with its own first handshake, and a resumed handshake from a shared ticket
//! cache would measure a cheaper path than the one the engine serves at a reconnect storm.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::Resumption;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// The files `alicia certs init` writes, and the client pair `issue` adds.
#[derive(Debug, Clone)]
pub struct DevPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub crl: PathBuf,
    /// `(NAME.crt, NAME.key)` when clients present a certificate.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The `alicia certs` command lines that made it, for the report.
    pub commands: Vec<String>,
}

/// Runs `alicia certs init --dir DIR` and, with `client_name`, `alicia certs issue NAME --dir DIR`.
pub fn make(alicia_bin: &Path, dir: &Path, client_name: Option<&str>) -> Result<DevPki> {
    let mut commands = Vec::new();
    certs(alicia_bin, &["init".as_ref(), "--dir".as_ref(), dir.as_os_str()], &mut commands)?;
    let client = match client_name {
        Some(name) => {
            certs(alicia_bin, &["issue".as_ref(), name.as_ref(), "--dir".as_ref(), dir.as_os_str()], &mut commands)?;
            Some((dir.join(format!("{name}.crt")), dir.join(format!("{name}.key"))))
        }
        None => None,
    };
    let pki = DevPki {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        crl: dir.join("crl.pem"),
        client,
        commands,
    };
    let mut expected = vec![&pki.ca, &pki.server_cert, &pki.server_key, &pki.crl];
    if let Some((crt, key)) = &pki.client {
        expected.extend([crt, key]);
    }
    if let Some(missing) = expected.into_iter().find(|p| !p.is_file()) {
        bail!("`alicia certs` succeeded but did not write {}", missing.display());
    }
    Ok(pki)
}

fn certs(bin: &Path, args: &[&std::ffi::OsStr], commands: &mut Vec<String>) -> Result<()> {
    let mut cmd = Command::new(bin);
    cmd.arg("certs").args(args).stdin(Stdio::null());
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().with_context(|| format!("run {line}"))?;
    if !out.status.success() {
        bail!("{line} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    commands.push(line);
    Ok(())
}

/// The connector every TLS client of the run shares, and the name it checks the
/// server certificate against (the loopback address: `certs init` puts 127.0.0.1 in it).
pub fn connector(pki: &DevPki, server: IpAddr) -> Result<(TlsConnector, ServerName<'static>)> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&pki.ca)? {
        roots.add(cert).with_context(|| format!("trust {}", pki.ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls protocol versions")?
        .with_root_certificates(roots);
    let mut config = match &pki.client {
        Some((crt, key)) => {
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
            builder.with_client_auth_cert(read_certs(crt)?, key).context("client certificate")?
        }
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok((TlsConnector::from(Arc::new(config)), ServerName::IpAddress(server.into())))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}
