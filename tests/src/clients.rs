//! rumqttc clients (MQTT 3.1.1 and 5) whose event loops run in a task and report every
//! event on a channel, so tests can wait for exactly the packet they expect.

use std::time::Duration;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::PATIENCE;

/// Runs a rumqttc event loop (3.1.1 or 5) in a task that sends every event on `tx`.
/// Packets read in the same batch as the close wait in the state's queue behind the
/// error (rumqttc reports the error first): they are sent before it.
macro_rules! pump_events {
    ($eventloop:ident, $tx:ident) => {
        tokio::spawn(async move {
            loop {
                let event = $eventloop.poll().await;
                if event.is_err() {
                    let before = $eventloop.state.events.drain(..).map(Ok);
                    for event in before.chain(std::iter::once(event)) {
                        let _ = $tx.send(event);
                    }
                    return;
                }
                if $tx.send(event).is_err() {
                    return;
                }
            }
        })
    };
}

/// An MQTT 3.1.1 client.
pub struct V4Client {
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Event, rumqttc::ConnectionError>>,
}

impl V4Client {
    /// Connects and waits for a successful CONNACK, which it returns.
    pub async fn connect(
        port: u16,
        id: &str,
        tweak: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> (V4Client, rumqttc::ConnAck) {
        let mut client = V4Client::start(port, id, tweak);
        let ack = client.connack().await.expect("connection accepted");
        (client, ack)
    }

    /// Starts connecting without waiting.
    pub fn start(port: u16, id: &str, tweak: impl FnOnce(&mut rumqttc::MqttOptions)) -> V4Client {
        let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        tweak(&mut options);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        pump_events!(eventloop, tx);
        V4Client { client, events }
    }

    /// The CONNACK, or the error that ended the connection first.
    pub async fn connack(&mut self) -> Result<rumqttc::ConnAck, rumqttc::ConnectionError> {
        let by = Instant::now() + PATIENCE;
        loop {
            match self.next_event(by).await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => return Ok(ack),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next event, or a panic once `by` has passed: a wait ends on a deadline for
    /// the packet it waits for, not on the first quiet gap (pings would reset that).
    async fn next_event(&mut self, by: Instant) -> Result<rumqttc::Event, rumqttc::ConnectionError> {
        tokio::time::timeout_at(by, self.events.recv())
            .await
            .expect("the awaited mqtt packet within the patience window")
            .expect("event loop alive")
    }

    /// Subscribes and waits for the SUBACK's return codes.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        let by = Instant::now() + PATIENCE;
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) =
                self.next_event(by).await.expect("connected")
            {
                return ack.return_codes;
            }
        }
    }

    /// The next PUBLISH delivered to this client.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        let by = Instant::now() + PATIENCE;
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = self.next_event(by).await.expect("connected")
            {
                return p;
            }
        }
    }

    /// The next publish on `topic`, skipping others.
    pub async fn next_publish_on(&mut self, topic: &str) -> rumqttc::Publish {
        let by = Instant::now() + PATIENCE;
        loop {
            match self.next_event(by).await.expect("connected") {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) if p.topic == topic => return p,
                _ => {}
            }
        }
    }

    /// Waits for an outgoing publish's acknowledgement (PUBACK or PUBCOMP).
    pub async fn acked(&mut self) {
        let by = Instant::now() + PATIENCE;
        loop {
            let event = self.next_event(by).await.expect("connected");
            if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_)) = event {
                return;
            }
        }
    }

    /// Waits until the connection ends and returns why.
    pub async fn closed(&mut self) -> rumqttc::ConnectionError {
        let by = Instant::now() + PATIENCE;
        loop {
            if let Err(e) = self.next_event(by).await {
                return e;
            }
        }
    }
}

/// An MQTT 5 client.
pub struct V5Client {
    pub client: v5::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<v5::Event, v5::ConnectionError>>,
}

