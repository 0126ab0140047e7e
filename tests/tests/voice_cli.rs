//! `alicia say` and `alicia ask` with the real models: Piper speaks a request, Whisper
//! hears it, the matcher turns it into the kitchen light's command. (Needs `make models`.)

use std::process::Command;

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{alicia_binary, bus_config_dir};
use alicia_e2e::voice::{voice_engine, Wyoming};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::QoS;

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

/// `alicia say --site` against a running engine: the site's speaker gets the speech,
/// announced as the answer to the request, and Whisper hears the words back; a bad
/// site or empty text is refused with the reason, and the engine carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn say_on_a_site_plays_on_its_speaker_through_the_running_engine() {
    let engine = voice_engine().await;
    let mqtt = format!("127.0.0.1:{}", engine.mqtt_port());
    let (mut watcher, _) = V4Client::connect(engine.mqtt_port(), "say-watcher", |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    watcher.subscribe("alicia/voice/tts/response", QoS::AtLeastOnce).await;
    watcher.subscribe("alicia/devices/bedroom_speaker/audio", QoS::AtLeastOnce).await;

    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("heard.wav");
    let say = |args: Vec<String>| {
        let binary = alicia_binary();
        // Blocking in its own thread: the engine under test runs on this runtime.
        async move { tokio::task::spawn_blocking(move || Command::new(binary).args(args).output().unwrap()).await.unwrap() }
    };
    let args = ["say", "Dinner is ready.", "--site", "bedroom", "--mqtt", &mqtt, "--out", wav.to_str().unwrap()];
    let out = say(args.map(String::from).to_vec()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "say --site failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("spoken on bedroom_speaker"), "{stdout}");

    // The bus saw the announcement (a response to the CLI's request), then the audio.
    let (mut announce, mut audio) = (None, Vec::new());
    loop {
        let p = watcher.next_publish().await;
        if p.topic == "alicia/voice/tts/response" {
            announce = Some(Envelope::decode(&p.payload).unwrap());
        } else if p.payload.is_empty() {
            break;
        } else {
            audio.extend_from_slice(&p.payload);
        }
    }
    let announce = announce.expect("announced");
    assert_eq!(announce.message_type, MessageType::Response);
    assert_eq!(announce.destination, Destination::Service("alicia-say".into()));
    assert!(announce.payload.metadata.contains_key("correlation_id"), "{:?}", announce.payload.metadata);
    assert_eq!(announce.payload.data["speaker"], "bedroom_speaker");
    assert!(audio.len() > 16_000, "half a second of speech at least: {} bytes", audio.len());
    let saved = std::fs::read(&wav).unwrap();
    assert_eq!(&saved[44..], &audio[..], "the WAV is what the speaker got");
    let mut wyoming = Wyoming::connect(engine.engine.wyoming_addr().unwrap()).await;
    let heard = wyoming.transcribe(&audio).await;
    // Piper samples noise as it speaks, so each rendering differs a little; Whisper
    // tiny must still hear the request's words in it.
    assert!(heard.contains("dinner") || heard.contains("ready"), "heard {heard:?}");

    // Refusals name the problem; the CLI exits non-zero.
    for (text, site, expected) in [
        ("Hello.", "garage", r#"unknown_site: unknown site "garage" (sites: bedroom, hallway, kitchen, living_room)"#),
        ("   ", "kitchen", "missing_text"),
    ] {
        let out = say(["say", text, "--site", site, "--mqtt", &mqtt].map(String::from).to_vec()).await;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }

    // No engine there: a clear error, not a hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out =
        say(["say", "Hello.", "--site", "kitchen", "--mqtt", &closed.to_string()].map(String::from).to_vec()).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot talk to the engine at {closed}")), "{stderr}");
    engine.stop().await;
}
