//! `[voice]` settings changed while the engine runs, with the real models: a config
//! update rebuilds the voice pipeline with the new settings on the models already
//! loaded, `applied` (the models' keys wait for a restart), and the rebuilt pipeline
//! obeys them.

use alicia_e2e::clients::V4Client;
use alicia_e2e::config_admin::ConfigAdmin;
use alicia_e2e::engine::TestEngine;
use alicia_e2e::voice::repo_root;
use alicia_e2e::{metric, wait_for};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::{json, Value};

const HANGOVER: &str = "alicia_voice_vad_silence_seconds{kind=\"hangover\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_voice_settings_rebuild_the_pipeline_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alicia.toml");
    let repo = repo_root();
    let text = format!(
        "[engine]\nname = \"alicia\"\n\n\
         [mqtt]\nlisten = \"127.0.0.1:0\"\nio_threads = 1\nsys_interval_secs = 0\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [wyoming]\nlisten = \"127.0.0.1:0\"\n\n\
         [voice]\nenabled = true\nmodels = \"{}\"\nhome = \"{}\"\nstt_threads = 2\n\
         hangover_ms = 250   # the VAD's silence\nmax_session_id_bytes = 128\n",
        repo.join("models").display(),
        repo.join("bus-config/home.toml").display(),
    );
    std::fs::write(&path, text).unwrap();
    let engine = TestEngine::from_file(&path).await;
    let (http, port) = (engine.http_addr(), engine.mqtt_port());
    assert_eq!(metric(http, HANGOVER).await, Some(0.25));
    let mut admin = ConfigAdmin::connect(port, "admin-tool", |_| {}).await;
    let (mut satellite, _) = V4Client::connect(port, "kitchen-satellite", |_| {}).await;
    satellite.subscribe("alicia/voice/stt/error", QoS::AtLeastOnce).await;

    let update = json!({"voice": {"hangover_ms": 500, "max_session_id_bytes": 16, "stt_threads": 1}});
    let answer = admin.update(update).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["applied"], json!(["voice.hangover_ms", "voice.max_session_id_bytes"]));
    assert_eq!(answer["restart_required"], json!(["voice.stt_threads"]));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("hangover_ms = 500   # the VAD's silence\n"), "{written}");

    // The pipeline is rebuilt with them: its VAD's hangover is the new one...
    wait_for("the rebuilt pipeline's hangover", || async { metric(http, HANGOVER).await == Some(0.5) }).await;
    // ...and its intake refuses a session id past the new limit (128 bytes before).
    let long_id = "a-session-id-of-40-bytes-0123456789abcd";
    let start = Envelope::new(
        "kitchen_satellite",
        Destination::Service("alicia".into()),
        MessageType::Event,
        json!({ "session_id": long_id }),
    );
    let topic = "alicia/voice/audio/kitchen/start";
    satellite.client.publish(topic, QoS::AtLeastOnce, false, start.encode().to_vec()).await.unwrap();
    let error: Value =
        serde_json::from_slice(&satellite.next_publish_on("alicia/voice/stt/error").await.payload).unwrap();
    assert_eq!(error["payload"]["data"]["error_type"], "session_id_too_long", "{error}");

    // Rebuilt on purpose, not failed: the component was never reported down.
    assert_eq!(metric(http, "alicia_component_failures_total{component=\"voice-pipeline\"}").await.unwrap_or(0.0), 0.0);
    engine.stop().await;
}
