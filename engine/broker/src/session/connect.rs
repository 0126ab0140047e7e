//! The handshake: read a CONNECT, apply the front door's rules, register with the router
//! and answer with a CONNACK that follows the MQTT 3.1.1 / 5 specifications (a refusal
//! always gets its CONNACK before the socket closes).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{
    self, ConnAck, ConnAckProperties, Connect, ConnectProperties, ConnectReturnCode, LastWill, LastWillProperties,
    Packet,
};
use rumqttd::Notification;

use super::{ConnectionPermit, SessionContext};
use crate::client_id::{assigned_client_id, router_client_id};
use crate::codec::{sniff, Codec, MqttVersion, Sniff};
use crate::io::{SocketReader, SocketWriter};
use crate::metrics::Refusal;
use crate::router::Link;

/// A client that passed the handshake.
pub(crate) struct Established {
    pub codec: Codec,
    pub link: Link,
    /// The id the client is known by (assigned when it sent none).
    pub client_id: String,
    /// The id the router knows it by.
    pub router_id: String,
    pub keep_alive: Option<Duration>,
    pub will: Option<(LastWill, Option<LastWillProperties>)>,
    pub permit: ConnectionPermit,
    /// Bytes that arrived after the CONNECT.
    pub leftover: BytesMut,
}

/// How a handshake failed; the socket is closed after it.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// Refused with a CONNACK (or, for garbage, without one) and counted.
    Refused(Refusal),
    /// The peer went away or the socket failed before a CONNECT.
    Io,
}

const READ_CHUNK: usize = 16 * 1024;

/// Reads exactly one CONNECT and answers it.
pub(crate) async fn handshake<R: SocketReader, W: SocketWriter>(
    reader: &mut R,
    writer: &mut W,
    ctx: &Arc<SessionContext>,
) -> Result<Established, HandshakeError> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let version = loop {
        match sniff(&buf) {
            Sniff::Version(v) => break v,
            Sniff::NeedMore => buf = read_more(reader, buf, 64).await?,
            Sniff::NotConnect => return Err(refuse(ctx, Refusal::NotConnect)),
            Sniff::UnsupportedLevel(level) => {
                tracing::debug!(level, "unsupported mqtt protocol level");
                // 3.1.1 §3.2.2.3: return code 0x01 for a level the server does not support.
                let ack = ConnAck { session_present: false, code: ConnectReturnCode::RefusedProtocolVersion };
                send(writer, &Codec::new(MqttVersion::V311), Packet::ConnAck(ack, None)).await;
                return Err(refuse(ctx, Refusal::UnsupportedProtocol));
            }
        }
    };
    let mut codec = Codec::new(version);
    let packet = loop {
        match codec.read(&mut buf, ctx.limits.max_packet_size) {
            Ok(packet) => break packet,
            Err(protocol::Error::InsufficientBytes(n)) => buf = read_more(reader, buf, n).await?,
            Err(protocol::Error::PayloadSizeLimitExceeded(_)) => {
                let code =
                    connack_code(version, ConnectReturnCode::PacketTooLarge, ConnectReturnCode::ServiceUnavailable);
                send_connack(writer, &codec, code, None).await;
                return Err(refuse(ctx, Refusal::PacketTooLarge));
            }
            Err(e) => {
                tracing::debug!(error = %e, "malformed connect");
                if version == MqttVersion::V5 {
                    send_connack(writer, &codec, ConnectReturnCode::MalformedPacket, None).await;
                }
                return Err(refuse(ctx, Refusal::MalformedPacket));
            }
        }
    };
    let Packet::Connect(connect, props, will, will_props, _login) = packet else {
        return Err(refuse(ctx, Refusal::NotConnect));
    };
    // From a complete CONNECT to the CONNACK written: policy plus the router's link.
    let started = std::time::Instant::now();
    let accepted = accept(connect, props, will.map(|w| (w, will_props)), codec, buf, writer, ctx).await;
    if accepted.is_ok() {
        ctx.metrics.connect_seconds.record(started.elapsed().as_secs_f64());
    }
    accepted
}

