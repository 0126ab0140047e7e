//! For the tests of a bus component that dies: an engine whose fatal exit is caught
//! instead of ending the test process, and clients that report every alert they get.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{test_config, TestEngine};
use crate::{http_get, metric, PATIENCE};

/// An engine whose exit status, when a component that held client state dies, arrives
/// on the receiver instead of ending the process.
pub async fn dying_engine() -> (TestEngine, oneshot::Receiver<i32>) {
    let (tx, rx) = oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let on_fatal: alicia::OnFatal = Arc::new(move |code| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send(code);
        }
    });
    (TestEngine::start_with(test_config(), on_fatal).await, rx)
}

/// Clients subscribed to `alicia/monitoring/alerts`, each forwarding what it gets.
pub struct Watchers {
    alerts: mpsc::UnboundedReceiver<(usize, Value)>,
    count: usize,
}

/// `n` watchers with different client ids, so that they live on different io threads.
pub async fn watchers(engine: &TestEngine, n: usize) -> Watchers {
    let (tx, alerts) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    for i in 0..n {
        let mut options = rumqttc::MqttOptions::new(format!("alert-watcher-{i}"), "127.0.0.1", engine.mqtt_port());
        options.set_keep_alive(std::time::Duration::from_secs(30));
        let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
        let (tx, ready_tx) = (tx.clone(), ready_tx.clone());
        tokio::spawn(async move {
            let _client = client.clone();
            client.subscribe("alicia/monitoring/alerts", rumqttc::QoS::AtLeastOnce).await.unwrap();
            while let Ok(event) = events.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                        let _ = ready_tx.send(i);
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        let envelope: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                        let _ = tx.send((i, envelope["payload"]["data"].clone()));
                    }
                    _ => {}
                }
            }
        });
    }
    for _ in 0..n {
        tokio::time::timeout(PATIENCE, ready.recv()).await.expect("watchers subscribed");
    }
    Watchers { alerts, count: n }
}

impl Watchers {
    /// The first raised alert about `component`, from whichever watcher got it.
    pub async fn alert(&mut self, component: &str) -> Value {
        loop {
            let (_, alert) = self.next().await;
            if alert["component"] == component && alert["status"] == "raised" {
                return alert;
            }
        }
    }

    /// The raised alert about `component`, as every watcher got it.
    pub async fn alert_on_all(&mut self, component: &str) -> Vec<Value> {
        let mut got: Vec<Option<Value>> = vec![None; self.count];
        while got.iter().any(Option::is_none) {
            let (i, alert) = self.next().await;
            if alert["component"] == component && alert["status"] == "raised" {
                got[i] = Some(alert);
            }
        }
        got.into_iter().flatten().collect()
    }

    async fn next(&mut self) -> (usize, Value) {
        tokio::time::timeout(PATIENCE, self.alerts.recv()).await.expect("an alert in time").expect("watchers alive")
    }
}

/// What `/healthz` and `/metrics` say about a component.
pub struct Observed {
    pub status: u16,
    pub health: Value,
    pub up: Option<f64>,
}

impl Observed {
    pub async fn of(http: SocketAddr, component: &str) -> Observed {
        // Health first: the engine sets the gauge before health can say a component is
        // down, so a "down" read here is never followed by a stale gauge.
        let (status, body) = http_get(http, "/healthz").await;
        let up = metric(http, &format!("alicia_component_up{{component=\"{component}\"}}")).await;
        Observed { status, health: serde_json::from_str(&body).unwrap_or_default(), up }
    }

    /// Polls until `/healthz` names `component` among the ones down.
    pub async fn until_down(engine: &TestEngine, component: &str) -> Observed {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let seen = Observed::of(engine.http_addr(), component).await;
            let down = seen.health["down"].as_array().is_some_and(|d| d.iter().any(|c| c == component));
            if down {
                return seen;
            }
            assert!(tokio::time::Instant::now() < deadline, "{component} never reported down: {}", seen.health);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
