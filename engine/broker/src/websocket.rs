//! MQTT over WebSocket (MQTT 3.1.1 §6, MQTT 5 §6): the HTTP upgrade with subprotocol
//! `mqtt`, and [`WsIo`], which turns the binary messages into the byte stream the
//! rest of the broker reads (a packet may span messages, a message may hold several).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The subprotocols a client may offer: `mqtt` (3.1.1 and 5); `mqttv3.1` is what older
/// clients send.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];
/// The upgrade request may be at most this large: headers are held until complete.
const MAX_UPGRADE_BYTES: usize = 16 * 1024;

/// Why an upgrade was refused (the `reason` label of the refusal metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpgradeRefusal {
    /// Not a WebSocket upgrade, a request past [`MAX_UPGRADE_BYTES`], or the peer left.
    BadUpgrade,
    /// The client offered no `mqtt` subprotocol (§6.0.0-3 wants one).
    NoMqttSubprotocol,
}

/// Upgrades `stream` and returns it as a byte stream. `max_message` bounds one
/// WebSocket message (the MQTT packet size limit plus framing); nothing of a message
/// is held past that.
pub(crate) async fn upgrade<S>(stream: S, max_message: usize) -> Result<WsIo<S>, UpgradeRefusal>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut refusal = None;
    // The callback's types are tungstenite's.
    #[allow(clippy::result_large_err)]
    let pick = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let offered = request.headers().get_all("sec-websocket-protocol");
        let chosen = offered
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| SUBPROTOCOLS.iter().any(|ours| p.eq_ignore_ascii_case(ours)));
        match chosen {
            Some(protocol) => {
                let value = HeaderValue::from_str(protocol).expect("one of ours");
                response.headers_mut().insert("sec-websocket-protocol", value);
                Ok(response)
            }
            None => {
                refusal = Some(UpgradeRefusal::NoMqttSubprotocol);
                let mut refused = ErrorResponse::new(Some("the mqtt subprotocol is required\n".into()));
                *refused.status_mut() = StatusCode::BAD_REQUEST;
                Err(refused)
            }
        }
    };
    let config = WebSocketConfig::default()
        // Small buffers: an idle connection holds as little as a TCP one.
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message.saturating_mul(2))
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let limited = UpgradeLimit { inner: stream, left: Some(MAX_UPGRADE_BYTES) };
    match tokio_tungstenite::accept_hdr_async_with_config(limited, pick, Some(config)).await {
        Ok(mut ws) => {
            ws.get_mut().left = None;
            Ok(WsIo { ws, unread: Bytes::new() })
        }
        Err(_) => Err(refusal.unwrap_or(UpgradeRefusal::BadUpgrade)),
    }
}

/// Caps what the upgrade request may make the handshake hold; lifted once upgraded.
pub(crate) struct UpgradeLimit<S> {
    inner: S,
    left: Option<usize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for UpgradeLimit<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if let Some(left) = self.left {
            // Counted after the read: at most one read buffer past the cap is held.
            if n > left {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "upgrade request too large")));
            }
            self.left = Some(left - n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UpgradeLimit<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A WebSocket connection as a byte stream: binary messages in, one binary message
/// per write out. A text message is a protocol error (§6.0.0-1); a close ends the
/// stream; pings are answered by tungstenite.
pub(crate) struct WsIo<S> {
    ws: WebSocketStream<UpgradeLimit<S>>,
    /// What is left of the last binary message.
    unread: Bytes,
}

fn to_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.unread.is_empty() {
                let n = self.unread.len().min(buf.remaining());
                buf.put_slice(&self.unread[..n]);
                self.unread.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.ws.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(data))) => self.unread = data,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "text frame on mqtt websocket")))
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {
                    // A ping: its pong is queued; push it out now rather than with the
                    // next write, which may be long in coming for a quiet client.
                    let _ = self.ws.poll_flush_unpin(cx);
                }
                Some(Err(WsError::ConnectionClosed)) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.ws.poll_ready_unpin(cx)).map_err(to_io)?;
        self.ws.start_send_unpin(Message::Binary(Bytes::copy_from_slice(data))).map_err(to_io)?;
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_flush_unpin(cx).map_err(to_io)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.poll_close_unpin(cx).map_err(to_io)
    }
}
