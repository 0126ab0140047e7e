//! One live network connection of a session: what waits to be written, how it ends.
//!
//! The node encodes deliveries straight into [`OutQueue`]; the writer task takes what is
//! there and writes it. Small packets share one growing buffer; a large payload is kept
//! as its own chunk and written from the `Bytes` it arrived in, so a 256 MiB message to
//! several subscribers is never copied per subscriber.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{DisconnectReasonCode, Packet};
use tokio::sync::Notify;

use std::rc::Rc;

use crate::budget::NodeBudget;
use crate::codec::publish::OutboundPublish;
use crate::codec::{Codec, MqttVersion};
use crate::limits::LARGE_PAYLOAD;
use crate::metrics::Refusal;

/// Why a connection ended; decides the v5 DISCONNECT sent and whether the will fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// DISCONNECT from the client; v5 reason 0x04 asks for the will anyway.
    ClientDisconnect {
        with_will: bool,
    },
    PeerClosed,
    KeepAliveTimeout,
    PacketTooLarge,
    MalformedPacket(&'static str),
    ProtocolError(&'static str),
    ReceiveMaximumExceeded,
    TopicNameInvalid(&'static str),
    TopicAliasInvalid,
    PayloadFormatInvalid,
    /// Waited too long for room in the engine's byte budget.
    QuotaExceeded,
    /// Another connection took over this client id.
    SessionTakenOver,
    ServerShutdown,
    WriteFailed,
    WriteTimeout,
    /// A bug: the session's task panicked.
    InternalError,
    /// Past `max_messages_per_second` or `max_bytes_per_second`.
    MessageRateTooHigh,
    /// The durable store could not keep a message, so it cannot be acknowledged.
    StoreFailed,
}

impl CloseReason {
    /// The DISCONNECT a v5 client is told; none when the client ended it or cannot hear.
    pub(crate) fn disconnect_code(self) -> Option<DisconnectReasonCode> {
        use CloseReason::*;
        Some(match self {
            KeepAliveTimeout => DisconnectReasonCode::KeepAliveTimeout,
            PacketTooLarge => DisconnectReasonCode::PacketTooLarge,
            MalformedPacket(_) => DisconnectReasonCode::MalformedPacket,
            ProtocolError(_) => DisconnectReasonCode::ProtocolError,
            ReceiveMaximumExceeded => DisconnectReasonCode::ReceiveMaximumExceeded,
            TopicNameInvalid(_) => DisconnectReasonCode::TopicNameInvalid,
            TopicAliasInvalid => DisconnectReasonCode::TopicAliasInvalid,
            PayloadFormatInvalid => DisconnectReasonCode::PayloadFormatInvalid,
            QuotaExceeded => DisconnectReasonCode::QuotaExceeded,
            SessionTakenOver => DisconnectReasonCode::SessionTakenOver,
            ServerShutdown => DisconnectReasonCode::ServerShuttingDown,
            InternalError => DisconnectReasonCode::UnspecifiedError,
            MessageRateTooHigh => DisconnectReasonCode::MessageRateTooHigh,
            StoreFailed => DisconnectReasonCode::ImplementationSpecificError,
            ClientDisconnect { .. } | PeerClosed | WriteFailed | WriteTimeout => return None,
        })
    }

    /// The reason string a v5 client reads in the DISCONNECT.
    pub(crate) fn explain(self) -> &'static str {
        use CloseReason::*;
        match self {
            KeepAliveTimeout => "no packet within 1.5 times the keep-alive",
            PacketTooLarge => "packet exceeds the server's maximum packet size",
            MalformedPacket(why) | ProtocolError(why) | TopicNameInvalid(why) => why,
            ReceiveMaximumExceeded => "more unacknowledged QoS 2 publishes than the receive maximum",
            TopicAliasInvalid => "topic alias 0, above the topic alias maximum, or not set",
            PayloadFormatInvalid => "payload is not UTF-8 but its format indicator says it is",
            QuotaExceeded => "the server's memory budget for messages stayed full",
            SessionTakenOver => "another connection took over this client id",
            ServerShutdown => "server shutting down",
            InternalError => "internal error",
            MessageRateTooHigh => "publishing faster than the server allows this client",
            StoreFailed => "the server cannot store messages: unacknowledged publishes were not taken",
            ClientDisconnect { .. } | PeerClosed | WriteFailed | WriteTimeout => "",
        }
    }

    /// MQTT publishes the will on every end but a normal DISCONNECT; a server that is
    /// shutting down has nobody left to deliver it to.
    pub(crate) fn fires_will(self) -> bool {
        !matches!(self, CloseReason::ClientDisconnect { with_will: false } | CloseReason::ServerShutdown)
    }

    pub(crate) fn as_label(self) -> &'static str {
        use CloseReason::*;
        match self {
            ClientDisconnect { .. } => "client_disconnect",
            PeerClosed => "peer_closed",
            KeepAliveTimeout => "keep_alive_timeout",
            PacketTooLarge => "packet_too_large",
            MalformedPacket(_) => "malformed_packet",
            ProtocolError(_) => "protocol_error",
            ReceiveMaximumExceeded => "receive_maximum_exceeded",
            TopicNameInvalid(_) => "topic_name_invalid",
            TopicAliasInvalid => "topic_alias_invalid",
            PayloadFormatInvalid => "payload_format_invalid",
            QuotaExceeded => "quota_exceeded",
            SessionTakenOver => "session_taken_over",
            ServerShutdown => "server_shutdown",
            WriteFailed => "write_failed",
            WriteTimeout => "write_timeout",
            InternalError => "internal_error",
            MessageRateTooHigh => "message_rate_too_high",
            StoreFailed => "store_failed",
        }
    }

    /// Which ends count as a refusal of the client's input.
    pub(crate) fn refusal(self) -> Option<Refusal> {
        use CloseReason::*;
        Some(match self {
            PacketTooLarge => Refusal::PacketTooLarge,
            MalformedPacket(_) => Refusal::MalformedPacket,
            ProtocolError(_) => Refusal::ProtocolError,
            ReceiveMaximumExceeded => Refusal::ReceiveMaximumExceeded,
            TopicNameInvalid(_) => Refusal::TopicNameInvalid,
            TopicAliasInvalid => Refusal::TopicAliasInvalid,
            PayloadFormatInvalid => Refusal::PayloadFormatInvalid,
            QuotaExceeded => Refusal::MemoryBudget,
            _ => return None,
        })
    }
}

