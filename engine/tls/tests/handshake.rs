//! Real TLS over loopback TCP: a tokio-rustls client against `accept`, with certificates
//! from `pki::init` / `pki::issue` / `pki::revoke`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia_tls::{accept, peer_identity, pki, HandshakeError, TlsReloader, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream as ClientStream;
use tokio_rustls::TlsConnector;

type Outcome = (SocketAddr, Result<Option<String>, HandshakeError>, Instant);

/// A listener the way the broker will run one: each connection's handshake in its own
/// task, with the config current when it arrived.
async fn serve(reloader: Arc<TlsReloader>, timeout: Duration) -> (SocketAddr, mpsc::UnboundedReceiver<Outcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = listener.accept().await.unwrap();
            let acceptor = reloader.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = accept(&acceptor, tcp, timeout).await.map(|tls| peer_identity(tls.get_ref().1));
                let _ = tx.send((peer, result, Instant::now()));
            });
        }
    });
    (addr, rx)
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path).unwrap().collect::<Result<_, _>>().unwrap()
}

fn client_config(ca: &Path, identity: Option<(&Path, &Path)>, tls12_only: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12_only { &[&rustls::version::TLS12] } else { &[&rustls::version::TLS13, &rustls::version::TLS12] };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((crt, key)) => {
            builder.with_client_auth_cert(certs(crt), PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// Connects and finishes the client side; the server's verdict comes from `serve`.
async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> (SocketAddr, Option<ClientStream<TcpStream>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    // With TLS 1.3 the client is done before the server has looked at its certificate,
    // so a refused client may still "succeed" here; the server's outcome is the truth.
    let stream = TlsConnector::from(config).connect(name, tcp).await.ok();
    (local, stream)
}

async fn outcome_for(
    rx: &mut mpsc::UnboundedReceiver<Outcome>,
    who: SocketAddr,
) -> Result<Option<String>, HandshakeError> {
    loop {
        let (peer, result, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        if peer == who {
            return result;
        }
    }
}

fn init_with_client(dir: &Path, name: &str) {
    pki::init(dir, &[], false).unwrap();
    pki::issue(dir, name, 30).unwrap();
}

#[tokio::test]
async fn an_issued_client_certificate_completes_the_handshake_and_names_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "kitchen-satellite");
    let reloader = Arc::new(TlsReloader::new(TlsSettings::from_pki_dir(d)).unwrap());
    let (addr, mut rx) = serve(reloader, Duration::from_secs(5)).await;
    for tls12_only in [false, true] {
        let config = client_config(
            &d.join("ca.crt"),
            Some((&d.join("kitchen-satellite.crt"), &d.join("kitchen-satellite.key"))),
            tls12_only,
        );
        let (local, stream) = connect(addr, config).await;
        assert!(stream.is_some(), "client handshake failed (tls12_only={tls12_only})");
        let identity = outcome_for(&mut rx, local).await.unwrap();
        assert_eq!(identity.as_deref(), Some("kitchen-satellite"), "tls12_only={tls12_only}");
    }
}

#[tokio::test]
async fn refusals_name_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "good");
    let other = tempfile::tempdir().unwrap();
    init_with_client(other.path(), "impostor");
    let reloader = Arc::new(TlsReloader::new(TlsSettings::from_pki_dir(d)).unwrap());
    let (addr, mut rx) = serve(reloader, Duration::from_secs(5)).await;

    let (local, _stream) = connect(addr, client_config(&d.join("ca.crt"), None, false)).await;
    let err = outcome_for(&mut rx, local).await.unwrap_err();
    assert_eq!(err.error_type(), "certificate_required", "{err}");

    let foreign = (other.path().join("impostor.crt"), other.path().join("impostor.key"));
    let (local, _stream) = connect(addr, client_config(&d.join("ca.crt"), Some((&foreign.0, &foreign.1)), false)).await;
    let err = outcome_for(&mut rx, local).await.unwrap_err();
    assert_eq!(err.error_type(), "certificate_untrusted", "{err}");

    // Plain MQTT on the TLS port.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00").await.unwrap();
    let err = outcome_for(&mut rx, local).await.unwrap_err();
    assert_eq!(err.error_type(), "tls_protocol", "{err}");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_after_reload_and_a_broken_reload_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "lost-phone");
    pki::issue(d, "kept", 30).unwrap();
    let reloader = Arc::new(TlsReloader::new(TlsSettings::from_pki_dir(d)).unwrap());
    let (addr, mut rx) = serve(reloader.clone(), Duration::from_secs(5)).await;
    let lost = client_config(&d.join("ca.crt"), Some((&d.join("lost-phone.crt"), &d.join("lost-phone.key"))), false);
    let kept = client_config(&d.join("ca.crt"), Some((&d.join("kept.crt"), &d.join("kept.key"))), false);

    let revoked = pki::revoke(d, "lost-phone").unwrap();
    assert_eq!(revoked.crl_number, 2);
    assert!(!revoked.already);
    assert!(pki::revoke(d, "lost-phone").unwrap().already);

    // Until the reload the listener still serves the CRL it loaded.
    let (local, _s) = connect(addr, lost.clone()).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap().as_deref(), Some("lost-phone"));

    reloader.reload().unwrap();
    let (local, _s) = connect(addr, lost.clone()).await;
    let err = outcome_for(&mut rx, local).await.unwrap_err();
    assert_eq!(err.error_type(), "certificate_revoked", "{err}");
    let (local, _s) = connect(addr, kept.clone()).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap().as_deref(), Some("kept"));

    // A broken CRL: the reload fails naming the file, and the listener carries on with
    // the config it had (the revocation still holds).
    let good_crl = std::fs::read(d.join("crl.pem")).unwrap();
    std::fs::write(d.join("crl.pem"), "not a crl").unwrap();
    let err = reloader.reload().unwrap_err();
    assert!(err.to_string().contains("crl.pem"), "{err}");
    let (local, _s) = connect(addr, kept).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap().as_deref(), Some("kept"));
    let (local, _s) = connect(addr, lost).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap_err().error_type(), "certificate_revoked");
    std::fs::write(d.join("crl.pem"), good_crl).unwrap();
    reloader.reload().unwrap();
}

