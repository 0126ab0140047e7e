//! Security refusals that mean someone is trying something (a bad signature, a replay,
//! a revoked certificate, a login back-off, a client past its rate) are raised on
//! `alicia/monitoring/alerts`. A flood of them makes one alert per reason per
//! [`ALERT_EVERY`], saying how many it stands for: the alert topic must not become
//! an amplifier.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alicia_broker::{LocalClient, SecurityAlert};
use alicia_envelope::topics::MONITORING_ALERTS;
use alicia_envelope::{Destination, Envelope, MessageType, Priority};
use tokio_util::sync::CancellationToken;

/// At most one alert per reason this often.
const ALERT_EVERY: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    mut client: LocalClient,
    alerts: flume::Receiver<SecurityAlert>,
    source: String,
    stop: CancellationToken,
) {
    let mut last: HashMap<&'static str, (Instant, u64)> = HashMap::new();
    loop {
        let alert = tokio::select! {
            a = alerts.recv_async() => match a {
                Ok(alert) => alert,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let now = Instant::now();
        let entry = last.entry(alert.reason).or_insert((now - ALERT_EVERY, 0));
        entry.1 += 1;
        if now.duration_since(entry.0) < ALERT_EVERY {
            continue;
        }
        let count = std::mem::take(&mut entry.1);
        entry.0 = now;
        let envelope = alert_envelope(&source, &alert, count);
        if let Err(e) = client.publish(MONITORING_ALERTS, envelope.encode(), false).await {
            tracing::warn!(error = %e, "security alert not published");
        }
    }
}

fn alert_envelope(source: &str, alert: &SecurityAlert, count: u64) -> Envelope {
    let data = serde_json::json!({
        "alert_id": format!("security:{}", alert.reason),
        "type": "security",
        "severity": "warning",
        "status": "raised",
        "reason": alert.reason,
        "listener": alert.listener,
        "peer": alert.peer.to_string(),
        "client_id": alert.client_id,
        "username": alert.username,
        "topic": alert.topic,
        // This alert and those folded into it since the last one for this reason.
        "count": count,
    });
    Envelope::new(source, Destination::Broadcast, MessageType::Event, data).with_priority(Priority::High)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_names_the_reason_and_the_client() {
        let alert = SecurityAlert {
            reason: "bad_signature",
            listener: "tcp",
            peer: "192.0.2.7:5000".parse().unwrap(),
            client_id: Some("kitchen".into()),
            username: None,
            topic: Some("alicia/devices/kitchen/command".into()),
        };
        let envelope = alert_envelope("alicia", &alert, 3);
        let data = &envelope.payload.data;
        assert_eq!(data["alert_id"], "security:bad_signature");
        assert_eq!((data["client_id"].as_str(), data["count"].as_u64()), (Some("kitchen"), Some(3)));
        assert_eq!(envelope.priority, Priority::High);
    }
}
