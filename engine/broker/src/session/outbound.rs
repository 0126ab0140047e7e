//! Router → client: the pump encodes the router's notifications into a bounded queue of
//! bytes; the writer flushes that queue to the socket.
//!
//! Keeping them apart lets the pump keep draining the router while a slow socket
//! write is under way, so a client that does not read fills its own queue
//! (`max_queued_messages`, QoS 0 beyond it dropped and counted) instead of stalling the
//! router's delivery to everyone else. QoS 1/2 deliveries are never dropped: the
//! router's in-flight window bounds them.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::FutureExt;
use rumqttd::local::LinkRx;
use rumqttd::protocol::{Disconnect, DisconnectProperties, Packet};
use rumqttd::Notification;

use super::{CloseReason, SessionContext, Shared};
use crate::codec::{Codec, MqttVersion};
use crate::io::SocketWriter;

/// A client that stops reading still gets this long to take its final packets.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// At server shutdown the pump keeps draining the router until it has been quiet this
/// long, so messages published just before the stop (the services' goodbyes) still
/// reach their subscribers.
const SHUTDOWN_QUIET: Duration = Duration::from_millis(50);
const SHUTDOWN_DRAIN_LIMIT: Duration = Duration::from_millis(500);

pub(super) async fn pump(link: LinkRx, codec: Codec, shared: std::rc::Rc<Shared>, ctx: Arc<SessionContext>) {
    pump_until_closed(link, &codec, &shared, &ctx).await;
    shared.pump_finished.cancel();
    shared.data_ready.notify_one();
}

async fn pump_until_closed(mut link: LinkRx, codec: &Codec, shared: &Shared, ctx: &SessionContext) {
    loop {
        let first = tokio::select! {
            n = link.next() => n,
            _ = shared.closing.cancelled() => {
                if shared.reason() == CloseReason::ServerShutdown {
                    drain_at_shutdown(&mut link, codec, shared, ctx).await;
                }
                return;
            }
        };
        let mut unscheduled = false;
        let mut tally = Tally::default();
        let mut next = first;
        loop {
            match next {
                Ok(Some(Notification::Unschedule)) => unscheduled = true,
                Ok(Some(notification)) => tally.add(encode(notification, codec, shared, ctx)),
                Ok(None) => {}
                Err(_) => {
                    // The router dropped this link: another connection took the client id.
                    shared.close(CloseReason::SessionTakenOver);
                    shared.data_ready.notify_one();
                    return;
                }
            }
            // Take whatever else is already there without waiting.
            match link.next().now_or_never() {
                Some(n) => next = n,
                None => break,
            }
        }
        tally.record(ctx);
        shared.data_ready.notify_one();
        if unscheduled && link.wake().await.is_err() {
            shared.close(CloseReason::SessionTakenOver);
            return;
        }
    }
}