/// A piece of the queue ready to write.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub bytes: Bytes,
    /// What of it was charged to the memory budget (a large payload was charged when it
    /// was read, so its chunk counts nothing here).
    pub charged: usize,
    pub publishes: usize,
}

/// Encoded packets waiting for the socket.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    /// Small packets, appended as they come; all of it is charged.
    current: BytesMut,
    current_publishes: usize,
    /// Earlier pieces in write order (`current` goes after them).
    chunks: VecDeque<Chunk>,
    /// Bytes in both.
    bytes: usize,
    /// PUBLISH packets in both.
    publishes: usize,
}

impl OutQueue {
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn publishes(&self) -> usize {
        self.publishes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    fn seal_current(&mut self) {
        if !self.current.is_empty() {
            let bytes = self.current.split().freeze();
            let chunk = Chunk { charged: bytes.len(), bytes, publishes: std::mem::take(&mut self.current_publishes) };
            self.chunks.push_back(chunk);
        }
    }

    /// A large payload, after its header in `current`.
    fn push_payload(&mut self, payload: Bytes) {
        self.current_publishes += 1;
        self.seal_current();
        self.bytes += payload.len();
        self.chunks.push_back(Chunk { bytes: payload, charged: 0, publishes: 0 });
    }

    /// The next piece to write, in order.
    pub(crate) fn take(&mut self) -> Option<Chunk> {
        if self.chunks.is_empty() {
            self.seal_current();
            // An idle connection should not keep a large buffer around.
            if self.current.capacity() > 64 * 1024 {
                self.current = BytesMut::new();
            }
        }
        let chunk = self.chunks.pop_front()?;
        self.bytes -= chunk.bytes.len();
        self.publishes -= chunk.publishes;
        Some(chunk)
    }

    /// Everything still queued, when the connection is gone: (bytes charged, publishes).
    pub(crate) fn discard(&mut self) -> (usize, usize) {
        let charged = self.current.len() + self.chunks.iter().map(|c| c.charged).sum::<usize>();
        let publishes = self.publishes;
        *self = OutQueue::default();
        (charged, publishes)
    }
}

/// The limits a connection was told in its CONNACK (a 3.1.1 client: the ones in force
/// at its CONNECT), kept for its life: a config update lowering them must not turn a
/// client that keeps to what it was told into one that breaks them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Told {
    /// Receive Maximum: unacknowledged QoS 2 publishes the client may send.
    pub receive_maximum: u16,
    /// Maximum Packet Size the broker reads.
    pub max_packet_size: usize,
    /// Topic Alias Maximum.
    pub topic_alias_maximum: u16,
}

