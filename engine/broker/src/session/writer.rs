//! The writer task: flushes a connection's queue to its socket, gives up on a client
//! that stops reading, and says last words when the connection ends.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use rumqttd::protocol::{Disconnect, DisconnectProperties, Packet};

use super::connection::{CloseReason, Connection};
use crate::io::SocketWriter;
use crate::node::Node;

/// A client that stops reading still gets this long to take its final packets.
const FINAL_FLUSH: Duration = Duration::from_secs(1);
/// Writes go in pieces of at most this much, each within the write timeout: a large
/// message to a slow but reading client keeps going, a client that takes nothing is
/// found out.
const PIECE: usize = 1024 * 1024;

pub(super) async fn run<W: SocketWriter>(mut writer: W, conn: Rc<Connection>, node: Rc<Node>) {
    let timeout = node.ctx.limits().write_timeout;
    loop {
        if conn.is_closing() {
            break;
        }
        if conn.out.borrow().is_empty() {
            tokio::select! {
                _ = conn.writable.notified() => {}
                _ = conn.closed() => break,
            }
            continue;
        }
        // Boxed while it runs: an idle connection's writer holds no write state.
        if let Err(reason) = Box::pin(flush(&mut writer, &conn, timeout)).await {
            conn.close(reason);
            break;
        }
    }
    // Last words: what is queued, then for MQTT 5 a DISCONNECT saying why.
    let reason = conn.reason();
    if !matches!(reason, CloseReason::WriteFailed | CloseReason::WriteTimeout | CloseReason::PeerClosed) {
        if let (true, Some(code)) = (conn.version.is_v5(), reason.disconnect_code()) {
            // Always with properties: rumqttd 0.20 mis-sizes a v5 DISCONNECT without them.
            let properties = DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some(reason.explain().to_string()),
                user_properties: Vec::new(),
                server_reference: None,
            };
            conn.send(Packet::Disconnect(Disconnect { reason_code: code }, Some(properties)));
        }
        let _ = Box::pin(tokio::time::timeout(FINAL_FLUSH, flush(&mut writer, &conn, FINAL_FLUSH))).await;
    }
    let dropped = conn.discard_unwritten();
    if dropped > 0 {
        node.ctx.metrics.dropped(crate::metrics::DropReason::SessionEnded, dropped as u64);
    }
    writer.shutdown();
}

/// Writes everything queued, each piece within `timeout`.
async fn flush<W: SocketWriter>(writer: &mut W, conn: &Connection, timeout: Duration) -> Result<(), CloseReason> {
    loop {
        let Some(chunk) = conn.out.borrow_mut().take() else { return Ok(()) };
        let result = write_pieces(writer, &chunk.bytes, timeout).await;
        conn.written(chunk.charged);
        result?;
        conn.metrics.bytes_sent.increment(chunk.bytes.len() as u64);
    }
}

async fn write_pieces<W: SocketWriter>(writer: &mut W, bytes: &Bytes, timeout: Duration) -> Result<(), CloseReason> {
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + PIECE).min(bytes.len());
        match tokio::time::timeout(timeout, writer.write_all(bytes.slice(at..end))).await {
            Ok(Ok(())) => at = end,
            Ok(Err(_)) => return Err(CloseReason::WriteFailed),
            Err(_) => return Err(CloseReason::WriteTimeout),
        }
    }
    Ok(())
}
