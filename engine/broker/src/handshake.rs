//! The CONNECT, read and checked by the listener before the connection goes to its
//! node, and answered with the CONNACK refusal the 3.1.1 / 5 specifications name when it
//! is refused (never a silent close where a code exists).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, ConnectReturnCode, LastWill, LastWillProperties, Login,
    Packet, PublishProperties,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::bus::Message;
use crate::codec::password::take_binary_password;
use crate::codec::publish::payload_is_utf8;
use crate::codec::{frame, sniff, ClientPacket, Codec, FrameError, MqttVersion, Sniff};
use crate::gateway::{Gateway, LoginRefusal};
use crate::limits::Limits;
use crate::metrics::{Refusal, SecurityRefusal};
use crate::security;
use crate::session::attach::ConnectRequest;
use crate::session::{ClientLimits, Will};
use crate::topic::check_name;

/// What a CONNECT can be read from: a TCP socket, TLS over it, a WebSocket.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

/// Why a handshake ended without a client.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// Refused (with a CONNACK where the protocol has one) and counted.
    Refused(Refusal),
    /// The peer went away or the socket failed before a CONNECT.
    Io,
}

/// A CONNECT's username and password (Binary Data: any bytes).
pub(crate) struct Credentials {
    pub username: String,
    pub password: Vec<u8>,
}

/// A CONNECT that passed every check.
pub(crate) struct Accepted {
    pub request: ConnectRequest,
    pub leftover: BytesMut,
    pub connected_at: Instant,
    /// The CONNECT's username and password, for `[security]`.
    pub login: Option<Credentials>,
}

/// Reads exactly one CONNECT, growing the buffer only as bytes arrive and never past
/// `max_connect_bytes`.
pub(crate) async fn read_connect<S: Stream>(stream: &mut S, limits: &Limits) -> Result<Accepted, HandshakeError> {
    let mut buf = BytesMut::new();
    let version = loop {
        match sniff(&buf) {
            Sniff::Version(v) => break v,
            Sniff::NeedMore => read_more(stream, &mut buf, 64).await?,
            Sniff::NotConnect => return Err(HandshakeError::Refused(Refusal::NotConnect)),
            Sniff::UnsupportedLevel(level) => {
                tracing::debug!(level, "unsupported mqtt protocol level");
                // 3.1.1 §3.2.2.3: 0x01 for a level the server does not support.
                let ack = ConnAck { session_present: false, code: ConnectReturnCode::RefusedProtocolVersion };
                send(stream, &Codec::new(MqttVersion::V311), Packet::ConnAck(ack, None)).await;
                return Err(HandshakeError::Refused(Refusal::UnsupportedProtocol));
            }
        }
    };
    let mut codec = Codec::new(version);
    let (packet, binary_password) = loop {
        match frame(&buf, version, limits.max_connect_bytes) {
            Ok(Some(f)) if f.kind != ClientPacket::Connect => {
                return Err(HandshakeError::Refused(Refusal::NotConnect));
            }
            Ok(Some(f)) if buf.len() >= f.len() => {
                let flags = connect_flags(&buf, f.header_len);
                if flags & 1 != 0 {
                    return refuse(stream, &codec, Refusal::MalformedPacket, ConnectReturnCode::MalformedPacket).await;
                }
                let binary_password = take_binary_password(&mut buf[..f.len()], f.header_len, version.is_v5());
                match codec.read(&mut buf, limits.max_connect_bytes) {
                    Ok(packet) => break (packet, binary_password),
                    Err(e) => {
                        tracing::debug!(error = %e, "malformed connect");
                        return refuse(stream, &codec, Refusal::MalformedPacket, ConnectReturnCode::MalformedPacket)
                            .await;
                    }
                }
            }
            Ok(Some(f)) => {
                let missing = f.len() - buf.len();
                read_more(stream, &mut buf, missing).await?;
            }
            Ok(None) => read_more(stream, &mut buf, 64).await?,
            Err(FrameError::TooLarge(_)) => {
                return refuse(stream, &codec, Refusal::PacketTooLarge, ConnectReturnCode::PacketTooLarge).await;
            }
            Err(_) => {
                return refuse(stream, &codec, Refusal::MalformedPacket, ConnectReturnCode::MalformedPacket).await
            }
        }
    };
    let connected_at = Instant::now();
    let Packet::Connect(connect, properties, will, will_properties, login) = packet else {
        return Err(HandshakeError::Refused(Refusal::NotConnect));
    };
    let login = login.map(|Login { username, password }| Credentials {
        username,
        password: binary_password.unwrap_or_else(|| password.into_bytes()),
    });
    match check(version, connect, properties, will.map(|w| (w, will_properties)), limits) {
        Ok(request) => Ok(Accepted { request, leftover: buf, connected_at, login }),
        Err((refusal, code)) => refuse(stream, &codec, refusal, code).await,
    }
}

