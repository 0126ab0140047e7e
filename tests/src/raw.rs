//! MQTT by hand over a plain socket: for the bytes a well-behaved client never sends.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::PATIENCE;

/// A raw connection.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    pub async fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp connect");
        RawClient { stream, buf: BytesMut::new() }
    }

    /// A client from another loopback address (127.0.0.2, …): another device to the engine.
    pub async fn connect_from(port: u16, source: std::net::Ipv4Addr) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((source, 0).into()).expect("bind the source address");
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.expect("tcp connect");
        RawClient { stream, buf: BytesMut::new() }
    }

    /// A client whose receive buffer is fixed at a few KiB (no autotuning), so a peer
    /// that never reads is found out after kilobytes, whatever the host's TCP memory.
    pub async fn connect_with_small_window(port: u16) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.expect("tcp connect");
        RawClient { stream, buf: BytesMut::new() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// A v3.1.1 CONNECT (clean session) built by rumqttc's codec; `tweak` may add a will.
    pub fn connect_packet(client_id: &str, keep_alive: u16, tweak: impl FnOnce(&mut rumqttc::Connect)) -> BytesMut {
        let mut connect = rumqttc::Connect::new(client_id);
        connect.keep_alive = keep_alive;
        tweak(&mut connect);
        let mut out = BytesMut::new();
        connect.write(&mut out).unwrap();
        out
    }

    /// Sends a v3.1.1 CONNECT and returns the CONNACK's return code byte.
    pub async fn handshake(
        &mut self,
        client_id: &str,
        keep_alive: u16,
        tweak: impl FnOnce(&mut rumqttc::Connect),
    ) -> u8 {
        let packet = Self::connect_packet(client_id, keep_alive, tweak);
        self.send(&packet).await;
        let ack = self.read_exact(4).await.expect("a CONNACK");
        assert_eq!(ack[0], 0x20, "CONNACK packet type, got {ack:?}");
        ack[3]
    }

    /// Sends a minimal MQTT 5 CONNECT (clean start, no properties) and returns the
    /// CONNACK's reason code.
    pub async fn handshake_v5(&mut self, client_id: &str) -> u8 {
        let id = client_id.as_bytes();
        let mut packet = vec![0x10, (13 + id.len()) as u8, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0];
        packet.extend_from_slice(&(id.len() as u16).to_be_bytes());
        packet.extend_from_slice(id);
        self.send(&packet).await;
        let (kind, body) = self.read_packet().await.expect("a CONNACK");
        assert_eq!(kind, 0x20, "CONNACK packet type");
        body[1]
    }

    /// Reads one whole packet: its first byte and its body.
    pub async fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let first = self.read_exact(1).await?[0];
        let (mut length, mut shift) = (0usize, 0);
        loop {
            let b = self.read_exact(1).await?[0];
            length |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        Some((first, self.read_exact(length).await?))
    }

    /// Reads exactly `n` bytes; `None` if the server closed first.
    pub async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            let read = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("server answered or closed within the patience window")
                .ok()?;
            if read == 0 {
                return None;
            }
        }
        Some(self.buf.split_to(n).to_vec())
    }

    /// Everything the server sends until it closes the connection (bounded by `PATIENCE`).
    pub async fn until_closed(&mut self) -> Vec<u8> {
        self.until_closed_within(PATIENCE).await
    }

    pub async fn until_closed_within(&mut self, limit: Duration) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return self.buf.split().to_vec(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("server did not close the connection within {limit:?}"),
            }
        }
    }
}
