//! One scripted MQTT conversation over TCP, either protocol level: send crafted bytes,
//! wait for the next packet or for the end of the connection, and say which it was.
//!
//! The hot-path `connection` module treats anything unexpected as an error; here the
//! unexpected is the point: a refusal, a DISCONNECT with a reason, a reset or silence is
//! an answer to record.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout_at, Instant};

use crate::packet::{self, Connect, Incoming, Properties, Publish, Version};

/// How a wait for the next packet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Packet(Incoming),
    /// The peer closed the connection (end of stream).
    Closed,
    Reset,
    TimedOut,
    /// The bytes could not be parsed, or the socket failed otherwise.
    Broken(String),
}

impl Next {
    pub fn describe(&self, version: Version) -> String {
        match self {
            Next::Packet(p) => p.describe(version),
            Next::Closed => "connection closed".into(),
            Next::Reset => "connection reset".into(),
            Next::TimedOut => "no answer".into(),
            Next::Broken(why) => why.clone(),
        }
    }

    /// Whether the connection is over after this.
    pub fn is_end(&self) -> bool {
        matches!(self, Next::Closed | Next::Reset | Next::Broken(_) | Next::Packet(Incoming::Disconnect { .. }))
    }
}

pub struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    pub version: Version,
    pending: VecDeque<Incoming>,
    last_pkid: u16,
    /// Acknowledge inbound QoS 1 deliveries as they are read, as a well-behaved client does.
    pub auto_ack: bool,
    /// The broker's Receive Maximum from an MQTT 5 CONNACK.
    receive_maximum: Option<u16>,
}

