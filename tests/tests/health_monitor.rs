//! The health monitor against the real engine: a service whose heartbeats stop is
//! offline after the timeout with an alert raised, and the alert is resolved with the
//! same id when they resume; a last will makes it offline at once; a health check
//! naming any service is answered with correlation; a malformed or oversized
//! heartbeat is refused with an error event and the monitor goes on.

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{http_get, metric, wait_for};
use alicia_envelope::health::{HealthReport, HealthStatus, Heartbeat};
use alicia_envelope::{topics, Destination, Envelope, MessageType};
use bytes::BytesMut;
use rumqttc::QoS;
use serde_json::{json, Value};

fn monitored_engine_config() -> alicia_config::AliciaConfig {
    let mut config = test_config();
    config.services.heartbeat_interval_secs = 1;
    config.monitor.heartbeat_timeout_secs = 2;
    config
}

/// A service name no other test of this binary uses.
fn service(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

fn report(name: &str, status: HealthStatus) -> Vec<u8> {
    HealthReport::new(name, status, std::time::Duration::from_secs(1)).to_envelope().encode().to_vec()
}

async fn overview(engine: &TestEngine) -> Value {
    let (status, body) = http_get(engine.http_addr(), "/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn state_of(engine: &TestEngine, name: &str) -> Option<String> {
    overview(engine).await["components"][name]["state"].as_str().map(str::to_string)
}

/// The next alert event about `alert_id`, skipping every other message on the topic.
async fn next_alert(watcher: &mut V4Client, alert_id: &str) -> Value {
    loop {
        let p = watcher.next_publish_on(topics::MONITORING_ALERTS).await;
        let Ok(envelope) = Envelope::decode(&p.payload) else { continue };
        if envelope.payload.data["alert_id"] == alert_id {
            assert_eq!(envelope.source, "health_monitor");
            return envelope.payload.data;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_raises_an_alert_and_a_heartbeat_resolves_it() {
    let engine = TestEngine::start(monitored_engine_config()).await;
    let port = engine.mqtt_port();
    let name = service("quiet_service");
    let (mut watcher, _) = V4Client::connect(port, "alert-watcher", |_| {}).await;
    watcher.subscribe(topics::MONITORING_ALERTS, QoS::AtLeastOnce).await;
    let (service, _) = V4Client::connect(port, "quiet-service", |_| {}).await;
    service
        .client
        .publish(topics::health(&name), QoS::AtLeastOnce, false, report(&name, HealthStatus::Healthy))
        .await
        .unwrap();
    wait_for("the monitor to follow the service", || async {
        state_of(&engine, &name).await.as_deref() == Some("healthy")
    })
    .await;

    // Silence: after the timeout, offline and one alert.
    let alert_id = format!("missed_heartbeats:{name}");
    let raised = next_alert(&mut watcher, &alert_id).await;
    assert_eq!((raised["status"].as_str(), raised["severity"].as_str()), (Some("raised"), Some("critical")));
    assert_eq!(raised["component"], name.as_str());
    assert_eq!(raised["type"], "missed_heartbeats");
    let picture = overview(&engine).await;
    assert_eq!(picture["components"][&name]["state"], "offline");
    assert!(picture["components"][&name]["last_heartbeat_age_seconds"].as_f64().unwrap() >= 2.0);
    assert!(picture["alerts"].as_array().unwrap().iter().any(|a| a["alert_id"] == alert_id.as_str()), "{picture}");
    assert_eq!(picture["components"]["alicia"]["state"], "healthy", "the engine's own heartbeat is followed");

    // A heartbeat (the discovery form) brings it back: resolved, same id.
    let beat = Heartbeat::new(&name, HealthStatus::Healthy).to_envelope().encode().to_vec();
    service.client.publish(topics::SYSTEM_DISCOVERY_HEARTBEAT, QoS::AtLeastOnce, false, beat).await.unwrap();
    let resolved = next_alert(&mut watcher, &alert_id).await;
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(state_of(&engine, &name).await.as_deref(), Some("healthy"));
    assert!(!overview(&engine).await["alerts"].as_array().unwrap().iter().any(|a| a["alert_id"] == alert_id.as_str()));

    // Reported unhealthy: an alert of its own.
    service
        .client
        .publish(topics::health(&name), QoS::AtLeastOnce, false, report(&name, HealthStatus::Unhealthy))
        .await
        .unwrap();
    let unhealthy = next_alert(&mut watcher, &format!("reported_unhealthy:{name}")).await;
    assert_eq!(unhealthy["status"], "raised");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_will_makes_a_service_offline_at_once() {
    let mut config = monitored_engine_config();
    // Long enough that only the will can explain an offline state within the test.
    config.monitor.heartbeat_timeout_secs = 3_600;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let name = service("mortal_service");
    let (mut watcher, _) = V4Client::connect(port, "will-watcher", |_| {}).await;
    watcher.subscribe(topics::MONITORING_ALERTS, QoS::AtLeastOnce).await;

    let will = Envelope::new(
        &name,
        Destination::Broadcast,
        MessageType::Event,
        json!({"service_name": name, "status": "offline"}),
    );
    let mut dying = RawClient::connect(port).await;
    let code = dying
        .handshake("mortal-service", 30, |c| {
            c.last_will =
                Some(rumqttc::LastWill::new(topics::health(&name), will.encode().to_vec(), QoS::AtLeastOnce, true));
        })
        .await;
    assert_eq!(code, 0x00);
    let mut publish = BytesMut::new();
    rumqttc::Publish::new(topics::health(&name), QoS::AtMostOnce, report(&name, HealthStatus::Healthy))
        .write(&mut publish)
        .unwrap();
    dying.send(&publish).await;
    wait_for("the monitor to follow the service", || async {
        state_of(&engine, &name).await.as_deref() == Some("healthy")
    })
    .await;

    // Gone without a DISCONNECT: the will says offline.
    drop(dying);
    let raised = next_alert(&mut watcher, &format!("offline:{name}")).await;
    assert_eq!(raised["status"], "raised");
    let picture = overview(&engine).await;
    assert_eq!(picture["components"][&name]["state"], "offline");
    assert_eq!(picture["components"][&name]["offline_because"], "reported");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_naming_any_service_is_answered_with_correlation() {
    let engine = TestEngine::start(monitored_engine_config()).await;
    let port = engine.mqtt_port();
    let name = service("checked_service");
    let (mut asker, _) = V4Client::connect(port, "monitor-asker", |_| {}).await;
    asker.subscribe("alicia/system/health/health_monitor", QoS::AtLeastOnce).await;
    asker.subscribe("e2e/monitor/answers", QoS::AtLeastOnce).await;
    asker
        .client
        .publish(topics::health(&name), QoS::AtLeastOnce, false, report(&name, HealthStatus::Degraded))
        .await
        .unwrap();
    wait_for("the monitor to follow the service", || async {
        state_of(&engine, &name).await.as_deref() == Some("degraded")
    })
    .await;

    let ask =
        |data: Value, destination: Destination| Envelope::new("dashboard", destination, MessageType::Request, data);
    let by_data = ask(json!({"service": name}), Destination::Broadcast);
    asker
        .client
        .publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, by_data.encode().to_vec())
        .await
        .unwrap();
    let answer = Envelope::decode(&asker.next_publish_on("alicia/system/health/health_monitor").await.payload).unwrap();
    assert_eq!(answer.message_type, MessageType::Response);
    assert_eq!(answer.correlation_id(), Some(by_data.message_id));
    assert_eq!(answer.payload.data["service"], name.as_str());
    assert_eq!(answer.payload.data["state"], "degraded");

    // Addressed to a service nobody has heard of, answered on the topic the request asks for.
    let by_address = ask(json!({}), Destination::Service("ghost_service".into()))
        .with_metadata("response_topic", json!("e2e/monitor/answers"));
    asker
        .client
        .publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, by_address.encode().to_vec())
        .await
        .unwrap();
    let answer = Envelope::decode(&asker.next_publish_on("e2e/monitor/answers").await.payload).unwrap();
    assert_eq!(answer.correlation_id(), Some(by_address.message_id));
    assert_eq!(
        (answer.payload.data["service"].as_str(), answer.payload.data["state"].as_str()),
        (Some("ghost_service"), Some("unknown"))
    );

    // All of them.
    let all = ask(json!({"service": "all"}), Destination::Service("health_monitor".into()));
    asker.client.publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, all.encode().to_vec()).await.unwrap();
    let answer = loop {
        let answer =
            Envelope::decode(&asker.next_publish_on("alicia/system/health/health_monitor").await.payload).unwrap();
        if answer.correlation_id() == Some(all.message_id) {
            break answer;
        }
    };
    assert_eq!(answer.payload.data["components"][&name]["state"], "degraded");
    assert_eq!(answer.payload.data["components"]["alicia"]["state"], "healthy");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_heartbeats_are_refused_and_the_monitor_goes_on() {
    let mut config = monitored_engine_config();
    config.services.max_envelope_bytes = 4096;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let (mut watcher, _) = V4Client::connect(port, "refusal-watcher", |_| {}).await;
    watcher.subscribe(topics::MONITORING_ALERTS, QoS::AtLeastOnce).await;
    let (sender, _) = V4Client::connect(port, "bad-heartbeats", |_| {}).await;
    let refused_before = metric(engine.http_addr(), "alicia_monitor_heartbeats_refused_total").await.unwrap_or(0.0);

    let bad = service("bad_service");
    sender.client.publish(topics::health(&bad), QoS::AtLeastOnce, false, b"{not json".to_vec()).await.unwrap();
    let error = error_event_about(&mut watcher, "alicia/system/health/").await;
    assert!(error["error_type"].as_str().is_some(), "{error}");
    let huge = Heartbeat::new(&bad, HealthStatus::Healthy).to_envelope().with_metadata("pad", json!("x".repeat(8192)));
    sender
        .client
        .publish(topics::SYSTEM_DISCOVERY_HEARTBEAT, QoS::AtLeastOnce, false, huge.encode().to_vec())
        .await
        .unwrap();
    let error = error_event_about(&mut watcher, topics::SYSTEM_DISCOVERY_HEARTBEAT).await;
    assert_eq!(error["error_type"], "too_large", "{error}");
    let odd = Envelope::new(&bad, Destination::Broadcast, MessageType::Event, json!({"status": "sleepy"}));
    sender.client.publish(topics::health(&bad), QoS::AtLeastOnce, false, odd.encode().to_vec()).await.unwrap();
    wait_for("three refusals counted", || async {
        metric(engine.http_addr(), "alicia_monitor_heartbeats_refused_total").await.unwrap_or(0.0)
            >= refused_before + 3.0
    })
    .await;
    assert_eq!(state_of(&engine, &bad).await, None, "nothing refused is followed");

    // The monitor is unharmed: a good heartbeat right after is followed.
    let good = service("good_service");
    sender
        .client
        .publish(topics::health(&good), QoS::AtLeastOnce, false, report(&good, HealthStatus::Healthy))
        .await
        .unwrap();
    wait_for("the good heartbeat followed", || async { state_of(&engine, &good).await.as_deref() == Some("healthy") })
        .await;
    engine.stop().await;
}

/// The gatekeeper's error event for a message refused on a topic starting with `topic`.
async fn error_event_about(watcher: &mut V4Client, topic: &str) -> Value {
    loop {
        let p = watcher.next_publish_on(topics::MONITORING_ALERTS).await;
        let Ok(envelope) = Envelope::decode(&p.payload) else { continue };
        let data = envelope.payload.data;
        if data.to_string().contains(topic) && data.get("error_type").is_some() {
            return data;
        }
    }
}
