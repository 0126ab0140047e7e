//! Issue 8 item 7, the issuing half: `POST /auth/device` over mutual TLS returns a
//! short-lived JWT for the certificate's CN. The client is curl, a foreign TLS stack;
//! the PKI is the one `alicia certs` makes.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use alicia_auth::device_token::{self, TokenKey};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::{metric, wait_for};
use alicia_tls::pki;

const DEVICE: &str = "kitchen-satellite";

struct Pki {
    _dir: tempfile::TempDir,
    path: PathBuf,
    key: TokenKey,
}

impl Pki {
    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

/// A development PKI with a device certificate and a revoked one, and a token key.
fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    pki::init(&path, &[], false).unwrap();
    pki::issue(&path, DEVICE, 30).unwrap();
    pki::issue(&path, "stolen-satellite", 30).unwrap();
    pki::revoke(&path, "stolen-satellite").unwrap();
    let key = TokenKey::generate().unwrap();
    std::fs::write(path.join("token.key"), format!("{}\n", key.to_base64())).unwrap();
    Pki { _dir: dir, path, key }
}

async fn engine_with(pki: &Pki) -> TestEngine {
    let mut config = test_config();
    config.http.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    config.http.tls_cert = Some(pki.file(pki::SERVER_CERT));
    config.http.tls_key = Some(pki.file(pki::SERVER_KEY));
    config.http.tls_ca = Some(pki.file(pki::CA_CERT));
    config.http.tls_crl = Some(pki.file(pki::CRL));
    config.http.token_ttl_seconds = 600;
    config.security.token_key_file = Some(pki.file("token.key"));
    TestEngine::start(config).await
}

/// curl against `https://127.0.0.1:PORT/auth/device`, trusting the PKI's CA, with
/// the client certificate `device` when given.
async fn curl(engine: &TestEngine, pki: &Pki, method: &str, device: Option<&str>) -> Output {
    let addr = engine.engine.device_auth_addr().expect("tls_listen is set");
    let mut args: Vec<String> =
        vec!["-s".into(), "-i".into(), "--max-time".into(), "20".into(), "-X".into(), method.into()];
    args.extend(["--cacert".into(), path(&pki.file(pki::CA_CERT))]);
    if let Some(device) = device {
        args.extend(["--cert".into(), path(&pki.file(&format!("{device}.crt")))]);
        args.extend(["--key".into(), path(&pki.file(&format!("{device}.key")))]);
    }
    args.push(format!("https://127.0.0.1:{}/auth/device", addr.port()));
    tokio::task::spawn_blocking(move || std::process::Command::new("curl").args(&args).output())
        .await
        .unwrap()
        .expect("curl is installed (make deps)")
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// (status, lower-case head, body) of a whole answer.
fn answer(output: &Output) -> (u16, String, String) {
    assert!(output.status.success(), "curl failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole HTTP answer");
    (head[9..12].parse().unwrap(), head.to_ascii_lowercase(), body.to_owned())
}

async fn refusals(engine: &TestEngine, reason: &str) -> f64 {
    let name = format!("alicia_security_refusals_total{{listener=\"device_auth\",reason=\"{reason}\"}}");
    metric(engine.http_addr(), &name).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_its_certificate_gets_a_token_for_its_cn() {
    let pki = make_pki();
    let engine = engine_with(&pki).await;

    let (status, head, body) = answer(&curl(&engine, &pki, "POST", Some(DEVICE)).await);
    assert_eq!(status, 200, "{head}{body}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["device_id"], DEVICE);
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 600);
    let token = json["token"].as_str().unwrap();
    let claims = device_token::verify(&pki.key, token, DEVICE, SystemTime::now()).expect("a valid token");
    assert_eq!(claims.exp - claims.iat, 600);
    let soon = SystemTime::now() + Duration::from_secs(601);
    assert_eq!(device_token::verify(&pki.key, token, DEVICE, soon).unwrap_err().error_type(), "expired");
    assert_eq!(
        device_token::verify(&pki.key, token, "garage-satellite", SystemTime::now()).unwrap_err().error_type(),
        "wrong_subject"
    );

    let (status, head, _) = answer(&curl(&engine, &pki, "GET", Some(DEVICE)).await);
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("allow: post"), "{head}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_certificate_the_handshake_itself_fails() {
    let pki = make_pki();
    let engine = engine_with(&pki).await;

    let bare = curl(&engine, &pki, "POST", None).await;
    assert!(!bare.status.success() && !String::from_utf8_lossy(&bare.stdout).contains("HTTP/"), "{bare:?}");
    wait_for("the refusal to be counted", || async { refusals(&engine, "certificate_required").await == 1.0 }).await;

    let revoked = curl(&engine, &pki, "POST", Some("stolen-satellite")).await;
    assert!(!revoked.status.success() && !String::from_utf8_lossy(&revoked.stdout).contains("HTTP/"), "{revoked:?}");
    wait_for("the revocation to be counted", || async { refusals(&engine, "certificate_revoked").await == 1.0 }).await;

    // The door still serves a good device afterwards.
    assert_eq!(answer(&curl(&engine, &pki, "POST", Some(DEVICE)).await).0, 200);
    engine.stop().await;
}
