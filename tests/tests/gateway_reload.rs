//! SIGHUP, what an operator does after editing the security files: `Engine::reload` in
//! process (a live client's rules change under it without a disconnect, a new user may
//! log in, a broken file is refused and the old rules stay), and a real SIGHUP to the
//! `alicia` binary.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::path::Path;
use std::process::Command;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, EngineProcess, TestEngine};
use alicia_e2e::gateway::{refusals, write_passwords, AuditFile};
use alicia_e2e::gateway::{v4_login, v5_login};
use alicia_e2e::unique_topic;
use rumqttc::v5::mqttbytes::v5::{PubAckReason, SubscribeReasonCode as V5Sub};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;

const STATUS: &str = "alicia/devices/kitchen/status";
const FENCE: &str = "alicia/fence/kitchen";

/// Before: the kitchen owns its subtree and a fence topic; the writer writes anywhere.
const ACL_BEFORE: &str = "\
user kitchen
topic readwrite alicia/devices/kitchen/#
topic readwrite alicia/fence/kitchen

user writer
topic write alicia/#
";

/// After: the kitchen keeps only its fence topic.
const ACL_AFTER: &str = "\
user kitchen
topic readwrite alicia/fence/kitchen

user writer
topic write alicia/#
";

/// Would give the kitchen its subtree back, but line 4 is broken.
const ACL_BROKEN: &str = "\
user kitchen
topic readwrite alicia/devices/kitchen/#
topic readwrite alicia/fence/kitchen
topic sideways alicia/#
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_what_live_clients_may_do_and_who_may_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let (passwords, acl) = (dir.path().join("passwords"), dir.path().join("acl"));
    write_passwords(&passwords, &[("kitchen", "k-pass"), ("writer", "w-pass")]);
    std::fs::write(&acl, ACL_BEFORE).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords.clone());
    config.security.acl_file = Some(acl.clone());
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    let (mut kitchen, _) = V5Client::connect(port, "kitchen", v5_login("kitchen", "k-pass")).await;
    let codes = kitchen.subscribe("alicia/devices/kitchen/#", V5QoS::AtLeastOnce).await;
    assert_eq!(codes, [V5Sub::Success(V5QoS::AtLeastOnce)]);
    assert_eq!(kitchen.subscribe(FENCE, V5QoS::AtLeastOnce).await, [V5Sub::Success(V5QoS::AtLeastOnce)]);
    kitchen.client.publish(STATUS, V5QoS::AtLeastOnce, false, "before").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::Success);
    assert_eq!(&kitchen.next_publish().await.payload[..], b"before");
    let (writer, _) = V4Client::connect(port, "writer", v4_login("writer", "w-pass")).await;

    // The grant goes, a user arrives; SIGHUP's reload.
    std::fs::write(&acl, ACL_AFTER).unwrap();
    write_passwords(&passwords, &[("kitchen", "k-pass"), ("writer", "w-pass"), ("newcomer", "n-pass")]);
    engine.engine.reload().expect("the edited files reload");

    // The kitchen, still connected, may no longer publish there: 0x87, audited.
    kitchen.client.publish(STATUS, V5QoS::AtLeastOnce, false, "after").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::NotAuthorized);
    let line = audit.wait_for("publish_denied", &[("client_id", "kitchen"), ("topic", STATUS)]).await;
    assert_eq!(line["username"], "kitchen");
    // Nor read there: the writer's status message is not delivered, its fence after it is.
    writer.client.publish(STATUS, QoS::AtLeastOnce, false, "unseen").await.unwrap();
    writer.client.publish(FENCE, QoS::AtLeastOnce, false, "fence").await.unwrap();
    let next = kitchen.next_publish().await;
    assert_eq!((&next.topic[..], &next.payload[..]), (FENCE.as_bytes(), &b"fence"[..]), "a revoked read delivered");
    // And it was never disconnected: what it may still do, it does.
    kitchen.client.publish(FENCE, V5QoS::AtLeastOnce, false, "own").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::Success);
    assert_eq!(&kitchen.next_publish().await.payload[..], b"own");

    // The user added to the password file logs in.
    let (_newcomer, _) = V4Client::connect(port, "newcomer", v4_login("newcomer", "n-pass")).await;

    // A broken ACL is refused, naming the file and the line; the rules in force stay
    // (the broken file would have given the kitchen its subtree back).
    std::fs::write(&acl, ACL_BROKEN).unwrap();
    let error = engine.engine.reload().expect_err("a broken ACL file is refused");
    assert!(error.contains(&acl.display().to_string()) && error.contains("line 4"), "{error}");
    assert!(error.contains("sideways"), "{error}");
    kitchen.client.publish(STATUS, V5QoS::AtLeastOnce, false, "still refused").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::NotAuthorized);
    kitchen.client.publish(FENCE, V5QoS::AtLeastOnce, false, "still own").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::Success);
    assert_eq!(&kitchen.next_publish().await.payload[..], b"still own");

    assert_eq!(refusals(engine.http_addr(), "tcp", "publish_denied").await, 2.0);
    engine.stop().await;
}

