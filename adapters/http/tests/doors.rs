//! The HTTP door under hostile clients: slowloris connections are cut at the header
//! timeout, floods are capped per source and in total with an immediate answer, and
//! through all of it an ordinary client's `/healthz` is answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alicia_http::{HealthSource, HttpLimits, HttpServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PATIENCE: Duration = Duration::from_secs(20);

struct Healthy;

impl HealthSource for Healthy {
    fn health(&self) -> (bool, serde_json::Value) {
        (true, serde_json::json!({"status": "healthy"}))
    }
}

async fn server(limits: HttpLimits) -> HttpServer {
    let metrics = alicia_http::recorder::install();
    HttpServer::start("127.0.0.1:0".parse().unwrap(), limits, None, metrics, Arc::new(Healthy), None).await.unwrap()
}

/// A connection from `source` (any of 127.0.0.0/8 reaches the server).
async fn connect_from(addr: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// What the server sends until it closes: the whole answer, or nothing.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    // Ok or Err: an end of stream, or a reset after the answer, both mean it is done.
    let _done = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await.expect("the server closed");
    String::from_utf8_lossy(&answer).into_owned()
}

/// An ordinary GET from `source`: the status line and the body.
async fn get_from(addr: SocketAddr, source: &str, path: &str) -> (String, String) {
    let mut stream = connect_from(addr, source).await;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: alicia\r\n\r\n").as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stream).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// Slowloris connections that never finish their headers, one of them trickling a byte
/// every 20 ms, are all cut at the header timeout; meanwhile `/healthz` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_at_the_header_timeout() {
    let limits = HttpLimits { header_timeout: Duration::from_millis(300), ..HttpLimits::default() };
    let http = server(limits).await;
    let addr = http.addr();
    let mut loris = Vec::new();
    for _ in 0..5 {
        let mut stream = connect_from(addr, "127.0.0.1").await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: alicia\r\n").await.unwrap();
        loris.push(stream);
    }
    let trickler = tokio::spawn(async move {
        let mut stream = connect_from(addr, "127.0.0.1").await;
        let began = tokio::time::Instant::now();
        // The pace is the client under test: one header byte every 20 ms, never done.
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            if began.elapsed() > PATIENCE {
                panic!("the trickling client was never cut");
            }
        }
        began.elapsed()
    });

    let (status, body) = get_from(addr, "127.0.0.2", "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "{\"status\":\"healthy\"}");
    for mut stream in loris {
        assert_eq!(read_to_close(&mut stream).await, "", "cut without an answer");
    }
    let cut_after = trickler.await.unwrap();
    assert!(cut_after < Duration::from_secs(5), "trickling kept the connection {cut_after:?}");

    let (_, page) = get_from(addr, "127.0.0.2", "/metrics").await;
    let series = "alicia_http_refused_total{reason=\"header_timeout_ms\"} ";
    let cut: f64 = page.lines().find_map(|l| l.strip_prefix(series)).unwrap().parse().unwrap();
    assert!(cut >= 6.0, "{page}");
    http.shutdown().await;
}

/// A flood of idle connections from one host: four get in, the rest get `429` at once;
/// another host is still served. Filling the total cap from several hosts gives `503`,
/// and a slot comes back when a held connection times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_capped_per_source_and_in_total_and_healthz_still_answers() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(4),
        request_timeout: Duration::from_secs(5),
        max_connections: 8,
        max_connections_per_source: 4,
    };
    let http = server(limits).await;
    let addr = http.addr();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        let mut stream = connect_from(addr, "127.0.0.1").await;
        // An admitted connection hears nothing until its header timeout; a refused one
        // is answered at once.
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(200), stream.peek(&mut probe)).await {
            Ok(_) => {
                let answer = read_to_close(&mut stream).await;
                assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{answer}");
                assert!(
                    answer.ends_with("\r\n\r\ntoo many connections from 127.0.0.1: at most 4 at once\n"),
                    "{answer}"
                );
                refused += 1;
            }
            Err(_) => held.push(stream),
        }
    }
    assert_eq!((held.len(), refused), (4, 26));
    let (status, _) = get_from(addr, "127.0.0.2", "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "another host is served through the flood");

    // Four more from a second flooding host fill the total.
    for _ in 0..4 {
        held.push(connect_from(addr, "127.0.0.3").await);
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let over = loop {
        let (status, body) = get_from(addr, "127.0.0.4", "/healthz").await;
        if status.starts_with("HTTP/1.1 503") || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
    };
    assert_eq!(over, ("HTTP/1.1 503 Service Unavailable".into(), "too many connections: at most 8 at once\n".into()));

    // The held connections time out, and the door is open again.
    let answered = loop {
        let (status, _) = get_from(addr, "127.0.0.4", "/healthz").await;
        if status == "HTTP/1.1 200 OK" {
            break true;
        }
        assert!(tokio::time::Instant::now() < deadline + PATIENCE, "no slot came back: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(answered);
    drop(held);
    http.shutdown().await;
}
