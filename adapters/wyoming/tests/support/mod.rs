//! What the end-to-end tests share: a deterministic backend, a server on an
//! ephemeral port, and a raw Wyoming client that writes the wire format by hand.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alicia_wyoming::{AudioOut, BackendError, Event, EventDecoder, SpeechBackend, WyomingConfig, WyomingServer};
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for a loaded CI machine; every wait ends as soon as its condition holds.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// Samples the test backend speaks per sentence: one full chunk and a short one.
pub const SENTENCE_SAMPLES: usize = 1500;
/// Utterance lengths (in 16 kHz samples) at which the test backend fails.
pub const FAILING_UTTERANCE: usize = 13;
pub const PANICKING_UTTERANCE: usize = 17;
/// An utterance of this length "runs" until its client is gone, as a long model run
/// that polls for it would.
pub const ENDLESS_UTTERANCE: usize = 19;

/// Transcribes to a description of the PCM it got; speaks each sentence as a ramp.
/// Sentences saying `wait` block until [`TestBackend::release`] lets one through, so
/// a test can hold synthesis mid-way; every sentence spoken is counted.
#[derive(Default)]
pub struct TestBackend {
    gate: std::sync::Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    pub spoken: std::sync::atomic::AtomicUsize,
    /// Syntheses that have returned, however.
    pub finished: std::sync::atomic::AtomicUsize,
    /// Endless transcriptions begun, and given up because the client had gone.
    pub endless: std::sync::atomic::AtomicUsize,
    pub given_up: std::sync::atomic::AtomicUsize,
}

impl TestBackend {
    /// A backend whose `wait` sentences each take one release from the returned sender.
    pub fn gated() -> (TestBackend, std::sync::mpsc::Sender<()>) {
        let (release, gate) = std::sync::mpsc::channel();
        (TestBackend { gate: std::sync::Mutex::new(Some(gate)), ..TestBackend::default() }, release)
    }
}

impl SpeechBackend for TestBackend {
    fn transcribe(&self, pcm: Bytes, client_gone: &std::sync::atomic::AtomicBool) -> Result<String, BackendError> {
        let samples = pcm_samples(&pcm);
        match samples.len() {
            FAILING_UTTERANCE => Err(BackendError::new("test", "the model ran out of memory")),
            PANICKING_UTTERANCE => panic!("the test backend panics on request"),
            ENDLESS_UTTERANCE => {
                // The flag is what whisper.cpp's abort callback polls between steps.
                self.endless.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let deadline = std::time::Instant::now() + PATIENCE;
                while !client_gone.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(std::time::Instant::now() < deadline, "nobody said the client had gone");
                    std::thread::yield_now();
                }
                self.given_up.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(BackendError::new("test", "given up: the client has gone"))
            }
            n => Ok(format!("{n} samples, sum {}", samples.iter().map(|&s| i64::from(s)).sum::<i64>())),
        }
    }

    fn synthesize(&self, text: &str, out: &mut AudioOut) -> Result<(), BackendError> {
        struct Finished<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Finished<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _finished = Finished(&self.finished);
        for (index, sentence) in sentences(text).enumerate() {
            // As the engine's backend does: no work for a client that has gone.
            if !out.wanted() {
                return Ok(());
            }
            match sentence {
                "fail" => return Err(BackendError::new("test", "cannot pronounce \"fail\"")),
                "panic" => panic!("the test backend panics on request"),
                "silence" => {}
                "wait" => {
                    let gate = self.gate.lock().unwrap();
                    gate.as_ref().expect("a gated backend").recv().expect("the test releases the gate");
                }
                _ => {
                    self.spoken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if out.send(sentence_pcm(index)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}

pub fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split('.').map(str::trim).filter(|s| !s.is_empty())
}

/// What the test backend speaks for the `index`th sentence.
pub fn sentence_pcm(index: usize) -> Bytes {
    (0..SENTENCE_SAMPLES).flat_map(|i| ((index * 1000 + i % 100) as i16).to_le_bytes()).collect::<Vec<u8>>().into()
}

pub fn pcm_samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
}

pub fn pcm16(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
    samples.into_iter().flat_map(i16::to_le_bytes).collect()
}

pub async fn start(config: WyomingConfig) -> WyomingServer {
    start_with(config, Arc::new(TestBackend::default())).await
}

pub async fn start_with(config: WyomingConfig, backend: Arc<TestBackend>) -> WyomingServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    WyomingServer::bind(addr, backend, config).await.expect("bind on an ephemeral port")
}

pub async fn start_default() -> WyomingServer {
    start(WyomingConfig::default()).await
}

/// A Wyoming client over a raw socket. Requests are written by hand (data inline in
/// the header, unlike the server's own encoder); answers are read with the crate's
/// decoder.
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    decoder: EventDecoder,
}

