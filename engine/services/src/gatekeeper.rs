//! Envelope validation at the edge of the bus.
//!
//! Watches every `alicia/` topic that carries JSON envelopes (binary audio topics are
//! skipped), parses each message once, and answers an invalid one with an error event
//! on the matching `.../error` topic (or `alicia/monitoring/alerts`) that names the
//! failing field; an expired or over-hopped envelope is counted as discarded. The
//! message itself was already delivered by the router: the error event is how its
//! sender learns, and the counters are how an operator does.
//!
//! Parsing is bounded: a message over `services.max_envelope_bytes` is answered with a
//! `too_large` error event unread, and a large one is parsed on the blocking pool, not
//! on the main runtime's two workers.

use alicia_broker::LocalClient;
use alicia_envelope::topics::{self, TopicAliases};
use alicia_envelope::{parse_off_runtime, Envelope, EnvelopeError, ErrorEvent};
use metrics::counter;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    mut client: LocalClient,
    aliases: TopicAliases,
    max_envelope_bytes: usize,
    stop: CancellationToken,
) {
    if let Err(e) = client.subscribe("alicia/#").await {
        tracing::error!(error = %e, "gatekeeper cannot subscribe");
        return;
    }
    let valid = counter!("alicia_envelope_valid_total");
    let validation_seconds = metrics::histogram!("alicia_envelope_validation_seconds");
    let inbox = client.inbox();
    loop {
        let message = tokio::select! {
            m = inbox.recv_async() => match m {
                Ok(m) => m,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        // An empty retained payload is a deletion, not a message.
        if message.payload.is_empty() && message.retain {
            continue;
        }
        let topic = aliases.resolve(&message.topic);
        if !topics::is_request_topic(&topic) {
            continue;
        }
        let started = std::time::Instant::now();
        let decoded = if message.payload.len() > max_envelope_bytes {
            let error = EnvelopeError::TooLarge { size: message.payload.len(), limit: max_envelope_bytes };
            Err(Box::new(ErrorEvent::for_invalid(&topic, &[], &error)))
        } else {
            let topic = topic.clone().into_owned();
            // The error event reads the sender again from the bytes: parse both together.
            let decode = move |bytes: &[u8]| {
                Envelope::decode(bytes).map_err(|error| Box::new(ErrorEvent::for_invalid(&topic, bytes, &error)))
            };
            match parse_off_runtime(message.payload, decode).await {
                Some(decoded) => decoded,
                None => return,
            }
        };
        validation_seconds.record(started.elapsed().as_secs_f64());
        match decoded {
            Ok(envelope) => match envelope.check_freshness(chrono::Utc::now()) {
                Ok(()) => valid.increment(1),
                Err(discard) => {
                    counter!("alicia_envelope_discarded_total", "reason" => discard.error_type()).increment(1);
                }
            },
            Err(event) => {
                counter!("alicia_envelope_invalid_total", "error_type" => event.error_type).increment(1);
                tracing::debug!(topic = %message.topic, field = ?event.field, error_type = event.error_type, "invalid envelope");
                if let Err(e) = client.publish(event.error_topic(), event.to_envelope().encode(), false).await {
                    tracing::warn!(error = %e, "cannot publish error event");
                }
            }
        }
    }
}