fn mosquitto_passwd_new(file: &Path, user: &str, password: &str) {
    let out = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(file)
        .args([user, password])
        .output()
        .expect("mosquitto_passwd (make deps)");
    assert!(out.status.success(), "mosquitto_passwd: {}", String::from_utf8_lossy(&out.stderr));
}

/// The CONNACK a 3.1.1 login gets: `Ok` with the connected client, or the refusal code.
async fn login(port: u16, id: &str, user: &str, password: &str) -> Result<V4Client, rumqttc::ConnectReturnCode> {
    let mut client = V4Client::start(port, id, v4_login(user, password));
    match client.connack().await {
        Ok(_) => Ok(client),
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Err(code),
        Err(e) => panic!("{id}: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_makes_the_running_binary_read_its_password_file_again() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    mosquitto_passwd_new(&passwords, "old", "o-pass");
    let config = dir.path().join("alicia.toml");
    let toml = format!("[security]\nallow_anonymous = false\npassword_file = {:?}\n", passwords.display().to_string());
    std::fs::write(&config, toml).unwrap();
    let mut process = EngineProcess::spawn_with(&config, &[]);
    let port = process.mqtt.port();

    let topic = unique_topic("e2e/sighup");
    let mut old = login(port, "old-stays", "old", "o-pass").await.expect("old logs in");
    old.subscribe(&topic, QoS::AtLeastOnce).await;
    assert_eq!(
        login(port, "new-early", "newcomer", "n-pass").await.err(),
        Some(rumqttc::ConnectReturnCode::BadUserNamePassword)
    );

    // The operator replaces the file (mosquitto_passwd -c) and sends SIGHUP.
    mosquitto_passwd_new(&passwords, "newcomer", "n-pass");
    let status = Command::new("kill").args(["-HUP", &process.child.id().to_string()]).status().unwrap();
    assert!(status.success());

    // Polled with the user the reload removes, whose successes never start a back-off:
    // once it is refused, the new file is in force.
    let deadline = std::time::Instant::now() + alicia_e2e::PATIENCE;
    loop {
        match login(port, "old-poll", "old", "o-pass").await {
            Ok(client) => {
                client.client.disconnect().await.unwrap();
                assert!(std::time::Instant::now() < deadline, "SIGHUP not applied after {:?}", alicia_e2e::PATIENCE);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(code) => {
                assert_eq!(code, rumqttc::ConnectReturnCode::BadUserNamePassword);
                break;
            }
        }
    }
    let mut newcomer = login(port, "newcomer", "newcomer", "n-pass").await.expect("the new user logs in");
    assert!(process.child.try_wait().unwrap().is_none(), "SIGHUP must not stop the engine");

    // The connection made under the old file stays.
    newcomer.client.publish(&topic, QoS::AtLeastOnce, false, "after sighup").await.unwrap();
    newcomer.acked().await;
    assert_eq!(&old.next_publish_on(&topic).await.payload[..], b"after sighup");
}
