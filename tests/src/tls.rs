//! A development PKI made by `alicia certs`' own functions, an engine with a TLS
//! listener on it, and rustls client configs for rumqttc.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alicia_config::{AliciaConfig, MqttTlsSection};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA, a server certificate for localhost / 127.0.0.1 / ::1, a CRL, and one client
/// certificate per name (CN = the name).
pub struct DevPki {
    pub dir: PathBuf,
}

impl DevPki {
    pub fn new(dir: &Path, clients: &[&str]) -> DevPki {
        alicia_tls::pki::init(dir, &[], false).expect("dev pki");
        for name in clients {
            alicia_tls::pki::issue(dir, name, 30).expect("client certificate");
        }
        DevPki { dir: dir.to_path_buf() }
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_string()
    }

    /// `[mqtt.tls]` on an ephemeral port: certificates required, CN as username, CRL.
    pub fn section(&self) -> MqttTlsSection {
        MqttTlsSection {
            listen: "127.0.0.1:0".parse().unwrap(),
            cert: self.dir.join("server.crt"),
            key: self.dir.join("server.key"),
            ca: Some(self.dir.join("ca.crt")),
            require_certificate: true,
            use_identity_as_username: true,
            crl: Some(self.dir.join("crl.pem")),
        }
    }

    /// Puts `section()` into `config`.
    pub fn configure(&self, config: &mut AliciaConfig) {
        config.mqtt.tls = Some(self.section());
    }

    /// A rustls client config trusting this CA, presenting `client`'s certificate.
    pub fn client_config(&self, client: Option<&str>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.dir.join("ca.crt")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.dir.join(format!("{name}.crt")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key = PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }

    /// rumqttc's transport for this PKI as `client`.
    pub fn transport(&self, client: Option<&str>) -> rumqttc::Transport {
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(self.client_config(client)))
    }

    /// `mosquitto_pub` / `mosquitto_sub` arguments for TLS as `client`.
    pub fn mosquitto_args(&self, client: &str) -> Vec<String> {
        vec![
            "--cafile".into(),
            self.path("ca.crt"),
            "--cert".into(),
            self.path(&format!("{client}.crt")),
            "--key".into(),
            self.path(&format!("{client}.key")),
        ]
    }
}
