//! Client → router: decode what the socket delivers, apply the front door's rules to
//! each packet, and hand the survivors to the router in batches.

use std::time::Duration;

use bytes::BytesMut;
use rumqttd::local::LinkTx;
use rumqttd::protocol::{self, DisconnectReasonCode, Packet};

use super::subscribe::{screen, Screened};
use super::{CloseReason, SessionContext, Shared};
use crate::codec::Codec;
use crate::io::SocketReader;
use crate::metrics::Refusal;

const READ_CHUNK: usize = 64 * 1024;
/// A client announcing a huge packet gets buffer as its bytes arrive, not up front.
const MAX_RESERVE: usize = 4 * 1024 * 1024;

/// What the rules say about one packet. (Packets move once, straight into the batch;
/// boxing them would cost an allocation per packet.)
#[allow(clippy::large_enum_variant)]
enum Verdict {
    Forward(Packet),
    /// Answered by the front door itself.
    Reply(Packet),
    Close(CloseReason),
}

/// Runs until the connection should end and says why.
pub(super) async fn run<R: SocketReader>(
    reader: &mut R,
    mut buf: BytesMut,
    link: &mut LinkTx,
    mut codec: Codec,
    keep_alive: Option<Duration>,
    shared: &Shared,
    ctx: &SessionContext,
) -> CloseReason {
    // MQTT: the server may close a client silent for 1.5 × its keep-alive.
    let idle_limit = keep_alive.map(|k| k + k / 2);
    let mut batch = Vec::with_capacity(64);
    loop {
        let mut wanted = READ_CHUNK;
        // Counted per read, not per packet: the counters are shared by every io thread
        // and a per-packet atomic add would bounce their cache line at full rate.
        let mut tally = Tally::default();
        let end = loop {
            // Fixed header byte: packet type and, for PUBLISH, the QoS bits.
            let header = buf.first().copied();
            match codec.read(&mut buf, ctx.limits.max_packet_size) {
                Ok(packet) => match judge(packet, header.unwrap_or(0), &mut tally, shared, ctx) {
                    Verdict::Forward(p) => batch.push(p),
                    Verdict::Reply(p) => reply(p, &codec, shared),
                    Verdict::Close(reason) => break Some(reason),
                },
                Err(protocol::Error::InsufficientBytes(n)) => {
                    wanted = n;
                    break None;
                }
                Err(protocol::Error::PayloadSizeLimitExceeded(size)) => {
                    tracing::debug!(size, limit = ctx.limits.max_packet_size, "packet too large");
                    break Some(CloseReason::PacketTooLarge);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "malformed packet");
                    break Some(CloseReason::MalformedPacket);
                }
            }
        };
        tally.record(ctx);
        // What arrived before a bad packet still counts.
        if !batch.is_empty() && !forward(link, &mut batch, ctx).await {
            return CloseReason::SessionTakenOver;
        }
        if let Some(reason) = end {
            return reason;
        }

        if buf.capacity() - buf.len() < wanted {
            buf.reserve(wanted.clamp(READ_CHUNK, MAX_RESERVE));
        }
        let read = reader.read(buf);
        let (result, returned) = tokio::select! {
            r = with_limit(idle_limit, read) => match r {
                Some(r) => r,
                None => return CloseReason::KeepAliveTimeout,
            },
            _ = shared.closing.cancelled() => return shared.reason(),
        };
        buf = returned;
        match result {
            Ok(0) | Err(_) => return CloseReason::PeerClosed,
            Ok(n) => ctx.metrics.bytes_received.increment(n as u64),
        }
    }
}

async fn with_limit<F: std::future::Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(d) => tokio::time::timeout(d, f).await.ok(),
        None => Some(f.await),
    }
}

#[derive(Default)]
struct Tally {
    packets: u64,
    publishes: u64,
}

impl Tally {
    fn record(&self, ctx: &SessionContext) {
        if self.packets > 0 {
            ctx.metrics.packets_received.increment(self.packets);
            ctx.metrics.publishes_received.increment(self.publishes);
        }
    }
}

fn judge(packet: Packet, header: u8, tally: &mut Tally, shared: &Shared, ctx: &SessionContext) -> Verdict {
    tally.packets += 1;
    match packet {
        Packet::Publish(publish, props) => {
            tally.publishes += 1;
            let qos = (header >> 1) & 0b11;
            if qos > 0 {
                let inflight = shared.inbound_inflight.get() + 1;
                if inflight > ctx.limits.max_inflight {
                    return Verdict::Close(CloseReason::ReceiveMaximumExceeded);
                }
                shared.inbound_inflight.set(inflight);
            }
            Verdict::Forward(Packet::Publish(publish, props))
        }
        Packet::Subscribe(subscribe, props) => match screen(subscribe, shared.version) {
            Screened::AllAccepted(subscribe) => Verdict::Forward(Packet::Subscribe(subscribe, props)),
            Screened::Partly { forward, refused, total } => {
                ctx.metrics.refused(Refusal::TopicFilterInvalid);
                shared.suback_fixups.borrow_mut().remember(forward.pkid, refused, total);
                Verdict::Forward(Packet::Subscribe(forward, props))
            }
            Screened::AllRefused(suback) => {
                ctx.metrics.refused(Refusal::TopicFilterInvalid);
                Verdict::Reply(Packet::SubAck(suback, None))
            }
        },
        Packet::Disconnect(disconnect, _) => Verdict::Close(CloseReason::ClientDisconnect {
            with_will: disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage,
        }),
        // A second CONNECT, or packets only a server sends, break the protocol.
        Packet::Connect(..)
        | Packet::ConnAck(..)
        | Packet::SubAck(..)
        | Packet::UnsubAck(..)
        | Packet::PingResp(..) => Verdict::Close(CloseReason::ProtocolError),
        other => Verdict::Forward(other),
    }
}

/// Queues a packet the front door answers itself for the writer.
fn reply(packet: Packet, codec: &Codec, shared: &Shared) {
    if codec.write(packet, &mut shared.pending.borrow_mut()).is_ok() {
        shared.data_ready.notify_one();
    }
}

/// Hands a batch to the router with one wake-up event.
///
/// The router drains a link's whole buffer per event, so when the buffer already holds
/// packets an event for it is still queued and no new one is needed. Returns false when
/// the router no longer knows this link.
async fn forward(link: &mut LinkTx, batch: &mut Vec<Packet>, ctx: &SessionContext) -> bool {
    {
        let mut buffer = link.buffer();
        if !buffer.is_empty() {
            buffer.extend(batch.drain(..));
            return true;
        }
    }
    let waits = ctx.router.room().await;
    if waits > 0 {
        ctx.metrics.router_queue_waits.increment(u64::from(waits));
    }
    let Some(last) = batch.pop() else { return true };
    link.buffer().extend(batch.drain(..));
    link.send(last).await.is_ok()
}
