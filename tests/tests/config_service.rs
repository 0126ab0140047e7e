//! The configuration service against the real engine: `alicia/system/config/request`
//! answered with the effective config (secrets redacted), updates on
//! `alicia/system/config/update` checked with every error listed, applied live where
//! safe without dropping a connection, written back to the file with its comments, and
//! the file re-read on reload (in process) and on a real SIGHUP (the binary).

use std::path::{Path, PathBuf};
use std::process::Command;

use alicia_e2e::clients::V4Client;
use alicia_e2e::config_admin::{ConfigAdmin, ERROR, REQUEST, UPDATE};
use alicia_e2e::engine::{EngineProcess, TestEngine};
use alicia_e2e::gateway::v4_login;
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::{json, Value};

const BEARER_TOKEN: &str = "bearer-token-that-never-leaves-0123";
const TOKEN_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The admin may change the config; the lamp may use `home/a` only.
const ACL_BEFORE: &str = "\
user admin
topic readwrite alicia/system/config/#

user config_service
topic read alicia/system/config/request
topic read alicia/system/config/update
topic write alicia/system/config/response
topic write alicia/system/config/error

user lamp
topic readwrite home/a

user watcher
topic read home/#
";

/// The same, and the lamp may also use `home/b`.
fn acl_after() -> String {
    format!("{ACL_BEFORE}\nuser lamp\ntopic readwrite home/b\n")
}

/// A config directory: `alicia.toml` with comments, the two ACLs and two secret files.
struct ConfigDir {
    _dir: tempfile::TempDir,
    path: PathBuf,
    acl_before: PathBuf,
    acl_after: PathBuf,
}

impl ConfigDir {
    fn new() -> ConfigDir {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("acl-before"), ACL_BEFORE).unwrap();
        std::fs::write(at("acl-after"), acl_after()).unwrap();
        std::fs::write(at("http-token"), BEARER_TOKEN).unwrap();
        std::fs::write(at("token.key"), TOKEN_KEY).unwrap();
        let text = format!(
            "# Alicia under test: these comments must survive every update.\n\
             [engine]\nname = \"alicia\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:0\"\nio_threads = 1\nsys_interval_secs = 0\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"   # the bearer token's file\n\n\
             [limits]\n# the seeds' limit\nmax_connections = 1000   # clients at once\n\n\
             [security]\nallow_anonymous = true\nacl_file = \"{}\"\ntoken_key_file = \"{}\"\n",
            at("http-token").display(),
            at("acl-before").display(),
            at("token.key").display(),
        );
        let path = at("alicia.toml");
        std::fs::write(&path, text).unwrap();
        ConfigDir { acl_before: at("acl-before"), acl_after: at("acl-after"), path, _dir: dir }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }
}

/// The admin, whose ACL lets it change the config.
struct Admin;

impl Admin {
    async fn connect(port: u16) -> ConfigAdmin {
        ConfigAdmin::connect(port, "admin-tool", v4_login("admin", "")).await
    }
}

