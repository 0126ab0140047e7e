//! The satellites: one MQTT connection per site streaming spoken requests in real time,
//! each request followed until its reply ends, and the runs of K of them at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alicia_envelope::{Destination, Envelope, MessageType};
use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::home::Site;
use super::pacing::pacing;
use super::speech::{self, Expected, Phrase, FRAME_BYTES};
use super::summary::{summarise, VoiceRun};
use super::watcher::{watch, EngineTimings, Event, Inbox};
use super::{VoiceOptions, CONNECT_TIMEOUT, KEEP_ALIVE};
use crate::connection;
use crate::wire;

const FRAME: Duration = Duration::from_millis(20);
/// How long an utterance may wait for the end of its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// After a stage error, how long a spoken apology may take to start and finish.
const AFTER_ERROR: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct CommandSeen {
    pub device: String,
    pub action: String,
    pub value: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Utterance {
    pub site: String,
    pub session_id: String,
    pub phrase: String,
    /// When the request started, from the start of its K run.
    pub start_ms: f64,
    pub speech_ms: f64,
    pub transcript: Option<String>,
    pub word_errors: usize,
    pub reference_words: usize,
    pub expected_command: Option<CommandSeen>,
    pub commands: Vec<CommandSeen>,
    /// End of speech (last voiced frame sent) → first reply audio.
    pub first_audio_ms: Option<f64>,
    /// Last frame (end of the quiet tail) sent → first reply audio; negative when the
    /// reply started while the tail was still streaming.
    pub after_last_frame_ms: Option<f64>,
    /// The engine's per-stage account of the reply, when it sends one.
    pub engine_ms: Option<EngineTimings>,
    pub reply_ended: bool,
    pub intent_ok: bool,
    /// The pause after the reply ended before this satellite's next request.
    pub think_ms: f64,
    pub errors: Vec<String>,
}

/// What [`measure_all`] measured.
pub struct Measured {
    /// The warm-up: the engine's first request after start.
    pub first: Utterance,
    pub runs: Vec<VoiceRun>,
    /// Each recorded clip spoken at the first site, through the live pipeline.
    pub recorded_live: Vec<Utterance>,
}

/// Connects the watcher, warms up (the engine's first request), runs each K in turn with
/// one satellite per site, then speaks the recorded `clips` (id, transcript, WAV) at the
/// first site, one after another, as a satellite would.
pub async fn measure_all(
    opts: &VoiceOptions,
    sessions: &[usize],
    all_sites: &[Site],
    speech: &HashMap<String, Vec<u8>>,
    clips: &[(String, String, Vec<u8>)],
    mqtt: SocketAddr,
) -> Result<Measured> {
    let mut routes = HashMap::new();
    let mut inboxes: HashMap<String, Inbox> = HashMap::new();
    for site in all_sites {
        let (tx, rx) = mpsc::unbounded_channel();
        routes.insert(site.id.clone(), tx);
        inboxes.insert(site.id.clone(), rx);
    }
    let speakers: HashMap<String, String> = all_sites.iter().map(|s| (s.speaker.clone(), s.id.clone())).collect();
    let watcher = watch(mqtt, routes, speakers).await?;

    // Warm-up: one request at the first site, not counted.
    let first = {
        let site = &all_sites[0];
        let phrase = speech::phrases(&site.speaker).remove(0);
        let mut w = connect_satellite(mqtt, site).await?;
        let rx = inboxes.get_mut(&site.id).expect("site");
        let think = Duration::from_millis(500);
        let u = speak(&mut w, rx, site, &phrase, &speech[&phrase.text], "warmup".into(), think, Instant::now()).await?;
        eprintln!("voice: warm-up heard {:?}, first audio {:?} ms", u.transcript, u.first_audio_ms);
        disconnect(w).await;
        u
    };

    let mut runs = Vec::new();
    for &k in sessions {
        let sites = &all_sites[..k];
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            // Connected for this K only: a satellite that sat out the runs before would
            // have outlived its keep-alive without a word.
            let mut w = connect_satellite(mqtt, site).await?;
            let mut rx = inboxes.remove(&site.id).expect("site");
            let site = site.clone();
            let phrases = speech::phrases(&site.speaker);
            let audio: Vec<Vec<u8>> = phrases.iter().map(|p| speech[&p.text].clone()).collect();
            let plan = pacing(opts.seed, k, i, opts.utterances, opts.interval);
            let pid = std::process::id();
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(plan.offset).await;
                let mut results = Vec::new();
                for (u, think) in plan.think.into_iter().enumerate() {
                    let j = (i + u) % phrases.len();
                    let session = format!("lg-{pid}-k{k}-{}-{u}", site.id);
                    let r = speak(&mut w, &mut rx, &site, &phrases[j], &audio[j], session, think, started).await?;
                    if !r.reply_ended {
                        // No reply to think after: pause anyway rather than speak again at once.
                        tokio::time::sleep(think).await;
                    }
                    results.push(r);
                }
                anyhow::Ok((site.id, w, rx, results))
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            let (id, w, rx, r) = t.await??;
            disconnect(w).await;
            inboxes.insert(id, rx);
            results.extend(r);
        }
        results.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
        let wall_s = started.elapsed().as_secs_f64();
        eprintln!("voice: K={k} done in {wall_s:.1} s");
        runs.push(summarise(k, sites, results, wall_s));
    }
    let mut recorded_live = Vec::new();
    if !clips.is_empty() {
        let site = &all_sites[0];
        let mut w = connect_satellite(mqtt, site).await?;
        let rx = inboxes.get_mut(&site.id).expect("site");
        let started = Instant::now();
        for (id, said, wav) in clips {
            let pcm = alicia_speech::pcm16k_from_wav(Bytes::copy_from_slice(wav))
                .map_err(|e| anyhow::anyhow!("{id}: {e}"))?;
            let pcm = speech::with_quiet_tail(pcm.to_vec());
            // Nothing in the corpus asks the home for anything: no command is right.
            let phrase = Phrase { text: said.clone(), expected: None };
            let think = Duration::from_millis(300);
            let session = format!("lg-{}-recorded-{id}", std::process::id());
            recorded_live.push(speak(&mut w, rx, site, &phrase, &pcm, session, think, started).await?);
        }
        disconnect(w).await;
        eprintln!("voice: {} recorded clips spoken at {}", clips.len(), site.id);
    }
    watcher.abort();
    Ok(Measured { first, runs, recorded_live })
}

