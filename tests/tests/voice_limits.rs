//! Hostile voice input over MQTT, against the engine with the real models: each bad
//! input gets its exact refusal on the stage's error topic and is counted, and a spoken
//! request from a well-behaved satellite is still answered afterwards.

use alicia_e2e::clients::V4Client;
use alicia_e2e::http_get;
use alicia_e2e::voice::{espeak_pcm, quiet_room, stream_in_real_time, voice_engine_with};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::{json, Value};

fn envelope(data: Value) -> Vec<u8> {
    Envelope::new("satellite", Destination::Service("alicia".into()), MessageType::Event, data).encode().to_vec()
}

/// The next error event on the watcher's error topics: `(error_type, message)` and the
/// whole `payload.data`.
async fn next_error(watcher: &mut V4Client) -> (String, String, Value) {
    let publish = watcher.next_publish().await;
    let error = Envelope::decode(&publish.payload).unwrap_or_else(|e| panic!("{}: {e}", publish.topic));
    let data = error.payload.data;
    let field = |name: &str| data[name].as_str().unwrap_or_default().to_owned();
    (field("error_type"), field("message"), data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_voice_input_is_refused_exactly_and_a_spoken_request_still_works() {
    let engine = voice_engine_with(|config| {
        config.voice.max_frame_bytes = 4096;
        config.voice.max_envelope_bytes = 2048;
        config.voice.max_stt_request_bytes = 8192;
        config.voice.max_tts_text_chars = 20;
    })
    .await;
    let port = engine.mqtt_port();
    let (mut watcher, _) = V4Client::connect(port, "limits-watcher", |_| {}).await;
    watcher.subscribe("alicia/voice/stt/error", QoS::AtLeastOnce).await;
    let (satellite, _) = V4Client::connect(port, "hostile-satellite", |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    let publish = |topic: String, payload: Vec<u8>| {
        let client = satellite.client.clone();
        async move { client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap() }
    };

    // A site the home does not know: refused with the list of those it does.
    publish("alicia/voice/audio/garage/start".into(), envelope(json!({"session_id": "g1"}))).await;
    let (kind, message, data) = next_error(&mut watcher).await;
    assert_eq!(kind, "unknown_site");
    assert_eq!(message, "unknown site \"garage\" (sites: bedroom, hallway, kitchen, living_room)");
    assert_eq!(data["site_id"], "garage");

    // An empty frame, and one over max_frame_bytes.
    publish("alicia/voice/audio/kitchen/frame".into(), Vec::new()).await;
    let (kind, message, _) = next_error(&mut watcher).await;
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("frame_too_small", "audio frame of 0 bytes; frames carry 2 to 4096 bytes")
    );
    publish("alicia/voice/audio/living_room/frame".into(), vec![0; 8192]).await;
    let (kind, message, _) = next_error(&mut watcher).await;
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("frame_too_large", "audio frame of 8192 bytes; frames carry 2 to 4096 bytes")
    );

    // A session id of 300 bytes, and a start envelope over max_envelope_bytes.
    publish("alicia/voice/audio/bedroom/start".into(), envelope(json!({"session_id": "s".repeat(300)}))).await;
    let (kind, message, _) = next_error(&mut watcher).await;
    assert_eq!((kind.as_str(), message.as_str()), ("session_id_too_long", "session_id of 300 bytes; at most 128"));
    let padded = envelope(json!({"session_id": "h1", "padding": "p".repeat(4000)}));
    let size = padded.len();
    publish("alicia/voice/audio/hallway/start".into(), padded).await;
    let (kind, message, _) = next_error(&mut watcher).await;
    assert_eq!(kind, "envelope_too_large");
    assert_eq!(message, format!("message of {size} bytes exceeds the 2048-byte limit for envelopes here"));

    // A seeds-style stt/request over max_stt_request_bytes is refused unread.
    let request = Envelope::new(
        "stt_client",
        Destination::Service("stt_service".into()),
        MessageType::Request,
        json!({"audio_data": "A".repeat(20_000)}),
    );
    publish("alicia/voice/stt/request".into(), request.encode().to_vec()).await;
    let (kind, _, _) = next_error(&mut watcher).await;
    assert_eq!(kind, "request_too_large");

    // A tts/request over max_tts_text_chars, answered on tts/error and correlated.
    watcher.subscribe("alicia/voice/tts/error", QoS::AtLeastOnce).await;
    let say = Envelope::new(
        "announcer",
        Destination::Service("alicia".into()),
        MessageType::Request,
        json!({"text": "This sentence is far too long.", "site_id": "kitchen"}),
    );
    publish("alicia/voice/tts/request".into(), say.encode().to_vec()).await;
    let refusal = watcher.next_publish_on("alicia/voice/tts/error").await;
    let refusal = Envelope::decode(&refusal.payload).unwrap();
    assert_eq!(refusal.payload.data["error_type"], "text_too_long");
    assert_eq!(refusal.payload.data["message"], "payload.data.text has 30 characters; at most 20");
    assert_eq!(refusal.correlation_id(), Some(say.message_id));

    // Every refusal is counted by its reason (at least once: the flood test below
    // shares the process's metrics).
    let (_, page) = http_get(engine.engine.http_addr(), "/metrics").await;
    for reason in [
        "unknown_site",
        "frame_too_small",
        "frame_too_large",
        "session_id_too_long",
        "envelope_too_large",
        "request_too_large",
        "text_too_long",
    ] {
        let series = format!("alicia_voice_refused_total{{reason=\"{reason}\"}} ");
        let count: f64 = page.lines().find_map(|l| l.strip_prefix(&series)).unwrap_or("0").parse().unwrap();
        assert!(count >= 1.0, "{series}{count}");
    }

    // A well-behaved satellite is answered as ever.
    watcher.subscribe("alicia/voice/stt/response", QoS::AtLeastOnce).await;
    let mut speech = espeak_pcm("turn on the kitchen lights");
    speech.extend(quiet_room(900));
    publish("alicia/voice/audio/kitchen/start".into(), envelope(json!({"session_id": "ok-1"}))).await;
    stream_in_real_time(&satellite.client, "kitchen", &speech).await;
    publish("alicia/voice/audio/kitchen/stop".into(), envelope(json!({"session_id": "ok-1"}))).await;
    let transcript = Envelope::decode(&watcher.next_publish_on("alicia/voice/stt/response").await.payload).unwrap();
    let heard = transcript.payload.data["text"].as_str().unwrap().to_lowercase();
    assert!(heard.contains("kitchen"), "{heard}");
    engine.stop().await;
}

/// A flood of bad frames is counted frame by frame but reported once per site and
/// reason per second, so the bus carries a trickle of error events, not a copy of the
/// flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_frames_is_reported_once_and_counted_in_full() {
    let engine = voice_engine_with(|_| {}).await;
    let port = engine.mqtt_port();
    let (mut watcher, _) = V4Client::connect(port, "flood-watcher", |_| {}).await;
    watcher.subscribe("alicia/voice/stt/error", QoS::AtLeastOnce).await;
    let (satellite, _) = V4Client::connect(port, "flooding-satellite", |_| {}).await;
    let flood_began = std::time::Instant::now();
    for _ in 0..500 {
        satellite
            .client
            .publish("alicia/voice/audio/kitchen/frame", QoS::AtLeastOnce, false, Vec::new())
            .await
            .unwrap();
    }
    // A marker after the flood: a different reason at another site, so it is reported.
    satellite.client.publish("alicia/voice/audio/bedroom/frame", QoS::AtLeastOnce, false, vec![0; 640]).await.unwrap();
    let mut reports = Vec::new();
    loop {
        let (kind, _, data) = next_error(&mut watcher).await;
        if data["site_id"] == "bedroom" {
            assert_eq!(kind, "unknown_session");
            break;
        }
        reports.push(kind);
    }
    // One report per started second of flooding, however fast the flood came.
    let allowed = flood_began.elapsed().as_secs() as usize + 1;
    assert!(!reports.is_empty() && reports.len() <= allowed, "{} reports for one flood: {reports:?}", reports.len());
    assert!(reports.iter().all(|kind| kind == "frame_too_small"), "{reports:?}");
    let (_, page) = http_get(engine.engine.http_addr(), "/metrics").await;
    let series = "alicia_voice_refused_total{reason=\"frame_too_small\"} ";
    let counted: f64 = page.lines().find_map(|l| l.strip_prefix(series)).unwrap().parse().unwrap();
    // The other test in this process may add its one.
    assert!((500.0..=501.0).contains(&counted), "{counted}");
    engine.stop().await;
}
