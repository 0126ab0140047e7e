//! rumqttd's router thread dies (through the `fault-injection` hook: it gets the one
//! topic that made it panic before the engine kept real topics away from it): every
//! node sees its link close, `/healthz` answers 503 naming the router, the alert still
//! reaches every connected client (handed to them directly, the router being gone),
//! and the engine exits with status 70.
//!
//! Its own test binary: `alicia_component_up` is a process-wide gauge.

use alicia_e2e::bus_death::{dying_engine, watchers, Observed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_router_is_reported_to_every_client_and_ends_the_engine() {
    let (engine, exit) = dying_engine().await;
    let mut watchers = watchers(&engine, 4).await;
    assert!(engine.engine.inject_fault("router"));
    let seen = Observed::until_down(&engine, "router").await;
    assert_eq!((seen.status, seen.up), (503, Some(0.0)));
    assert!(seen.health["components"]["router"]["last_failure"].as_str().unwrap().contains("router link closed"));
    let alerts = watchers.alert_on_all("router").await;
    assert!(alerts.iter().all(|a| a["action"] == "exiting"));
    assert_eq!(exit.await.unwrap(), alicia::COMPONENT_FAILED_EXIT);
}
