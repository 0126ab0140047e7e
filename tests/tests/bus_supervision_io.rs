//! An io thread dies (through the `fault-injection` hook, which no client input
//! reaches): the engine says so — `/healthz` 503 naming it, `alicia_component_up` 0,
//! an alert to the clients still connected — and then exits with status 70, because
//! the sessions that lived on that thread cannot be rebuilt in place.
//!
//! Its own test binary: `alicia_component_up` is a process-wide gauge.

use alicia_e2e::bus_death::{dying_engine, watchers, Observed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_io_thread_is_reported_and_ends_the_engine() {
    let (engine, exit) = dying_engine().await;
    let mut watchers = watchers(&engine, 8).await;
    assert!(engine.engine.inject_fault("mqtt-io-0"));
    let seen = Observed::until_down(&engine, "mqtt-io-0").await;
    assert_eq!(seen.status, 503);
    assert_eq!(seen.up, Some(0.0));
    assert!(seen.health["components"]["mqtt-io-0"]["last_failure"].as_str().unwrap().contains("fault injected"));
    let alert = watchers.alert("mqtt-io-0").await;
    assert_eq!(alert["action"], "exiting");
    assert_eq!(exit.await.unwrap(), alicia::COMPONENT_FAILED_EXIT);
}
