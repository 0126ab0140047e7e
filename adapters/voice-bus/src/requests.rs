//! What the one-shot request services (`stt_request`, `tts_request`) share: a
//! subscription to their request topic and the next request on it, read within the
//! service's size limit and, when large, parsed off the async workers.

use alicia_broker::{LocalClient, LocalMessage};
use alicia_envelope::{decode_within, Envelope, EnvelopeError};
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

/// One request off the topic.
pub(crate) enum Request {
    Valid(Box<Envelope>),
    /// Over the service's limit, refused unread: it cannot be answered in kind, only
    /// with an uncorrelated error event.
    TooLarge(EnvelopeError),
}

/// The next request with a valid envelope, or one too large to read; `None` at
/// shutdown. Invalid envelopes are skipped: the gatekeeper answers those.
pub(crate) async fn next(
    inbox: &flume::Receiver<LocalMessage>,
    max_bytes: usize,
    stop: &CancellationToken,
) -> Option<Request> {
    loop {
        let message = tokio::select! {
            m = inbox.recv_async() => m.ok()?,
            _ = stop.cancelled() => return None,
        };
        match decode_within(message.payload, max_bytes).await {
            Ok(request) => return Some(Request::Valid(Box::new(request))),
            Err(error @ EnvelopeError::TooLarge { .. }) => return Some(Request::TooLarge(error)),
            Err(_) => {}
        }
    }
}
