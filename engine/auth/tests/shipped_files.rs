//! bus-config/acl and bus-config/passwords.example parse and say what they mean to.

use std::path::PathBuf;

use alicia_auth::{Acl, Identity, PasswordFile, Verdict};

fn bus_config(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../../bus-config")
        .join(name)
}

const SERVICES: &[&str] = &[
    "security_gateway",
    "device_registry",
    "discovery_service",
    "health_monitor",
    "config_service",
    "stt_service",
    "ai_service",
    "tts_service",
    "voice_router",
    "ha_bridge",
    "dashboard",
];

#[test]
fn example_passwords_hold_every_service_with_its_placeholder() {
    let file = PasswordFile::load(&bus_config("passwords.example")).unwrap();
    assert_eq!(file.users().collect::<Vec<_>>(), SERVICES);
    for service in SERVICES {
        assert_eq!(file.check(service, format!("dev-{service}").as_bytes()), Verdict::Accepted, "{service}");
        assert_eq!(file.check(service, b"wrong"), Verdict::WrongPassword, "{service}");
    }
}

#[test]
fn acl_gives_each_service_its_own_topics_only() {
    let acl = Acl::load(&bus_config("acl")).unwrap();
    let mut users: Vec<&str> = acl.users().collect();
    users.sort_unstable();
    let mut services = SERVICES.to_vec();
    services.sort_unstable();
    assert_eq!(users, services, "one section per service");

    let who = |user: &str| Identity::user(user, &format!("{user}-1"));
    for service in SERVICES {
        let me = who(service);
        assert!(acl.can_publish(&me, &format!("alicia/system/health/{service}")), "{service} health");
        assert!(!acl.can_publish(&me, "alicia/system/health/someone_else"), "{service}");
        assert!(acl.can_read(&me, "alicia/system/config/update"), "{service} config");
        assert!(!acl.can_publish(&me, "#"), "{service}");
    }
    let stt = who("stt_service");
    assert!(acl.can_read(&stt, "alicia/voice/stt/request"));
    assert!(acl.can_read(&stt, "alicia/voice/audio/kitchen/frame"));
    assert!(acl.can_publish(&stt, "alicia/voice/stt/response"));
    assert!(!acl.can_publish(&stt, "alicia/voice/tts/audio"));
    assert!(!acl.can_read(&stt, "alicia/voice/ai/request"));
    // The engine's in-process services run under these users (its health service
    // reports under the engine's name; its voice pipeline publishes every stage's
    // result under voice_router) and need no more than this.
    let health = who("health_monitor");
    assert!(acl.can_publish(&health, "alicia/system/health/alicia"));
    assert!(acl.can_publish(&health, "alicia/system/discovery/register"));
    let gatekeeper = who("security_gateway");
    assert!(acl.can_read(&gatekeeper, "alicia/voice/stt/request"));
    assert!(acl.can_publish(&gatekeeper, "alicia/voice/stt/error"));
    assert!(!acl.can_publish(&gatekeeper, "alicia/voice/stt/request"));
    let pipeline = who("voice_router");
    assert!(acl.can_read(&pipeline, "alicia/voice/audio/kitchen/frame"));
    assert!(acl.can_publish(&pipeline, "alicia/devices/kitchen_lights/command"));
    assert!(acl.can_publish(&pipeline, "alicia/devices/kitchen_speaker/audio"));
    assert!(!acl.can_publish(&pipeline, "alicia/system/config/update"));
    let router = who("voice_router");
    assert!(acl.can_publish(&router, "alicia/voice/tts/request"));
    assert!(acl.can_subscribe(&router.clone(), "alicia/voice/command/#"));
    assert!(!acl.can_subscribe(&router, "alicia/system/security/#"));
    let dashboard = who("dashboard");
    assert!(acl.can_read(&dashboard, "alicia/system/health/stt_service"));
    assert!(!acl.can_read(&dashboard, "alicia/system/security/auth"), "the deny wins");
    assert!(!acl.can_publish(&dashboard, "alicia/devices/lamp1/command"));
    let ha = who("ha_bridge");
    assert!(acl.can_publish(&ha, "alicia/devices/lamp1/command"));

    let lamp = Identity::user("lamp1", "lamp1");
    assert!(acl.can_publish(&lamp, "alicia/devices/lamp1/status"));
    assert!(acl.can_read(&lamp, "alicia/devices/lamp1/command"));
    assert!(!acl.can_read(&lamp, "alicia/devices/lamp2/command"));
    let anonymous = Identity::anonymous("x");
    assert!(!acl.can_read(&anonymous, "alicia/devices/lamp1/command"));
    assert!(!acl.can_subscribe(&anonymous, "#"));
    assert!(!acl.can_read(&anonymous, "alicia/system/config/update"));
    assert!(!acl.can_read(&lamp, "alicia/system/config/update"), "devices are not services");
}
