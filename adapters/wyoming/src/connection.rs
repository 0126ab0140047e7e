//! One client connection: read events, answer each in order, until the client
//! closes, goes idle, or the server shuts down.
//!
//! Requests on a connection are served one at a time, as Wyoming clients expect;
//! events that arrive meanwhile wait in the socket. Model calls run on tokio's
//! blocking pool so the connection's runtime thread stays free.
//!
//! Two clocks guard the reads: between events a connection may be silent for
//! `idle_timeout`; once an event has begun, all of it must arrive within
//! `event_timeout`, so a client trickling bytes cannot hold a slot for ever.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use crate::asr::{Transcription, Utterance, UtteranceLimits};
use crate::audio::BACKEND_FORMAT;
use crate::backend::{AudioOut, SpeechBackend};
use crate::codec::{Event, EventDecoder};
use crate::config::WyomingConfig;
use crate::error::{Limit, RequestError};
use crate::info::LANGUAGE;
use crate::metrics::{EventKind, WyomingMetrics};
use crate::tts;
use alicia_supervisor::LogThrottle;

/// Smallest read; Home Assistant's audio chunks are about 2 KiB each.
const READ_BYTES: usize = 8 << 10;
/// Most buffer reserved ahead for a large event: it is read in steps of this much
/// rather than allocated in full on the word of an unverified header.
const MAX_READ_AHEAD: usize = 1 << 20;
/// Sentences the backend may run ahead of a slow client before it waits.
const SENTENCES_AHEAD: usize = 4;

/// What every connection of one server shares.
pub(crate) struct ServerState {
    pub backend: Arc<dyn SpeechBackend>,
    pub config: WyomingConfig,
    pub metrics: WyomingMetrics,
    /// The `info` event, encoded once.
    pub info: Bytes,
    /// For the lines a client can cause.
    pub logs: LogThrottle,
}

