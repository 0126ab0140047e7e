//! The front door's meters. Handles are made once (at start) and shared; labels are
//! bounded (reason, backend), never a client or topic.
//!
//! Naming contract: `alicia_<area>_<name>_<unit>`, counters end in `_total`, sizes in
//! bytes. `tests/` checks every exported name against it.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};

/// Why the front door refused a client's input. A closed set: each is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// First packet was not a CONNECT.
    NotConnect,
    UnsupportedProtocol,
    MalformedPacket,
    ProtocolError,
    PacketTooLarge,
    ClientIdRejected,
    /// `max_connections` reached (or the router refused the link).
    ServerBusy,
    ConnectTimeout,
    ReceiveMaximumExceeded,
    /// A SUBSCRIBE filter with broken wildcards or a `$` topic.
    TopicFilterInvalid,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::NotConnect,
        Refusal::UnsupportedProtocol,
        Refusal::MalformedPacket,
        Refusal::ProtocolError,
        Refusal::PacketTooLarge,
        Refusal::ClientIdRejected,
        Refusal::ServerBusy,
        Refusal::ConnectTimeout,
        Refusal::ReceiveMaximumExceeded,
        Refusal::TopicFilterInvalid,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            Refusal::NotConnect => "not_connect",
            Refusal::UnsupportedProtocol => "unsupported_protocol",
            Refusal::MalformedPacket => "malformed_packet",
            Refusal::ProtocolError => "protocol_error",
            Refusal::PacketTooLarge => "packet_too_large",
            Refusal::ClientIdRejected => "client_id_rejected",
            Refusal::ServerBusy => "server_busy",
            Refusal::ConnectTimeout => "connect_timeout",
            Refusal::ReceiveMaximumExceeded => "receive_maximum_exceeded",
            Refusal::TopicFilterInvalid => "topic_filter_invalid",
        }
    }
}

#[derive(Clone)]
pub(crate) struct FrontDoorMetrics {
    pub sockets_accepted: Counter,
    pub connections_active: Gauge,
    pub packets_received: Counter,
    pub packets_sent: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub publishes_received: Counter,
    pub publishes_sent: Counter,
    pub dropped_queue_full: Counter,
    pub router_queue_waits: Counter,
    pub connect_seconds: Histogram,
    refusals: Vec<Counter>,
}

impl FrontDoorMetrics {
    pub(crate) fn new(listener: &'static str) -> FrontDoorMetrics {
        describe();
        let l = ("listener", listener);
        FrontDoorMetrics {
            sockets_accepted: counter!("alicia_mqtt_sockets_accepted_total", &[l]),
            connections_active: gauge!("alicia_mqtt_connections_active", &[l]),
            packets_received: counter!("alicia_mqtt_packets_received_total", &[l]),
            packets_sent: counter!("alicia_mqtt_packets_sent_total", &[l]),
            bytes_received: counter!("alicia_mqtt_received_bytes_total", &[l]),
            bytes_sent: counter!("alicia_mqtt_sent_bytes_total", &[l]),
            publishes_received: counter!("alicia_mqtt_publishes_received_total", &[l]),
            publishes_sent: counter!("alicia_mqtt_publishes_sent_total", &[l]),
            dropped_queue_full: counter!("alicia_mqtt_messages_dropped_total", &[l, ("reason", "queue_full")]),
            router_queue_waits: counter!("alicia_router_queue_full_waits_total"),
            connect_seconds: histogram!("alicia_mqtt_connect_seconds", &[l]),
            refusals: Refusal::ALL
                .iter()
                .map(|r| counter!("alicia_mqtt_refusals_total", &[l, ("reason", r.as_label())]))
                .collect(),
        }
    }

    pub(crate) fn refused(&self, refusal: Refusal) {
        self.refusals[refusal as usize].increment(1);
    }

    /// Disconnect reasons are few and fixed; the macro's registry lookup is fine here.
    pub(crate) fn disconnected(&self, reason: &'static str) {
        counter!("alicia_mqtt_disconnects_total", "reason" => reason).increment(1);
    }
}

fn describe() {
    describe_counter!("alicia_mqtt_sockets_accepted_total", "TCP connections accepted by the MQTT listener");
    describe_gauge!("alicia_mqtt_connections_active", "MQTT sessions currently connected");
    describe_counter!("alicia_mqtt_packets_received_total", "MQTT packets decoded from clients");
    describe_counter!("alicia_mqtt_packets_sent_total", "MQTT packets encoded for clients");
    describe_counter!("alicia_mqtt_received_bytes_total", "bytes read from MQTT clients");
    describe_counter!("alicia_mqtt_sent_bytes_total", "bytes written to MQTT clients");
    describe_counter!("alicia_mqtt_publishes_received_total", "PUBLISH packets received from clients");
    describe_counter!("alicia_mqtt_publishes_sent_total", "PUBLISH packets delivered to clients");
    describe_counter!("alicia_mqtt_messages_dropped_total", "deliveries dropped, by reason");
    describe_counter!("alicia_mqtt_refusals_total", "client input refused, by reason");
    describe_counter!("alicia_mqtt_disconnects_total", "sessions ended, by reason");
    describe_counter!("alicia_router_queue_full_waits_total", "times a connection waited for room in the router queue");
    describe_histogram!(
        "alicia_mqtt_connect_seconds",
        Unit::Seconds,
        "complete CONNECT to CONNACK written, accepted sessions"
    );
}