/// The CONNECT flags byte: after the fixed header, the protocol name and the level.
fn connect_flags(buf: &[u8], header_len: usize) -> u8 {
    let name_len = u16::from_be_bytes([buf[header_len], buf[header_len + 1]]) as usize;
    buf.get(header_len + 2 + name_len + 1).copied().unwrap_or(0)
}

type Refused = (Refusal, ConnectReturnCode);

fn check(
    version: MqttVersion,
    connect: Connect,
    properties: Option<ConnectProperties>,
    will: Option<(LastWill, Option<LastWillProperties>)>,
    limits: &Limits,
) -> Result<ConnectRequest, Refused> {
    let v5 = version.is_v5();
    let p = properties.unwrap_or(ConnectProperties {
        session_expiry_interval: None,
        receive_maximum: None,
        max_packet_size: None,
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: vec![],
        authentication_method: None,
        authentication_data: None,
    });
    if p.authentication_method.is_some() {
        // No enhanced authentication method is offered (5 §4.12).
        return Err((Refusal::BadAuthenticationMethod, ConnectReturnCode::BadAuthenticationMethod));
    }
    let invalid_id = (Refusal::ClientIdRejected, ConnectReturnCode::ClientIdentifierNotValid);
    let mut assigned = false;
    let client_id = if connect.client_id.is_empty() {
        // 3.1.1 §3.1.3.1: an empty id only with a clean session; 5 assigns one and says so.
        if !v5 && !connect.clean_session {
            return Err(invalid_id);
        }
        assigned = true;
        format!("alicia-{}", uuid::Uuid::new_v4().simple())
    } else {
        connect.client_id
    };
    if client_id.len() > limits.max_client_id_length || client_id.contains('\0') {
        return Err(invalid_id);
    }
    if p.receive_maximum == Some(0) || p.max_packet_size == Some(0) {
        return Err((Refusal::ProtocolError, ConnectReturnCode::ProtocolError));
    }
    let (keep_alive, server_keep_alive) = keep_alive(version, connect.keep_alive, limits.max_keep_alive)?;
    let asked_expiry = if v5 {
        p.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_session {
        0
    } else {
        u32::MAX
    };
    let session_expiry = asked_expiry.min(limits.max_session_expiry);
    let will = match will {
        Some((will, props)) => Some(Box::new(check_will(version, will, props, limits)?)),
        None => None,
    };
    Ok(ConnectRequest {
        version,
        client_id,
        assigned,
        clean_start: connect.clean_session,
        keep_alive,
        server_keep_alive,
        session_expiry,
        session_expiry_capped: v5 && session_expiry != asked_expiry,
        client: ClientLimits {
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            maximum_packet_size: p.max_packet_size.map_or(usize::MAX, |m| m as usize),
            topic_alias_maximum: if v5 { p.topic_alias_max.unwrap_or(0) } else { 0 },
        },
        problem_info: p.request_problem_info != Some(0),
        will,
        rules: None,
        username: None,
        rules_generation: 0,
        listener: "tcp",
        peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    })
}

/// The keep-alive the connection runs with, and the MQTT 5 Server Keep Alive when the
/// broker imposes its maximum. A 3.1.1 client cannot be told, so one asking for more
/// (or none) is refused as mosquitto does.
fn keep_alive(version: MqttVersion, asked: u16, max: u16) -> Result<(u16, Option<u16>), Refused> {
    if max == u16::MAX || (asked != 0 && asked <= max) {
        return Ok((asked, None));
    }
    match version {
        MqttVersion::V5 => Ok((max, Some(max))),
        MqttVersion::V311 => Err((Refusal::ClientIdRejected, ConnectReturnCode::ClientIdentifierNotValid)),
    }
}

fn check_will(
    version: MqttVersion,
    will: LastWill,
    props: Option<LastWillProperties>,
    limits: &Limits,
) -> Result<Will, Refused> {
    let invalid_topic = (Refusal::TopicNameInvalid, ConnectReturnCode::TopicNameInvalid);
    check_name(&will.topic, limits.max_topic_length).map_err(|_| invalid_topic)?;
    let props = props.filter(|_| version.is_v5());
    if props.as_ref().and_then(|p| p.payload_format_indicator) == Some(1) && !payload_is_utf8(&will.message) {
        return Err((Refusal::PayloadFormatInvalid, ConnectReturnCode::PayloadFormatInvalid));
    }
    let delay = props.as_ref().and_then(|p| p.delay_interval).unwrap_or(0);
    let properties = props
        .map(|p| PublishProperties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            topic_alias: None,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
            subscription_identifiers: vec![],
            content_type: p.content_type,
        })
        .filter(|p| *p != PublishProperties::default());
    // The will lives as long as the session: its own allocations, not the read buffer.
    let message = Message {
        topic: Bytes::copy_from_slice(&will.topic),
        payload: Bytes::copy_from_slice(&will.message),
        qos: will.qos as u8,
        retain: will.retain,
        properties,
        publisher: None,
    };
    Ok(Will { message, delay })
}

