//! The writer task: flushes a connection's queue to its socket, gives up on a client
//! that stops reading, and says last words when the connection ends.

use std::rc::Rc;
use std::time::Duration;

use rumqttd::protocol::{Disconnect, DisconnectProperties, Packet};

use super::connection::{CloseReason, Connection};
use crate::io::SocketWriter;
use crate::node::Node;

/// A client that stops reading still gets this long to take its final packets.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

pub(super) async fn run<W: SocketWriter>(mut writer: W, conn: Rc<Connection>, node: Rc<Node>) {
    let timeout = node.ctx.limits.write_timeout;
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
        match Box::pin(tokio::time::timeout(timeout, flush(&mut writer, &conn, &node))).await {
            Ok(true) => {}
            Ok(false) => {
                conn.close(CloseReason::WriteFailed);
                break;
            }
            Err(_) => {
                conn.close(CloseReason::WriteTimeout);
                break;
            }
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
        let _ = Box::pin(tokio::time::timeout(FINAL_FLUSH, flush(&mut writer, &conn, &node))).await;
    }
    let dropped = conn.discard_unwritten();
    if dropped > 0 {
        node.ctx.metrics.dropped(crate::metrics::DropReason::SessionEnded, dropped as u64);
    }
    writer.shutdown();
}

/// Writes everything queued; false when the socket failed.
async fn flush<W: SocketWriter>(writer: &mut W, conn: &Connection, node: &Node) -> bool {
    loop {
        let Some(chunk) = conn.out.borrow_mut().take() else { return true };
        let n = chunk.bytes.len() as u64;
        let result = writer.write_all(chunk.bytes).await;
        conn.written(chunk.charged);
        if result.is_err() {
            return false;
        }
        node.ctx.metrics.bytes_sent.increment(n);
    }
}