pub(crate) struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    buf: BytesMut,
    decoder: EventDecoder,
    asr: Transcription,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, peer: SocketAddr, state: Arc<ServerState>) -> Self {
        // Events are small and each answers a request: send them without delay.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let config = &state.config;
        let decoder = EventDecoder::new(config.max_header_bytes, config.max_data_bytes, config.max_payload_bytes);
        let limits = UtteranceLimits { seconds: config.max_utterance_seconds, bytes: config.max_utterance_bytes };
        let asr = Transcription::new(limits);
        Self { stream, peer, buf: BytesMut::new(), decoder, asr, state }
    }

    pub(crate) async fn run(mut self, stop: CancellationToken) {
        tracing::debug!(peer = %self.peer, "wyoming client connected");
        match self.serve(&stop).await {
            Ok(()) => tracing::debug!(peer = %self.peer, "wyoming client done"),
            Err(err) => tracing::debug!(peer = %self.peer, error = %err, "wyoming connection ended"),
        }
    }

    async fn serve(&mut self, stop: &CancellationToken) -> io::Result<()> {
        let (idle, event_timeout) = (self.state.config.idle_timeout, self.state.config.event_timeout);
        // When the first byte of the event now being read came.
        let mut event_began: Option<Instant> = None;
        loop {
            while !stop.is_cancelled() {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(event)) => {
                        event_began = None;
                        self.handle(event).await?;
                    }
                    Ok(None) => break,
                    Err(err) => self.send_error(err.into()).await?,
                }
            }
            if !self.decoder.in_event(&self.buf) {
                event_began = None;
            } else if event_began.is_none() {
                event_began = Some(Instant::now());
            }
            let deadline = match event_began {
                Some(began) => began + event_timeout,
                None => Instant::now() + idle,
            };
            let ahead = self.decoder.bytes_wanted(&self.buf).clamp(READ_BYTES, MAX_READ_AHEAD);
            self.buf.reserve(ahead);
            let read = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                read = tokio::time::timeout_at(deadline.into(), self.stream.read_buf(&mut self.buf)) => read,
            };
            match read {
                Err(_) if event_began.is_some() => {
                    self.send_error(RequestError::EventTimeout { after: event_timeout }).await?;
                    return self.stream.shutdown().await;
                }
                Err(_) => {
                    self.state.metrics.refused(Limit::IdleTimeout);
                    tracing::debug!(peer = %self.peer, "idle wyoming client closed");
                    return Ok(());
                }
                Ok(Err(err)) => return Err(err),
                Ok(Ok(0)) => return self.finish().await,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The client stopped sending (it may still be reading): report an event it
    /// left unfinished, then close.
    async fn finish(&mut self) -> io::Result<()> {
        loop {
            match self.decoder.decode_eof(&mut self.buf) {
                Ok(Some(event)) => self.handle(event).await?,
                Ok(None) => break,
                Err(err) => self.send_error(err.into()).await?,
            }
        }
        self.stream.shutdown().await
    }

    async fn handle(&mut self, event: Event) -> io::Result<()> {
        let kind = EventKind::of(&event.kind);
        self.state.metrics.event(kind);
        let refused = match kind {
            EventKind::Describe => {
                let info = self.state.info.clone();
                return self.write(info, Bytes::new()).await;
            }
            EventKind::Ping => {
                let text = event.data.get("text").cloned().unwrap_or(Value::Null);
                return self.send(&Event::new("pong").with_data(json!({ "text": text }))).await;
            }
            EventKind::Transcribe => self.asr.on_transcribe(&event.data),
            EventKind::AudioStart => self.asr.on_audio_start(&event.data),
            EventKind::AudioChunk => self.asr.on_audio_chunk(&event.data, event.payload),
            EventKind::AudioStop => match self.asr.on_audio_stop() {
                Ok(Some(utterance)) => return self.transcribe(utterance).await,
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            },
            EventKind::Synthesize => {
                let config = &self.state.config;
                match tts::synthesize_text(&event.data, &config.tts_voice, config.max_text_chars) {
                    Ok(text) => return self.synthesize(text).await,
                    Err(err) => Err(err),
                }
            }
            EventKind::Other => {
                // Normal for some clients (a satellite's wake-word events): worth a line
                // now and then, not one per event.
                if let Some(suppressed) = self.state.logs.allow("unknown_event") {
                    tracing::warn!(peer = %self.peer, event_type = %event.kind, suppressed, "ignoring wyoming events this server does not serve");
                }
                Ok(())
            }
        };
        match refused {
            Ok(()) => Ok(()),
            Err(err) => self.send_error(err).await,
        }
    }

    /// Transcribes on the blocking pool while watching the socket: a client that goes
    /// away meanwhile sets the backend's `client_gone`, so the model stops early.
    async fn transcribe(&mut self, utterance: Utterance) -> io::Result<()> {
        let backend = Arc::clone(&self.state.backend);
        let started = Instant::now();
        let client_gone = Arc::new(AtomicBool::new(false));
        let mut work = {
            let client_gone = Arc::clone(&client_gone);
            tokio::task::spawn_blocking(move || {
                let pcm = utterance.into_backend_pcm();
                let samples = pcm.len() / 2;
                backend.transcribe(pcm, &client_gone).map(|text| (text, samples))
            })
        };
        let mut watching = true;
        let transcribed = loop {
            tokio::select! {
                done = &mut work => break done,
                gone = client_went_away(&self.stream), if watching => match gone {
                    Some(err) => {
                        client_gone.store(true, Ordering::Relaxed);
                        let _ = work.await;
                        self.state.metrics.abandoned_transcriptions.increment(1);
                        tracing::debug!(peer = %self.peer, error = %err, "client left during transcription");
                        return Err(err);
                    }
                    None => watching = false,
                },
            }
        };
        self.state.metrics.transcribe_seconds.record(started.elapsed().as_secs_f64());
        let failure = match transcribed {
            Ok(Ok((text, samples))) => {
                tracing::debug!(peer = %self.peer, samples, elapsed = ?started.elapsed(), "transcribed");
                let transcript = Event::new("transcript").with_data(json!({ "text": text, "language": LANGUAGE }));
                return self.send(&transcript).await;
            }
            Ok(Err(err)) => {
                tracing::warn!(peer = %self.peer, error_type = err.error_type(), error = %err, "transcription failed");
                err.message().to_owned()
            }
            Err(join) => panicked(join),
        };
        self.send_error(RequestError::TranscribeFailed(failure)).await
    }

    /// Sends `audio-start` with the first audio, the audio as it comes, then
    /// `audio-stop`. A failure before any audio is only an `error`; after some audio it
    /// is an `error` followed by `audio-stop`, so a client that reads up to
    /// `audio-stop` (as Home Assistant does) still ends the stream.
    ///
    /// A client that goes away (a reset seen while waiting for audio, or a write that
    /// fails) closes the audio's way back, which stops the backend before its next
    /// sentence: no model keeps working for nobody.
    async fn synthesize(&mut self, text: String) -> io::Result<()> {
        let backend = Arc::clone(&self.state.backend);
        let started_at = Instant::now();
        let (mut out, mut rx) = AudioOut::channel(SENTENCES_AHEAD);
        let synthesis = tokio::task::spawn_blocking(move || backend.synthesize(&text, &mut out));
        let chunk_bytes = self.state.config.samples_per_chunk * usize::from(BACKEND_FORMAT.width);
        let (mut started, mut sent) = (false, 0u64);
        // Watch the socket only until it has something to say: data (a pipelined
        // request) or an end of stream (maybe a half-close) leave it readable for good.
        let mut watching = true;
        let streamed: io::Result<()> = async {
            loop {
                let pcm = tokio::select! {
                    pcm = rx.recv() => match pcm {
                        Some(pcm) => pcm,
                        None => return Ok(()),
                    },
                    gone = client_went_away(&self.stream), if watching => match gone {
                        Some(err) => return Err(err),
                        None => {
                            watching = false;
                            continue;
                        }
                    },
                };
                debug_assert_eq!(pcm.len() % 2, 0, "the backend's PCM is whole 16-bit samples");
                if !started {
                    self.send(&audio_event("audio-start", 0)).await?;
                    started = true;
                }
                for payload in tts::chunks(&pcm, chunk_bytes) {
                    let samples = (payload.len() / 2) as u64;
                    self.send(&audio_event("audio-chunk", sent).with_payload(payload)).await?;
                    sent += samples;
                }
            }
        }
        .await;
        if let Err(err) = streamed {
            // Closing the channel is what tells the backend; then wait out the sentence
            // it is on, so the model is free before this connection's slot is.
            drop(rx);
            let _ = synthesis.await;
            self.state.metrics.abandoned_syntheses.increment(1);
            tracing::debug!(peer = %self.peer, samples = sent, error = %err, "client left during synthesis");
            return Err(err);
        }
        let outcome = synthesis.await;
        self.state.metrics.synthesize_seconds.record(started_at.elapsed().as_secs_f64());
        let failure = match outcome {
            Ok(Ok(())) => {
                if !started {
                    self.send(&audio_event("audio-start", 0)).await?;
                }
                tracing::debug!(peer = %self.peer, samples = sent, elapsed = ?started_at.elapsed(), "synthesized");
                return self.send(&audio_event("audio-stop", sent)).await;
            }
            Ok(Err(err)) => {
                tracing::warn!(peer = %self.peer, error_type = err.error_type(), error = %err, "synthesis failed");
                err.message().to_owned()
            }
            Err(join) => panicked(join),
        };
        self.send_error(RequestError::SynthesizeFailed(failure)).await?;
        if started {
            self.send(&audio_event("audio-stop", sent)).await?;
        }
        Ok(())
    }

    async fn send_error(&mut self, err: RequestError) -> io::Result<()> {
        let reason = err.reason();
        self.state.metrics.error(reason);
        if let Some(limit) = err.limit() {
            self.state.metrics.refused(limit);
        }
        tracing::debug!(peer = %self.peer, reason = reason.as_label(), error = %err, "wyoming request refused");
        self.send(&Event::new("error").with_data(json!({ "text": err.to_string(), "code": reason.as_label() }))).await
    }

    async fn send(&mut self, event: &Event) -> io::Result<()> {
        self.write(event.encode_head(), event.payload.clone()).await
    }

    /// One vectored write of the header and the payload, which goes out of its own
    /// buffer. A client that stops reading for the idle timeout is dropped rather than
    /// left holding a model thread through a full socket.
    async fn write(&mut self, head: Bytes, payload: Bytes) -> io::Result<()> {
        let mut out = head.chain(payload);
        tokio::time::timeout(self.state.config.idle_timeout, self.stream.write_all_buf(&mut out))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))?
    }
}

/// Resolves when the client has sent something while the server is busy answering:
/// `Some(error)` when the connection broke (it was reset), `None` for data or an end
/// of stream, which say nothing for sure about whether the client still listens.
async fn client_went_away(stream: &TcpStream) -> Option<io::Error> {
    let mut probe = [0u8; 1];
    stream.peek(&mut probe).await.err()
}

/// An `audio-start`, `audio-chunk` or `audio-stop` in the backend's format, stamped
/// with the playing time (ms) at which it starts.
fn audio_event(kind: &str, samples_before: u64) -> Event {
    let mut data = BACKEND_FORMAT.to_data();
    data.insert("timestamp".into(), (samples_before * 1000 / u64::from(BACKEND_FORMAT.rate)).into());
    if kind == "audio-stop" {
        // Wyoming's audio-stop carries only the timestamp.
        data.retain(|key, _| key == "timestamp");
    }
    Event { kind: kind.to_owned(), data, payload: Bytes::new() }
}

fn panicked(join: JoinError) -> String {
    tracing::error!(error = %join, "speech backend panicked");
    "the speech backend crashed".to_owned()
}