async fn refuse<S: Stream>(
    stream: &mut S,
    codec: &Codec,
    refusal: Refusal,
    code: ConnectReturnCode,
) -> Result<Accepted, HandshakeError> {
    send_refusal(stream, codec, refusal.as_label(), code).await;
    Err(HandshakeError::Refused(refusal))
}

/// The CONNACK of a refusal: `code` (3.1.1: its nearest code, or none and a close), and
/// for MQTT 5 the reason's label as the reason string.
async fn send_refusal<S: Stream>(stream: &mut S, codec: &Codec, reason: &str, code: ConnectReturnCode) {
    let code = match codec.version() {
        MqttVersion::V5 => Some(code),
        MqttVersion::V311 => v311_code(code),
    };
    if let Some(code) = code {
        let properties = (codec.version().is_v5())
            .then(|| ConnAckProperties { reason_string: Some(reason.replace('_', " ")), ..Default::default() });
        send(stream, codec, Packet::ConnAck(ConnAck { session_present: false, code }, properties)).await;
    }
}

/// 3.1.1 has six return codes; a refusal without one closes the connection (§3.2.2.3).
pub(crate) fn v311_code(code: ConnectReturnCode) -> Option<ConnectReturnCode> {
    use ConnectReturnCode::*;
    match code {
        RefusedProtocolVersion | UnsupportedProtocolVersion => Some(RefusedProtocolVersion),
        ClientIdentifierNotValid => Some(ClientIdentifierNotValid),
        ServiceUnavailable | ServerUnavailable | ServerBusy | QuotaExceeded | ConnectionRateExceeded => {
            Some(ServiceUnavailable)
        }
        BadUserNamePassword => Some(BadUserNamePassword),
        NotAuthorized => Some(NotAuthorized),
        _ => None,
    }
}

async fn read_more<S: Stream>(stream: &mut S, buf: &mut BytesMut, at_least: usize) -> Result<(), HandshakeError> {
    buf.reserve(at_least.max(64));
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => Err(HandshakeError::Io),
        Ok(_) => Ok(()),
    }
}

pub(crate) async fn send<S: Stream>(stream: &mut S, codec: &Codec, packet: Packet) {
    let mut out = BytesMut::with_capacity(64);
    if codec.write(packet, &mut out).is_ok() {
        let _ = stream.write_all(&out).await;
    }
    let _ = stream.shutdown().await;
}

/// For a refusal decided after the CONNECT was read (a busy server).
pub(crate) async fn refuse_busy<S: Stream>(stream: &mut S, version: MqttVersion, refusal: Refusal) {
    refuse_with(stream, version, refusal.as_label(), ConnectReturnCode::QuotaExceeded).await;
}

/// A refusal decided after the CONNECT was read: its CONNACK code, and the label of
/// the reason (a `Refusal`'s or a `SecurityRefusal`'s) as the MQTT 5 reason string.
pub(crate) async fn refuse_with<S: Stream>(
    stream: &mut S,
    version: MqttVersion,
    reason: &str,
    code: ConnectReturnCode,
) {
    send_refusal(stream, &Codec::new(version), reason, code).await;
}

/// `[security]` on a read CONNECT: its credentials (with the failed-login back-off),
/// then its will against the client's ACL rules (which the request carries to the
/// session with the username they were made for) and, on a topic of
/// `[security.signing] require`, its signature.
pub(crate) fn admit(
    gateway: &Gateway,
    request: &mut ConnectRequest,
    login: Option<Credentials>,
    identity: Option<String>,
) -> Result<(), SecurityRefusal> {
    // Set before any check, so a refusal's audit line names who was refused.
    match (identity, login) {
        // The verified certificate is the credential; its CN replaces any username.
        (Some(cn), _) => request.username = Some(cn),
        (None, Some(Credentials { username, password })) => {
            request.username = Some(username);
            gateway.login(request.username.as_deref(), &password, Instant::now()).map_err(login_refusal)?;
        }
        (None, None) => gateway.login(None, b"", Instant::now()).map_err(login_refusal)?,
    }
    request.rules_generation = gateway.generation();
    request.rules = gateway.rules_for(request.username.as_deref(), &request.client_id);
    if let Some(will) = &mut request.will {
        let topic = will.message.topic_str();
        if !security::may_publish(&request.rules, topic) {
            return Err(SecurityRefusal::WillDenied);
        }
        // The broker publishes the will itself, past the check every PUBLISH gets: on a
        // topic that requires signatures it is checked now, and kept as it verified (an
        // encrypted one decrypted, as a PUBLISH would be delivered).
        if gateway.requires_signature(topic) {
            will.message.payload =
                gateway.verify(&will.message.payload).map_err(|e| SecurityRefusal::from_signature(&e))?;
        }
    }
    Ok(())
}

fn login_refusal(refusal: LoginRefusal) -> SecurityRefusal {
    match refusal {
        LoginRefusal::Refused(refusal) => refusal,
        LoginRefusal::BackOff => SecurityRefusal::LoginBackoff,
    }
}
