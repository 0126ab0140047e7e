//! Timers set through the intent path (`alicia/voice/ai/request`, the words a user
//! says) ring on the site's speaker when due, answer "how much time is left", pause
//! and resume, and survive an engine restart: they are kept in the durable store.

use std::time::{Duration, Instant};

use alicia_e2e::ai_requests::{ask, Watcher, RESPONSE};
use alicia_e2e::clients::V4Client;
use alicia_e2e::voice::voice_engine_with;
use alicia_envelope::Envelope;
use rumqttc::Publish;
use serde_json::{json, Value};

const EVENTS: &str = "alicia/voice/timer/event";
const SPEAKER_AUDIO: &str = "alicia/devices/kitchen_speaker/audio";

/// The kitchen: a watcher that keeps what it reads past (the engine's parts publish the
/// reply, the events and the speaker's audio in no fixed order) and a client to talk.
struct Kitchen {
    watcher: Watcher,
    talker: V4Client,
}

impl Kitchen {
    async fn connect(port: u16, id: &str) -> Kitchen {
        let watcher = Watcher::connect(port, &format!("{id}-watcher"), &[RESPONSE, EVENTS, SPEAKER_AUDIO]).await;
        let (talker, _) = V4Client::connect(port, &format!("{id}-talker"), |_| {}).await;
        Kitchen { watcher, talker }
    }

    /// Says `text` at the kitchen as a typed request and returns the reply's text.
    async fn say(&mut self, text: &str) -> String {
        let answer = ask(&self.talker, &mut self.watcher, json!({"text": text, "site_id": "kitchen"})).await;
        answer["text"].as_str().unwrap().to_string()
    }

    /// Waits for the timer event `kind` and returns its timer.
    async fn event(&mut self, kind: &str) -> Value {
        let is_kind = |p: &Publish| Envelope::decode(&p.payload).is_ok_and(|e| e.payload.data["event"] == kind);
        let p = self.watcher.take(EVENTS, is_kind).await;
        Envelope::decode(&p.payload).unwrap().payload.data["timer"].clone()
    }

    /// Waits for the speaker's reply audio to start and end; its length in bytes.
    async fn spoken(&mut self) -> usize {
        let mut bytes = 0;
        loop {
            let p = self.watcher.take(SPEAKER_AUDIO, |_| true).await;
            if p.payload.is_empty() && bytes > 0 {
                return bytes;
            }
            bytes += p.payload.len();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_rings_on_the_sites_speaker_when_due_and_can_be_asked_about_paused_and_cancelled() {
    let engine = voice_engine_with(|_| {}).await;
    let mut bus = Kitchen::connect(engine.mqtt_port(), "timer-watcher").await;

    assert_eq!(bus.say("set a tea timer for 2 minutes").await, "Tea timer set for 2 minutes.");
    let tea = bus.event("started").await;
    assert_eq!((tea["name"].as_str(), tea["seconds"].as_u64()), (Some("tea"), Some(120)));
    let left = bus.say("how much time is left on the tea timer").await;
    assert!(
        left.starts_with("The tea timer has 1 minute and ") || left.starts_with("The tea timer has 2 minutes"),
        "{left}"
    );

    let set_at = Instant::now();
    assert_eq!(bus.say("set a timer for 3 seconds").await, "Timer set for 3 seconds.");
    let short = bus.event("finished").await;
    assert_eq!(short["seconds"], 3);
    assert!(set_at.elapsed() >= Duration::from_millis(2_900), "rang early: {:?}", set_at.elapsed());
    assert!(bus.spoken().await > 16_000, "the speaker says the timer is done");

    assert_eq!(bus.say("pause the tea timer").await, "Paused the tea timer.");
    let paused = bus.event("paused").await;
    assert_eq!((paused["name"].as_str(), paused["paused"].as_bool()), (Some("tea"), Some(true)));
    let left = bus.say("how long is left on the tea timer").await;
    assert!(left.starts_with("The tea timer is paused with "), "{left}");
    assert_eq!(bus.say("pause the tea timer").await, "There's no tea timer running.");
    assert_eq!(bus.say("resume the tea timer").await, "Resumed the tea timer.");
    let resumed = bus.event("resumed").await;
    assert_eq!((resumed["id"].as_str(), resumed["paused"].as_bool()), (tea["id"].as_str(), Some(false)));

    assert_eq!(bus.say("cancel the tea timer").await, "Cancelled the tea timer.");
    assert_eq!(bus.event("cancelled").await["name"], "tea");
    assert_eq!(bus.say("how much time is left").await, "There's no timer running.");
    engine.stop().await;
}

/// The timer is long enough to outlast any restart, so the test needs no race with the
/// engine's start: the restarted engine still counts it down. (A timer that fell due
/// while the engine was down rings as the book is reopened: `engine/timers` unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_timer_survives_an_engine_restart() {
    let store = tempfile::tempdir().unwrap();
    let with_store = |config: &mut alicia_config::AliciaConfig| config.storage.dir = Some(store.path().join("store"));
    let engine = voice_engine_with(with_store).await;
    let mut bus = Kitchen::connect(engine.mqtt_port(), "timer-before").await;
    assert_eq!(bus.say("set a bread timer for 10 minutes").await, "Bread timer set for 10 minutes.");
    let bread = bus.event("started").await;
    engine.stop().await;

    let engine = voice_engine_with(with_store).await;
    let mut bus = Kitchen::connect(engine.mqtt_port(), "timer-after").await;
    let left = bus.say("how much time is left on the bread timer").await;
    assert!(left.starts_with("The bread timer has ") && left.contains(" minute"), "{left}");
    assert_eq!(bus.say("cancel the bread timer").await, "Cancelled the bread timer.");
    assert_eq!(bus.event("cancelled").await["id"], bread["id"], "the timer set before the restart");
    engine.stop().await;
}
