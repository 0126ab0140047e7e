//! A CONNECT's password is MQTT's Binary Data: any bytes, checked against the password
//! file as they are (rumqttd alone would refuse a non-UTF-8 one as malformed). In a file
//! of its own: it counts `wrong_password` too, and metrics are the process's.

use alicia_e2e::engine::{test_config, TestEngine};

/// A 3.1.1 CONNECT from `user` with a password of any bytes (MQTT's Binary Data).
fn connect_with_password(user: &str, password: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60, 0, 6];
    body.extend(b"binary");
    body.extend((user.len() as u16).to_be_bytes());
    body.extend(user.as_bytes());
    body.extend((password.len() as u16).to_be_bytes());
    body.extend(password);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_binary_data() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let secret = [0xff, 0x00, 0x80, 0xfe, b'k'];
    let mut file = alicia_auth::PasswordFile::new();
    file.set("sensor", &secret).unwrap();
    file.save(&passwords).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    let engine = TestEngine::start(config).await;
    // Not UTF-8, and still the password: CONNACK 0 (0x20 0x02 0x00 0x00).
    let mut right = alicia_e2e::raw::RawClient::connect(engine.mqtt_port()).await;
    right.send(&connect_with_password("sensor", &secret)).await;
    assert_eq!(right.read_packet().await, Some((0x20, vec![0, 0])));
    // Other bytes are a wrong password (0x04), not a malformed packet.
    let mut wrong = alicia_e2e::raw::RawClient::connect(engine.mqtt_port()).await;
    wrong.send(&connect_with_password("sensor", &[0xff, 0x00, 0x81])).await;
    assert_eq!(wrong.read_packet().await, Some((0x20, vec![0, 4])));
    engine.stop().await;
}
