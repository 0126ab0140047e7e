//! `[voice.chat]` switched on by a config update while the engine runs, with the real
//! models: `applied` at once, the pipeline rebuilt with a chat client, and the next
//! typed question answered by the chat model. Its own test binary: it waits on the
//! process-global `llm` breaker meter, which another engine's chat client would set.

use std::time::{Duration, Instant};

use alicia_e2e::ai_requests::{ask, Watcher, APOLOGY, RESPONSE};
use alicia_e2e::chat_server::ChatServer;
use alicia_e2e::clients::V4Client;
use alicia_e2e::config_admin::ConfigAdmin;
use alicia_e2e::engine::TestEngine;
use alicia_e2e::voice::repo_root;
use alicia_e2e::{metric, wait_for, PATIENCE};
use serde_json::json;

const LLM_STATE: &str = "alicia_breaker_state{target=\"llm\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_update_switches_the_chat_on_live() {
    let server = ChatServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alicia.toml");
    let repo = repo_root();
    let text = format!(
        "[mqtt]\nlisten = \"127.0.0.1:0\"\nio_threads = 1\nsys_interval_secs = 0\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n[wyoming]\nlisten = \"127.0.0.1:0\"\n\n\
         [voice]\nenabled = true\nmodels = \"{}\"\nhome = \"{}\"\n",
        repo.join("models").display(),
        repo.join("bus-config/home.toml").display(),
    );
    std::fs::write(&path, text).unwrap();
    let engine = TestEngine::from_file(&path).await;
    let (http, port) = (engine.http_addr(), engine.mqtt_port());
    let mut watcher = Watcher::connect(port, "live-watcher", &[RESPONSE]).await;
    let (dashboard, _) = V4Client::connect(port, "dashboard", |_| {}).await;

    // Off by default: the matcher's apology, no breaker.
    let data = ask(&dashboard, &mut watcher, json!({"text": "tell me a joke"})).await;
    assert_eq!((data["text"].as_str(), data["intent"].as_str()), (Some(APOLOGY), Some("not_understood")));
    assert_eq!(metric(http, LLM_STATE).await, None);

    let mut admin = ConfigAdmin::connect(port, "admin-tool", |_| {}).await;
    let answer = admin.update(json!({"voice": {"chat": {"url": server.url(), "model": "test-model"}}})).await;
    assert_eq!(answer["status"], "applied", "{answer}");
    assert_eq!(answer["applied"], json!(["voice.chat"]), "{answer}");
    assert!(std::fs::read_to_string(&path).unwrap().contains("[voice.chat]"));
    // The rebuilt pipeline made the chat client, and with it the llm breaker.
    wait_for("the chat client of the rebuilt pipeline", || async { metric(http, LLM_STATE).await == Some(0.0) }).await;
    // Its typed-request service subscribes a moment later; a question sent before is
    // not delivered to anyone (a QoS 1 message with no subscriber), so ask until one
    // is answered, each within a second.
    let deadline = Instant::now() + PATIENCE;
    let data = loop {
        let asked = ask(&dashboard, &mut watcher, json!({"text": "tell me a joke"}));
        if let Ok(data) = tokio::time::timeout(Duration::from_secs(1), asked).await {
            break data;
        }
        assert!(Instant::now() < deadline, "no answer from the rebuilt pipeline within {PATIENCE:?}");
    };
    assert_eq!(data["text"], "You asked: tell me a joke. 0 before.");
    assert_eq!(data["answered_by"], "chat");
    assert_eq!(server.requests().len(), 1);
    engine.stop().await;
}