/// A satellite's connection, its write half; what comes back (PINGRESPs, nothing
/// else: it subscribes to nothing) is read and dropped.
async fn connect_satellite(mqtt: SocketAddr, site: &Site) -> Result<OwnedWriteHalf> {
    let conn =
        connection::connect(mqtt, &format!("loadgen-satellite-{}", site.id), KEEP_ALIVE, CONNECT_TIMEOUT).await?;
    let (mut read, write) = conn.stream.into_split();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while tokio::io::AsyncReadExt::read(&mut read, &mut buf).await.is_ok_and(|n| n > 0) {}
    });
    Ok(write)
}

async fn disconnect(mut w: OwnedWriteHalf) {
    let mut out = BytesMut::new();
    wire::encode_disconnect(&mut out);
    let _ = w.write_all(&out).await;
}

fn ms_since(at: Instant, from: Instant) -> f64 {
    at.saturating_duration_since(from).as_secs_f64() * 1_000.0
}

fn signed_ms(at: Instant, from: Instant) -> f64 {
    match at.checked_duration_since(from) {
        Some(d) => d.as_secs_f64() * 1_000.0,
        None => -(from.duration_since(at).as_secs_f64() * 1_000.0),
    }
}

fn envelope(site: &Site, data: Value) -> Vec<u8> {
    Envelope::new(
        format!("loadgen-satellite-{}", site.id),
        Destination::Service("alicia".into()),
        MessageType::Event,
        data,
    )
    .encode()
    .to_vec()
}

async fn publish(w: &mut OwnedWriteHalf, topic: &str, payload: &[u8]) -> Result<()> {
    let mut out = BytesMut::with_capacity(payload.len() + topic.len() + 8);
    wire::encode_publish_head(&mut out, topic.as_bytes(), 0, 0, payload.len());
    out.extend_from_slice(payload);
    w.write_all(&out).await.with_context(|| format!("publish {topic}"))
}

