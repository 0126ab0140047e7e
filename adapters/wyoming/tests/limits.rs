//! Every limit of the server, hit over TCP: the exact refusal a client gets, and that
//! an ordinary request is served afterwards (on the same connection where it stays
//! open, on a new one where the refusal closes it).

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alicia_wyoming::WyomingConfig;
use serde_json::json;
use support::*;

async fn expect_error(client: &mut Client, text: &str, code: &str) {
    assert_eq!(client.recv_error().await, (text.to_owned(), code.to_owned()));
}

/// The reproduction: `audio-start` at 1 Hz then ~1.6 MB of audio once made
/// the resampler ask for 25.6 GB and abort the process. Now the format is refused at
/// once, the audio is dropped unread, and the server answers the next request.
#[tokio::test]
async fn a_rate_of_one_hertz_is_refused_before_any_audio_is_kept() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    let one_hertz = json!({"rate": 1, "width": 2, "channels": 1});
    client.send("transcribe", json!({})).await;
    client.send("audio-start", one_hertz.clone()).await;
    expect_error(
        &mut client,
        "unsupported audio format: 1 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
        "unsupported_audio",
    )
    .await;
    for _ in 0..25 {
        client.send_with_payload("audio-chunk", one_hertz.clone(), &[0x55; 64 << 10]).await;
    }
    client.send("audio-stop", json!({})).await;
    client.assert_usable().await;
    client.send_utterance(&[3; 100], 50).await;
    assert_eq!(client.recv().await.data["text"], "100 samples, sum 300");
    server.shutdown().await;
}

#[tokio::test]
async fn formats_outside_the_list_are_refused() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    let cases = [
        (json!({"rate": 16000, "width": 2, "channels": 9}), "9 channels (at most 8; mono is best)"),
        (json!({"rate": 16000, "width": 5, "channels": 1}), "5-byte samples (send 2-byte signed little-endian PCM)"),
        (
            json!({"rate": 4294967295u64, "width": 2, "channels": 1}),
            "4294967295 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
        ),
    ];
    for (format, why) in cases {
        client.send("audio-start", format).await;
        expect_error(&mut client, &format!("unsupported audio format: {why}"), "unsupported_audio").await;
        client.send("audio-stop", json!({})).await;
    }
    client.send_utterance(&[1; 10], 10).await;
    assert_eq!(client.recv().await.data["text"], "10 samples, sum 10");
    server.shutdown().await;
}

