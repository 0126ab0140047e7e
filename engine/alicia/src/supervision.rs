//! What the engine does when a part of it dies: every failure is announced on
//! `alicia/monitoring/alerts` (raised, and resolved when a restarted part comes back),
//! and a part whose failure took client state with it ([`OnFailure::Exit`]) ends the
//! process with a non-zero status after a short grace, so that `/healthz` and the alert
//! are seen and the service manager starts a clean engine.

use std::sync::Arc;
use std::time::Duration;

use alicia_broker::{BusHandle, LocalClient};
use alicia_envelope::topics::MONITORING_ALERTS;
use alicia_envelope::{Destination, Envelope, MessageType, Priority};
use alicia_supervisor::{Event, OnFailure, Supervisor};
use tokio_util::sync::CancellationToken;

/// Exit status when a component that cannot be restarted has died (EX_SOFTWARE).
pub const COMPONENT_FAILED_EXIT: i32 = 70;
/// Between a fatal failure and the exit: long enough for the alert to leave and for a
/// health probe to see 503, short enough that clients come back within seconds.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What ends the process after a fatal failure: `std::process::exit` for the binary;
/// an embedder (or a test) may decide otherwise.
pub type OnFatal = Arc<dyn Fn(i32) + Send + Sync>;

/// The ways the supervision reaches out.
pub(crate) struct Reach {
    pub client: LocalClient,
    /// For an alert the router can no longer carry.
    pub bus: BusHandle,
    pub source: String,
    pub on_fatal: OnFatal,
}

/// Publishes an alert for every failure and recovery; exits on a fatal failure.
pub(crate) async fn run(supervisor: Supervisor, reach: Reach, stop: CancellationToken) {
    let Reach { mut client, bus, source, on_fatal } = reach;
    let mut events = supervisor.events();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.cancelled() => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let alert = alert_envelope(&source, &event).encode();
        if let Err(e) = client.publish(MONITORING_ALERTS, alert.clone(), false).await {
            tracing::warn!(error = %e, "the bus cannot carry the alert; handing it to subscribers directly");
            bus.deliver_directly(MONITORING_ALERTS, alert);
        }
        if let Event::Down { component, on_failure: OnFailure::Exit, .. } = &event {
            let _ = client.flush(EXIT_GRACE / 2).await;
            tracing::error!(component, "a component holding client state died; exiting for a clean restart");
            tokio::time::sleep(EXIT_GRACE / 2).await;
            on_fatal(COMPONENT_FAILED_EXIT);
            return;
        }
    }
}

fn alert_envelope(source: &str, event: &Event) -> Envelope {
    let (data, priority) = match event {
        Event::Down { component, cause, on_failure } => (
            serde_json::json!({
                "alert_id": alert_id(component),
                "type": "component_down",
                "severity": "critical",
                "status": "raised",
                "component": component,
                "cause": cause,
                "action": match on_failure {
                    OnFailure::Restart => "restarting",
                    OnFailure::Exit => "exiting",
                },
            }),
            Priority::Critical,
        ),
        Event::Up { component, restarts } => (
            serde_json::json!({
                "alert_id": alert_id(component),
                "type": "component_down",
                "severity": "critical",
                "status": "resolved",
                "component": component,
                "restarts": restarts,
            }),
            Priority::High,
        ),
    };
    Envelope::new(source, Destination::Broadcast, MessageType::Event, data).with_priority(priority)
}

/// One id per component, so a resolution names the alert it resolves.
fn alert_id(component: &str) -> String {
    format!("component_down:{component}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_and_resolve_share_the_alert_id() {
        let down = Event::Down { component: "router".into(), cause: "panicked".into(), on_failure: OnFailure::Restart };
        let up = Event::Up { component: "router".into(), restarts: 1 };
        let raised = alert_envelope("alicia", &down);
        let resolved = alert_envelope("alicia", &up);
        assert_eq!(raised.payload.data["alert_id"], resolved.payload.data["alert_id"]);
        assert_eq!(raised.payload.data["status"], "raised");
        assert_eq!(raised.payload.data["action"], "restarting");
        assert_eq!(resolved.payload.data["status"], "resolved");
        assert_eq!(raised.priority, Priority::Critical);
    }
}
