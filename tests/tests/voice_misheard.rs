//! Requests Whisper tends to mishear, spoken to the live engine with the real models:
//! "deactivate" (which Whisper writes "the activate") turns the lights off, never on,
//! and a room name heard as words that sound like it reaches that room's lights.

use alicia_e2e::clients::V4Client;
use alicia_e2e::voice::{espeak_pcm, quiet_room, stream_in_real_time, voice_engine};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::json;

fn envelope(data: serde_json::Value) -> Vec<u8> {
    Envelope::new("hallway_satellite", Destination::Service("alicia".into()), MessageType::Event, data)
        .encode()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_turns_off_and_a_misheard_room_still_reaches_its_lights() {
    let engine = voice_engine().await;
    let port = engine.mqtt_port();
    let (mut watcher, _) = V4Client::connect(port, "misheard-watcher", |_| {}).await;
    for topic in ["alicia/devices/+/command", "alicia/voice/stt/response", "alicia/voice/tts/response"] {
        watcher.subscribe(topic, QoS::AtLeastOnce).await;
    }
    let (satellite, _) = V4Client::connect(port, "hallway-satellite", |_| {}).await;

    for (n, (said, device, action)) in [
        ("deactivate the lights in the kitchen", "kitchen_lights", "turn_off"),
        ("switch the hall light off", "hallway_lights", "turn_off"),
    ]
    .into_iter()
    .enumerate()
    {
        let session = format!("s-{n}");
        let mut speech = espeak_pcm(said);
        speech.extend(quiet_room(900));
        let start = envelope(json!({"session_id": session, "rate": 16000, "width": 2, "channels": 1}));
        satellite.client.publish("alicia/voice/audio/hallway/start", QoS::AtLeastOnce, false, start).await.unwrap();
        stream_in_real_time(&satellite.client, "hallway", &speech).await;
        let stop = envelope(json!({"session_id": session}));
        satellite.client.publish("alicia/voice/audio/hallway/stop", QoS::AtLeastOnce, false, stop).await.unwrap();

        // Every command until the reply is announced: exactly the one asked for.
        let (mut heard, mut commands) = (String::new(), Vec::new());
        loop {
            let p = watcher.next_publish().await;
            let e = Envelope::decode(&p.payload).unwrap();
            match p.topic.as_str() {
                "alicia/voice/stt/response" => heard = e.payload.data["text"].as_str().unwrap().to_string(),
                "alicia/voice/tts/response" => break,
                _ => commands.push(e.payload.data),
            }
        }
        assert_eq!(commands, [json!({"action": action, "device_id": device})], "{said:?} heard as {heard:?}");
    }
    engine.stop().await;
}