/// One request: stream it in real time, then collect what the engine did until the reply
/// ended and for `think` after (the user's pause, during which late events still count).
#[allow(clippy::too_many_arguments)] // one request's whole context; a struct would only rename it
async fn speak(
    w: &mut OwnedWriteHalf,
    rx: &mut Inbox,
    site: &Site,
    phrase: &Phrase,
    pcm: &[u8],
    session: String,
    think: Duration,
    run_start: Instant,
) -> Result<Utterance> {
    while rx.try_recv().is_ok() {}
    let start_ms = ms_since(Instant::now(), run_start);
    let base = format!("alicia/voice/audio/{}", site.id);
    let start = json!({"session_id": session, "rate": 16000, "width": 2, "channels": 1});
    publish(w, &format!("{base}/start"), &envelope(site, start)).await?;
    let frame_topic = format!("{base}/frame");
    let voiced = speech::voiced_frames(pcm);
    let t0 = tokio::time::Instant::now();
    let mut speech_end = Instant::now();
    for (n, frame) in pcm.chunks(FRAME_BYTES).enumerate() {
        tokio::time::sleep_until(t0 + FRAME * n as u32).await;
        publish(w, &frame_topic, frame).await?;
        if n + 1 == voiced {
            speech_end = Instant::now();
        }
    }
    let end = Instant::now();
    publish(w, &format!("{base}/stop"), &envelope(site, json!({"session_id": session}))).await?;

    let expected = phrase.expected.as_ref().map(|e: &Expected| CommandSeen {
        device: e.device.clone(),
        action: e.action.to_string(),
        value: e.value,
    });
    let mut u = Utterance {
        site: site.id.clone(),
        session_id: session.clone(),
        phrase: phrase.text.clone(),
        start_ms,
        speech_ms: (voiced * FRAME_BYTES) as f64 / speech::BYTES_PER_SECOND as f64 * 1_000.0,
        transcript: None,
        word_errors: 0,
        reference_words: 0,
        expected_command: expected,
        commands: Vec::new(),
        first_audio_ms: None,
        after_last_frame_ms: None,
        engine_ms: None,
        reply_ended: false,
        intent_ok: false,
        think_ms: think.as_secs_f64() * 1_000.0,
        errors: Vec::new(),
    };
    let mut deadline = tokio::time::Instant::from_std(end + REPLY_TIMEOUT);
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        let until = grace.unwrap_or(deadline);
        let (at, event) = match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) => bail!("watcher connection closed"),
            Err(_) => {
                if grace.is_none() && !u.reply_ended {
                    u.errors.push(format!("no end of reply within {REPLY_TIMEOUT:?}"));
                }
                break;
            }
        };
        match event {
            Event::Transcript { session: s, text } if s == session => u.transcript = Some(text),
            Event::Reply { session: s, timings } if s == session => u.engine_ms = timings,
            Event::Command { session: s, device, action, value } if s == session => {
                u.commands.push(CommandSeen { device, action, value })
            }
            Event::Audio { empty: false } if u.first_audio_ms.is_none() && grace.is_none() => {
                u.first_audio_ms = Some(ms_since(at, speech_end));
                u.after_last_frame_ms = Some(signed_ms(at, end));
            }
            Event::Audio { empty: true } if u.first_audio_ms.is_some() && grace.is_none() => {
                u.reply_ended = true;
                grace = Some(tokio::time::Instant::now() + think);
            }
            Event::Error { session: s, text } if s.as_deref().is_none_or(|s| s == session) => {
                u.errors.push(text);
                // An error may or may not be spoken; do not wait the full minute for it.
                deadline = deadline.min(tokio::time::Instant::now() + AFTER_ERROR);
            }
            _ => {}
        }
    }
    let reference = speech::normalise(&phrase.text);
    let heard = speech::normalise(u.transcript.as_deref().unwrap_or_default());
    u.reference_words = reference.len();
    u.word_errors = speech::word_errors(&reference, &heard);
    u.intent_ok = u.reply_ended
        && match &u.expected_command {
            None => u.commands.is_empty(),
            Some(e) => {
                u.commands.len() == 1
                    && u.commands[0].device == e.device
                    && u.commands[0].action == e.action
                    && (e.value.is_none() || u.commands[0].value == e.value)
            }
        };
    Ok(u)
}
