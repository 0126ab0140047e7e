//! Typed requests to the engine's voice (`alicia/voice/ai/request`) and a watcher for
//! their answers, with the `[voice.chat]` the chat tests share.

use alicia_config::VoiceChatSection;
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::{Publish, QoS};
use serde_json::Value;

use crate::clients::V4Client;

pub const REQUEST: &str = "alicia/voice/ai/request";
pub const RESPONSE: &str = "alicia/voice/ai/response";
pub const ERROR: &str = "alicia/voice/ai/error";
/// What the engine says to what it did not understand.
pub const APOLOGY: &str = "Sorry, I didn't catch that.";

/// A watcher that keeps what it read past, so messages of two publishers (the answer
/// and the device command) can be taken in either order.
pub struct Watcher {
    client: V4Client,
    kept: Vec<Publish>,
}

impl Watcher {
    pub async fn connect(port: u16, id: &str, topics: &[&str]) -> Watcher {
        let (mut client, _) = V4Client::connect(port, id, |o| {
            o.set_max_packet_size(1 << 20, 1 << 20);
        })
        .await;
        for topic in topics {
            client.subscribe(topic, QoS::AtLeastOnce).await;
        }
        Watcher { client, kept: Vec::new() }
    }

    /// The first message on `topic` that `wanted` accepts, read now or kept before.
    pub async fn take(&mut self, topic: &str, wanted: impl Fn(&Publish) -> bool) -> Publish {
        if let Some(at) = self.kept.iter().position(|p| p.topic == topic && wanted(p)) {
            return self.kept.remove(at);
        }
        loop {
            let p = self.client.next_publish().await;
            if p.topic == topic && wanted(&p) {
                return p;
            }
            self.kept.push(p);
        }
    }

    /// The answer (on `topic`) correlated to `request`.
    pub async fn answer_to(&mut self, topic: &str, request: &Envelope) -> Envelope {
        let id = request.message_id;
        let p = self.take(topic, |p| Envelope::decode(&p.payload).is_ok_and(|e| e.correlation_id() == Some(id))).await;
        Envelope::decode(&p.payload).unwrap()
    }
}

/// A request from the dashboard with `data` as its `payload.data`.
pub fn ai_request(data: Value) -> Envelope {
    Envelope::new("dashboard", Destination::Service("ai_service".into()), MessageType::Request, data)
}

/// Publishes `request` on [`REQUEST`] and returns the answer on [`RESPONSE`]'s data.
pub async fn ask(client: &V4Client, watcher: &mut Watcher, data: Value) -> Value {
    let request = ai_request(data);
    client.client.publish(REQUEST, QoS::AtLeastOnce, false, request.encode().to_vec()).await.unwrap();
    watcher.answer_to(RESPONSE, &request).await.payload.data
}

/// `[voice.chat]` at `url` for the model `test-model`, with a short personality.
pub fn chat_section(url: &str) -> VoiceChatSection {
    VoiceChatSection { personality: "You are Alicia. Be brief.".into(), ..VoiceChatSection::new(url, "test-model") }
}