impl V5Client {
    pub async fn connect(
        port: u16,
        id: &str,
        tweak: impl FnOnce(&mut v5::MqttOptions),
    ) -> (V5Client, v5::mqttbytes::v5::ConnAck) {
        let mut client = V5Client::start(port, id, tweak);
        let ack = client.connack().await.expect("connection accepted");
        (client, ack)
    }

    pub fn start(port: u16, id: &str, tweak: impl FnOnce(&mut v5::MqttOptions)) -> V5Client {
        let mut options = v5::MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        tweak(&mut options);
        let (client, mut eventloop) = v5::AsyncClient::new(options, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        pump_events!(eventloop, tx);
        V5Client { client, events }
    }

    pub async fn connack(&mut self) -> Result<v5::mqttbytes::v5::ConnAck, v5::ConnectionError> {
        let by = Instant::now() + PATIENCE;
        loop {
            match self.next_event(by).await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::ConnAck(ack))) => return Ok(ack),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next event, or a panic once `by` has passed (see [`V4Client::next_event`]).
    async fn next_event(&mut self, by: Instant) -> Result<v5::Event, v5::ConnectionError> {
        tokio::time::timeout_at(by, self.events.recv())
            .await
            .expect("the awaited mqtt packet within the patience window")
            .expect("event loop alive")
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: v5::mqttbytes::QoS,
    ) -> Vec<v5::mqttbytes::v5::SubscribeReasonCode> {
        let by = Instant::now() + PATIENCE;
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            if let v5::Event::Incoming(v5::mqttbytes::v5::Packet::SubAck(ack)) =
                self.next_event(by).await.expect("connected")
            {
                return ack.return_codes;
            }
        }
    }

    /// Subscribes to several filters with their options; returns the SUBACK's codes.
    pub async fn subscribe_filters(
        &mut self,
        filters: Vec<v5::mqttbytes::v5::Filter>,
    ) -> Vec<v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client.subscribe_many(filters).await.unwrap();
        self.suback().await
    }

    /// Subscribes with properties (a subscription identifier).
    pub async fn subscribe_with(
        &mut self,
        filter: v5::mqttbytes::v5::Filter,
        properties: v5::mqttbytes::v5::SubscribeProperties,
    ) -> Vec<v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client.subscribe_many_with_properties([filter], properties).await.unwrap();
        self.suback().await
    }

    async fn suback(&mut self) -> Vec<v5::mqttbytes::v5::SubscribeReasonCode> {
        let by = Instant::now() + PATIENCE;
        loop {
            if let v5::Event::Incoming(v5::mqttbytes::v5::Packet::SubAck(ack)) =
                self.next_event(by).await.expect("connected")
            {
                return ack.return_codes;
            }
        }
    }

    /// The next PUBACK from the broker.
    pub async fn puback(&mut self) -> v5::mqttbytes::v5::PubAck {
        let by = Instant::now() + PATIENCE;
        loop {
            if let v5::Event::Incoming(v5::mqttbytes::v5::Packet::PubAck(ack)) =
                self.next_event(by).await.expect("connected")
            {
                return ack;
            }
        }
    }

    pub async fn next_publish(&mut self) -> v5::mqttbytes::v5::Publish {
        let by = Instant::now() + PATIENCE;
        loop {
            if let v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(p)) =
                self.next_event(by).await.expect("connected")
            {
                return p;
            }
        }
    }

    /// Waits until the connection ends; returns the reason code of the server's
    /// DISCONNECT if one came (rumqttc reports it as the error that ends the loop).
    pub async fn closed(&mut self) -> (Option<DisconnectReasonCode>, v5::ConnectionError) {
        let by = Instant::now() + PATIENCE;
        let mut reason = None;
        loop {
            match self.next_event(by).await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::Disconnect(d))) => reason = Some(d.reason_code),
                Ok(_) => {}
                Err(e) => {
                    if let v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect { reason_code, .. }) = &e {
                        reason = Some(*reason_code);
                    }
                    return (reason, e);
                }
            }
        }
    }
}
