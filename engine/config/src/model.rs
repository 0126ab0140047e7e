//! The shape of `alicia.toml`: one struct per section, every field with a default so a
//! minimal file (or none) gives a working engine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::voice::{VoiceSection, WyomingSection};

/// The whole engine configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AliciaConfig {
    pub engine: EngineSection,
    pub mqtt: MqttSection,
    pub limits: LimitsSection,
    pub router: RouterSection,
    pub http: HttpSection,
    pub services: ServicesSection,
    pub monitor: MonitorSection,
    pub topics: TopicsSection,
    pub voice: VoiceSection,
    pub wyoming: WyomingSection,
    pub security: SecuritySection,
    pub storage: StorageSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// The engine's service name on the bus (`source` of its envelopes, health topic).
    pub name: String,
    /// Free-form label reported in health and discovery (development, staging, production).
    pub environment: String,
    /// What the engine logs, as `tracing` filter directives (`info`, `warn,alicia_broker=debug`).
    /// `ALICIA_LOG`, when set, wins at start; a config update or SIGHUP applies this live.
    pub log_level: String,
}

impl Default for EngineSection {
    fn default() -> Self {
        Self { name: "alicia".into(), environment: "development".into(), log_level: "info".into() }
    }
}

/// How the front door does socket I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// io_uring when the kernel allows it, epoll otherwise.
    #[default]
    Auto,
    /// io_uring or fail at start-up.
    Uring,
    /// Plain tokio (epoll).
    Epoll,
}

impl IoBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::Uring => "uring",
            IoBackend::Epoll => "epoll",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// Plain MQTT (3.1.1 and 5) listener.
    pub listen: SocketAddr,
    pub io: IoBackend,
    /// Threads that run client connections. 0 means one per core.
    pub io_threads: usize,
    /// A connection that sends no CONNECT within this time is closed.
    pub connect_timeout_ms: u64,
    /// A subscriber whose socket takes no bytes for this long is disconnected (its
    /// queue would otherwise only grow).
    pub write_timeout_ms: u64,
    /// `$SYS/broker/...` (as mosquitto's) is published this often, retained; 0: never.
    pub sys_interval_secs: u64,
    /// MQTT over TLS (`[mqtt.tls]`); absent: no TLS listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<MqttTlsSection>,
    /// MQTT over WebSocket (`[mqtt.websocket]`); absent: no WebSocket listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<MqttWebSocketSection>,
}

/// The TLS listener, in mosquitto's names and meaning. Its handshake runs per
/// connection under `mqtt.connect_timeout_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsSection {
    pub listen: SocketAddr,
    /// The server certificate (then any intermediates), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The CA client certificates must chain to; without it none is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `ca`).
    #[serde(default)]
    pub require_certificate: bool,
    /// The client certificate's CN is the client's username, and the certificate its
    /// credential: no password is asked (needs `require_certificate`).
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// Revoked client certificates, re-read on SIGHUP (needs `ca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl: Option<PathBuf>,
}

/// The WebSocket listener (subprotocol `mqtt`, MQTT 3.1.1 and 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttWebSocketSection {
    pub listen: SocketAddr,
    /// Serve `wss://` with `[mqtt.tls]`'s certificate, key and client-certificate policy.
    #[serde(default)]
    pub tls: bool,
}

impl Default for MqttSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            io: IoBackend::Auto,
            io_threads: 0,
            connect_timeout_ms: 10_000,
            write_timeout_ms: 30_000,
            sys_interval_secs: 10,
            tls: None,
            websocket: None,
        }
    }
}

