//! `alicia say` and `alicia ask` with the real models: Piper speaks a request, Whisper
//! hears it, the matcher turns it into the kitchen light's command. (Needs `make models`.)

use std::process::Command;

use alicia_e2e::engine::{alicia_binary, bus_config_dir};

fn repo_root() -> std::path::PathBuf {
    bus_config_dir().parent().unwrap().to_path_buf()
}

#[test]
fn say_then_ask_round_trips_through_the_real_models() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.wav");
    let out = Command::new(alicia_binary())
        .current_dir(repo_root())
        .args(["say", "Turn on the kitchen lights.", "--out"])
        .arg(&request)
        .output()
        .unwrap();
    assert!(out.status.success(), "say failed: {}", String::from_utf8_lossy(&out.stderr));

    let reply = dir.path().join("reply.wav");
    let out = Command::new(alicia_binary())
        .current_dir(repo_root())
        .args(["ask", "--site", "kitchen", "--out"])
        .arg(&reply)
        .arg(&request)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ask failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let transcript = stdout.lines().find(|l| l.starts_with("transcript:")).unwrap().to_lowercase();
    assert!(transcript.contains("kitchen") && transcript.contains("light"), "{transcript}");
    assert!(
        stdout.contains(r#"alicia/devices/kitchen_lights/command {"action":"turn_on","device_id":"kitchen_lights"}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"reply:      "Turning on the kitchen lights.""#), "{stdout}");
    assert!(std::fs::metadata(&reply).unwrap().len() > 16_000, "a reply of some length was saved");
}

#[test]
fn ask_refuses_audio_in_the_wrong_format_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("cd.wav");
    // 44.1 kHz stereo: a header is enough to be refused.
    let mut bytes =
        b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x44\xac\0\0\x10\xb1\x02\0\x04\0\x10\0data\0\0\0\0".to_vec();
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(&wav, bytes).unwrap();
    let out = Command::new(alicia_binary()).current_dir(repo_root()).arg("ask").arg(&wav).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("44100 Hz, 2 channel(s)") && stderr.contains("sox"), "{stderr}");

    let out = Command::new(alicia_binary())
        .current_dir(repo_root())
        .args(["ask", "--site", "garage"])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown site \"garage\" (sites in") && stderr.contains("kitchen"), "{stderr}");
}
