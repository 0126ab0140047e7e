//! Where a message's JSON is parsed. The engine's main runtime has two worker threads
//! shared by every service, the acceptor and HTTP; a 256 MB JSON message parsed there
//! would stall all of them for seconds. So a message is parsed where it arrives only
//! when it is small ([`INLINE_PARSE_BYTES`]); a larger one goes to tokio's blocking
//! pool, and one over its receiver's limit is refused unread ([`decode_within`]).

use bytes::Bytes;

use crate::envelope::Envelope;
use crate::error::EnvelopeError;

/// Messages up to this size are parsed inline: at serde_json's few hundred MB/s that is
/// tens of microseconds, well inside an async task's budget.
pub const INLINE_PARSE_BYTES: usize = 16 << 10;

/// Runs `parse` over `payload`: inline when it is small, on tokio's blocking pool
/// otherwise. `None` only if the blocking pool could not run it (the runtime is shutting
/// down) or `parse` panicked. Call inside a tokio runtime.
pub async fn parse_off_runtime<T, F>(payload: Bytes, parse: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce(&[u8]) -> T + Send + 'static,
{
    if payload.len() <= INLINE_PARSE_BYTES {
        return Some(parse(&payload));
    }
    tokio::task::spawn_blocking(move || parse(&payload)).await.ok()
}

/// [`Envelope::decode`] for a receiver that reads envelopes up to `limit` bytes: a
/// larger payload is [`EnvelopeError::TooLarge`] without being read, a large one is
/// parsed off the async workers.
pub async fn decode_within(payload: Bytes, limit: usize) -> Result<Envelope, EnvelopeError> {
    if payload.len() > limit {
        return Err(EnvelopeError::TooLarge { size: payload.len(), limit });
    }
    parse_off_runtime(payload, Envelope::decode)
        .await
        .unwrap_or_else(|| Err(EnvelopeError::NotJson { reason: "not parsed: the engine is stopping".into() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Destination, MessageType};

    fn envelope_of(bytes: usize) -> Bytes {
        let padding = "x".repeat(bytes);
        Envelope::new("lamp", Destination::Broadcast, MessageType::Event, serde_json::json!({ "pad": padding }))
            .encode()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn small_messages_are_parsed_inline_and_large_ones_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let small = parse_off_runtime(envelope_of(100), move |_| std::thread::current().id()).await;
        assert_eq!(small, Some(here));
        let large = parse_off_runtime(envelope_of(INLINE_PARSE_BYTES), move |_| std::thread::current().id()).await;
        assert!(large.is_some_and(|thread| thread != here), "a large message left the runtime's thread");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_message_over_the_limit_is_refused_unread() {
        let big = envelope_of(100_000);
        let size = big.len();
        assert_eq!(decode_within(big.clone(), 1000).await.unwrap_err(), EnvelopeError::TooLarge { size, limit: 1000 });
        assert_eq!(decode_within(big, size).await.unwrap().source, "lamp");
    }
}
