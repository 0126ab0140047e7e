//! Voice helpers: an engine with the real models, speech made at test time, and a
//! Wyoming client to hear what the engine says.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::engine::{bus_config_dir, test_config, TestEngine};
use crate::PATIENCE;

/// An engine with the voice on (models from `make models`) and Wyoming on an ephemeral port.
pub async fn voice_engine() -> TestEngine {
    voice_engine_with(|_| {}).await
}

/// [`voice_engine`], with `tweak` applied to its config first.
pub async fn voice_engine_with(tweak: impl FnOnce(&mut alicia_config::AliciaConfig)) -> TestEngine {
    let mut config = test_config();
    let repo = repo_root();
    config.voice.enabled = true;
    config.voice.models = repo.join("models");
    config.voice.home = repo.join("bus-config/home.toml");
    config.wyoming.listen = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    TestEngine::start(config).await
}

pub fn repo_root() -> PathBuf {
    bus_config_dir().parent().unwrap().to_path_buf()
}

/// `text` spoken by espeak-ng, as 16 kHz mono s16le PCM (via sox).
pub fn espeak_pcm(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (raw, pcm) = (dir.path().join("raw.wav"), dir.path().join("speech.raw"));
    let ok = Command::new("espeak-ng").args(["-v", "en-us", "-s", "150", "-w"]).arg(&raw).arg(text).status().unwrap();
    assert!(ok.success(), "espeak-ng is installed (make deps)");
    let ok = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"])
        .arg(&pcm)
        .status()
        .unwrap();
    assert!(ok.success(), "sox is installed (make deps)");
    std::fs::read(pcm).unwrap()
}

/// Publishes `pcm` on `alicia/voice/audio/{site}/frame` in 20 ms frames, one every
/// 20 ms, as a satellite's microphone produces them.
pub async fn stream_in_real_time(client: &rumqttc::AsyncClient, site: &str, pcm: &[u8]) {
    let topic = format!("alicia/voice/audio/{site}/frame");
    let mut clock = tokio::time::interval(std::time::Duration::from_millis(20));
    for frame in pcm.chunks(640) {
        clock.tick().await;
        client.publish(&topic, rumqttc::QoS::AtLeastOnce, false, frame.to_vec()).await.unwrap();
    }
}

/// `pcm` without the silence espeak-ng puts before and after the words (hundreds of
/// ms each), so a test controls the gaps itself.
pub fn trim_silence(pcm: &[u8]) -> Vec<u8> {
    let loud = |pair: &[u8]| i16::from_le_bytes([pair[0], pair[1]]).unsigned_abs() > 64;
    let samples: Vec<&[u8]> = pcm.chunks_exact(2).collect();
    let first = samples.iter().position(|s| loud(s)).unwrap_or(0);
    let last = samples.iter().rposition(|s| loud(s)).map_or(0, |i| i + 1);
    samples[first..last.max(first)].concat()
}

/// `ms` of low noise (±8 LSB, about -72 dBFS) as s16le: a quiet room after speech,
/// which the VAD's hangover ends the utterance in.
pub fn quiet_room(ms: usize) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..ms * 16)
        .flat_map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed % 17) as i16 - 8).to_le_bytes()
        })
        .collect()
}

/// A Wyoming protocol client.
pub struct Wyoming {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Wyoming {
    pub async fn connect(addr: std::net::SocketAddr) -> Wyoming {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Wyoming { reader: BufReader::new(read), writer }
    }

    pub async fn send(&mut self, kind: &str, data: Value, payload: &[u8]) {
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
    pub async fn next(&mut self) -> (String, Value, Vec<u8>) {
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

    /// Whisper's reading of 16 kHz mono s16le `pcm`.
    pub async fn transcribe(&mut self, pcm: &[u8]) -> String {
        let format = json!({"rate": 16000, "width": 2, "channels": 1});
        self.send("transcribe", json!({"language": "en"}), &[]).await;
        self.send("audio-start", format.clone(), &[]).await;
        for chunk in pcm.chunks(2048) {
            self.send("audio-chunk", format.clone(), chunk).await;
        }
        self.send("audio-stop", json!({}), &[]).await;
        let (kind, transcript, _) = self.next().await;
        assert_eq!(kind, "transcript");
        transcript["text"].as_str().unwrap().to_lowercase()
    }
}