#[tokio::test]
async fn a_silent_client_times_out_without_holding_up_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "prompt");
    let timeout = Duration::from_millis(800);
    let reloader = Arc::new(TlsReloader::new(TlsSettings::from_pki_dir(d)).unwrap());
    let (addr, mut rx) = serve(reloader, timeout).await;

    let started = Instant::now();
    let staller = TcpStream::connect(addr).await.unwrap();
    let stalled = staller.local_addr().unwrap();
    let config = client_config(&d.join("ca.crt"), Some((&d.join("prompt.crt"), &d.join("prompt.key"))), false);
    let (prompt, _stream) = connect(addr, config).await;

    let mut results = Vec::new();
    while results.len() < 2 {
        let (peer, result, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        results.push((peer, result, at.duration_since(started)));
    }
    // The prompt client finished first, while the staller was still being waited for.
    let (first, ref first_result, first_at) = results[0];
    assert_eq!(first, prompt);
    assert_eq!(first_result.as_ref().unwrap().as_deref(), Some("prompt"));
    assert!(first_at < timeout, "the prompt client waited {first_at:?}");
    let (second, ref second_result, second_at) = results[1];
    assert_eq!(second, stalled);
    assert_eq!(second_result.as_ref().unwrap_err().error_type(), "handshake_timeout");
    assert!(second_at >= timeout && second_at < timeout + Duration::from_secs(2), "timed out after {second_at:?}");
    drop(staller);
}

#[test]
fn config_errors_name_the_file_and_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "device");

    let mut mismatched = TlsSettings::from_pki_dir(d);
    mismatched.key = d.join("device.key");
    let err = alicia_tls::build_server_config(&mismatched).unwrap_err();
    assert_eq!(err.error_type(), "key_mismatch");
    assert!(err.to_string().contains("device.key") && err.to_string().contains("server.crt"), "{err}");

    let mut missing = TlsSettings::from_pki_dir(d);
    missing.cert = d.join("nope.crt");
    let err = alicia_tls::build_server_config(&missing).unwrap_err();
    assert_eq!(err.error_type(), "missing_file");
    assert!(err.to_string().contains("nope.crt"), "{err}");

    let mut not_pem = TlsSettings::from_pki_dir(d);
    not_pem.ca = Some(d.join("device.key"));
    let err = alicia_tls::build_server_config(&not_pem).unwrap_err();
    assert_eq!(err.error_type(), "bad_pem", "{err}");

    let mut no_ca = TlsSettings::from_pki_dir(d);
    no_ca.ca = None;
    assert_eq!(alicia_tls::build_server_config(&no_ca).unwrap_err().error_type(), "bad_settings");

    // Server certificate only, and optional client certificates: both build.
    alicia_tls::build_server_config(&TlsSettings::server_only(d.join("server.crt"), d.join("server.key"))).unwrap();
    let mut optional = TlsSettings::from_pki_dir(d);
    optional.require_certificate = false;
    optional.use_identity_as_username = false;
    alicia_tls::build_server_config(&optional).unwrap();
}

#[tokio::test]
async fn optional_client_certificates_admit_anonymous_clients_without_an_identity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init_with_client(d, "named");
    let mut settings = TlsSettings::from_pki_dir(d);
    settings.require_certificate = false;
    settings.use_identity_as_username = false;
    let (addr, mut rx) = serve(Arc::new(TlsReloader::new(settings).unwrap()), Duration::from_secs(5)).await;
    let (local, _s) = connect(addr, client_config(&d.join("ca.crt"), None, false)).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap(), None);
    let named = client_config(&d.join("ca.crt"), Some((&d.join("named.crt"), &d.join("named.key"))), false);
    let (local, _s) = connect(addr, named).await;
    assert_eq!(outcome_for(&mut rx, local).await.unwrap().as_deref(), Some("named"));
}
