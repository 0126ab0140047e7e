//! Timers set through the intent path (`alicia/voice/ai/request`, the words a user
//! says) ring on the site's speaker when due, answer "how much time is left", and
//! survive an engine restart: they are kept in the durable store.

use std::time::{Duration, Instant};

use alicia_e2e::clients::V4Client;
use alicia_e2e::voice::voice_engine_with;
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::{json, Value};

const EVENTS: &str = "alicia/voice/timer/event";
const SPEAKER_AUDIO: &str = "alicia/devices/kitchen_speaker/audio";

async fn watcher(port: u16, id: &str) -> V4Client {
    let (mut watcher, _) = V4Client::connect(port, id, |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    for topic in ["alicia/voice/ai/response", EVENTS, SPEAKER_AUDIO, "alicia/voice/tts/response"] {
        watcher.subscribe(topic, QoS::AtLeastOnce).await;
    }
    watcher
}

/// Says `text` at the kitchen as a typed request and returns the reply's text.
async fn say(client: &mut V4Client, text: &str) -> String {
    let request = Envelope::new(
        "timer-test",
        Destination::Service("ai_service".into()),
        MessageType::Request,
        json!({"text": text, "site_id": "kitchen"}),
    );
    client.client.publish("alicia/voice/ai/request", QoS::AtLeastOnce, false, request.encode().to_vec()).await.unwrap();
    loop {
        let p = client.next_publish_on("alicia/voice/ai/response").await;
        let e = Envelope::decode(&p.payload).unwrap();
        if e.correlation_id() == Some(request.message_id) {
            return e.payload.data["text"].as_str().unwrap().to_string();
        }
    }
}

/// Waits for the timer event `kind` and returns its timer.
async fn event(client: &mut V4Client, kind: &str) -> Value {
    loop {
        let p = client.next_publish_on(EVENTS).await;
        let e = Envelope::decode(&p.payload).unwrap();
        if e.payload.data["event"] == kind {
            return e.payload.data["timer"].clone();
        }
    }
}

/// Waits for the speaker's reply audio to start and end; its length in bytes.
async fn spoken(client: &mut V4Client) -> usize {
    let mut bytes = 0;
    loop {
        let p = client.next_publish_on(SPEAKER_AUDIO).await;
        if p.payload.is_empty() && bytes > 0 {
            return bytes;
        }
        bytes += p.payload.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_rings_on_the_sites_speaker_when_due_and_can_be_asked_about_and_cancelled() {
    let engine = voice_engine_with(|_| {}).await;
    let mut client = watcher(engine.mqtt_port(), "timer-watcher").await;

    assert_eq!(say(&mut client, "set a tea timer for 2 minutes").await, "Tea timer set for 2 minutes.");
    let tea = event(&mut client, "started").await;
    assert_eq!((tea["name"].as_str(), tea["seconds"].as_u64()), (Some("tea"), Some(120)));
    let left = say(&mut client, "how much time is left on the tea timer").await;
    assert!(
        left.starts_with("The tea timer has 1 minute and 5") || left.starts_with("The tea timer has 2 minutes"),
        "{left}"
    );

    let set_at = Instant::now();
    assert_eq!(say(&mut client, "set a timer for 3 seconds").await, "Timer set for 3 seconds.");
    let short = event(&mut client, "finished").await;
    assert_eq!(short["seconds"], 3);
    assert!(set_at.elapsed() >= Duration::from_millis(2_900), "rang early: {:?}", set_at.elapsed());
    assert!(spoken(&mut client).await > 16_000, "the speaker says the timer is done");

    assert_eq!(say(&mut client, "cancel the tea timer").await, "Cancelled the tea timer.");
    assert_eq!(event(&mut client, "cancelled").await["name"], "tea");
    assert_eq!(say(&mut client, "how much time is left").await, "There's no timer running.");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_timer_survives_an_engine_restart() {
    let store = tempfile::tempdir().unwrap();
    let with_store = |config: &mut alicia_config::AliciaConfig| config.storage.dir = Some(store.path().join("store"));
    let engine = voice_engine_with(with_store).await;
    let mut client = watcher(engine.mqtt_port(), "timer-before").await;
    assert_eq!(say(&mut client, "set a bread timer for 6 seconds").await, "Bread timer set for 6 seconds.");
    let bread = event(&mut client, "started").await;
    engine.stop().await;

    let engine = voice_engine_with(with_store).await;
    let mut client = watcher(engine.mqtt_port(), "timer-after").await;
    let finished = event(&mut client, "finished").await;
    assert_eq!(finished["id"], bread["id"], "the timer set before the restart");
    let due = finished["due_unix_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(now + 50 >= due, "rang {} ms before it was due", due.saturating_sub(now));
    assert!(spoken(&mut client).await > 16_000, "the speaker says the bread timer is done");
    engine.stop().await;
}
