//! Opening an MQTT session: TCP connect, CONNECT/CONNACK and SUBSCRIBE/SUBACK, each
//! bounded by a timeout so a broker that never answers fails the run instead of hanging it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wire::{self, Packet};

/// Read buffer size; big enough that one read usually carries hundreds of deliveries.
pub const READ_BUFFER: usize = 256 * 1024;

/// An established session; `rbuf` may already hold bytes that arrived after the handshake.
pub struct Conn {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
}

impl Conn {
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        fill(&mut self.stream, &mut self.rbuf).await
    }

    /// Waits for the next packet and maps it with `accept`; any other packet is an error.
    async fn expect<T>(&mut self, what: &str, accept: impl Fn(&Packet<'_>) -> Option<T>) -> Result<T> {
        loop {
            if let Some((packet, used)) = wire::decode(&self.rbuf)? {
                let value = accept(&packet);
                let seen = format!("{packet:?}");
                self.rbuf.advance(used);
                return value.with_context(|| format!("expected {what}, got {seen}"));
            }
            if self.read_more().await? == 0 {
                bail!("broker closed the connection while waiting for {what}");
            }
        }
    }
}

/// Reads more bytes into `rbuf`, reserving room for a large frame in one step.
/// Returns 0 on end of stream.
pub async fn fill(reader: &mut (impl AsyncRead + Unpin), rbuf: &mut BytesMut) -> std::io::Result<usize> {
    let missing = wire::missing_bytes(rbuf);
    rbuf.reserve(missing.max(READ_BUFFER / 4));
    reader.read_buf(rbuf).await
}

/// Connects and completes CONNECT/CONNACK with a clean session.
pub async fn connect(addr: SocketAddr, client_id: &str, keep_alive: u16, timeout: Duration) -> Result<Conn> {
    let handshake = async {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn { stream, rbuf: BytesMut::with_capacity(READ_BUFFER) };
        let mut out = BytesMut::with_capacity(64);
        wire::encode_connect(&mut out, client_id, keep_alive);
        conn.stream.write_all(&out).await?;
        let code = conn
            .expect("CONNACK", |p| match p {
                Packet::ConnAck { code, .. } => Some(*code),
                _ => None,
            })
            .await?;
        if code != 0 {
            bail!("broker refused CONNECT with return code {code}");
        }
        Ok(conn)
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .with_context(|| format!("no CONNACK from {addr} within {timeout:?}"))?
        .with_context(|| format!("session {client_id}"))
}

/// Subscribes to one filter and checks the broker granted it.
pub async fn subscribe(conn: &mut Conn, filter: &str, qos: u8, timeout: Duration) -> Result<()> {
    let mut out = BytesMut::with_capacity(64 + filter.len());
    wire::encode_subscribe(&mut out, 1, filter, qos);
    conn.stream.write_all(&out).await?;
    let granted = tokio::time::timeout(
        timeout,
        conn.expect("SUBACK", |p| match p {
            Packet::SubAck { pkid: 1, codes } => codes.first().copied(),
            _ => None,
        }),
    )
    .await
    .with_context(|| format!("no SUBACK for {filter} within {timeout:?}"))??;
    if granted == 0x80 {
        bail!("broker refused SUBSCRIBE to {filter}");
    }
    if granted < qos {
        bail!("broker granted qos {granted} for {filter}, asked {qos}");
    }
    Ok(())
}
