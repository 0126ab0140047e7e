//! The broker's meters. Handles are made once (at start) and shared; labels are bounded
//! (reason, listener, backend), never a client or topic.
//!
//! Naming contract: `alicia_<area>_<name>_<unit>`, counters end in `_total`, sizes in
//! bytes. `tests/` checks every exported name against it.

use alicia_supervisor::LogThrottle;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};

macro_rules! reasons {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

reasons! {
    /// Why the broker refused a client's input. A closed set: each is a metric label.
    Refusal {
        /// First packet was not a CONNECT.
        NotConnect => "not_connect",
        UnsupportedProtocol => "unsupported_protocol",
        MalformedPacket => "malformed_packet",
        ProtocolError => "protocol_error",
        PacketTooLarge => "packet_too_large",
        ClientIdRejected => "client_id_rejected",
        /// `max_connections` reached.
        ServerBusy => "server_busy",
        /// `max_sessions` reached.
        SessionLimit => "session_limit",
        /// `max_connections_per_ip` reached.
        PerIpLimit => "per_ip_limit",
        /// `max_pending_connections` reached.
        PendingLimit => "pending_limit",
        ConnectTimeout => "connect_timeout",
        ReceiveMaximumExceeded => "receive_maximum_exceeded",
        TopicFilterInvalid => "topic_filter_invalid",
        TopicNameInvalid => "topic_name_invalid",
        TopicAliasInvalid => "topic_alias_invalid",
        PayloadFormatInvalid => "payload_format_invalid",
        /// `max_subscriptions_per_client` or `max_filters_per_subscribe`.
        SubscriptionLimit => "subscription_limit",
        /// `max_retained_messages` or `max_retained_bytes`.
        RetainedLimit => "retained_limit",
        /// The engine-wide byte budget had no room for a large packet in time.
        MemoryBudget => "memory_budget",
        BadAuthenticationMethod => "bad_authentication_method",
        /// Refused by `[security]` (the reason is in `alicia_security_refusals_total`).
        NotAuthorized => "not_authorized",
        /// Not a WebSocket upgrade, or one too large.
        WebSocketUpgrade => "websocket_upgrade",
        /// A WebSocket upgrade that did not offer the `mqtt` subprotocol.
        WebSocketSubprotocol => "websocket_subprotocol",
    }
}

impl From<crate::websocket::UpgradeRefusal> for Refusal {
    fn from(refusal: crate::websocket::UpgradeRefusal) -> Refusal {
        match refusal {
            crate::websocket::UpgradeRefusal::BadUpgrade => Refusal::WebSocketUpgrade,
            crate::websocket::UpgradeRefusal::NoMqttSubprotocol => Refusal::WebSocketSubprotocol,
        }
    }
}

reasons! {
    /// Why `[security]` refused a client (`alicia_security_refusals_total{reason}`).
    SecurityRefusal {
        /// No username, and `allow_anonymous = false`.
        Anonymous => "anonymous",
        /// A username the password file does not know.
        UnknownUser => "unknown_user",
        WrongPassword => "wrong_password",
        /// A will on a topic the ACL does not let the client publish.
        WillDenied => "will_denied",
        /// A SUBSCRIBE filter the ACL lets the client read nothing under.
        SubscribeDenied => "subscribe_denied",
        /// A PUBLISH to a topic the ACL does not let the client write.
        PublishDenied => "publish_denied",
        /// The TLS handshake did not finish within `connect_timeout_ms`.
        HandshakeTimeout => "handshake_timeout",
        /// `require_certificate` and the client sent none.
        CertificateRequired => "certificate_required",
        /// A client certificate that does not chain to the CA (or names no one).
        CertificateUntrusted => "certificate_untrusted",
        /// A client certificate on the CRL.
        CertificateRevoked => "certificate_revoked",
        /// No common TLS version or cipher, plain text on a TLS port, a bad message.
        TlsProtocol => "tls_protocol",
        /// A device token (`POST /auth/device`) past its expiry.
        TokenExpired => "token_expired",
        /// A device token with a bad signature, for another device or audience.
        BadToken => "bad_token",
        /// A username that failed too often in a row, during its back-off.
        LoginBackoff => "login_backoff",
        /// `max_connects_per_ip_per_minute`.
        ConnectRate => "connect_rate",
        /// `max_messages_per_second` for one client.
        MessageRate => "message_rate",
        /// `max_bytes_per_second` for one client.
        ByteRate => "byte_rate",
        /// A message on a topic of `[security.signing] require` without a signature.
        Unsigned => "unsigned",
        /// Signed by a key id the key file does not have.
        UnknownKey => "unknown_key",
        /// A signature that does not match the envelope.
        BadSignature => "bad_signature",
        /// A signed message whose timestamp is outside the window.
        StaleMessage => "stale",
        /// A signed message id seen before within the window.
        Replayed => "replayed",
        /// An encrypted payload that does not decrypt.
        DecryptFailed => "decrypt_failed",
        /// Not a JSON envelope, or a `security` block that cannot be read.
        SignatureMalformed => "signature_malformed",
    }
}

impl SecurityRefusal {
    /// The refusal a failed TLS handshake stands for; `None` when the peer just left.
    pub(crate) fn from_tls(error: &alicia_tls::HandshakeError) -> Option<SecurityRefusal> {
        use alicia_tls::HandshakeError as E;
        Some(match error {
            E::Timeout(_) => SecurityRefusal::HandshakeTimeout,
            E::CertificateRequired => SecurityRefusal::CertificateRequired,
            E::CertificateUntrusted(_) => SecurityRefusal::CertificateUntrusted,
            E::CertificateRevoked => SecurityRefusal::CertificateRevoked,
            E::Protocol(_) => SecurityRefusal::TlsProtocol,
            E::ConnectionLost(_) => return None,
        })
    }
}

reasons! {
    /// Why a delivery to a client was not made.
    DropReason {
        /// `max_queued_messages` for that client.
        QueueFull => "queue_full",
        /// `max_queued_bytes` for that client.
        QueueBytes => "queue_bytes",
        /// `max_queued_bytes_total` for the engine.
        MemoryBudget => "memory_budget",
        /// Its message expiry interval ran out before it could be sent.
        Expired => "expired",
        /// Larger than the client's Maximum Packet Size.
        TooLargeForClient => "too_large_for_client",
        /// QoS 0 for a persistent session that is offline (MQTT lets a server drop these).
        OfflineQos0 => "offline_qos0",
        /// A session or in-process client that ended with it still queued.
        SessionEnded => "session_ended",
        /// An in-process service did not keep up.
        LocalInboxFull => "local_inbox_full",
    }
}

pub(crate) struct BrokerMetrics {
    pub sockets_accepted: Counter,
    pub connections_active: Gauge,
    pub connections_pending: Gauge,
    pub sessions: Gauge,
    pub subscriptions: Gauge,
    pub packets_received: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub publishes_received: Counter,
    pub publishes_sent: Counter,
    pub connect_seconds: Histogram,
    pub log_gaps: Counter,
    pub ingress_waits: Counter,
    refusals: Vec<Counter>,
    security_refusals: Vec<Counter>,
    drops: Vec<Counter>,
    /// Every refusal is counted; a line in the log says so at most once per reason per
    /// ten seconds, with how many it stands for.
    log: LogThrottle,
}

impl BrokerMetrics {
    pub(crate) fn new(listener: &'static str) -> BrokerMetrics {
        describe();
        let l = ("listener", listener);
        BrokerMetrics {
            sockets_accepted: counter!("alicia_mqtt_sockets_accepted_total", &[l]),
            connections_active: gauge!("alicia_mqtt_connections_active", &[l]),
            connections_pending: gauge!("alicia_mqtt_connections_pending", &[l]),
            sessions: gauge!("alicia_mqtt_sessions"),
            subscriptions: gauge!("alicia_mqtt_subscriptions"),
            packets_received: counter!("alicia_mqtt_packets_received_total", &[l]),
            bytes_received: counter!("alicia_mqtt_received_bytes_total", &[l]),
            bytes_sent: counter!("alicia_mqtt_sent_bytes_total", &[l]),
            publishes_received: counter!("alicia_mqtt_publishes_received_total", &[l]),
            publishes_sent: counter!("alicia_mqtt_publishes_sent_total", &[l]),
            connect_seconds: histogram!("alicia_mqtt_connect_seconds", &[l]),
            log_gaps: counter!("alicia_bus_log_gaps_total"),
            ingress_waits: counter!("alicia_bus_ingress_waits_total"),
            refusals: Refusal::ALL
                .iter()
                .map(|r| counter!("alicia_mqtt_refusals_total", &[l, ("reason", r.as_label())]))
                .collect(),
            security_refusals: SecurityRefusal::ALL
                .iter()
                .map(|r| counter!("alicia_security_refusals_total", &[l, ("reason", r.as_label())]))
                .collect(),
            drops: DropReason::ALL
                .iter()
                .map(|d| counter!("alicia_mqtt_messages_dropped_total", "reason" => d.as_label()))
                .collect(),
            log: LogThrottle::new(LogThrottle::INTERVAL),
        }
    }

    pub(crate) fn refused(&self, refusal: Refusal) {
        self.refusals[refusal as usize].increment(1);
        if let Some(more) = self.log.allow(refusal.as_label()) {
            tracing::warn!(reason = refusal.as_label(), more, "refused client input");
        }
    }

    pub(crate) fn security_refused(&self, refusal: SecurityRefusal) {
        self.security_refusals[refusal as usize].increment(1);
        if let Some(more) = self.log.allow(refusal.as_label()) {
            tracing::warn!(reason = refusal.as_label(), more, "refused by the security rules");
        }
    }

    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].increment(n);
        if let Some(more) = self.log.allow(reason.as_label()) {
            tracing::warn!(reason = reason.as_label(), more, "dropped deliveries");
        }
    }

    /// Disconnect reasons are few and fixed; the macro's registry lookup is fine here.
    pub(crate) fn disconnected(&self, reason: &'static str) {
        counter!("alicia_mqtt_disconnects_total", "reason" => reason).increment(1);
    }
}

