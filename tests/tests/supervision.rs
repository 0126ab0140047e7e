//! The voice pipeline and the Wyoming listener die (through the `fault-injection`
//! hook, which no client input reaches) and the engine tells the truth about it:
//! `/healthz` answers 503 naming the component, `alicia_component_up` drops to 0, an
//! alert is raised; then the component is rebuilt, reported up, the alert resolved,
//! and an ordinary request is served again.
//!
//! One engine, one test: `alicia_component_up` is a process-wide gauge, so a second
//! engine in this process would write the same series.

use std::net::SocketAddr;
use std::time::Duration;

use alicia_e2e::clients::V4Client;
use alicia_e2e::voice::{espeak_pcm, quiet_room, stream_in_real_time, voice_engine, Wyoming};
use alicia_e2e::{http_get, PATIENCE};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::{json, Value};

/// What `/healthz` and `/metrics` say about `component`: (HTTP status, the health body,
/// the `alicia_component_up` value).
async fn observe(http: SocketAddr, component: &str) -> (u16, Value, Option<f64>) {
    let (_, metrics) = http_get(http, "/metrics").await;
    let series = format!("alicia_component_up{{component=\"{component}\"}} ");
    let up = metrics.lines().find_map(|line| line.strip_prefix(&series)).and_then(|v| v.parse().ok());
    let (status, body) = http_get(http, "/healthz").await;
    (status, serde_json::from_str(&body).unwrap(), up)
}

/// Polls until `check` holds for what the engine says about `component`.
async fn until(http: SocketAddr, component: &str, check: impl Fn(u16, &Value, Option<f64>) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, health, up) = observe(http, component).await;
        if check(status, &health, up) {
            return health;
        }
        assert!(tokio::time::Instant::now() < deadline, "{component}: never got there: {status} {health} {up:?}");
        // The down state lasts at least the restart backoff (200 ms): poll well inside it.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The component's alert, raised then resolved, on `alicia/monitoring/alerts`.
async fn alert(watcher: &mut V4Client, component: &str, status: &str) -> Value {
    loop {
        let publish = watcher.next_publish_on("alicia/monitoring/alerts").await;
        let alert = Envelope::decode(&publish.payload).unwrap().payload.data;
        if alert["component"] == component && alert["status"] == status {
            return alert;
        }
    }
}

fn envelope(data: Value) -> Vec<u8> {
    Envelope::new("kitchen_satellite", Destination::Service("alicia".into()), MessageType::Event, data)
        .encode()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_voice_components_are_reported_rebuilt_and_serve_again() {
    let engine = voice_engine().await;
    let (http, port) = (engine.http_addr(), engine.mqtt_port());
    let wyoming = engine.engine.wyoming_addr().unwrap();
    let (mut watcher, _) = V4Client::connect(port, "supervision-watcher", |_| {}).await;
    watcher.subscribe("alicia/monitoring/alerts", QoS::AtLeastOnce).await;
    watcher.subscribe("alicia/voice/stt/response", QoS::AtLeastOnce).await;
    let healthy = observe(http, "voice-pipeline").await;
    assert_eq!((healthy.0, healthy.2), (200, Some(1.0)), "{}", healthy.1);
    assert!(!engine.engine.inject_fault("no-such-component"), "only components that exist have the hook");

    // The Whisper stage's thread panics: the pipeline is down, then rebuilt.
    assert!(engine.engine.inject_fault("voice-pipeline"));
    let down = until(http, "voice-pipeline", |status, health, up| {
        status == 503 && health["down"] == json!(["voice-pipeline"]) && up == Some(0.0)
    })
    .await;
    assert_eq!(down["status"], "unhealthy");
    let raised = alert(&mut watcher, "voice-pipeline", "raised").await;
    assert_eq!(raised["action"], "restarting");
    let cause = raised["cause"].as_str().unwrap();
    assert!(cause.contains("stage stt panicked: fault injected into the stt stage"), "{cause}");
    let up = until(http, "voice-pipeline", |status, _, up| status == 200 && up == Some(1.0)).await;
    assert_eq!(up["components"]["voice-pipeline"]["restarts"], 1);
    assert_eq!(up["components"]["voice-pipeline"]["last_failure"], cause);
    alert(&mut watcher, "voice-pipeline", "resolved").await;

    // The rebuilt pipeline hears a spoken request over MQTT.
    let (satellite, _) = V4Client::connect(port, "supervised-satellite", |_| {}).await;
    let mut speech = espeak_pcm("turn on the kitchen lights");
    speech.extend(quiet_room(900));
    let start = envelope(json!({"session_id": "after-restart"}));
    satellite.client.publish("alicia/voice/audio/kitchen/start", QoS::AtLeastOnce, false, start).await.unwrap();
    stream_in_real_time(&satellite.client, "kitchen", &speech).await;
    let stop = envelope(json!({"session_id": "after-restart"}));
    satellite.client.publish("alicia/voice/audio/kitchen/stop", QoS::AtLeastOnce, false, stop).await.unwrap();
    let transcript = Envelope::decode(&watcher.next_publish_on("alicia/voice/stt/response").await.payload).unwrap();
    assert_eq!(transcript.payload.data["session_id"], "after-restart");
    let heard = transcript.payload.data["text"].as_str().unwrap().to_lowercase();
    assert!(heard.contains("kitchen"), "{heard}");

    // The Wyoming accept loop panics: down, then listening again on the same address.
    assert!(engine.engine.inject_fault("wyoming"));
    until(http, "wyoming", |status, health, up| {
        status == 503 && health["down"] == json!(["wyoming"]) && up == Some(0.0)
    })
    .await;
    let raised = alert(&mut watcher, "wyoming", "raised").await;
    assert_eq!(raised["cause"], "wyoming accept loop panicked: fault injected into the wyoming accept loop");
    let up = until(http, "wyoming", |status, _, up| status == 200 && up == Some(1.0)).await;
    assert_eq!(up["components"]["wyoming"]["restarts"], 1);
    alert(&mut watcher, "wyoming", "resolved").await;
    assert_eq!(engine.engine.wyoming_addr(), Some(wyoming));
    let mut client = Wyoming::connect(wyoming).await;
    let text = client.transcribe(&espeak_pcm("turn off the bedroom lamp")).await;
    assert!(text.contains("bedroom"), "Whisper heard {text:?}");
    engine.stop().await;
}
