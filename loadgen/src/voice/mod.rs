//! `voice`: K satellites speak synthesised requests to the engine's voice data plane in
//! real time and loadgen measures what a user waits for, from the end of speech to the
//! first reply audio on the site's speaker, and whether it was heard and understood.
//!
//! One MQTT connection per satellite streams `alicia/voice/audio/{site}/{start,frame,stop}`
//! (20 ms frames paced in real time); one watcher connection receives transcripts,
//! device commands, stage errors and the speakers' audio, time-stamped on arrival and
//! handed to the site they belong to. The engine runs one session per site, so K is at
//! most the number of sites in the home.

mod engine;
mod speech;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alicia_envelope::{Destination, Envelope, MessageType};
use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::connection::{self, Conn};
use crate::report::{self, ms, Provenance};
use crate::stats::new_histogram;
use crate::wire::{self, Packet};
use crate::Verdict;

pub use engine::VoiceEngine;
use speech::{Expected, Phrase, FRAME_BYTES};

const FRAME: Duration = Duration::from_millis(20);
const KEEP_ALIVE: u16 = 60;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an utterance may wait for the end of its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

pub const METHOD: &str = "\
Each of K sites (one satellite per site: the engine runs one voice session per site, so K ≤ the \
home's sites) has its own MQTT 3.1.1 connection and speaks N requests in turn, cycling through \
six phrases synthesised at run time (espeak-ng -v en-us -s 150 → sox → 16 kHz mono s16le) \
followed by 400 ms of low-level noise (±8 LSB) so the VAD's 300 ms hangover ends the \
utterance. A request is `alicia/voice/audio/{site}/start` (envelope, payload.data \
{session_id, rate 16000, width 2, channels 1}), 20 ms frames of 640 bytes paced in real time, \
then `stop`. Latency = arrival of the first non-empty message on `alicia/devices/{speaker}/audio` \
minus the time the last voiced frame was written (end of speech: the last 20 ms frame with RMS \
above 500, about -36 dBFS; espeak's own trailing silence and the noise tail come after it). The \
time since the last frame of the tail was written is reported too (median, signed): the VAD ends \
the utterance after 300 ms of quiet, so the reply often starts while the tail is still \
streaming and that figure is negative, which is why it is not the headline number. One \
watcher connection receiving everything, monotonic clock, hdrhistogram at µs precision. The \
next request starts --interval after the reply ended (its empty message); events arriving in \
that interval still count for the request. Transcript: `alicia/voice/stt/response` \
payload.data.text of the session; WER = word-level Levenshtein distance / reference words, \
summed over requests, after lowercasing, dropping punctuation and spelling out numbers. Intent \
accuracy: the reply ended and exactly the expected `alicia/devices/{id}/command` arrived (action \
and value), or none for a request that needs no device. Stage means: the engine's \
`alicia_stage_process_seconds{stage}` sum/count delta over the run from /metrics; engine \
end-to-end is `alicia_voice_end_to_end_seconds` (last audio in → first reply chunk out). One \
warm-up request (not counted) runs before the first measured run.";