/// What any one client, and all of them together, may make the broker hold. Names
/// follow mosquitto's options where it has one; the seeds' values are the defaults.
/// Every limit is refused with the MQTT reason its case has, and counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Client connections at once; one more gets CONNACK 0x97 (v5) / 0x03 (3.1.1).
    pub max_connections: usize,
    /// Connections from one source address at once (open sockets, CONNECT or not).
    pub max_connections_per_ip: usize,
    /// Sockets that have not completed their CONNECT yet; more are closed at once.
    pub max_pending_connections: usize,
    /// Largest CONNECT packet (client id, credentials, will), in bytes; what a socket
    /// may make the broker buffer before it is a client.
    pub max_connect_bytes: usize,
    /// Unacknowledged QoS 1/2 publishes a client may send (the Receive Maximum the
    /// broker advertises) and QoS 1/2 deliveries in flight to one client.
    pub max_inflight_messages: usize,
    /// Deliveries held for one client (beyond the in-flight window, or while a
    /// persistent session is offline).
    pub max_queued_messages: usize,
    /// Bytes of deliveries held for one client. A single message larger than this is
    /// still delivered when nothing else is queued.
    pub max_queued_bytes: usize,
    /// Bytes of message data held for all clients together (queues, in-flight
    /// deliveries, large packets being read); past it QoS 0 deliveries are dropped and
    /// large publishes wait for room.
    pub max_queued_bytes_total: usize,
    /// Largest accepted MQTT packet, in bytes (256 MiB by default).
    pub message_size_limit: usize,
    /// Longest client identifier, in bytes.
    pub max_client_id_length: usize,
    /// Longest topic name or filter, in bytes.
    pub max_topic_length: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_client: usize,
    /// Topic filters in one SUBSCRIBE packet.
    pub max_filters_per_subscribe: usize,
    /// Topic aliases a client may set (MQTT 5 Topic Alias Maximum).
    pub max_topic_aliases: u16,
    /// Sessions held at once: connected ones plus persistent ones kept for offline
    /// clients.
    pub max_sessions: usize,
    /// Longest session expiry the broker grants (seconds; 4294967295 = never expires).
    pub max_session_expiry_secs: u32,
    /// Longest keep-alive accepted (seconds); a v5 client asking more (or none) is told
    /// this one in the CONNACK.
    pub max_keep_alive_secs: u16,
    /// Retained messages held.
    pub max_retained_messages: usize,
    /// Bytes of retained messages held (topics and payloads).
    pub max_retained_bytes: usize,
    /// PUBLISH packets one client may send per second, with a burst of as many again
    /// (the seeds' `max_requests_per_minute` / 60); past it: v5 DISCONNECT 0x96, 3.1.1
    /// disconnect. 0: no limit.
    pub max_messages_per_second: u32,
    /// Payload bytes one client may publish per second, burst as many again; 0: no limit.
    pub max_bytes_per_second: u64,
    /// Connection attempts one source address may make per minute (loopback exempt
    /// unless `rate_limit_loopback`); past it: v5 CONNACK 0x9F, 3.1.1 0x03. 0: no limit.
    pub max_connects_per_ip_per_minute: u32,
    /// Apply `max_connects_per_ip_per_minute` to loopback addresses too.
    pub rate_limit_loopback: bool,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_ip: 256,
            max_pending_connections: 1024,
            max_connect_bytes: 65_536,
            max_inflight_messages: 100,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_queued_bytes_total: 1024 * 1024 * 1024,
            message_size_limit: 268_435_456,
            max_client_id_length: 256,
            max_topic_length: 4096,
            max_subscriptions_per_client: 256,
            max_filters_per_subscribe: 64,
            max_topic_aliases: 10,
            max_sessions: 10_000,
            max_session_expiry_secs: u32::MAX,
            max_keep_alive_secs: u16::MAX,
            max_retained_messages: 10_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_messages_per_second: 0,
            max_bytes_per_second: 0,
            max_connects_per_ip_per_minute: 0,
            rate_limit_loopback: false,
        }
    }
}

/// The embedded rumqttd router's commit log, which every message crosses once: it
/// keeps up to `segment_count` segments of `segment_size_bytes` for the engine's readers
/// (one per io thread, one for in-process services). Payloads of 64 KiB and more travel
/// beside it, so these bytes bound what the log holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterSection {
    pub segment_size_bytes: usize,
    pub segment_count: usize,
}

impl Default for RouterSection {
    fn default() -> Self {
        Self { segment_size_bytes: 1024 * 1024, segment_count: 4 }
    }
}

