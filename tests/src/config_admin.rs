//! An operator's tool on the bus: sends `alicia/system/config/{request,update}` and
//! reads the correlated answer on `alicia/system/config/response`.

use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::Value;

use crate::clients::V4Client;

pub const REQUEST: &str = "alicia/system/config/request";
pub const UPDATE: &str = "alicia/system/config/update";
pub const RESPONSE: &str = "alicia/system/config/response";
pub const ERROR: &str = "alicia/system/config/error";

pub struct ConfigAdmin {
    pub client: V4Client,
}

impl ConfigAdmin {
    /// Connects as `id` (with `tweak`'s credentials) and subscribes to the answers.
    pub async fn connect(port: u16, id: &str, tweak: impl FnOnce(&mut rumqttc::MqttOptions)) -> ConfigAdmin {
        let (mut client, _) = V4Client::connect(port, id, tweak).await;
        for topic in [RESPONSE, ERROR] {
            assert_eq!(
                client.subscribe(topic, QoS::AtLeastOnce).await,
                [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
            );
        }
        ConfigAdmin { client }
    }

    /// Sends `data` on `topic` and returns the correlated answer's `payload.data`.
    pub async fn ask(&mut self, topic: &str, data: Value) -> Value {
        let request = Envelope::new("admin_console", Destination::Broadcast, MessageType::Request, data);
        self.client.client.publish(topic, QoS::AtLeastOnce, false, request.encode().to_vec()).await.unwrap();
        loop {
            let answer = self.client.next_publish_on(RESPONSE).await;
            let answer: Value = serde_json::from_slice(&answer.payload).unwrap();
            if answer["payload"]["metadata"]["correlation_id"] == request.message_id.to_string() {
                assert_eq!(answer["message_type"], "response");
                assert_eq!(answer["destination"], "admin_console");
                return answer["payload"]["data"].clone();
            }
        }
    }

    /// An update of `config` (sections and keys as JSON).
    pub async fn update(&mut self, config: Value) -> Value {
        self.ask(UPDATE, serde_json::json!({ "config": config })).await
    }
}