fn describe() {
    describe_counter!("alicia_mqtt_sockets_accepted_total", "TCP connections accepted by the MQTT listener");
    describe_gauge!("alicia_mqtt_connections_active", "MQTT clients currently connected");
    describe_gauge!("alicia_mqtt_connections_pending", "sockets accepted that have not completed their CONNECT");
    describe_gauge!("alicia_mqtt_sessions", "sessions held: connected plus persistent ones of offline clients");
    describe_gauge!("alicia_mqtt_subscriptions", "subscriptions held by all sessions (shared ones included)");
    describe_counter!("alicia_mqtt_packets_received_total", "MQTT packets decoded from clients");
    describe_counter!("alicia_mqtt_received_bytes_total", "bytes read from MQTT clients");
    describe_counter!("alicia_mqtt_sent_bytes_total", "bytes written to MQTT clients");
    describe_counter!("alicia_mqtt_publishes_received_total", "PUBLISH packets received from clients");
    describe_counter!("alicia_mqtt_publishes_sent_total", "PUBLISH packets delivered to clients");
    describe_counter!("alicia_mqtt_messages_dropped_total", "deliveries not made, by reason");
    describe_counter!("alicia_mqtt_refusals_total", "client input refused, by reason (the limit or rule it broke)");
    describe_counter!("alicia_security_refusals_total", "clients refused by [security]: credentials, ACL, by reason");
    describe_counter!("alicia_mqtt_disconnects_total", "connections ended, by reason");
    describe_counter!("alicia_bus_log_gaps_total", "log entries a node skipped because it fell behind the router");
    describe_counter!(
        "alicia_bus_ingress_waits_total",
        "times reading from clients paused until the slowest node caught up"
    );
    describe_histogram!(
        "alicia_mqtt_connect_seconds",
        Unit::Seconds,
        "complete CONNECT to CONNACK written, accepted sessions"
    );
    describe_gauge!("alicia_mqtt_retained_messages", "retained messages held");
    describe_gauge!("alicia_mqtt_retained_bytes", Unit::Bytes, "bytes of retained topics and payloads held");
    describe_gauge!(
        "alicia_mqtt_queued_bytes",
        Unit::Bytes,
        "message bytes held for clients (the memory budget in use)"
    );
}