/// The HTTP API. Loopback by default; a non-loopback `listen` needs `token_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    /// `/metrics` and `/healthz`.
    pub listen: SocketAddr,
    /// A file holding one bearer token (16 characters or more). When set, every
    /// request needs `Authorization: Bearer <token>`, except `/metrics` and `/healthz`
    /// from a loopback peer.
    pub token_file: Option<PathBuf>,
    /// The HTTPS listener for `POST /auth/device` (device tokens over mutual TLS);
    /// off when absent. It serves that endpoint only.
    pub tls_listen: Option<SocketAddr>,
    /// Its server certificate (then intermediates) and private key, PEM.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The CA device certificates must chain to; a client certificate is required.
    pub tls_ca: Option<PathBuf>,
    /// Revoked device certificates (`alicia certs revoke`): they get no token.
    pub tls_crl: Option<PathBuf>,
    /// Lifetime of a device token, in seconds (at most a day).
    pub token_ttl_seconds: u64,
    /// A request whose headers are not all in within this is dropped (a slowloris).
    pub header_timeout_ms: u64,
    /// A connection serves one request, and all of it, reading and answering, must be
    /// done within this.
    pub request_timeout_ms: u64,
    /// Connections at once; one more gets `503 Service Unavailable`.
    pub max_connections: usize,
    /// Connections at once from one IP address; one more gets `429 Too Many Requests`.
    pub max_connections_per_source: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token_file: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_crl: None,
            token_ttl_seconds: 3_600,
            header_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            max_connections: 64,
            max_connections_per_source: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesSection {
    /// Seconds between the engine's health publications on `alicia/system/health/<name>`.
    pub heartbeat_interval_secs: u64,
    /// Validate envelopes on `alicia/` request topics and answer invalid ones with an
    /// error event.
    pub validate_envelopes: bool,
    /// The largest envelope the core services parse (validation, health checks); a
    /// larger one on a request topic is answered with a `too_large` error event. The
    /// message itself is still delivered: this bounds the engine's own work.
    pub max_envelope_bytes: usize,
}

impl Default for ServicesSection {
    fn default() -> Self {
        Self { heartbeat_interval_secs: 30, validate_envelopes: true, max_envelope_bytes: 1 << 20 }
    }
}

/// `[monitor]`: the health monitor service, which follows every service's and device's
/// heartbeats, raises and clears alerts on `alicia/monitoring/alerts`, answers health
/// checks for any service and serves `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSection {
    pub enabled: bool,
    /// Silence after which a component is offline (the seeds: 300).
    pub heartbeat_timeout_secs: u64,
    /// Components followed at most; heartbeats of more are counted and dropped.
    pub max_components: usize,
    /// How often the engine's own meters are read for the rate alerts below.
    pub metrics_interval_secs: u64,
    /// Deliveries dropped (`alicia_mqtt_messages_dropped_total`) per minute that raise an alert.
    pub dropped_messages_per_minute: u64,
    /// Invalid envelopes (`alicia_envelope_invalid_total`) per minute that raise an alert.
    pub invalid_envelopes_per_minute: u64,
    /// Bytes queued for clients (`alicia_mqtt_queued_bytes`) that, while still growing,
    /// raise an alert.
    pub queued_bytes_alert: u64,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            enabled: true,
            heartbeat_timeout_secs: 300,
            max_components: 10_000,
            metrics_interval_secs: 30,
            dropped_messages_per_minute: 100,
            invalid_envelopes_per_minute: 60,
            queued_bytes_alert: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsSection {
    /// Legacy topic spelling → canonical topic. Empty by default; the shipped
    /// `bus-config/alicia.toml` lists the seeds' legacy spellings.
    pub aliases: BTreeMap<String, String>,
}