impl Told {
    pub(crate) fn from_limits(limits: &crate::limits::Limits) -> Told {
        Told {
            receive_maximum: limits.max_inflight,
            max_packet_size: limits.max_packet_size,
            topic_alias_maximum: limits.max_topic_aliases,
        }
    }
}

/// A live connection, shared by its reader, its writer and the node delivering to it.
///
/// Small on purpose: an idle connection costs what this, its session and its two tasks
/// take. Its end is a flag and a [`Notify`] rather than a cancellation token (a token
/// is another allocation per connection); the node ends them all at shutdown and checks
/// keep-alives with one sweep instead of a timer per connection.
pub(crate) struct Connection {
    pub version: MqttVersion,
    pub codec: Codec,
    closing: Cell<bool>,
    closed: Notify,
    reason: Cell<Option<CloseReason>>,
    /// 1.5 × the keep-alive, when there is one.
    idle_limit: Option<Duration>,
    last_heard: Cell<Instant>,
    /// The broker itself has stopped reading (waiting for room in the log or the
    /// budget): the client's silence is not its own.
    held_back: Cell<bool>,
    pub out: RefCell<OutQueue>,
    pub writable: Notify,
    /// Whether the client accepts reason strings on acks (MQTT 5 Request Problem
    /// Information).
    pub problem_info: bool,
    pub told: Told,
    budget: Rc<NodeBudget>,
    /// `max_messages_per_second` / `max_bytes_per_second`; `None` when both are off.
    pub rate: Cell<Option<alicia_ratelimit::ClientRate>>,
    /// The `Context::rate_generation` `rate` was made under.
    pub rate_generation: Cell<u64>,
    /// The meters of the listener the client came through.
    pub metrics: std::sync::Arc<crate::metrics::BrokerMetrics>,
}

impl Connection {
    pub(crate) fn new(
        version: MqttVersion,
        keep_alive: u16,
        problem_info: bool,
        told: Told,
        budget: Rc<NodeBudget>,
        metrics: std::sync::Arc<crate::metrics::BrokerMetrics>,
    ) -> Connection {
        // MQTT: the server may close a client silent for 1.5 × its keep-alive.
        let idle_limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
        Connection {
            budget,
            version,
            codec: Codec::new(version),
            closing: Cell::new(false),
            closed: Notify::new(),
            reason: Cell::new(None),
            idle_limit,
            last_heard: Cell::new(Instant::now()),
            held_back: Cell::new(false),
            out: RefCell::new(OutQueue::default()),
            writable: Notify::new(),
            problem_info,
            told,
            rate: Cell::new(None),
            rate_generation: Cell::new(0),
            metrics,
        }
    }

    /// Records the first reason to end and tells every task.
    pub(crate) fn close(&self, reason: CloseReason) {
        if self.reason.get().is_none() {
            self.reason.set(Some(reason));
        }
        self.closing.set(true);
        self.closed.notify_waiters();
        self.writable.notify_one();
    }

