//! The Wyoming server inside `alicia serve`, with the real models, spoken to the way Home
//! Assistant does: synthesize a request, then transcribe that audio back.

use alicia_e2e::engine::{bus_config_dir, test_config};
use alicia_e2e::voice::{voice_engine, Wyoming};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_style_synthesize_then_transcribe_round_trip() {
    let engine = voice_engine().await;
    let mut client = Wyoming::connect(engine.engine.wyoming_addr().expect("voice enabled")).await;

    client.send("describe", json!({}), &[]).await;
    let (kind, info, _) = client.next().await;
    assert_eq!(kind, "info");
    assert!(!info["asr"].as_array().unwrap().is_empty() && !info["tts"].as_array().unwrap().is_empty());

    client.send("synthesize", json!({"text": "Turn on the kitchen lights."}), &[]).await;
    let (kind, start, _) = client.next().await;
    assert_eq!(kind, "audio-start");
    assert_eq!(
        (start["rate"].as_u64(), start["width"].as_u64(), start["channels"].as_u64()),
        (Some(16000), Some(2), Some(1))
    );
    let mut speech = Vec::new();
    loop {
        match client.next().await {
            (kind, _, payload) if kind == "audio-chunk" => speech.extend_from_slice(&payload),
            (kind, _, _) if kind == "audio-stop" => break,
            (kind, data, _) => panic!("unexpected {kind}: {data}"),
        }
    }
    assert!(speech.len() > 16_000, "at least half a second of speech, got {} bytes", speech.len());

    let text = client.transcribe(&speech).await;
    assert!(text.contains("kitchen") && text.contains("light"), "Whisper heard {text:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_models_fail_start_up_and_say_how_to_get_them() {
    let mut config = test_config();
    config.voice.enabled = true;
    config.voice.models = "/nonexistent/models".into();
    config.voice.home = bus_config_dir().join("home.toml");
    let error = match alicia::Engine::start(config).await {
        Ok(_) => panic!("the engine started without its models"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("make models"), "{error}");
}