/// Who may connect and what each client may touch, in mosquitto's terms: its password
/// file and its ACL file, re-read on SIGHUP. Without `acl_file` every client may
/// publish and subscribe to everything; without `password_file` a username is taken as
/// given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecuritySection {
    /// Clients without a username may connect (MQTT 5 0x87 / 3.1.1 0x05 otherwise).
    /// Production says false.
    pub allow_anonymous: bool,
    /// `mosquitto_passwd` format (`alicia passwd`): a CONNECT with a username must
    /// carry its password (MQTT 5 0x86 / 3.1.1 0x04 otherwise).
    pub password_file: Option<PathBuf>,
    /// mosquitto `acl_file` syntax: `user`, `topic [read|write|readwrite|deny]`,
    /// `pattern` with `%u` / `%c`.
    pub acl_file: Option<PathBuf>,
    /// The audit log: one JSON line per refusal (JSON lines, rotated). Absent: none.
    pub audit_file: Option<PathBuf>,
    /// The audit log is rotated past this size (`audit.log` → `audit.log.1` …).
    pub audit_max_bytes: u64,
    /// Rotated audit files kept.
    pub audit_keep: u32,
    /// Failed logins in a row one username may have before each next attempt waits
    /// (1 s, doubling up to `login_backoff_max_ms`); refused meanwhile with v5 0x9F /
    /// 3.1.1 0x03.
    pub login_failures_before_backoff: u32,
    pub login_backoff_max_ms: u64,
    /// The in-process services' usernames in the ACL (bus client name → ACL user), so
    /// they obey the same rules as everyone else; a client not named here uses its own
    /// name.
    pub service_users: BTreeMap<String, String>,
    /// Signed envelopes (`[security.signing]`); absent: signatures are not checked.
    pub signing: Option<SigningSection>,
    /// The key device tokens are signed with (base64 of 32 random bytes or more,
    /// `openssl rand -base64 32`); needed by `[http] tls_listen`.
    pub token_key_file: Option<PathBuf>,
}

/// `[security.signing]`: the topics whose envelopes must carry a valid HMAC-SHA256
/// signature (`security.signature` by `security.key_id`), and how the engine signs its
/// own messages on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    /// `KEY_ID BASE64_32_BYTES` per line (`alicia keys add`).
    pub key_file: PathBuf,
    /// Topic filters whose messages must be signed.
    #[serde(default)]
    pub require: Vec<String>,
    /// The key the engine signs its own messages on those topics with.
    #[serde(default)]
    pub sign_as: Option<String>,
    /// A signed message's timestamp may be this far from the engine's clock.
    #[serde(default = "default_signing_window")]
    pub window_seconds: u64,
    /// Message ids remembered to refuse replays (window × the highest signed rate).
    #[serde(default = "default_replay_capacity")]
    pub replay_capacity: usize,
}

fn default_signing_window() -> u64 {
    300
}

fn default_replay_capacity() -> usize {
    100_000
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            audit_file: None,
            audit_max_bytes: 10 * 1024 * 1024,
            audit_keep: 5,
            login_failures_before_backoff: 5,
            login_backoff_max_ms: 60_000,
            service_users: [
                ("health", "health_monitor"),
                ("monitor", "health_monitor"),
                ("supervisor", "health_monitor"),
                ("gatekeeper", "security_gateway"),
                ("security", "security_gateway"),
                ("sys", "health_monitor"),
                ("voice-intake", "voice_router"),
                ("voice-publisher", "voice_router"),
                ("voice-stt-requests", "stt_service"),
                ("voice-tts-requests", "tts_service"),
                ("voice-ai-requests", "ai_service"),
                ("config", "config_service"),
            ]
            .iter()
            .map(|(service, user)| (service.to_string(), user.to_string()))
            .collect(),
            signing: None,
            token_key_file: None,
        }
    }
}

/// When the durable store answers a barrier (`[storage] sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageSync {
    /// Every group commit is fsynced before the publishes in it are acknowledged: an
    /// acknowledged message survives a power loss.
    Always,
    /// Every group commit reaches the operating system before its publishes are
    /// acknowledged (it survives `kill -9` and any crash of the engine) and is fsynced
    /// within `sync_interval_ms` (a power loss can lose that much).
    #[default]
    Batch,
}

/// `[storage]`: the durable store. Without `dir` nothing is kept across a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Where retained messages, persistent sessions with their queued QoS 1/2 messages,
    /// and pending wills are kept. One engine per directory.
    pub dir: Option<PathBuf>,
    pub sync: StorageSync,
    /// With `sync = "batch"`: the longest written data waits for its fsync.
    pub sync_interval_ms: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self { dir: None, sync: StorageSync::Batch, sync_interval_ms: 200 }
    }
}
