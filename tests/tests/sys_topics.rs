//! `$SYS/broker/...` as mosquitto publishes them: `mosquitto_sub -t '$SYS/#'` reads
//! them, retained, with the engine's own numbers; a subscriber to `#` never gets one.

use std::time::Duration;

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::mosquitto;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_are_published_and_hidden_from_hash() {
    let mut config = test_config();
    config.mqtt.sys_interval_secs = 1;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let (mut everything, _) = V4Client::connect(port, "hash-reader", |_| {}).await;
    everything.subscribe("#", QoS::AtMostOnce).await;
    let (mut sys, _) = V4Client::connect(port, "sys-reader", |_| {}).await;
    sys.subscribe("$SYS/broker/clients/connected", QoS::AtMostOnce).await;
    // Updated every second: wait for a value that counts both clients.
    loop {
        let p = sys.next_publish().await;
        let connected: u64 = String::from_utf8_lossy(&p.payload).parse().unwrap();
        if connected >= 2 {
            break;
        }
    }

    // A foreign reader sees the whole tree, retained.
    let reader = mosquitto::subscribe(port, &["-t", "$SYS/#", "-v", "-C", "30", "-W", "60"]);
    let lines = mosquitto::lines(reader).await;
    let value = |topic: &str| {
        lines.iter().find_map(|l| l.strip_prefix(topic).map(|v| v.trim().to_string())).unwrap_or_default()
    };
    assert!(value("$SYS/broker/version").starts_with("alicia "), "{lines:?}");
    assert!(value("$SYS/broker/uptime").ends_with(" seconds"), "{lines:?}");
    assert!(value("$SYS/broker/subscriptions/count").parse::<u64>().unwrap() >= 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("$SYS/broker/load/messages/received/1min ")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("$SYS/broker/retained messages/count ")), "{lines:?}");

    // `#` got none of them: everything before a fence is checked.
    everything.client.publish("e2e/sys-fence", QoS::AtLeastOnce, false, "fence").await.unwrap();
    loop {
        let p = tokio::time::timeout(Duration::from_secs(60), everything.next_publish()).await.expect("the fence");
        assert!(!p.topic.starts_with('$'), "# matched {}", p.topic);
        if p.topic == "e2e/sys-fence" {
            break;
        }
    }
    engine.stop().await;
}
