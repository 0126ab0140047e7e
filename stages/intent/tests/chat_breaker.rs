//! The chat fallback's circuit breaker against a small OpenAI-compatible server on an
//! ephemeral port that goes down and comes back: the breaker opens (the metric says 1
//! for `llm`), the user hears the apology at once with no request sent, a probe after
//! the cool-down finds the server back and the breaker closes. Its own test binary:
//! it asserts exact meter values of the process-global recorder.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use alicia_breaker::{BreakerSettings, BreakerState};
use alicia_home::Home;
use alicia_pipeline::{Stage, StageError, DEFAULT_OUTPUT};
use alicia_speech::{Frame, FrameMeta, Outputs, Payload, SpeechFrame};
use alicia_stage_intent::{ChatFallback, IntentConfig, IntentStage, DIDNT_CATCH_THAT};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

const ANSWER: &str = "It is sunny.";

/// A chat-completions server that can be stopped (connections then refused) and
/// started again on the same port.
struct ChatServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    running: Option<(Arc<AtomicBool>, thread::JoinHandle<()>)>,
}

impl ChatServer {
    fn start() -> ChatServer {
        let mut server = ChatServer { port: 0, requests: Arc::default(), running: None };
        server.resume();
        server
    }

    fn resume(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, requests) = (Arc::clone(&stop), Arc::clone(&self.requests));
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    requests.fetch_add(1, Ordering::SeqCst);
                    answer(stream);
                }
            }
        });
        self.running = Some((stop, thread));
    }

    /// Returns once the port refuses connections.
    fn stop(&mut self) {
        let (stop, thread) = self.running.take().unwrap();
        stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        thread.join().unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(mut stream: TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    while buf.len() < head_end + 4 + length {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}]
    })
    .to_string();
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let _ = stream.write_all(response.as_bytes());
}

fn ask(stage: &mut IntentStage) -> (String, Option<StageError>) {
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let result = stage.process(Frame::text(FrameMeta::new("s1", "kitchen", 0), "what's the weather like"), &mut out);
    let pushed = out.take_pushed();
    let reply = match &pushed[..] {
        [(_, frame)] => match &frame.payload {
            Payload::Text(text) => text.clone(),
            other => panic!("not a reply: {other:?}"),
        },
        other => panic!("one reply expected, got {}", other.len()),
    };
    (reply, result.err())
}

fn assert_answered(stage: &mut IntentStage) {
    let (reply, error) = ask(stage);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(reply, ANSWER);
}

fn meter(metrics: &PrometheusHandle, name: &str) -> f64 {
    let prefix = format!("{name}{{target=\"llm\"}} ");
    let page = metrics.render();
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
        .unwrap_or_else(|| panic!("{prefix} missing from\n{page}"))
}

#[test]
fn the_breaker_opens_when_the_chat_server_goes_down_and_closes_when_it_is_back() {
    let metrics = PrometheusBuilder::new().install_recorder().unwrap();
    let mut server = ChatServer::start();
    let breaker = BreakerSettings {
        failure_threshold: 2,
        open_ms: 300,
        max_attempts: 2,
        initial_backoff_ms: 10,
        max_backoff_ms: 20,
        jitter_percent: 50,
    };
    let chat = ChatFallback { timeout_ms: 5_000, breaker, ..ChatFallback::new(server.url(), "test-model") };
    let config = IntentConfig { chat: Some(chat), ..IntentConfig::default() };
    let home = Home::from_toml(include_str!("../../../bus-config/home.toml")).unwrap();
    let mut stage = config.build(&home).unwrap();
    let breaker = Arc::clone(stage.chat_breaker().unwrap());

    assert_answered(&mut stage);
    assert_eq!(meter(&metrics, "alicia_breaker_state"), 0.0);

    // Down: both attempts of the call are refused, which is the threshold.
    server.stop();
    let (reply, error) = ask(&mut stage);
    assert_eq!((reply.as_str(), error.unwrap().error_type()), (DIDNT_CATCH_THAT, "chat_unreachable"));
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(meter(&metrics, "alicia_breaker_state"), 1.0);
    assert_eq!(meter(&metrics, "alicia_breaker_failures_total"), 2.0);
    assert_eq!(meter(&metrics, "alicia_breaker_retries_total"), 1.0);

    // Open: the apology at once, nothing tried.
    let calls = meter(&metrics, "alicia_breaker_calls_total");
    let (reply, error) = ask(&mut stage);
    assert_eq!((reply.as_str(), error.unwrap().error_type()), (DIDNT_CATCH_THAT, "chat_circuit_open"));
    assert_eq!(meter(&metrics, "alicia_breaker_calls_total"), calls, "no attempt while open");
    assert!(meter(&metrics, "alicia_breaker_short_circuits_total") >= 1.0);

    // After the cool-down one probe goes out, fails, and opens the breaker again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (reply, error) = ask(&mut stage);
        assert_eq!(reply, DIDNT_CATCH_THAT);
        if error.unwrap().error_type() == "chat_unreachable" {
            break;
        }
        assert!(Instant::now() < deadline, "no probe after the cool-down");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(meter(&metrics, "alicia_breaker_calls_total"), calls + 1.0, "a single probe, no retry of it");
    assert_eq!(meter(&metrics, "alicia_breaker_state"), 1.0);

    // Back: the next probe succeeds and closes it.
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ask(&mut stage) {
            (reply, None) => {
                assert_eq!(reply, ANSWER);
                break;
            }
            (_, Some(error)) => assert_eq!(error.error_type(), "chat_circuit_open", "{error}"),
        }
        assert!(Instant::now() < deadline, "the breaker never let a probe through");
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.requests(), 2, "the first answer, then the one probe that closed it");
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(meter(&metrics, "alicia_breaker_state"), 0.0);
    assert_answered(&mut stage);
}
