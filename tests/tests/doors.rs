//! Issue 8 item 9, "the other doors": the HTTP API behind its bearer token and the
//! Wyoming server behind its allow list, on a real engine, asked by real clients (curl
//! for HTTP). Every 127/8 address reaches a loopback listener, so 127.0.0.2 and
//! 127.0.0.3 stand in for other hosts; what only a truly remote peer sees (`/metrics`
//! needing the token) is covered by the gate's unit tests.

use std::net::SocketAddr;

use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::metric;

const TOKEN: &str = "e2e-doors-token-0123456789abcdef";

/// One curl request: (status, headers in lower case, body).
async fn curl(addr: SocketAddr, path: &str, authorization: Option<&str>) -> (u16, String, String) {
    let mut args = vec!["-s".to_string(), "-i".into(), "--max-time".into(), "20".into()];
    if let Some(value) = authorization {
        args.extend(["-H".into(), format!("Authorization: {value}")]);
    }
    args.push(format!("http://{addr}{path}"));
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("curl").args(&args).output())
        .await
        .unwrap()
        .expect("curl is installed (make deps)");
    assert!(output.status.success(), "curl failed: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole HTTP answer");
    let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("a status line");
    (status, head.to_ascii_lowercase(), body.to_string())
}

async fn refusals(engine: &TestEngine, listener: &str, reason: &str) -> f64 {
    metric(
        engine.http_addr(),
        &format!("alicia_security_refusals_total{{listener=\"{listener}\",reason=\"{reason}\"}}"),
    )
    .await
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_wants_its_token_except_for_local_metrics_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("http-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut config = test_config();
    config.http.token_file = Some(token_file);
    let engine = TestEngine::start(config).await;
    let addr = engine.http_addr();

    // A local Prometheus and service manager need no secret.
    assert_eq!(curl(addr, "/healthz", None).await.0, 200);
    let (status, _, body) = curl(addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("alicia_"), "{body}");

    let (status, head, body) = curl(addr, "/registry", None).await;
    assert_eq!(status, 401);
    assert!(head.contains("\r\nwww-authenticate: bearer"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "missing_token");

    let (status, head, body) = curl(addr, "/registry", Some("Bearer not-the-token-0123456789")).await;
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: bearer error=\"invalid_token\""), "{head}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"], "bad_token");
    assert_eq!(curl(addr, "/healthz", Some(&format!("Basic {TOKEN}"))).await.0, 200, "open on loopback anyway");

    // The right token passes the gate: the route itself answers (there is no /registry yet).
    assert_eq!(curl(addr, "/registry", Some(&format!("Bearer {TOKEN}"))).await.0, 404);
    let (status, _, body) = curl(addr, "/healthz", Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(refusals(&engine, "http", "missing_token").await, 1.0);
    assert_eq!(refusals(&engine, "http", "bad_token").await, 1.0);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_token_file_stops_the_engine_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("http-token");
    std::fs::write(&token_file, "short\n").unwrap();
    let mut config = test_config();
    config.http.token_file = Some(token_file.clone());
    let error = match alicia::Engine::start(config).await {
        Ok(_) => panic!("started with a 5-character token"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&token_file.display().to_string()) && error.contains("at least 16"), "{error}");
}

/// `alicia check-config` says what is wrong with an exposed API before anyone runs it.
#[test]
fn check_config_names_an_exposed_api_without_a_token_and_a_bad_allow_block() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alicia.toml");
    std::fs::write(
        &config,
        "[http]\nlisten = \"0.0.0.0:8080\"\n[wyoming]\nallow = [\"10.0.0.0/8\", \"10.1.2.3/40\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(alicia_e2e::engine::alicia_binary())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "http.listen: 0.0.0.0:8080 is not a loopback address: exposing the HTTP API needs [http] token_file"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("wyoming.allow: \"10.1.2.3/40\" is not a CIDR block"), "{stderr}");
}

/// With the real models: a peer outside `[wyoming] allow` is closed before it is read,
/// counted on `/metrics`; an allowed one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wyoming_closes_peers_outside_its_allow_list() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = alicia_e2e::voice::voice_engine_with(|config| {
        config.wyoming.allow = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let wyoming = engine.engine.wyoming_addr().expect("voice enabled");
    let from = |source: &'static str| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(wyoming).await.unwrap()
    };

    let mut stranger = from("127.0.0.3").await;
    let _ = stranger.write_all(b"{\"type\": \"describe\"}\n").await;
    let mut got = Vec::new();
    // The end of the stream or a reset (our request unread): either way, nothing.
    let read = tokio::time::timeout(alicia_e2e::PATIENCE, stranger.read_to_end(&mut got)).await;
    assert!(read.is_ok() && got.is_empty(), "a stranger got {got:?}");
    assert_eq!(refusals(&engine, "wyoming", "address_not_allowed").await, 1.0);

    let mut allowed = from("127.0.0.2").await;
    allowed.write_all(b"{\"type\": \"describe\"}\n").await.unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let n = tokio::time::timeout(alicia_e2e::PATIENCE, allowed.read(&mut byte)).await.unwrap().unwrap();
        assert_eq!(n, 1, "closed after {}", String::from_utf8_lossy(&line));
        line.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&line).contains("\"info\""), "{}", String::from_utf8_lossy(&line));
    assert_eq!(refusals(&engine, "wyoming", "address_not_allowed").await, 1.0);
    engine.stop().await;
}