#[tokio::test]
async fn an_utterance_longer_than_its_seconds_is_refused() {
    let server = start(WyomingConfig { max_utterance_seconds: 1, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    // 8 kHz is counted at 8 kHz: 1.5 s of it is 12,000 samples.
    let format = json!({"rate": 8000, "width": 2, "channels": 1});
    client.send("audio-start", format.clone()).await;
    for _ in 0..3 {
        client.send_with_payload("audio-chunk", format.clone(), &pcm16(vec![0; 4000])).await;
    }
    client.send("audio-stop", json!({})).await;
    expect_error(&mut client, "audio exceeds 1 s, the longest utterance this server transcribes", "audio_too_long")
        .await;
    client.send_utterance(&[1; 16_000], 4000).await;
    assert_eq!(client.recv().await.data["text"], "16000 samples, sum 16000");
    server.shutdown().await;
}

#[tokio::test]
async fn extra_data_over_its_limit_is_refused_and_skipped() {
    let server = start(WyomingConfig { max_data_bytes: 100, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    let data = format!("{{\"text\":\"{}\"}}", "a".repeat(200));
    let header = format!("{{\"type\":\"synthesize\",\"data_length\":{}}}\n", data.len());
    client.send_raw(format!("{header}{data}").as_bytes()).await;
    expect_error(&mut client, "`synthesize` data of 211 bytes exceeds the 100-byte limit", "data_too_large").await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_synthesize_text_over_its_limit_is_refused() {
    let server = start(WyomingConfig { max_text_chars: 20, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    client.send("synthesize", json!({"text": "Twenty-one characters"})).await;
    expect_error(
        &mut client,
        "text of 21 characters exceeds the 20-character limit of one synthesize",
        "text_too_long",
    )
    .await;
    client.send("synthesize", json!({"text": "Twenty characters ok"})).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    server.shutdown().await;
}

/// A slowloris: one byte of a header now and then keeps the idle clock from running
/// out, but not the event clock.
#[tokio::test]
async fn an_event_trickled_byte_by_byte_runs_out_of_time() {
    let config = WyomingConfig { event_timeout: Duration::from_millis(300), ..WyomingConfig::default() };
    let server = start(config).await;
    let mut client = Client::connect(&server).await;
    // One byte every 20 ms (the pace is the client under test, not a wait), until the
    // server answers.
    let mut header = b"{\"type\":\"describe\"".iter().cycle();
    let refusal = loop {
        client.send_raw(&[*header.next().unwrap()]).await;
        tokio::select! {
            event = client.recv() => break event,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    assert_eq!(refusal.kind, "error", "{refusal:?}");
    let field = |name: &str| refusal.data[name].as_str().unwrap().to_owned();
    assert_eq!(
        (field("text"), field("code")),
        ("event not complete 0.3 s after its first byte; closing".to_owned(), "event_timeout".to_owned())
    );
    assert!(client.next().await.is_none(), "closed after the refusal");
    Client::connect(&server).await.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_per_source_cap_are_refused_and_others_still_served() {
    let config = WyomingConfig { max_connections: 4, max_connections_per_source: 2, ..WyomingConfig::default() };
    let server = start(config).await;
    let mut first = Client::connect_from(&server, "127.0.0.1").await;
    let mut second = Client::connect_from(&server, "127.0.0.1").await;
    first.assert_usable().await;
    second.assert_usable().await;

    let mut third = Client::connect_from(&server, "127.0.0.1").await;
    expect_error(
        &mut third,
        "too many connections from 127.0.0.1: at most 2 at once",
        "too_many_connections_from_source",
    )
    .await;
    assert!(third.next().await.is_none(), "the refused connection is closed");

    // Another host still gets in, and the two first connections still work.
    let mut other = Client::connect_from(&server, "127.0.0.2").await;
    other.assert_usable().await;
    first.assert_usable().await;

    // A slot given back is a slot again: the server sees the close when it reads.
    first.finish_sending().await;
    assert!(first.next().await.is_none());
    let mut again = wait_for_a_slot(&server, "127.0.0.1").await;
    again.send_utterance(&[2; 8], 8).await;
    assert_eq!(again.recv().await.data["text"], "8 samples, sum 16");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_total_cap_are_refused() {
    let config = WyomingConfig { max_connections: 2, max_connections_per_source: 2, ..WyomingConfig::default() };
    let server = start(config).await;
    let mut held = [Client::connect_from(&server, "127.0.0.1").await, Client::connect_from(&server, "127.0.0.2").await];
    for client in &mut held {
        client.assert_usable().await;
    }
    let mut over = Client::connect_from(&server, "127.0.0.3").await;
    expect_error(
        &mut over,
        "too many connections: this server serves 2 at once; try again later",
        "too_many_connections",
    )
    .await;
    let [first, _second] = held;
    first.reset();
    wait_for_a_slot(&server, "127.0.0.3").await.assert_usable().await;
    server.shutdown().await;
}

/// Connects until the server admits: a freed slot is given back when the server
/// notices the close, a moment after the client's.
async fn wait_for_a_slot(server: &alicia_wyoming::WyomingServer, source: &str) -> Client {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut client = Client::connect_from(server, source).await;
        client.send("describe", json!({})).await;
        let event = client.recv().await;
        if event.kind == "info" {
            return client;
        }
        assert_eq!(event.kind, "error", "{event:?}");
        assert!(tokio::time::Instant::now() < deadline, "no slot came free");
        tokio::task::yield_now().await;
    }
}

/// A client that resets mid-way through a long reply: the backend stops at its next
/// sentence instead of speaking the other fifty for nobody.
#[tokio::test]
async fn synthesis_stops_when_the_client_goes_away() {
    let (backend, release) = TestBackend::gated();
    let backend = Arc::new(backend);
    let server = start_with(WyomingConfig::default(), Arc::clone(&backend)).await;
    let mut client = Client::connect(&server).await;
    let text = format!("One. wait. {}", "More. ".repeat(50));
    client.send("synthesize", json!({ "text": text })).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    assert_eq!(client.recv().await.payload.len(), 2048);
    assert_eq!(client.recv().await.payload.len(), 952);
    client.reset();
    release.send(()).unwrap();

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while backend.finished.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the backend never finished");
        tokio::task::yield_now().await;
    }
    // Sentence one, then at most what fits ahead of the connection before it noticed.
    let spoken = backend.spoken.load(Ordering::SeqCst);
    assert!((1..=6).contains(&spoken), "spoke {spoken} of 51 sentences for a client that had gone");
    Client::connect(&server).await.assert_usable().await;
    server.shutdown().await;
}

/// A client that resets while its utterance is being transcribed: the backend is told,
/// and stops, instead of finishing a transcript nobody will read.
#[tokio::test]
async fn transcription_is_given_up_when_the_client_goes_away() {
    let backend = Arc::new(TestBackend::default());
    let server = start_with(WyomingConfig::default(), Arc::clone(&backend)).await;
    let mut client = Client::connect(&server).await;
    client.assert_usable().await;
    client.send_utterance(&[1; ENDLESS_UTTERANCE], 100).await;
    // Reset only once the model runs: a reset earlier discards what the server has not
    // read yet, and then there is nothing to transcribe.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while backend.endless.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the transcription never began");
        tokio::task::yield_now().await;
    }
    client.reset();
    while backend.given_up.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the backend was never told");
        tokio::task::yield_now().await;
    }
    let mut next = Client::connect(&server).await;
    next.send_utterance(&[1; 30], 30).await;
    assert_eq!(next.recv().await.data["text"], "30 samples, sum 30");
    server.shutdown().await;
}

/// The end of a client's stream is not the end of its interest: one that half-closes
/// after asking still gets every sentence.
#[tokio::test]
async fn a_client_that_half_closes_after_synthesize_hears_it_all() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("synthesize", json!({"text": "One. Two. Three."})).await;
    client.finish_sending().await;
    assert_eq!(client.recv().await.kind, "audio-start");
    let mut samples = 0;
    loop {
        let event = client.recv().await;
        match event.kind.as_str() {
            "audio-chunk" => samples += event.payload.len() / 2,
            "audio-stop" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(samples, 3 * SENTENCE_SAMPLES);
    server.shutdown().await;
}
