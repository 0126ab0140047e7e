//! What the one-shot request services (`stt_request`, `tts_request`) share: a
//! subscription to their request topic and the next valid envelope on it.

use alicia_broker::{LocalClient, LocalMessage};
use alicia_envelope::Envelope;
use tokio_util::sync::CancellationToken;

/// The requests arriving on `topic`, or `None` (logged) if the bus refused the
/// subscription.
pub(crate) async fn subscribe(client: &mut LocalClient, topic: &str) -> Option<flume::Receiver<LocalMessage>> {
    match client.subscribe(topic).await {
        Ok(()) => Some(client.inbox()),
        Err(e) => {
            tracing::error!(error = %e, topic, "voice request service cannot subscribe");
            None
        }
    }
}

/// The next request with a valid envelope; `None` at shutdown. Invalid envelopes are
/// skipped: the gatekeeper answers those.
pub(crate) async fn next(inbox: &flume::Receiver<LocalMessage>, stop: &CancellationToken) -> Option<Envelope> {
    loop {
        let message = tokio::select! {
            m = inbox.recv_async() => m.ok()?,
            _ = stop.cancelled() => return None,
        };
        if let Ok(request) = Envelope::decode(&message.payload) {
            return Some(request);
        }
    }
}
