//! The server end to end over TCP: what a client asks for and gets, and the
//! server's life cycle.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alicia_wyoming::{WyomingConfig, WyomingServer, PROTOCOL_VERSION};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn describe_answers_with_info() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("describe", json!({})).await;
    let info = client.recv().await;
    assert_eq!(info.kind, "info");
    let asr = &info.data["asr"][0];
    assert_eq!(asr["name"], "alicia-whisper");
    assert_eq!(asr["installed"], true);
    assert_eq!(asr["models"][0]["name"], "tiny.en");
    assert_eq!(asr["models"][0]["languages"], json!(["en"]));
    let tts = &info.data["tts"][0];
    assert_eq!(tts["name"], "alicia-piper");
    assert_eq!(tts["voices"][0]["name"], "en_US-joe-medium");
    assert_eq!(tts["voices"][0]["languages"], json!(["en"]));
    assert!(tts["attribution"]["url"].is_string() && tts.get("version").is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn an_utterance_is_transcribed() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({"language": "en"})).await;
    let samples: Vec<i16> = (0..3000).map(|i| (i % 50) as i16 - 20).collect();
    client.send_utterance(&samples, 1024).await;
    let transcript = client.recv().await;
    assert_eq!(transcript.kind, "transcript");
    let sum: i64 = samples.iter().map(|&s| i64::from(s)).sum();
    assert_eq!(transcript.data["text"], format!("3000 samples, sum {sum}"));
    assert_eq!(transcript.data["language"], "en");
    server.shutdown().await;
}

#[tokio::test]
async fn utterances_follow_one_another_on_one_connection_without_transcribe() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    for (round, length) in [(1, 100), (2, 2500), (3, 7)] {
        if round == 2 {
            client.send("transcribe", json!({})).await;
        }
        let samples = vec![round as i16; length];
        client.send_utterance(&samples, 1024).await;
        let transcript = client.recv().await;
        assert_eq!(
            transcript.data["text"],
            format!("{length} samples, sum {}", length as i64 * round),
            "round {round}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn other_formats_are_converted_for_the_backend() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("transcribe", json!({"language": "en-US"})).await;
    let format = json!({"rate": 48000, "width": 2, "channels": 2});
    client.send("audio-start", format.clone()).await;
    // 4800 stereo frames at 48 kHz: left 300, right 100 → mono 200, 1600 samples at 16 kHz.
    let frames = pcm16((0..4800).flat_map(|_| [300i16, 100]));
    for piece in frames.chunks(4 * 1000) {
        client.send_with_payload("audio-chunk", format.clone(), piece).await;
    }
    client.send("audio-stop", json!({})).await;
    assert_eq!(client.recv().await.data["text"], format!("1600 samples, sum {}", 1600 * 200));
    server.shutdown().await;
}

#[tokio::test]
async fn a_large_chunk_within_the_limit_is_accepted() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    // 25 s in one 800 KB chunk: under the 1 MiB payload and the 30 s utterance limits.
    let samples = vec![1i16; 400_000];
    client.send_utterance(&samples, samples.len()).await;
    assert_eq!(client.recv().await.data["text"], "400000 samples, sum 400000");
    server.shutdown().await;
}

#[tokio::test]
async fn synthesis_streams_each_sentence_in_chunks() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("synthesize", json!({"text": "One. Two. Three.", "voice": {"name": "en_US-joe-medium"}})).await;

    let start = client.recv().await;
    assert_eq!(start.kind, "audio-start");
    assert_eq!(start.data["rate"], 16000);
    assert_eq!((start.data["width"].as_u64(), start.data["channels"].as_u64()), (Some(2), Some(1)));

    let mut sizes = Vec::new();
    let mut audio = Vec::new();
    let mut timestamps = Vec::new();
    let stop = loop {
        let event = client.recv().await;
        if event.kind != "audio-chunk" {
            break event;
        }
        assert_eq!((event.data["rate"].as_u64(), event.data["width"].as_u64()), (Some(16000), Some(2)));
        assert_eq!(event.data["channels"], 1);
        sizes.push(event.payload.len() / 2);
        timestamps.push(event.data["timestamp"].as_u64().unwrap());
        audio.extend_from_slice(&event.payload);
    };
    assert_eq!(stop.kind, "audio-stop");
    assert_eq!(sizes, [1024, 476, 1024, 476, 1024, 476]);
    let expected: Vec<u8> = (0..3).flat_map(|i| sentence_pcm(i).to_vec()).collect();
    assert_eq!(audio, expected);
    // Playing time in ms at which each chunk starts: 1024 samples are 64 ms.
    assert_eq!(timestamps, [0, 64, 93, 157, 187, 251]);
    assert_eq!(stop.data["timestamp"], 4500 / 16);

    client.send("synthesize", json!({"text": "Again."})).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    assert_eq!(client.recv().await.payload.len(), 2048);
    assert_eq!(client.recv().await.payload.len(), 952);
    assert_eq!(client.recv().await.kind, "audio-stop");
    server.shutdown().await;
}

#[tokio::test]
async fn synthesis_without_audio_is_an_empty_stream() {
    let server = start_default().await;
    let mut client = Client::connect(&server).await;
    client.send("synthesize", json!({"text": "silence."})).await;
    assert_eq!(client.recv().await.kind, "audio-start");
    let stop = client.recv().await;
    assert_eq!((stop.kind.as_str(), stop.data["timestamp"].as_u64()), ("audio-stop", Some(0)));
    server.shutdown().await;
}

#[tokio::test]
async fn ping_is_answered_with_the_reference_header_layout() {
    let server = start_default().await;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(b"{\"type\":\"ping\",\"data\":{\"text\":\"polo\"}}\n").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let newline = raw.iter().position(|&b| b == b'\n').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&raw[..newline]).unwrap();
    assert_eq!(header["type"], "pong");
    assert_eq!(header["version"], PROTOCOL_VERSION);
    assert_eq!(header["data_length"], raw.len() - newline - 1);
    assert_eq!(&raw[newline + 1..], br#"{"text":"polo"}"#);
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_the_address() {
    let server = start_default().await;
    let taken = server.addr();
    let err = WyomingServer::bind(taken, Arc::new(TestBackend::default()), WyomingConfig::default()).await.unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot bind wyoming listener on {taken}: ")), "{err}");
    let bad = WyomingConfig { samples_per_chunk: 0, ..WyomingConfig::default() };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let err = WyomingServer::bind(any, Arc::new(TestBackend::default()), bad).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid wyoming config: samples_per_chunk must be positive");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_stops_listening() {
    let server = start_default().await;
    let addr = server.addr();
    let mut client = Client::connect(&server).await;
    client.assert_usable().await;
    tokio::time::timeout(PATIENCE, server.shutdown()).await.expect("shutdown finishes");
    assert!(client.next().await.is_none(), "the idle connection was closed");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn an_idle_client_is_disconnected() {
    let config = WyomingConfig { idle_timeout: Duration::from_millis(200), ..WyomingConfig::default() };
    let server = start(config).await;
    let mut client = Client::connect(&server).await;
    client.assert_usable().await;
    assert!(client.next().await.is_none(), "closed after the idle timeout");
    server.shutdown().await;
}