/// What `voice` runs.
#[derive(Debug, Clone)]
pub struct VoiceOptions {
    /// A running engine; `None` starts one.
    pub broker: Option<SocketAddr>,
    /// Its HTTP address for /metrics (with `broker`).
    pub http: Option<SocketAddr>,
    pub alicia_bin: PathBuf,
    pub alicia_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub sessions: Vec<usize>,
    pub utterances: usize,
    pub interval: Duration,
    pub timeout: Duration,
    pub startup_timeout: Duration,
    pub max_p95_ms: Option<f64>,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Site {
    pub id: String,
    pub speaker: String,
}

/// `[sites.X]` tables with their `speaker` from home.toml (the keys loadgen needs only).
pub fn parse_sites(text: &str) -> Vec<Site> {
    let mut sites = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(|l| l.split('#').next().unwrap_or_default().trim()) {
        if line.starts_with('[') {
            current = line.strip_prefix("[sites.").and_then(|r| r.strip_suffix(']')).map(str::to_string);
        } else if let (Some(site), Some((key, value))) = (&current, line.split_once('=')) {
            if key.trim() == "speaker" {
                sites.push(Site { id: site.clone(), speaker: value.trim().trim_matches('"').to_string() });
            }
        }
    }
    sites
}

#[derive(Debug)]
enum Event {
    Transcript { session: String, text: String },
    Command { session: String, device: String, action: String, value: Option<i64> },
    Audio { empty: bool },
    Error { session: Option<String>, text: String },
}

type Inbox = mpsc::UnboundedReceiver<(Instant, Event)>;

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
    pub reply_ended: bool,
    pub intent_ok: bool,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency {
                p50_ms: f64::NAN,
                p95_ms: f64::NAN,
                p99_ms: f64::NAN,
                max_ms: f64::NAN,
                ..Latency::default()
            };
        }
        let q = |x: f64| h.value_at_quantile(x) as f64 / 1_000.0;
        Latency {
            count: h.len(),
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            max_ms: h.max() as f64 / 1_000.0,
            mean_ms: h.mean() / 1_000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VoiceRun {
    pub sessions: usize,
    pub sites: Vec<String>,
    pub utterances: usize,
    pub replies: usize,
    /// End of speech (last voiced frame sent) → first reply audio.
    pub latency: Latency,
    /// Median of last frame sent → first reply audio (signed).
    pub after_last_frame_p50_ms: Option<f64>,
    pub word_error_rate: f64,
    pub intent_accuracy: f64,
    /// Mean engine processing per call of each stage, ms (from /metrics).
    pub stage_mean_ms: BTreeMap<String, f64>,
    pub engine_end_to_end_mean_ms: Option<f64>,
    pub wall_s: f64,
    pub results: Vec<Utterance>,
}

#[derive(Debug, Serialize)]
struct VoiceReport {
    scenario: &'static str,
    method: &'static str,
    provenance: Provenance,
    engine: String,
    notes: Vec<String>,
    max_p95_ms: Option<f64>,
    gate_failures: Vec<String>,
    runs: Vec<VoiceRun>,
}

pub fn run(opts: &VoiceOptions, rt: &tokio::runtime::Runtime) -> Result<Verdict> {
    let config = opts.alicia_config.clone().or_else(crate::brokers::default_engine_config);
    let home_path = match (&opts.home, &config) {
        (Some(h), _) => h.clone(),
        (None, Some(c)) => engine::repo_of(c).join("bus-config/home.toml"),
        (None, None) => PathBuf::from("bus-config/home.toml"),
    };
    let home = std::fs::read_to_string(&home_path).with_context(|| format!("read home {}", home_path.display()))?;
    let all_sites = parse_sites(&home);
    if all_sites.is_empty() {
        bail!("{} has no [sites.*] with a speaker", home_path.display());
    }
    let mut notes = Vec::new();
    let mut sessions = Vec::new();
    for &k in &opts.sessions {
        let capped = k.clamp(1, all_sites.len());
        if capped != k {
            notes.push(format!(
                "--sessions {k} capped at {capped}: the engine runs one voice session per site and the home has {} sites",
                all_sites.len()
            ));
        }
        sessions.push(capped);
    }

    // Speech first: a missing espeak-ng fails before an engine is started.
    let mut speech: HashMap<String, Vec<u8>> = HashMap::new();
    for site in &all_sites {
        for p in speech::phrases(&site.speaker) {
            if !speech.contains_key(&p.text) {
                speech.insert(p.text.clone(), speech::synthesise(&p.text)?);
            }
        }
    }

    let (engine, mqtt, http, engine_desc) = match opts.broker {
        Some(addr) => (None, addr, opts.http, format!("running engine at {addr}")),
        None => {
            let config = config.context("no engine config found (bus-config/alicia.toml); pass --alicia-config")?;
            let e = VoiceEngine::start(&opts.alicia_bin, &config, opts.startup_timeout)?;
            let (desc, mqtt, http) = (e.command.clone(), e.mqtt, e.http);
            (Some(e), mqtt, Some(http), desc)
        }
    };
    eprintln!("voice: engine {engine_desc}");
    let outcome = rt.block_on(async {
        tokio::time::timeout(opts.timeout, measure_all(opts, &sessions, &all_sites, &speech, mqtt, http)).await
    });
    let log_tail = engine.as_ref().map(VoiceEngine::log_tail);
    if let Some(e) = engine {
        e.stop()?;
    }
    let runs = match outcome {
        Ok(Ok(runs)) => runs,
        Ok(Err(e)) => return Err(e.context(log_tail.unwrap_or_default())),
        Err(_) => bail!("voice run exceeded --timeout {:?}", opts.timeout),
    };

    let mut verdict = Verdict::default();
    for r in &runs {
        if r.replies == 0 {
            verdict.problems.push(format!("K={}: no reply audio for any of {} requests", r.sessions, r.utterances));
        }
        if let Some(max) = opts.max_p95_ms {
            if r.latency.p95_ms.is_nan() || r.latency.p95_ms > max {
                verdict.gate_failures.push(format!(
                    "K={}: p95 {} ms > --max-p95-ms {max}",
                    r.sessions,
                    ms(r.latency.p95_ms)
                ));
            }
        }
        for u in r.results.iter().filter(|u| !u.intent_ok || !u.errors.is_empty()) {
            notes.push(format!(
                "K={} {} {:?}: heard {:?}, commands {:?}, reply ended {}{}",
                r.sessions,
                u.site,
                u.phrase,
                u.transcript.as_deref().unwrap_or("-"),
                u.commands.iter().map(|c| format!("{}:{}", c.device, c.action)).collect::<Vec<_>>(),
                u.reply_ended,
                if u.errors.is_empty() { String::new() } else { format!(", errors {:?}", u.errors) }
            ));
        }
    }
    let table = text(&runs);
    print!("{table}");
    let report = VoiceReport {
        scenario: "voice",
        method: METHOD,
        provenance: Provenance::collect(),
        engine: engine_desc,
        notes,
        max_p95_ms: opts.max_p95_ms,
        gate_failures: verdict.gate_failures.clone(),
        runs,
    };
    let (json_path, md_path) = report::write(&opts.out, "voice", &report, &markdown(&report))?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(verdict)
}

const HEADERS: [&str; 15] = [
    "K",
    "requests",
    "replies",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    "p50 after last frame ms",
    "WER",
    "intent",
    "vad ms",
    "stt ms",
    "intent ms",
    "tts ms",
    "engine e2e ms",
];

fn row(r: &VoiceRun) -> Vec<String> {
    let stage = |s: &str| r.stage_mean_ms.get(s).map(|v| ms(*v)).unwrap_or_else(|| "-".into());
    vec![
        r.sessions.to_string(),
        r.utterances.to_string(),
        r.replies.to_string(),
        ms(r.latency.p50_ms),
        ms(r.latency.p95_ms),
        ms(r.latency.p99_ms),
        ms(r.latency.max_ms),
        r.after_last_frame_p50_ms.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
        format!("{:.1}%", r.word_error_rate * 100.0),
        format!("{:.0}%", r.intent_accuracy * 100.0),
        stage("vad"),
        stage("stt"),
        stage("intent"),
        stage("tts"),
        r.engine_end_to_end_mean_ms.map(ms).unwrap_or_else(|| "-".into()),
    ]
}

fn text(runs: &[VoiceRun]) -> String {
    report::text_table(&HEADERS, &runs.iter().map(row).collect::<Vec<_>>())
}

fn markdown(r: &VoiceReport) -> String {
    let mut out = String::from("# Voice: end of speech → first reply audio\n\n");
    out += &r.provenance.markdown();
    let _ = writeln!(out, "- engine: `{}`\n", r.engine);
    out += "## Results\n\n";
    out += &report::markdown_table(&HEADERS, &r.runs.iter().map(row).collect::<Vec<_>>(), true);
    out += "\nLatency columns: end of speech (the last 20 ms frame above -36 dBFS) → first reply audio chunk, at the \
            satellite side; this includes the VAD's 300 ms hangover. \"after last frame\" starts at the last frame sent \
            (negative: the reply began while the quiet tail was still streaming). \
            Stage columns: mean engine processing per stage call (vad and stt run per frame / per utterance as the \
            pipeline calls them), from /metrics.\n\n## Requests\n\n";
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .flat_map(|run| {
            run.results.iter().map(move |u| {
                vec![
                    run.sessions.to_string(),
                    u.site.clone(),
                    u.phrase.clone(),
                    u.transcript.clone().unwrap_or_else(|| "-".into()),
                    u.first_audio_ms.map(ms).unwrap_or_else(|| "-".into()),
                    if u.intent_ok { "ok".into() } else { "MISSED".into() },
                ]
            })
        })
        .collect();
    out += &report::markdown_table(&["K", "site", "said", "heard", "first audio ms", "intent"], &rows, false);
    out += "\n## Gate\n\n";
    match r.max_p95_ms {
        None => out += "No gate set.\n",
        Some(max) if r.gate_failures.is_empty() => {
            let _ = writeln!(out, "--max-p95-ms {max}: **passed**.");
        }
        Some(max) => {
            let _ = writeln!(out, "--max-p95-ms {max}: **missed**:\n");
            for f in &r.gate_failures {
                let _ = writeln!(out, "- {f}");
            }
        }
    }
    if !r.notes.is_empty() {
        out += "\n## Notes\n\n";
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    let _ = write!(out, "\n## Method\n\n{}\n", r.method);
    out
}

async fn measure_all(
    opts: &VoiceOptions,
    sessions: &[usize],
    all_sites: &[Site],
    speech: &HashMap<String, Vec<u8>>,
    mqtt: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<Vec<VoiceRun>> {
    let mut routes: HashMap<String, mpsc::UnboundedSender<(Instant, Event)>> = HashMap::new();
    let mut inboxes: HashMap<String, Inbox> = HashMap::new();
    for site in all_sites {
        let (tx, rx) = mpsc::unbounded_channel();
        routes.insert(site.id.clone(), tx);
        inboxes.insert(site.id.clone(), rx);
    }
    let speakers: HashMap<String, String> = all_sites.iter().map(|s| (s.speaker.clone(), s.id.clone())).collect();
    let watcher = watch(mqtt, routes, speakers).await?;

    let mut satellites = HashMap::new();
    for site in all_sites {
        let conn =
            connection::connect(mqtt, &format!("loadgen-satellite-{}", site.id), KEEP_ALIVE, CONNECT_TIMEOUT).await?;
        let (mut read, write) = conn.stream.into_split();
        // Nothing is subscribed; drain PINGRESPs.
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while tokio::io::AsyncReadExt::read(&mut read, &mut buf).await.is_ok_and(|n| n > 0) {}
        });
        satellites.insert(site.id.clone(), write);
    }

    // Warm-up: one request at the first site, not counted.
    {
        let site = &all_sites[0];
        let phrase = speech::phrases(&site.speaker).remove(0);
        let (w, rx) = (satellites.get_mut(&site.id).expect("site"), inboxes.get_mut(&site.id).expect("site"));
        let u = speak(w, rx, site, &phrase, &speech[&phrase.text], "warmup".into(), Duration::from_millis(500)).await?;
        eprintln!("voice: warm-up heard {:?}, first audio {:?} ms", u.transcript, u.first_audio_ms);
    }

    let mut runs = Vec::new();
    for &k in sessions {
        let sites = &all_sites[..k];
        let before = match http {
            Some(h) => Some(tokio::task::spawn_blocking(move || engine::scrape(h)).await??),
            None => None,
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (i, site) in sites.iter().enumerate() {
            let mut w = satellites.remove(&site.id).expect("site");
            let mut rx = inboxes.remove(&site.id).expect("site");
            let site = site.clone();
            let phrases = speech::phrases(&site.speaker);
            let audio: Vec<Vec<u8>> = phrases.iter().map(|p| speech[&p.text].clone()).collect();
            let (n, interval, pid) = (opts.utterances, opts.interval, std::process::id());
            tasks.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for u in 0..n {
                    let j = (i + u) % phrases.len();
                    let session = format!("lg-{pid}-k{k}-{}-{u}", site.id);
                    results.push(speak(&mut w, &mut rx, &site, &phrases[j], &audio[j], session, interval).await?);
                }
                anyhow::Ok((site.id, w, rx, results))
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            let (id, w, rx, r) = t.await??;
            satellites.insert(id.clone(), w);
            inboxes.insert(id, rx);
            results.extend(r);
        }
        let wall_s = started.elapsed().as_secs_f64();
        let after = match http {
            Some(h) => Some(tokio::task::spawn_blocking(move || engine::scrape(h)).await??),
            None => None,
        };
        let mut run = summarise(k, sites, results, wall_s);
        if let (Some(b), Some(a)) = (before, after) {
            let delta = |name: &str| {
                let (b, a) = (engine::sums_and_counts(&b, name), engine::sums_and_counts(&a, name));
                a.into_iter()
                    .filter_map(|(stage, (sum, count))| {
                        let (bs, bc) = b.get(&stage).copied().unwrap_or_default();
                        (count > bc).then(|| (stage, (sum - bs) / (count - bc) * 1_000.0))
                    })
                    .collect::<BTreeMap<_, _>>()
            };
            run.stage_mean_ms = delta("alicia_stage_process_seconds");
            run.engine_end_to_end_mean_ms = delta("alicia_voice_end_to_end_seconds").into_values().next();
        }
        eprintln!("voice: K={k} done in {wall_s:.1} s");
        runs.push(run);
    }
    watcher.abort();
    for (_, mut w) in satellites {
        let mut out = BytesMut::new();
        wire::encode_disconnect(&mut out);
        let _ = w.write_all(&out).await;
    }
    Ok(runs)
}

fn summarise(k: usize, sites: &[Site], results: Vec<Utterance>, wall_s: f64) -> VoiceRun {
    let mut h = new_histogram();
    for u in &results {
        if let Some(v) = u.first_audio_ms {
            h.saturating_record(((v * 1_000.0).round() as u64).max(1));
        }
    }
    let errors: usize = results.iter().map(|u| u.word_errors).sum();
    let words: usize = results.iter().map(|u| u.reference_words).sum();
    let ok = results.iter().filter(|u| u.intent_ok).count();
    VoiceRun {
        sessions: k,
        sites: sites.iter().map(|s| s.id.clone()).collect(),
        utterances: results.len(),
        replies: results.iter().filter(|u| u.first_audio_ms.is_some()).count(),
        latency: Latency::of(&h),
        after_last_frame_p50_ms: {
            let mut v: Vec<f64> = results.iter().filter_map(|u| u.after_last_frame_ms).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len().saturating_sub(1) / 2).copied()
        },
        word_error_rate: if words == 0 { 0.0 } else { errors as f64 / words as f64 },
        intent_accuracy: if results.is_empty() { 0.0 } else { ok as f64 / results.len() as f64 },
        stage_mean_ms: BTreeMap::new(),
        engine_end_to_end_mean_ms: None,
        wall_s,
        results,
    }
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

/// One request: stream it in real time, then collect what the engine did until the
/// reply ended, and for `interval` after.
async fn speak(
    w: &mut OwnedWriteHalf,
    rx: &mut Inbox,
    site: &Site,
    phrase: &Phrase,
    pcm: &[u8],
    session: String,
    interval: Duration,
) -> Result<Utterance> {
    while rx.try_recv().is_ok() {}
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
        speech_ms: (voiced * FRAME_BYTES) as f64 / speech::BYTES_PER_SECOND as f64 * 1_000.0,
        transcript: None,
        word_errors: 0,
        reference_words: 0,
        expected_command: expected,
        commands: Vec::new(),
        first_audio_ms: None,
        after_last_frame_ms: None,
        reply_ended: false,
        intent_ok: false,
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
            Event::Command { session: s, device, action, value } if s == session => {
                u.commands.push(CommandSeen { device, action, value })
            }
            Event::Audio { empty: false } if u.first_audio_ms.is_none() && grace.is_none() => {
                u.first_audio_ms = Some(at.saturating_duration_since(speech_end).as_secs_f64() * 1_000.0);
                u.after_last_frame_ms = Some(signed_ms(at, end));
            }
            Event::Audio { empty: true } if u.first_audio_ms.is_some() && grace.is_none() => {
                u.reply_ended = true;
                grace = Some(tokio::time::Instant::now() + interval);
            }
            Event::Error { session: s, text } if s.as_deref().is_none_or(|s| s == session) => {
                u.errors.push(text);
                // An error may or may not be spoken; do not wait the full minute for it.
                deadline = deadline.min(tokio::time::Instant::now() + Duration::from_secs(5));
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

/// The watcher: one connection for every site's results, routed to the site's inbox.
async fn watch(
    mqtt: SocketAddr,
    routes: HashMap<String, mpsc::UnboundedSender<(Instant, Event)>>,
    speakers: HashMap<String, String>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut conn = connection::connect(
        mqtt,
        &format!("loadgen-voice-watcher-{}", std::process::id()),
        KEEP_ALIVE,
        CONNECT_TIMEOUT,
    )
    .await?;
    for filter in
        ["alicia/voice/stt/response", "alicia/voice/+/error", "alicia/devices/+/command", "alicia/devices/+/audio"]
    {
        connection::subscribe(&mut conn, filter, 0, CONNECT_TIMEOUT).await?;
    }
    Ok(tokio::spawn(async move {
        let Conn { stream, mut rbuf } = conn;
        let (mut read, mut write) = stream.into_split();
        let pinger = tokio::spawn(async move {
            let mut out = BytesMut::new();
            loop {
                tokio::time::sleep(Duration::from_secs(u64::from(KEEP_ALIVE) / 2)).await;
                out.clear();
                wire::encode_pingreq(&mut out);
                if write.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
        loop {
            loop {
                let (event, site, used) = match wire::decode(&rbuf) {
                    Ok(Some((Packet::Publish(p), used))) => {
                        let topic = String::from_utf8_lossy(p.topic).into_owned();
                        let (event, site) = classify(&topic, p.payload, &speakers);
                        (event, site, used)
                    }
                    Ok(Some((_, used))) => (None, None, used),
                    Ok(None) => break,
                    Err(_) => {
                        pinger.abort();
                        return;
                    }
                };
                let at = Instant::now();
                bytes::Buf::advance(&mut rbuf, used);
                if let (Some(event), Some(tx)) = (event, site.and_then(|s| routes.get(&s))) {
                    let _ = tx.send((at, event));
                }
            }
            if !connection::fill(&mut read, &mut rbuf).await.is_ok_and(|n| n > 0) {
                pinger.abort();
                return;
            }
        }
    }))
}

fn classify(topic: &str, payload: &[u8], speakers: &HashMap<String, String>) -> (Option<Event>, Option<String>) {
    let levels: Vec<&str> = topic.split('/').collect();
    if let ["alicia", "devices", id, "audio"] = levels[..] {
        return (Some(Event::Audio { empty: payload.is_empty() }), speakers.get(id).cloned());
    }
    let Ok(e) = Envelope::decode(payload) else { return (None, None) };
    let data = &e.payload.data;
    let str_of = |v: &Value| v.as_str().map(str::to_string);
    match levels[..] {
        ["alicia", "voice", "stt", "response"] => (
            Some(Event::Transcript {
                session: str_of(&data["session_id"]).unwrap_or_default(),
                text: str_of(&data["text"]).unwrap_or_default(),
            }),
            str_of(&data["site_id"]),
        ),
        ["alicia", "devices", _, "command"] => {
            let meta = &e.payload.metadata;
            (
                Some(Event::Command {
                    session: meta.get("session_id").and_then(str_of).unwrap_or_default(),
                    device: str_of(&data["device_id"]).unwrap_or_default(),
                    action: str_of(&data["action"]).unwrap_or_default(),
                    value: data["value"].as_i64(),
                }),
                meta.get("site_id").and_then(str_of),
            )
        }
        ["alicia", "voice", _, "error"] => (
            Some(Event::Error {
                session: str_of(&data["session_id"]),
                text: format!(
                    "{}: {}",
                    data["error_type"].as_str().unwrap_or("error"),
                    data["message"].as_str().unwrap_or_default()
                ),
            }),
            str_of(&data["site_id"]),
        ),
        _ => (None, None),
    }
}

/// The `alicia` binary for `voice`: explicit, else next to this executable.
pub fn default_alicia_bin(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("alicia")))
            .unwrap_or_else(|| Path::new("alicia").into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sites_and_speakers_from_the_home() {
        let home = "[rooms.kitchen]\nname = \"kitchen\"\n[sites.kitchen]\nroom = \"kitchen\"\nspeaker = \"kitchen_speaker\" # x\n\
                    [sites.hallway]\nspeaker = \"hallway_speaker\"\n";
        let sites = parse_sites(home);
        assert_eq!(sites.len(), 2);
        assert_eq!((sites[1].id.as_str(), sites[1].speaker.as_str()), ("hallway", "hallway_speaker"));
    }
}