/// A TCP connection to `addr`, from `source` when given (another loopback address is
/// another device to a broker that limits per source).
pub async fn tcp(addr: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| anyhow!("tcp connect to {addr} timed out after {timeout:?}"))?
        .with_context(|| format!("tcp connect to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Closes with a TCP reset instead of a FIN (SO_LINGER 0), as a device that loses power
/// or a crashing client looks to the broker.
pub fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

impl Client {
    pub fn new(stream: TcpStream, version: Version) -> Client {
        Client {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            version,
            pending: VecDeque::new(),
            last_pkid: 0,
            auto_ack: true,
            receive_maximum: None,
        }
    }

    /// TCP, CONNECT, and a successful CONNACK; otherwise an error that says what came back.
    pub async fn connect(addr: SocketAddr, connect: &Connect, timeout: Duration) -> Result<Client> {
        Self::connect_from(addr, None, connect, timeout).await
    }

    pub async fn connect_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        c: &Connect,
        timeout: Duration,
    ) -> Result<Client> {
        let deadline = Instant::now() + timeout;
        let mut client = Client::new(tcp(addr, source, timeout).await?, c.version);
        let answer = client.handshake(c, deadline).await;
        match answer {
            Next::Packet(Incoming::ConnAck { code: 0, .. }) => Ok(client),
            other => bail!("CONNECT as {} answered with {}", c.client_id, other.describe(c.version)),
        }
    }

    /// Sends CONNECT and returns what answered it.
    pub async fn handshake(&mut self, c: &Connect, deadline: Instant) -> Next {
        let mut out = BytesMut::new();
        packet::encode_connect(&mut out, c);
        if let Err(e) = self.send(&out).await {
            return io_end(&e);
        }
        let answer = self.next_until(deadline).await;
        if let Next::Packet(Incoming::ConnAck { properties, .. }) = &answer {
            self.receive_maximum = properties.iter().find_map(|(id, v)| match (*id, v) {
                (packet::prop::RECEIVE_MAXIMUM, packet::PropValue::Int(n)) => Some(*n as u16),
                _ => None,
            });
        }
        answer
    }

    /// How many QoS 1 publishes may be unacknowledged: the broker's Receive Maximum
    /// (MQTT 5), else `default` (MQTT 3.1.1 has no way to say).
    pub fn publish_window(&self, default: u16) -> usize {
        usize::from(self.receive_maximum.unwrap_or(default).max(1))
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub fn next_pkid(&mut self) -> u16 {
        self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
        self.last_pkid
    }

    pub async fn next(&mut self, timeout: Duration) -> Next {
        self.next_until(Instant::now() + timeout).await
    }

    pub async fn next_until(&mut self, deadline: Instant) -> Next {
        if let Some(p) = self.pending.pop_front() {
            return Next::Packet(p);
        }
        loop {
            match packet::decode(&self.rbuf, self.version) {
                Ok(Some((p, used))) => {
                    self.rbuf.advance(used);
                    if let (true, Incoming::Publish(d)) = (self.auto_ack, &p) {
                        if d.qos == 1 {
                            let mut ack = BytesMut::with_capacity(4);
                            packet::encode_puback(&mut ack, d.pkid);
                            if let Err(e) = self.stream.write_all(&ack).await {
                                return io_end(&e);
                            }
                        }
                    }
                    return Next::Packet(p);
                }
                Ok(None) => {}
                Err(why) => return Next::Broken(format!("unparseable bytes from the broker: {why}")),
            }
            let missing = crate::wire::missing_bytes(&self.rbuf);
            self.rbuf.reserve(missing.clamp(16 * 1024, 64 << 20));
            match timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Next::TimedOut,
                Ok(Ok(0)) => return Next::Closed,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return io_end(&e),
            }
        }
    }

    /// The first packet `wanted` accepts; packets before it wait in order for later
    /// `next` calls. Anything that ends the wait otherwise is the error.
    pub async fn expect(&mut self, deadline: Instant, wanted: impl Fn(&Incoming) -> bool) -> Result<Incoming, Next> {
        let mut skipped = Vec::new();
        let outcome = loop {
            match self.next_until(deadline).await {
                Next::Packet(p) if wanted(&p) => break Ok(p),
                Next::Packet(p @ Incoming::Disconnect { .. }) => break Err(Next::Packet(p)),
                Next::Packet(p) => skipped.push(p),
                other => break Err(other),
            }
        };
        for p in skipped.into_iter().rev() {
            self.pending.push_front(p);
        }
        outcome
    }

    /// SUBSCRIBE and its SUBACK codes.
    pub async fn subscribe(&mut self, filters: &[(&str, u8)], timeout: Duration) -> Result<Vec<u8>, Next> {
        let pkid = self.next_pkid();
        let mut out = BytesMut::new();
        packet::encode_subscribe(&mut out, self.version, pkid, filters);
        self.send(&out).await.map_err(|e| io_end(&e))?;
        match self
            .expect(Instant::now() + timeout, |p| matches!(p, Incoming::SubAck { pkid: id, .. } if *id == pkid))
            .await?
        {
            Incoming::SubAck { codes, .. } => Ok(codes),
            _ => unreachable!("expect returns what it was asked for"),
        }
    }

    /// PUBLISH; for QoS 1 waits for the PUBACK and returns its reason code.
    pub async fn publish(
        &mut self,
        topic: &[u8],
        qos: u8,
        retain: bool,
        properties: Properties,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Option<u8>, Next> {
        let pkid = if qos > 0 { self.next_pkid() } else { 0 };
        let mut out = BytesMut::with_capacity(payload.len() + topic.len() + 64);
        packet::encode_publish(&mut out, self.version, &Publish { topic, qos, retain, pkid, properties, payload });
        self.send(&out).await.map_err(|e| io_end(&e))?;
        if qos == 0 {
            return Ok(None);
        }
        match self
            .expect(Instant::now() + timeout, |p| matches!(p, Incoming::PubAck { pkid: id, .. } if *id == pkid))
            .await?
        {
            Incoming::PubAck { code, .. } => Ok(Some(code)),
            _ => unreachable!("expect returns what it was asked for"),
        }
    }

    /// A round trip that proves the broker read everything sent before it.
    pub async fn ping(&mut self, timeout: Duration) -> Result<(), Next> {
        let mut out = BytesMut::with_capacity(2);
        packet::encode_pingreq(&mut out);
        self.send(&out).await.map_err(|e| io_end(&e))?;
        self.expect(Instant::now() + timeout, |p| matches!(p, Incoming::PingResp)).await.map(|_| ())
    }

    /// DISCONNECT, then wait (briefly) for the broker to close first, so the TIME_WAIT
    /// stays on its side and thousands of short sessions do not use up loadgen's ports.
    pub async fn disconnect(mut self) {
        let mut out = BytesMut::with_capacity(2);
        packet::encode_disconnect(&mut out);
        if self.stream.write_all(&out).await.is_ok() {
            let mut sink = [0u8; 256];
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok(Ok(n)) = timeout_at(deadline, self.stream.read(&mut sink)).await {
                if n == 0 {
                    break;
                }
            }
        }
    }

    pub fn reset(self) {
        reset(self.stream);
    }

    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// The socket and what was read past the last packet returned, for a caller that
    /// streams a large payload itself.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.rbuf)
    }
}

pub fn io_end(e: &std::io::Error) -> Next {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Next::Reset,
        ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => Next::Closed,
        _ => Next::Broken(format!("socket error: {e}")),
    }
}
