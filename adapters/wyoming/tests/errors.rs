//! Every way a request goes wrong, end to end: the exact `error` event the client
//! gets, and that the same connection serves the next request.

mod support;

use alicia_wyoming::WyomingConfig;
use serde_json::json;
use support::*;

async fn expect_error(client: &mut Client, text: &str, code: &str) {
    assert_eq!(client.recv_error().await, (text.to_owned(), code.to_owned()));
}

#[tokio::test]
async fn a_header_that_is_not_json() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send_raw(b"{\"type\": \"describe\"\n").await;
    expect_error(
        &mut client,
        "malformed event header: EOF while parsing an object at line 1 column 19",
        "malformed_header",
    )
    .await;
    client.send_raw(b"{\"data\": {}, \"payload_length\": 4}\nabcd").await;
    expect_error(&mut client, "malformed event header: `type` is missing", "malformed_header").await;
    client.send_raw(b"{\"type\": \"synthesize\", \"data_length\": 5}\n{nope").await;
    expect_error(&mut client, "malformed `synthesize` data: key must be a string at line 1 column 2", "malformed_data")
        .await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_event_is_refused_and_skipped() {
    let server = start(WyomingConfig { max_payload_bytes: 4096, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({})).await;
    client.send_with_payload("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}), &[0; 5000]).await;
    expect_error(&mut client, "`audio-chunk` payload of 5000 bytes exceeds the 4096-byte limit", "payload_too_large")
        .await;
    // The refused chunk's payload was skipped, so the next utterance reads cleanly.
    client.send_utterance(&[5; 2000], 1000).await;
    assert_eq!(client.recv().await.data["text"], "2000 samples, sum 10000");
    server.shutdown().await;
}

#[tokio::test]
async fn an_over_long_header_line() {
    let server = start(WyomingConfig { max_header_bytes: 256, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    let long = format!("{{\"type\":\"synthesize\",\"data\":{{\"text\":\"{}\"}}}}\n", "a".repeat(300));
    client.send_raw(long.as_bytes()).await;
    expect_error(&mut client, "event header exceeds 256 bytes without a newline", "header_too_long").await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unconvertible_format_drops_the_utterance() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({"language": "en"})).await;
    let cd = json!({"rate": 44100, "width": 2, "channels": 2});
    client.send("audio-start", cd.clone()).await;
    expect_error(
        &mut client,
        "unsupported audio format: 44100 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
        "unsupported_audio",
    )
    .await;
    client.send_with_payload("audio-chunk", cd, &[0; 400]).await;
    client.send("audio-stop", json!({})).await;
    // Nothing more for that utterance: the next answer is the info.
    client.assert_usable().await;
    client.send_utterance(&[1; 10], 4).await;
    assert_eq!(client.recv().await.data["text"], "10 samples, sum 10");
    server.shutdown().await;
}

#[tokio::test]
async fn a_chunk_that_contradicts_the_stream() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("audio-start", json!({"rate": 16000, "width": 2, "channels": 1})).await;
    client.send_with_payload("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}), &[0; 4]).await;
    client.send_with_payload("audio-chunk", json!({"rate": 8000, "width": 2, "channels": 1}), &[0; 4]).await;
    expect_error(
        &mut client,
        "unsupported audio format: an audio-chunk of 8000 Hz, 2-byte samples, 1 channel(s) in a stream that started as 16000 Hz, 2-byte samples, 1 channel(s)",
        "unsupported_audio",
    )
    .await;
    client.send("audio-stop", json!({})).await;
    client.send_with_payload("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}), &[0; 3]).await;
    expect_error(
        &mut client,
        "unsupported audio format: an audio-chunk of 3 bytes is not a whole number of 2-byte frames",
        "unsupported_audio",
    )
    .await;
    client.send("audio-stop", json!({})).await;
    client.send("audio-start", json!({"rate": 16000})).await;
    expect_error(
        &mut client,
        "invalid `audio-start` event: `rate`, `width` and `channels` must be positive integers",
        "invalid_event",
    )
    .await;
    client.send("audio-stop", json!({})).await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_utterance_over_its_byte_limit() {
    let server = start(WyomingConfig { max_utterance_bytes: 1000, ..WyomingConfig::default() }).await;
    let mut client = Client::connect(&server).await;
    client.send_utterance(&[0; 600], 300).await;
    expect_error(&mut client, "audio exceeds the 1000-byte limit of one utterance", "audio_too_long").await;
    client.send_utterance(&[0; 400], 300).await;
    assert_eq!(client.recv().await.data["text"], "400 samples, sum 0");
    server.shutdown().await;
}

#[tokio::test]
async fn audio_stop_without_audio() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({})).await;
    client.send("audio-stop", json!({})).await;
    expect_error(&mut client, "audio-stop without any audio", "no_audio").await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_language_the_model_does_not_speak() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({"language": "de"})).await;
    expect_error(&mut client, "unsupported language \"de\": this server understands en", "unsupported_language").await;
    client.send_utterance(&[1; 50], 25).await;
    client.send("synthesize", json!({"text": "Hallo.", "voice": {"language": "de"}})).await;
    expect_error(&mut client, "unsupported language \"de\": this server understands en", "unsupported_language").await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_events_are_ignored() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("detect", json!({"names": ["ok_nabu"]})).await;
    client.send_with_payload("not-a-wyoming-event", json!({}), &[1, 2, 3]).await;
    client.send("transcript", json!({"text": "from a confused client"})).await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_event_cut_off_by_the_end_of_the_stream() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send_raw(b"{\"type\": \"synthe").await;
    client.finish_sending().await;
    expect_error(
        &mut client,
        "truncated event: the connection closed after 16 bytes of an event header",
        "truncated_event",
    )
    .await;
    assert!(client.next().await.is_none(), "closed after the error");

    let mut client = Client::connect(&server).await;
    client.send_raw(b"{\"type\":\"audio-chunk\",\"payload_length\":100}\n").await;
    client.send_raw(&[0; 40]).await;
    client.finish_sending().await;
    expect_error(
        &mut client,
        "truncated event: the connection closed after 40 of 100 bytes of `audio-chunk` data and payload",
        "truncated_event",
    )
    .await;
    assert!(client.next().await.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn synthesize_requests_that_cannot_be_served() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("synthesize", json!({"text": "  "})).await;
    expect_error(&mut client, "nothing to synthesize: the text is empty", "empty_text").await;
    client.send("synthesize", json!({"voice": {"name": "en_US-joe-medium"}})).await;
    expect_error(&mut client, "invalid `synthesize` event: `text` must be a string", "invalid_event").await;
    client.send("synthesize", json!({"text": "Hi.", "voice": {"name": "en_GB-alan-low"}})).await;
    expect_error(&mut client, "unknown voice \"en_GB-alan-low\": this server speaks en_US-joe-medium", "unknown_voice")
        .await;
    client.assert_usable().await;
    server.shutdown().await;
}

#[tokio::test]
async fn backend_failures_in_transcription() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send_utterance(&[0; FAILING_UTTERANCE], 100).await;
    expect_error(&mut client, "transcription failed: the model ran out of memory", "transcribe_failed").await;
    client.send_utterance(&[0; PANICKING_UTTERANCE], 100).await;
    expect_error(&mut client, "transcription failed: the speech backend crashed", "transcribe_failed").await;
    client.send_utterance(&[2; 20], 100).await;
    assert_eq!(client.recv().await.data["text"], "20 samples, sum 40");
    server.shutdown().await;
}

#[tokio::test]
async fn backend_failures_in_synthesis() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    // Before any audio: only the error.
    client.send("synthesize", json!({"text": "fail. Never said."})).await;
    expect_error(&mut client, "synthesis failed: cannot pronounce \"fail\"", "synthesize_failed").await;
    client.assert_usable().await;

    // After some audio: the error, then audio-stop to end the stream.
    client.send("synthesize", json!({"text": "Said. fail."})).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    assert_eq!(client.recv().await.payload.len(), 2048);
    assert_eq!(client.recv().await.payload.len(), 952);
    expect_error(&mut client, "synthesis failed: cannot pronounce \"fail\"", "synthesize_failed").await;
    let stop = client.recv().await;
    assert_eq!((stop.kind.as_str(), stop.data["timestamp"].as_u64()), ("audio-stop", Some(1500 / 16)));

    client.send("synthesize", json!({"text": "panic."})).await;
    expect_error(&mut client, "synthesis failed: the speech backend crashed", "synthesize_failed").await;
    client.send("synthesize", json!({"text": "Fine."})).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    server.shutdown().await;
}