fn paths(errors: &Value) -> Vec<String> {
    let mut paths: Vec<String> =
        errors.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_answered_with_the_effective_config_and_no_secret() {
    let dir = ConfigDir::new();
    let engine = TestEngine::from_file(&dir.path).await;
    let mut admin = Admin::connect(engine.mqtt_port()).await;

    let all = admin.ask(REQUEST, json!({})).await;
    assert_eq!(all["status"], "ok");
    assert_eq!(all["config"]["limits"]["max_connections"], 1000);
    assert_eq!(all["config"]["mqtt"]["io_threads"], 1);
    assert_eq!(all["file"], dir.path.display().to_string());
    // Paths are shown; what the files hold never is.
    assert_eq!(all["config"]["http"]["token_file"], dir.path.with_file_name("http-token").display().to_string());
    assert_eq!(all["config"]["security"]["token_key_file"], dir.path.with_file_name("token.key").display().to_string());
    let text = all.to_string();
    assert!(!text.contains(BEARER_TOKEN) && !text.contains(TOKEN_KEY), "a secret leaked: {text}");
    assert_eq!(all["restart_required"], json!([]));

    let limits = admin.ask(REQUEST, json!({"section": "limits"})).await;
    let sections: Vec<&String> = limits["config"].as_object().unwrap().keys().collect();
    assert_eq!(sections, ["limits"]);
    let voice = admin.ask(REQUEST, json!({"service": "voice"})).await;
    let mut sections: Vec<&String> = voice["config"].as_object().unwrap().keys().collect();
    sections.sort();
    assert_eq!(sections, ["voice", "wyoming"]);

    let unknown = admin.ask(REQUEST, json!({"service": "toaster"})).await;
    assert_eq!(unknown["status"], "refused");
    assert_eq!(paths(&unknown["errors"]), ["payload.data.service"]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_update_is_refused_with_every_error_and_changes_nothing() {
    let dir = ConfigDir::new();
    let before = dir.text();
    let engine = TestEngine::from_file(&dir.path).await;
    let mut admin = Admin::connect(engine.mqtt_port()).await;

    // A negative limit, an unknown key, a wrong type, a bad log filter: all named at once.
    let update = json!({"config": {
        "limits": {"max_connections": -5, "max_bogus": 1, "max_sessions": "many"},
        "engine": {"log_level": "info,=[{"},
    }});
    let answer = admin.ask(UPDATE, update).await;
    assert_eq!(answer["status"], "refused", "{answer}");
    assert_eq!(
        paths(&answer["errors"]),
        ["engine.log_level", "limits.max_bogus", "limits.max_connections", "limits.max_sessions"],
        "{answer}"
    );
    assert_eq!(dir.text(), before, "a refused update leaves the file's bytes alone");

    // Valid as a config, but the ACL it names cannot be read: refused when applied.
    let missing = dir.path.with_file_name("no-such-acl");
    let answer = admin.ask(UPDATE, json!({"config": {"security": {"acl_file": missing}}})).await;
    assert_eq!(answer["status"], "refused", "{answer}");
    assert_eq!(paths(&answer["errors"]), ["<apply>"]);
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("no-such-acl"), "{answer}");
    assert_eq!(dir.text(), before);

    // The old config is still the one in force, and still obeyed: the admin still may.
    let now = admin.ask(REQUEST, json!({"section": "security"})).await;
    assert_eq!(now["config"]["security"]["acl_file"], dir.acl_before.display().to_string());
    assert_eq!(engine.engine.config().limits.max_connections, 1000);

    // A file broken by hand: reload (SIGHUP's work) lists every error, keeps the old.
    std::fs::write(&dir.path, before.replace("max_connections = 1000", "max_connections = 0\nio_threads = 2")).unwrap();
    let error = engine.engine.reload().expect_err("a broken file is refused");
    assert!(error.contains("limits.max_connections") && error.contains("limits.io_threads"), "{error}");
    assert_eq!(engine.engine.config().limits.max_connections, 1000);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_update_applies_live_keeps_connections_and_is_written_with_its_comments() {
    let dir = ConfigDir::new();
    let engine = TestEngine::from_file(&dir.path).await;
    let port = engine.mqtt_port();
    let mut admin = Admin::connect(port).await;
    let (mut watcher, _) = V4Client::connect(port, "watcher", v4_login("watcher", "")).await;
    watcher.subscribe("home/#", QoS::AtLeastOnce).await;
    let (lamp, _) = V4Client::connect(port, "lamp", v4_login("lamp", "")).await;

    // Before: home/b is not the lamp's; its publish is dropped.
    lamp.client.publish("home/b", QoS::AtLeastOnce, false, "refused").await.unwrap();
    lamp.client.publish("home/a", QoS::AtLeastOnce, false, "a before").await.unwrap();
    assert_eq!(&watcher.next_publish().await.payload[..], b"a before", "home/b's publish was dropped");

    let update = json!({"config": {
        "security": {"acl_file": dir.acl_after},
        "limits": {"max_connections": 500},
        "mqtt": {"io_threads": 2},
    }});
    let answer = admin.ask(UPDATE, update).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["applied"], json!(["limits.max_connections", "security.acl_file"]));
    assert_eq!(answer["restart_required"], json!(["mqtt.io_threads"]));
    assert_eq!(answer["errors"], json!([]));

    // The same connection, under the new ACL: home/b now reaches the watcher, and its
    // traffic on home/a goes on.
    lamp.client.publish("home/b", QoS::AtLeastOnce, false, "allowed").await.unwrap();
    lamp.client.publish("home/a", QoS::AtLeastOnce, false, "a after").await.unwrap();
    let first = watcher.next_publish().await;
    assert_eq!((first.topic.as_str(), &first.payload[..]), ("home/b", &b"allowed"[..]));
    assert_eq!(&watcher.next_publish_on("home/a").await.payload[..], b"a after");

    // The file says so, with every comment and the rest of it as it was.
    let text = dir.text();
    assert!(text.starts_with("# Alicia under test: these comments must survive every update.\n[engine]\n"), "{text}");
    assert!(text.contains("# the seeds' limit\nmax_connections = 500   # clients at once\n"), "{text}");
    assert!(text.contains(&format!("acl_file = \"{}\"\n", dir.acl_after.display())), "{text}");
    assert!(text.contains("token_file = ") && text.contains("# the bearer token's file"), "{text}");
    let reread = alicia_config::AliciaConfig::load(&dir.path, None).unwrap();
    assert_eq!((reread.limits.max_connections, reread.mqtt.io_threads), (500, 2));

    // In force: the ACL and the limit now, the io threads at the next restart.
    let now = admin.ask(REQUEST, json!({})).await;
    assert_eq!(now["config"]["security"]["acl_file"], dir.acl_after.display().to_string());
    assert_eq!(now["config"]["limits"]["max_connections"], 500);
    assert_eq!(now["config"]["mqtt"]["io_threads"], 1);
    assert_eq!(now["restart_required"], json!(["mqtt.io_threads"]));

    // A TOML update of a live key alone is applied outright.
    let answer = admin.ask(UPDATE, json!({"toml": "[security]\nallow_anonymous = false\n"})).await;
    assert_eq!(answer["status"], "accepted", "the io threads still wait: {answer}");
    assert_eq!(answer["applied"], json!(["security.allow_anonymous"]));
    let anonymous = V4Client::start(port, "anonymous", |_| {}).connack().await;
    assert!(anonymous.is_err() || anonymous.unwrap().code != rumqttc::ConnectReturnCode::Success);
    lamp.client.publish("home/a", QoS::AtLeastOnce, false, "still here").await.unwrap();
    assert_eq!(&watcher.next_publish_on("home/a").await.payload[..], b"still here");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_an_update_gets_a_clear_error() {
    let dir = ConfigDir::new();
    let before = dir.text();
    let engine = TestEngine::from_file(&dir.path).await;
    let mut admin = Admin::connect(engine.mqtt_port()).await;

    admin.client.client.publish(UPDATE, QoS::AtLeastOnce, false, "{not json").await.unwrap();
    let error: Value = serde_json::from_slice(&admin.client.next_publish_on(ERROR).await.payload).unwrap();
    assert_eq!(error["message_type"], "event");
    assert_eq!(error["payload"]["data"]["error_type"], "not_json");
    assert_eq!(error["payload"]["data"]["topic"], UPDATE);

    let envelope_without_id = json!({"source": "admin_console", "payload": {"data": {}}}).to_string();
    admin.client.client.publish(REQUEST, QoS::AtLeastOnce, false, envelope_without_id).await.unwrap();
    let error: Value = serde_json::from_slice(&admin.client.next_publish_on(ERROR).await.payload).unwrap();
    assert_eq!(error["payload"]["data"]["topic"], REQUEST);
    assert_eq!(error["destination"], "admin_console");
    assert!(error["payload"]["data"]["field"].is_string(), "{error}");

    // An envelope whose data is no update: refused, saying what an update is.
    let answer = admin.ask(UPDATE, json!({"limits": {"max_connections": 5}})).await;
    assert_eq!(answer["status"], "refused");
    assert_eq!(paths(&answer["errors"]), ["payload.data"]);
    let answer = admin.ask(UPDATE, json!({"toml": "[limits\n"})).await;
    assert_eq!(paths(&answer["errors"]), ["<update syntax>"]);
    assert_eq!(dir.text(), before);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_the_acl_lets_publish_updates_change_anything() {
    let dir = ConfigDir::new();
    let before = dir.text();
    let engine = TestEngine::from_file(&dir.path).await;
    let port = engine.mqtt_port();
    let mut admin = Admin::connect(port).await;
    let (mut lamp, _) = V4Client::connect(port, "lamp", v4_login("lamp", "")).await;
    let update = Envelope::new(
        "lamp",
        Destination::Broadcast,
        MessageType::Request,
        json!({"config": {"limits": {"max_connections": 7}}}),
    );
    lamp.client.publish(UPDATE, QoS::AtLeastOnce, false, update.encode().to_vec()).await.unwrap();
    lamp.acked().await;
    // The admin's request after it is answered after it: had the lamp's update gone
    // through, the file would show it by now.
    let now = admin.ask(REQUEST, json!({"section": "limits"})).await;
    assert_eq!(now["config"]["limits"]["max_connections"], 1000, "{now}");
    assert_eq!(now["restart_required"], json!([]), "{now}");
    assert_eq!(dir.text(), before);
    engine.stop().await;
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_file_edited_by_hand() {
    let dir = ConfigDir::new();
    let mut process = EngineProcess::spawn_with(&dir.path, &[]);
    let port = process.mqtt.port();
    let (mut watcher, _) = V4Client::connect(port, "watcher", v4_login("watcher", "")).await;
    watcher.subscribe("home/#", QoS::AtLeastOnce).await;
    let (lamp, _) = V4Client::connect(port, "lamp", v4_login("lamp", "")).await;
    // The harness starts it with ALICIA_LOG=warn: info lines appear only once the
    // edited log_level is in force.
    let log = log_lines(&mut process);

    edit(&dir.path, &dir.acl_before, &dir.acl_after);
    let text = std::fs::read_to_string(&dir.path).unwrap();
    std::fs::write(
        &dir.path,
        text.replace("name = \"alicia\"\n", "name = \"alicia\"\nlog_level = \"warn,alicia=info\"\n"),
    )
    .unwrap();
    signal(process.child.id(), "HUP");
    // Polled: the lamp publishes on home/b until the new ACL lets it through.
    let deadline = std::time::Instant::now() + alicia_e2e::PATIENCE;
    loop {
        lamp.client.publish("home/b", QoS::AtLeastOnce, false, "try").await.unwrap();
        lamp.client.publish("home/a", QoS::AtLeastOnce, false, "tick").await.unwrap();
        let got = watcher.next_publish().await;
        if got.topic == "home/b" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "SIGHUP did not apply the edited file");
    }
    let mut admin = Admin::connect(port).await;
    let now = admin.ask(REQUEST, json!({"section": "security"})).await;
    assert_eq!(now["config"]["security"]["acl_file"], dir.acl_after.display().to_string());
    assert!(std::fs::read_to_string(&dir.path).unwrap().contains("# the seeds' limit"));
    let deadline = std::time::Instant::now() + alicia_e2e::PATIENCE;
    loop {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let line = log.recv_timeout(wait).expect("the reload's info line, under the edited log_level");
        if line.contains("SIGHUP: config and security files reloaded") {
            break;
        }
    }
}

/// The process's stderr, line by line, read on a thread of its own.
fn log_lines(process: &mut EngineProcess) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stderr = process.child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn edit(path: &Path, from: &Path, to: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let from = format!("acl_file = \"{}\"", from.display());
    assert!(text.contains(&from));
    std::fs::write(path, text.replace(&from, &format!("acl_file = \"{}\"", to.display()))).unwrap();
}