    /// Completes once the connection is closing.
    pub(crate) async fn closed(&self) {
        // A `Notified` made before `notify_waiters` sees it even if not yet polled.
        let notified = self.closed.notified();
        if self.closing.get() {
            return;
        }
        notified.await;
    }

    /// The client was heard from (for the keep-alive).
    pub(crate) fn heard(&self) {
        self.last_heard.set(Instant::now());
    }

    /// Whether the client has been silent past its keep-alive.
    pub(crate) fn silent_too_long(&self, now: Instant) -> bool {
        !self.held_back.get()
            && self.idle_limit.is_some_and(|limit| now.saturating_duration_since(self.last_heard.get()) > limit)
    }

    /// The broker stops (`true`) or resumes reading from the client; the keep-alive
    /// counts from the resume.
    pub(crate) fn hold_back(&self, held: bool) {
        self.held_back.set(held);
        if !held {
            self.heard();
        }
    }

    pub(crate) fn reason(&self) -> CloseReason {
        self.reason.get().unwrap_or(CloseReason::ServerShutdown)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Queues a packet other than PUBLISH (always: acks are what lets a client go on).
    pub(crate) fn send(&self, packet: Packet) -> usize {
        let mut out = self.out.borrow_mut();
        let before = out.current.len();
        if let Err(e) = self.codec.write(packet, &mut out.current) {
            tracing::warn!(error = %e, "cannot encode a packet for a client");
            out.current.truncate(before);
            return 0;
        }
        let n = out.current.len() - before;
        out.bytes += n;
        self.budget.force_charge(n);
        self.writable.notify_one();
        n
    }

    /// Queues a PUBLISH if the engine's memory budget has room for it (a large payload
    /// is written from its own buffer, already charged when it was read).
    pub(crate) fn try_send_publish(&self, publish: &OutboundPublish, payload: &Bytes) -> bool {
        let packet = publish.packet_len(self.version);
        let charge = if payload.len() >= LARGE_PAYLOAD { packet - payload.len() } else { packet };
        if !self.budget.try_charge(charge) {
            return false;
        }
        let mut out = self.out.borrow_mut();
        let before = out.current.len();
        publish.write_header(self.version, &mut out.current);
        out.bytes += out.current.len() - before;
        out.publishes += 1;
        if payload.len() >= LARGE_PAYLOAD {
            out.push_payload(payload.clone());
        } else {
            out.current.extend_from_slice(payload);
            out.bytes += payload.len();
            out.current_publishes += 1;
        }
        self.writable.notify_one();
        true
    }

    /// Returns what a written chunk was charged.
    pub(crate) fn written(&self, charged: usize) {
        self.budget.release(charged);
    }

    /// Drops what was never written; returns how many PUBLISH packets that was.
    pub(crate) fn discard_unwritten(&self) -> usize {
        let (charged, publishes) = self.out.borrow_mut().discard();
        self.budget.release(charged);
        publishes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_chunks_in_order() {
        let mut out = OutQueue::default();
        out.current.extend_from_slice(b"head");
        out.bytes += 4;
        out.publishes += 1;
        out.push_payload(Bytes::from(vec![1u8; LARGE_PAYLOAD]));
        out.current.extend_from_slice(b"tail");
        out.bytes += 4;
        assert_eq!(out.bytes(), 8 + LARGE_PAYLOAD);
        let head = out.take().unwrap();
        assert_eq!((&head.bytes[..], head.charged, head.publishes), (&b"head"[..], 4, 1));
        let payload = out.take().unwrap();
        assert_eq!((payload.bytes.len(), payload.charged), (LARGE_PAYLOAD, 0));
        assert_eq!(&out.take().unwrap().bytes[..], b"tail");
        assert!(out.take().is_none());
        assert!(out.is_empty());
        assert_eq!(out.publishes(), 0);
    }
}
