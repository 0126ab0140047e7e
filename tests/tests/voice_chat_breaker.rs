//! `[voice.chat]` against a server that is down, with the real models: the `llm`
//! circuit breaker opens (`alicia_breaker_state{target="llm"}` 1 on `/metrics`) and the
//! user still gets the apology on `alicia/voice/ai/response`, at once, while the matcher
//! answers what it knows. Its own test binary: it reads the process-global breaker
//! meters, which another engine's chat client would reset.

use std::time::{Duration, Instant};

use alicia_e2e::ai_requests::{ask, chat_section, Watcher, APOLOGY, RESPONSE};
use alicia_e2e::clients::V4Client;
use alicia_e2e::metric;
use alicia_e2e::voice::voice_engine_with;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_chat_server_opens_the_llm_breaker_and_the_user_still_gets_an_answer_at_once() {
    // A port nobody listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut section = chat_section(&format!("http://127.0.0.1:{port}"));
    section.breaker.failure_threshold = 2;
    section.breaker.max_attempts = 1;
    section.breaker.open_ms = 600_000;
    let engine = voice_engine_with(|config| config.voice.chat = Some(section)).await;
    let http = engine.http_addr();
    let mut watcher = Watcher::connect(engine.mqtt_port(), "breaker-watcher", &[RESPONSE]).await;
    let (dashboard, _) = V4Client::connect(engine.mqtt_port(), "dashboard", |_| {}).await;
    assert_eq!(metric(http, "alicia_breaker_state{target=\"llm\"}").await, Some(0.0), "closed");

    for _ in 0..2 {
        let data = ask(&dashboard, &mut watcher, json!({"text": "what's the meaning of life"})).await;
        assert_eq!(data["text"], APOLOGY);
        assert_eq!(data["chat_error"]["error_type"], "chat_unreachable", "{data}");
    }
    assert_eq!(metric(http, "alicia_breaker_state{target=\"llm\"}").await, Some(1.0), "open");
    let asked = Instant::now();
    let data = ask(&dashboard, &mut watcher, json!({"text": "and now?"})).await;
    let took = asked.elapsed();
    assert_eq!((data["text"].as_str(), data["answered_by"].as_str()), (Some(APOLOGY), Some("matcher")));
    assert_eq!(data["chat_error"]["error_type"], "chat_circuit_open", "{data}");
    assert!(took < Duration::from_secs(2), "the apology came after {took:?}");
    assert!(metric(http, "alicia_breaker_short_circuits_total{target=\"llm\"}").await.unwrap_or(0.0) >= 1.0);
    // The matcher still answers what it knows.
    let data = ask(&dashboard, &mut watcher, json!({"text": "what time is it"})).await;
    assert_eq!(data["intent"], "what_time");
    engine.stop().await;
}