async fn drain_at_shutdown(link: &mut LinkRx, codec: &Codec, shared: &Shared, ctx: &SessionContext) {
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN_LIMIT;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(SHUTDOWN_QUIET, link.next()).await {
            Ok(Ok(Some(Notification::Unschedule))) => {
                if link.wake().await.is_err() {
                    return;
                }
            }
            Ok(Ok(Some(notification))) => {
                let mut tally = Tally::default();
                tally.add(encode(notification, codec, shared, ctx));
                tally.record(ctx);
            }
            Ok(Ok(None)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// What one notification became.
enum Encoded {
    Nothing,
    Packet,
    Publish,
    Dropped,
}

/// Counts a batch, recorded once: the counters are shared by every io thread.
#[derive(Default)]
struct Tally {
    packets: u64,
    publishes: u64,
    dropped: u64,
}

impl Tally {
    fn add(&mut self, encoded: Encoded) {
        match encoded {
            Encoded::Nothing => {}
            Encoded::Packet => self.packets += 1,
            Encoded::Publish => {
                self.packets += 1;
                self.publishes += 1;
            }
            Encoded::Dropped => self.dropped += 1,
        }
    }

    fn record(&self, ctx: &SessionContext) {
        if self.packets > 0 {
            ctx.metrics.packets_sent.increment(self.packets);
            ctx.metrics.publishes_sent.increment(self.publishes);
        }
        if self.dropped > 0 {
            ctx.metrics.dropped_queue_full.increment(self.dropped);
        }
    }
}

fn encode(notification: Notification, codec: &Codec, shared: &Shared, ctx: &SessionContext) -> Encoded {
    let packet = match notification {
        Notification::Forward(forward) => Packet::Publish(forward.publish, forward.properties),
        Notification::DeviceAck(ack) => match Packet::from(ack) {
            packet @ (Packet::PubAck(..) | Packet::PubComp(..)) => {
                let inflight = shared.inbound_inflight.get();
                shared.inbound_inflight.set(inflight.saturating_sub(1));
                packet
            }
            Packet::SubAck(mut suback, props) => {
                shared.suback_fixups.borrow_mut().apply(&mut suback, shared.version);
                Packet::SubAck(suback, props)
            }
            packet => packet,
        },
        Notification::Disconnect(disconnect, props) => {
            shared.close(CloseReason::ProtocolError);
            if shared.version != MqttVersion::V5 {
                return Encoded::Nothing;
            }
            Packet::Disconnect(disconnect, props)
        }
        _ => return Encoded::Nothing,
    };
    let is_publish = matches!(packet, Packet::Publish(..));
    let mut pending = shared.pending.borrow_mut();
    let start = pending.len();
    if let Err(e) = codec.write(packet, &mut pending) {
        tracing::warn!(error = %e, "cannot encode packet for client");
        pending.truncate(start);
        return Encoded::Nothing;
    }
    if is_publish {
        let qos = (pending[start] >> 1) & 0b11;
        let queued = shared.queued_publishes.get();
        if qos == 0 && queued >= ctx.limits.max_queued {
            pending.truncate(start);
            return Encoded::Dropped;
        }
        shared.queued_publishes.set(queued + 1);
        return Encoded::Publish;
    }
    Encoded::Packet
}

pub(super) async fn write_loop<W: SocketWriter>(
    mut writer: W,
    codec: Codec,
    shared: std::rc::Rc<Shared>,
    ctx: Arc<SessionContext>,
) {
    let mut spare = BytesMut::with_capacity(16 * 1024);
    loop {
        let closing = tokio::select! {
            _ = shared.data_ready.notified() => false,
            _ = shared.closing.cancelled() => true,
        };
        if closing {
            // The pump may still be draining the router (server shutdown).
            shared.pump_finished.cancelled().await;
            break;
        }
        if !flush(&mut writer, &mut spare, &shared, &ctx).await {
            shared.close(CloseReason::WriteFailed);
            return;
        }
    }
    // Last words: what is queued, then a v5 DISCONNECT saying why.
    let reason = shared.reason();
    if let Some(code) = reason.disconnect_code() {
        if shared.version == MqttVersion::V5 {
            // Always with properties: rumqttd 0.20 mis-sizes a v5 DISCONNECT without them.
            let properties = DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(reason.explain().to_string()),
                user_properties: Vec::new(),
                server_reference: None,
            };
            let packet = Packet::Disconnect(Disconnect { reason_code: code }, Some(properties));
            let _ = codec.write(packet, &mut shared.pending.borrow_mut());
        }
    }
    let _ = tokio::time::timeout(FINAL_FLUSH, flush(&mut writer, &mut spare, &shared, &ctx)).await;
    writer.shutdown();
}

/// Writes everything queued; false when the socket failed.
async fn flush<W: SocketWriter>(writer: &mut W, spare: &mut BytesMut, shared: &Shared, ctx: &SessionContext) -> bool {
    loop {
        let out = {
            let mut pending = shared.pending.borrow_mut();
            if pending.is_empty() {
                return true;
            }
            shared.queued_publishes.set(0);
            std::mem::replace(&mut *pending, std::mem::take(spare))
        };
        let n = out.len() as u64;
        let (result, mut out) = writer.write_all(out).await;
        if result.is_err() {
            return false;
        }
        ctx.metrics.bytes_sent.increment(n);
        out.clear();
        // Keep a modest buffer around; a 256 MiB message should not pin its memory.
        *spare = if out.capacity() <= 1024 * 1024 { out } else { BytesMut::with_capacity(16 * 1024) };
    }
}