impl Client {
    pub async fn connect(server: &WyomingServer) -> Self {
        Self::connect_from(server, "127.0.0.1").await
    }

    /// Connects from another loopback address (any of 127.0.0.0/8 reaches the
    /// server), so tests can be several hosts for the per-source cap.
    pub async fn connect_from(server: &WyomingServer, source: &str) -> Self {
        Self::connect_to(server.addr(), source).await
    }

    /// Connects to `addr` from the IPv4 address `source`.
    pub async fn connect_to(addr: SocketAddr, source: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).expect("bind a loopback source address");
        let stream = socket.connect(addr).await.expect("connect");
        Self { stream, buf: BytesMut::new(), decoder: EventDecoder::new(1 << 20, 1 << 20, 64 << 20) }
    }

    /// Closes with a reset (SO_LINGER 0), as a client that crashed or lost its
    /// network looks to the server.
    pub fn reset(self) {
        // Deprecated because a positive linger blocks on drop; a zero one resets at once.
        #[allow(deprecated)]
        self.stream.set_linger(Some(Duration::ZERO)).unwrap();
        drop(self.stream);
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, kind: &str, data: Value) {
        self.send_with_payload(kind, data, &[]).await;
    }

    pub async fn send_with_payload(&mut self, kind: &str, data: Value, payload: &[u8]) {
        let mut header = serde_json::json!({"type": kind, "data": data, "version": "1.5.4"});
        if !payload.is_empty() {
            header["payload_length"] = payload.len().into();
        }
        let mut wire = serde_json::to_vec(&header).unwrap();
        wire.push(b'\n');
        wire.extend_from_slice(payload);
        self.send_raw(&wire).await;
    }

    /// Sends an utterance of 16 kHz mono samples in chunks of `chunk` samples.
    pub async fn send_utterance(&mut self, samples: &[i16], chunk: usize) {
        let format = serde_json::json!({"rate": 16000, "width": 2, "channels": 1});
        self.send("audio-start", format.clone()).await;
        for piece in samples.chunks(chunk) {
            self.send_with_payload("audio-chunk", format.clone(), &pcm16(piece.iter().copied())).await;
        }
        self.send("audio-stop", serde_json::json!({})).await;
    }

    /// Half-closes: the server sees the end of the stream but can still answer.
    pub async fn finish_sending(&mut self) {
        self.stream.shutdown().await.expect("shutdown");
    }

    /// The next event, or `None` once the server has closed the connection.
    pub async fn next(&mut self) -> Option<Event> {
        let read = async {
            loop {
                if let Some(event) = self.decoder.decode(&mut self.buf).expect("the server sends valid events") {
                    return Some(event);
                }
                if self.stream.read_buf(&mut self.buf).await.expect("read") == 0 {
                    assert!(self.buf.is_empty(), "the server closed inside an event");
                    return None;
                }
            }
        };
        tokio::time::timeout(PATIENCE, read).await.expect("the server answered in time")
    }

    /// Every byte the server sends until it closes; a reset ends it too (a server that
    /// closes with our request unread resets the connection).
    pub async fn bytes_until_closed(&mut self) -> Vec<u8> {
        let mut got = self.buf.to_vec();
        let read = async {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = self.stream.read(&mut chunk).await {
                got.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(PATIENCE, read).await.expect("the server closed in time");
        got
    }

    pub async fn recv(&mut self) -> Event {
        self.next().await.expect("an event, not the end of the connection")
    }

    /// The next event, which must be an `error`: its `(text, code)`.
    pub async fn recv_error(&mut self) -> (String, String) {
        let event = self.recv().await;
        assert_eq!(event.kind, "error", "{event:?}");
        let field = |name: &str| event.data[name].as_str().unwrap_or_default().to_owned();
        (field("text"), field("code"))
    }

    /// Asks `describe` and checks that the next event is the `info` answer: proof
    /// that the connection still works and that nothing else was queued before it.
    pub async fn assert_usable(&mut self) {
        self.send("describe", serde_json::json!({})).await;
        let event = self.recv().await;
        assert_eq!(event.kind, "info", "{event:?}");
    }
}
