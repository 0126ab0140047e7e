//! The Wyoming server inside `alicia serve`, with the real models, spoken to the way Home
//! Assistant does: synthesize a request, then transcribe that audio back.

use alicia_e2e::engine::{bus_config_dir, test_config, TestEngine};
use alicia_e2e::PATIENCE;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Wyoming {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Wyoming {
    async fn connect(addr: std::net::SocketAddr) -> Wyoming {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Wyoming { reader: BufReader::new(read), writer }
    }

    async fn send(&mut self, kind: &str, data: Value, payload: &[u8]) {
        let mut header = json!({"type": kind, "data": data});
        if !payload.is_empty() {
            header["payload_length"] = json!(payload.len());
        }
        let mut line = header.to_string().into_bytes();
        line.push(b'\n');
        line.extend_from_slice(payload);
        self.writer.write_all(&line).await.unwrap();
    }

    /// One event: its type, data (inline and extra merged) and payload.
    async fn next(&mut self) -> (String, Value, Vec<u8>) {
        tokio::time::timeout(PATIENCE, async {
            let mut line = String::new();
            assert!(self.reader.read_line(&mut line).await.unwrap() > 0, "server closed");
            let header: Value = serde_json::from_str(&line).unwrap();
            let mut data = header.get("data").cloned().unwrap_or(json!({}));
            if let Some(n) = header.get("data_length").and_then(Value::as_u64) {
                let mut extra = vec![0; n as usize];
                self.reader.read_exact(&mut extra).await.unwrap();
                let extra: Value = serde_json::from_slice(&extra).unwrap();
                for (k, v) in extra.as_object().unwrap() {
                    data[k] = v.clone();
                }
            }
            let mut payload = vec![0; header.get("payload_length").and_then(Value::as_u64).unwrap_or(0) as usize];
            self.reader.read_exact(&mut payload).await.unwrap();
            (header["type"].as_str().unwrap().to_string(), data, payload)
        })
        .await
        .expect("a wyoming event within the patience window")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_style_synthesize_then_transcribe_round_trip() {
    let mut config = test_config();
    let repo = bus_config_dir().parent().unwrap().to_path_buf();
    config.voice.enabled = true;
    config.voice.models = repo.join("models");
    config.voice.home = repo.join("bus-config/home.toml");
    config.wyoming.listen = "127.0.0.1:0".parse().unwrap();
    let engine = TestEngine::start(config).await;
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

    let format = json!({"rate": 16000, "width": 2, "channels": 1});
    client.send("transcribe", json!({"language": "en"}), &[]).await;
    client.send("audio-start", format.clone(), &[]).await;
    for chunk in speech.chunks(2048) {
        client.send("audio-chunk", format.clone(), chunk).await;
    }
    client.send("audio-stop", json!({}), &[]).await;
    let (kind, transcript, _) = client.next().await;
    assert_eq!(kind, "transcript");
    let text = transcript["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("kitchen") && text.contains("light"), "Whisper heard {text:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_models_fail_start_up_and_say_how_to_get_them() {
    let mut config = test_config();
    config.voice.enabled = true;
    config.voice.models = "/nonexistent/models".into();
    let error = match alicia::Engine::start(config).await {
        Ok(_) => panic!("the engine started without its models"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("make models"), "{error}");
}