async fn accept<W: SocketWriter>(
    connect: Connect,
    props: Option<ConnectProperties>,
    will: Option<(LastWill, Option<LastWillProperties>)>,
    codec: Codec,
    leftover: BytesMut,
    writer: &mut W,
    ctx: &Arc<SessionContext>,
) -> Result<Established, HandshakeError> {
    let version = codec.version();
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        // 3.1.1 §3.1.3.1: an empty id is only allowed with a clean session; v5 always
        // assigns one and reports it in the CONNACK.
        if version == MqttVersion::V311 && !connect.clean_session {
            send_connack(writer, &codec, ConnectReturnCode::ClientIdentifierNotValid, None).await;
            return Err(refuse(ctx, Refusal::ClientIdRejected));
        }
        let id = assigned_client_id();
        assigned = Some(id.clone());
        id
    } else {
        connect.client_id.clone()
    };

    let Some(permit) = ConnectionPermit::acquire(ctx) else {
        let code = connack_code(version, ConnectReturnCode::QuotaExceeded, ConnectReturnCode::ServiceUnavailable);
        send_connack(writer, &codec, code, None).await;
        return Err(refuse(ctx, Refusal::ServerBusy));
    };

    let router_id = router_client_id(&client_id).into_owned();
    // A reconnect cancels a will still waiting out its delay (MQTT 5 §3.1.3.2.2).
    ctx.wills.cancel(&router_id);

    let topic_alias_max = props.as_ref().and_then(|p| p.topic_alias_max).unwrap_or(0);
    // Building waits for the router thread's answer; keep that off the I/O thread.
    let built = {
        let router = ctx.router.clone();
        let id = router_id.clone();
        let clean = connect.clean_session;
        tokio::task::spawn_blocking(move || {
            router
                .link_builder(&id)
                .clean_session(clean)
                .topic_alias_max(topic_alias_max)
                .build()
                .map_err(crate::router::LinkError::from)
        })
        .await
    };
    let link = match built {
        Ok(Ok((tx, rx, connack))) => Link { tx, rx, connack },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, client_id, "router refused the link");
            let code =
                connack_code(version, ConnectReturnCode::ServerUnavailable, ConnectReturnCode::ServiceUnavailable);
            send_connack(writer, &codec, code, None).await;
            return Err(refuse(ctx, Refusal::ServerBusy));
        }
        Err(_) => return Err(HandshakeError::Io),
    };

    let session_present = match &link.connack {
        Notification::DeviceAck(ack) => match Packet::from(ack.clone()) {
            Packet::ConnAck(ack, _) => ack.session_present,
            _ => false,
        },
        _ => false,
    };
    let properties = (version == MqttVersion::V5).then(|| ConnAckProperties {
        assigned_client_identifier: assigned,
        receive_max: Some(ctx.limits.max_inflight as u16),
        max_packet_size: Some(ctx.limits.max_packet_size.min(u32::MAX as usize) as u32),
        // The router resolves topic aliases up to this many per connection.
        topic_alias_max: Some(rumqttd_topic_alias_max()),
        retain_available: Some(1),
        wildcard_subscription_available: Some(1),
        shared_subscription_available: Some(1),
        subscription_identifiers_available: Some(1),
        ..Default::default()
    });
    let ack = ConnAck { session_present, code: ConnectReturnCode::Success };
    if !try_send(writer, &codec, Packet::ConnAck(ack, properties)).await {
        return Err(HandshakeError::Io);
    }
    let keep_alive = (connect.keep_alive > 0).then(|| Duration::from_secs(u64::from(connect.keep_alive)));
    Ok(Established { codec, link, client_id, router_id, keep_alive, will, permit, leftover })
}

/// The router's own CONNACK advertises this; keep ours the same.
fn rumqttd_topic_alias_max() -> u16 {
    4096
}

fn connack_code(version: MqttVersion, v5: ConnectReturnCode, v311: ConnectReturnCode) -> ConnectReturnCode {
    match version {
        MqttVersion::V5 => v5,
        MqttVersion::V311 => v311,
    }
}

fn refuse(ctx: &SessionContext, refusal: Refusal) -> HandshakeError {
    ctx.metrics.refused(refusal);
    HandshakeError::Refused(refusal)
}

async fn read_more<R: SocketReader>(
    reader: &mut R,
    mut buf: BytesMut,
    at_least: usize,
) -> Result<BytesMut, HandshakeError> {
    buf.reserve(at_least.clamp(64, READ_CHUNK * 64));
    let (result, buf) = reader.read(buf).await;
    match result {
        Ok(0) | Err(_) => Err(HandshakeError::Io),
        Ok(_) => Ok(buf),
    }
}

async fn send_connack<W: SocketWriter>(
    writer: &mut W,
    codec: &Codec,
    code: ConnectReturnCode,
    properties: Option<ConnAckProperties>,
) {
    let ack = ConnAck { session_present: false, code };
    send(writer, codec, Packet::ConnAck(ack, properties)).await;
}

async fn send<W: SocketWriter>(writer: &mut W, codec: &Codec, packet: Packet) {
    try_send(writer, codec, packet).await;
    writer.shutdown();
}

async fn try_send<W: SocketWriter>(writer: &mut W, codec: &Codec, packet: Packet) -> bool {
    let mut out = BytesMut::with_capacity(64);
    if codec.write(packet, &mut out).is_err() {
        return false;
    }
    let (result, _) = writer.write_all(out).await;
    result.is_ok()
}
