//! One MQTT 3.1.1 session over plain TCP or TLS, with the same code above the socket:
//! clean, or persistent (`clean session` off) for the `durability` scenario.
//!
//! The comparison is only fair if both transports run the same client: [`Stream`] is a
//! closed enum over the two (one `match` per poll, the same cost on both sides), and the
//! CONNECT/CONNACK and SUBSCRIBE/SUBACK exchanges are loadgen's own lean codec
//! ([`crate::wire`]) over whichever it is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::connection::fill;
use crate::wire::{self, Packet};

/// A client socket, plain or TLS.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Stream {
    /// The TLS version and cipher suite negotiated, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384`.
    pub fn negotiated(&self) -> Option<String> {
        let Stream::Tls(tls) = self else { return None };
        let conn = tls.get_ref().1;
        let version = conn.protocol_version()?;
        let suite = conn.negotiated_cipher_suite()?;
        Some(format!("{version:?} {:?}", suite.suite()))
    }
}

/// The closed set of transports the scenario compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Tls,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// Where and how to open a socket to one of the engine's listeners.
#[derive(Clone)]
pub struct Dialer {
    pub addr: SocketAddr,
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// Why a socket could not be opened.
#[derive(Debug)]
pub enum DialError {
    /// The TCP connect itself.
    Tcp(io::Error),
    /// The TLS handshake (an alert, a bad certificate, or the server closing mid-way).
    Tls(io::Error),
}

impl Dialer {
    pub fn transport(&self) -> Transport {
        if self.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// TCP connect with TCP_NODELAY, then the TLS handshake if this is the TLS door.
    /// Returns the stream and when its handshake (TCP or TLS) ended.
    pub async fn dial(&self) -> Result<(Stream, Instant), DialError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(DialError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok((Stream::Tcp(tcp), Instant::now())),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(DialError::Tls)?;
                Ok((Stream::Tls(Box::new(tls)), Instant::now()))
            }
        }
    }
}

/// What the broker answered a CONNECT with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectReply {
    Accepted,
    Refused(u8),
    /// End of stream before a CONNACK.
    Closed,
    /// A reset or another read error before a CONNACK.
    Reset,
    /// Something other than a CONNACK.
    Unexpected,
}

/// Sends a clean-session CONNECT and waits for the CONNACK; bytes after it stay in `rbuf`.
pub async fn connect(stream: &mut Stream, rbuf: &mut BytesMut, client_id: &str, keep_alive: u16) -> ConnectReply {
    connect_session(stream, rbuf, client_id, keep_alive, true).await.0
}

/// A CONNECT, clean or resuming a persistent session, and its CONNACK: the reply and
/// whether the broker had the session (`session present`).
pub async fn connect_session(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    client_id: &str,
    keep_alive: u16,
    clean: bool,
) -> (ConnectReply, bool) {
    let mut out = BytesMut::with_capacity(32 + client_id.len());
    wire::encode_connect_session(&mut out, client_id, keep_alive, clean);
    if stream.write_all(&out).await.is_err() {
        return (ConnectReply::Reset, false);
    }
    loop {
        match wire::decode(rbuf) {
            Ok(Some((Packet::ConnAck { code: 0, session_present }, used))) => {
                rbuf.advance(used);
                return (ConnectReply::Accepted, session_present);
            }
            Ok(Some((Packet::ConnAck { code, .. }, _))) => return (ConnectReply::Refused(code), false),
            Ok(Some(_)) | Err(_) => return (ConnectReply::Unexpected, false),
            Ok(None) => {}
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => return (ConnectReply::Closed, false),
            Ok(_) => {}
            Err(_) => return (ConnectReply::Reset, false),
        }
    }
}

/// Dials and connects, failing on anything but an accepted session within `timeout`.
pub async fn open(dialer: &Dialer, client_id: &str, keep_alive: u16, timeout: Duration) -> Result<(Stream, BytesMut)> {
    open_session(dialer, client_id, keep_alive, timeout, true).await.map(|(stream, rbuf, _)| (stream, rbuf))
}

/// [`open`], clean or persistent; also whether the broker had the session.
pub async fn open_session(
    dialer: &Dialer,
    client_id: &str,
    keep_alive: u16,
    timeout: Duration,
    clean: bool,
) -> Result<(Stream, BytesMut, bool)> {
    let door = dialer.transport().name();
    let session = async {
        let (mut stream, _) = dialer.dial().await.map_err(|e| anyhow::anyhow!("{door} dial: {e:?}"))?;
        let mut rbuf = BytesMut::with_capacity(crate::connection::READ_BUFFER);
        match connect_session(&mut stream, &mut rbuf, client_id, keep_alive, clean).await {
            (ConnectReply::Accepted, present) => Ok((stream, rbuf, present)),
            (other, _) => bail!("{door} CONNECT of {client_id}: {other:?}"),
        }
    };
    tokio::time::timeout(timeout, session)
        .await
        .with_context(|| format!("{door}: no CONNACK for {client_id} within {timeout:?}"))?
}

/// DISCONNECT and close: a persistent session stays with the broker, no will is sent.
pub async fn disconnect(mut stream: Stream) {
    let mut out = BytesMut::with_capacity(2);
    wire::encode_disconnect(&mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// Subscribes to one filter at QoS 1 and checks the grant.
pub async fn subscribe(stream: &mut Stream, rbuf: &mut BytesMut, filter: &str, timeout: Duration) -> Result<()> {
    let mut out = BytesMut::with_capacity(16 + filter.len());
    wire::encode_subscribe(&mut out, 1, filter, 1);
    stream.write_all(&out).await?;
    let granted = tokio::time::timeout(timeout, async {
        loop {
            if let Some((packet, used)) = wire::decode(rbuf)? {
                let granted = match packet {
                    Packet::SubAck { pkid: 1, codes } => codes.first().copied(),
                    _ => None,
                };
                rbuf.advance(used);
                return granted.context("expected SUBACK");
            }
            if fill(stream, rbuf).await? == 0 {
                bail!("closed while waiting for SUBACK");
            }
        }
    })
    .await
    .with_context(|| format!("no SUBACK for {filter} within {timeout:?}"))??;
    if granted != 1 {
        bail!("SUBSCRIBE {filter} at QoS 1 granted {granted:#04x}");
    }
    Ok(())
}
