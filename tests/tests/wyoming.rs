//! The Wyoming server inside `alicia serve`, with the real models, spoken to the way Home
//! Assistant does: synthesize a request, then transcribe that audio back.

use alicia_e2e::engine::{bus_config_dir, test_config};
use alicia_e2e::voice::{voice_engine, Wyoming};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_style_synthesize_then_transcribe_round_trip() {
    let engine = voice_engine().await;
    let mut client = Wyoming::connect(engine.engine.wyoming_addr().expect("voice enabled")).await;

    client.send("describe", json!({}), &[]).await;
    let (kind, info, _) = client.next().await;
    assert_eq!(kind, "info");
    assert!(!info["asr"].as_array().unwrap().is_empty() && !info["tts"].as_array().unwrap().is_empty());

    client.send("synthesize", json!({"text": "Turn on the kitchen lights."}), &[]).await;
    let (kind, start, _) = client.next().await;
    assert_eq!(kind, "audio-start");
    assert_eq!(
        (start["rate"].as_u64(), start["width"].as_u64(), start["channels"].as_u64()),
        (Some(16000), Some(2), Some(1))
    );
    let mut speech = Vec::new();
    loop {
        match client.next().await {
            (kind, _, payload) if kind == "audio-chunk" => speech.extend_from_slice(&payload),
            (kind, _, _) if kind == "audio-stop" => break,
            (kind, data, _) => panic!("unexpected {kind}: {data}"),
        }
    }
    assert!(speech.len() > 16_000, "at least half a second of speech, got {} bytes", speech.len());

    // Piper samples noise in its model (each synthesis differs a little) and Whisper
    // tiny.en sometimes hears "lights" as "whites": the room is what must survive.
    let text = client.transcribe(&speech).await;
    assert!(text.to_lowercase().contains("kitchen"), "Whisper heard {text:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_models_fail_start_up_and_say_how_to_get_them() {
    let mut config = test_config();
    config.voice.enabled = true;
    config.voice.models = "/nonexistent/models".into();
    config.voice.home = bus_config_dir().join("home.toml");
    let error = match alicia::Engine::start(config).await {
        Ok(_) => panic!("the engine started without its models"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("make models"), "{error}");
}

/// One value from a Prometheus page: the sample whose name and labels start with
/// `series`, or 0 when the series has not been written yet.
fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `/metrics` until `done` holds for it; the page that satisfied it.
async fn metrics_until(addr: std::net::SocketAddr, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + alicia_e2e::PATIENCE;
    loop {
        let (_, page) = alicia_e2e::http_get(addr, "/metrics").await;
        if done(&page) {
            return page;
        }
        assert!(tokio::time::Instant::now() < deadline, "metrics never got there:\n{page}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The reproductions against the real models: the 1 Hz resampler bomb, a text
/// over the configured limit, and a client that leaves mid-reply. Each is refused or
/// stopped, counted, and Whisper and Piper keep serving ordinary requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_refused_and_the_models_keep_serving() {
    let engine = alicia_e2e::voice::voice_engine_with(|config| config.wyoming.max_text_chars = 400).await;
    let (wyoming, http) = (engine.engine.wyoming_addr().unwrap(), engine.engine.http_addr());

    let mut client = Wyoming::connect(wyoming).await;
    let one_hertz = json!({"rate": 1, "width": 2, "channels": 1});
    client.send("transcribe", json!({}), &[]).await;
    client.send("audio-start", one_hertz.clone(), &[]).await;
    for _ in 0..25 {
        client.send("audio-chunk", one_hertz.clone(), &[0x55; 64 << 10]).await;
    }
    client.send("audio-stop", json!({}), &[]).await;
    let (kind, error, _) = client.next().await;
    assert_eq!(kind, "error");
    assert_eq!(error["code"], "unsupported_audio");
    assert_eq!(error["text"], "unsupported audio format: 1 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)");

    // Over the configured text limit (400 here): refused before the model sees it.
    client.send("synthesize", json!({ "text": "Lights. ".repeat(60) }), &[]).await;
    let (kind, error, _) = client.next().await;
    assert_eq!((kind.as_str(), error["code"].as_str()), ("error", Some("text_too_long")));
    assert_eq!(error["text"], "text of 480 characters exceeds the 400-character limit of one synthesize");

    // A client that resets after the first audio of a 45-sentence reply.
    let leaver = tokio::net::TcpStream::connect(wyoming).await.unwrap();
    let request = json!({"type": "synthesize", "data": {"text": "Okay. ".repeat(45)}});
    let (read, mut write) = leaver.into_split();
    tokio::io::AsyncWriteExt::write_all(&mut write, format!("{request}\n").as_bytes()).await.unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(read));
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.contains("audio-start"), "{first}");
    let leaver = lines.into_inner().into_inner().reunite(write).unwrap();
    #[allow(deprecated)] // a zero linger resets at once; only positive ones block
    leaver.set_linger(Some(std::time::Duration::ZERO)).unwrap();
    drop(leaver);
    // Every sentence is accounted for once the request is over, and the model stopped
    // early: how many were made before the reset arrived depends on the machine's
    // scheduling (the socket buffers take many sentences), so only "early" is asserted.
    let sentences =
        |page: &str, outcome: &str| metric(page, &format!("alicia_wyoming_sentences_total{{outcome=\"{outcome}\"}}"));
    let page = metrics_until(http, |page| {
        metric(page, "alicia_wyoming_abandoned_total") >= 1.0
            && sentences(page, "skipped") + sentences(page, "synthesized") >= 45.0
    })
    .await;
    let skipped = sentences(&page, "skipped");
    assert!(skipped >= 1.0, "no sentence skipped for a client that had gone:\n{page}");
    assert!(metric(&page, "alicia_wyoming_refused_total{reason=\"audio_format\"}") >= 1.0, "{page}");
    assert!(metric(&page, "alicia_wyoming_refused_total{reason=\"max_text_chars\"}") >= 1.0, "{page}");

    // The same connection, and the models, still serve an ordinary request.
    let speech = alicia_e2e::voice::espeak_pcm("turn off the hallway lights");
    let text = client.transcribe(&speech).await;
    assert!(text.contains("hallway"), "Whisper heard {text:?}");
    engine.stop().await;
}
