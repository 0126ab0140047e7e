//! `voice`: K satellites speak synthesised requests to the engine's voice data plane in
//! real time and loadgen measures what a user waits for, from the end of speech to the
//! first reply audio on the site's speaker, and whether it was heard and understood.
//!
//! | module | concept |
//! |---|---|
//! | `home` | the home's sites; a larger home when K exceeds them |
//! | `pacing` | random start offsets and think times, seeded |
//! | `speech` | the phrases, espeak-ng synthesis, word error rate |
//! | `satellite` | one connection per site streaming requests; the K runs |
//! | `watcher` | one connection receiving the engine's results, routed per site |
//! | `summary` | per-run figures, tables and the markdown report |
//! | `engine` | `alicia serve` with the voice on |
//!
//! The engine runs one session per site, so each satellite has a site (and speaker) of its
//! own. The engine's /metrics is not read: its stage means are per stage *call* (per frame
//! for the VAD, per utterance for STT) over all sessions, which says little about one
//! request; the per-request timings of each reply announcement replace them.

mod engine;
mod home;
mod pacing;
pub mod recorded;
mod recorded_live;
mod satellite;
mod speech;
mod summary;
mod watcher;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::report::{self, ms, Provenance};
use crate::Verdict;

pub use home::{parse_sites, Site};
pub use satellite::{CommandSeen, Utterance};
pub use summary::{EngineMedians, Latency, VoiceRun};
pub use watcher::EngineTimings;

const KEEP_ALIVE: u16 = 60;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `--seed`'s default: any fixed value makes runs repeatable.
pub const DEFAULT_SEED: u64 = 1;

pub const METHOD: &str = "\
K satellites, each with a site and a speaker of its own (the engine runs one voice session per site; \
when K exceeds the home's sites and loadgen starts the engine, it runs `alicia serve --home` with a \
copy of the home plus one site and one new speaker per extra satellite, added to the rooms in turn), \
each on its own MQTT 3.1.1 connection, speak N requests, cycling through fifteen phrasings (fourteen of seven \
intents and one the matcher does not understand, answered with an apology) synthesised at run time (espeak-ng -v en-us -s 150 → sox → 16 kHz mono s16le) followed by \
400 ms of low-level noise (±8 LSB) so the VAD's hangover (250 ms by default) ends the utterance. \
A request is \
`alicia/voice/audio/{site}/start` (envelope, payload.data {session_id, rate 16000, width 2, \
channels 1}), 20 ms frames of 640 bytes paced in real time, then `stop`. Pacing: satellite i starts \
at a random offset uniform in [0, --interval) and, after each reply ends (the speaker's empty \
message), thinks a random time uniform in [0.5, 1.5] × --interval before speaking again (also after \
a request that got no reply); SplitMix64 seeded from --seed, K and i, so runs repeat with the same \
seed and satellites do not speak in lock-step. Events arriving while a satellite thinks still count \
for its request. Latency = arrival of the first non-empty message on \
`alicia/devices/{speaker}/audio` minus the time the last voiced frame was written (end of speech: \
the last 20 ms frame with RMS above 100, about -50 dBFS, which keeps a final plosive's quiet \
release; espeak's own trailing silence (digital zero) and the noise tail (-72 dBFS) come after it). The time since the last frame of the tail was written is reported too (median, \
signed): the VAD ends the utterance after 300 ms of quiet, so the reply often starts while the tail \
is still streaming and that figure is negative, which is why it is not the headline number. One \
watcher connection receiving everything, monotonic clock, hdrhistogram at µs precision. Transcript: \
`alicia/voice/stt/response` payload.data.text of the session; WER = word-level Levenshtein distance \
/ reference words, summed over requests, after lowercasing, dropping punctuation and spelling out \
numbers. Intent accuracy: the reply ended and exactly the expected `alicia/devices/{id}/command` \
arrived (action and value), or none for a request that needs no device. Engine stages: \
payload.data.timings_ms of the session's `alicia/voice/tts/response` reply announcement, in engine \
time (vad: last speech frame in → end-of-speech decision; stt: → final transcript; intent: → reply \
text; tts: → first audio chunk; publish: → chunk published; e2e: their sum; speculative: the \
transcript was prepared during the hangover), reported as medians over the requests that carry them \
(\"-\" for an engine that sends none). --max-p95-ms gates the smallest K (1 by default), or every K \
with --gate-all. One warm-up request (not counted) runs before the first measured run.";

/// What `voice` runs.
#[derive(Debug, Clone)]
pub struct VoiceOptions {
    /// A running engine; `None` starts one.
    pub broker: Option<SocketAddr>,
    pub alicia_bin: PathBuf,
    pub alicia_config: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub sessions: Vec<usize>,
    pub utterances: usize,
    /// Mean think time between a reply and the next request (and the range of start offsets).
    pub interval: Duration,
    pub seed: u64,
    pub timeout: Duration,
    pub startup_timeout: Duration,
    pub max_p95_ms: Option<f64>,
    /// Gate every K, not only the smallest.
    pub gate_all: bool,
    /// Recorded human speech (`make speech-corpus`) to transcribe after the runs.
    pub corpus: Option<PathBuf>,
    /// The reference decoder's transcripts of the corpus (`make speech-reference`).
    pub reference: Option<PathBuf>,
    pub out: PathBuf,
}

pub fn run(opts: &VoiceOptions, rt: &tokio::runtime::Runtime) -> Result<Verdict> {
    let Some(&k_max) = opts.sessions.iter().max() else { bail!("no --sessions to run") };
    if opts.sessions.contains(&0) {
        bail!("--sessions must be at least 1");
    }
    let config = opts.alicia_config.clone().or_else(crate::brokers::default_engine_config);
    let home_path = match (&opts.home, &config) {
        (Some(h), _) => h.clone(),
        (None, Some(c)) => crate::engine_config::repo_of(c).join("bus-config/home.toml"),
        (None, None) => PathBuf::from("bus-config/home.toml"),
    };
    let base = std::fs::read_to_string(&home_path).with_context(|| format!("read home {}", home_path.display()))?;
    let base_sites = parse_sites(&base).with_context(|| format!("home {}", home_path.display()))?;
    if base_sites.is_empty() {
        bail!("{} has no [sites.*] with a speaker", home_path.display());
    }
    let mut notes = Vec::new();
    // The home the engine runs with, and the directory holding it when generated.
    let (all_sites, engine_home, _home_dir) = if k_max <= base_sites.len() {
        (base_sites, home_path.canonicalize().with_context(|| format!("home {}", home_path.display()))?, None)
    } else {
        if let Some(addr) = opts.broker {
            bail!(
                "--sessions {k_max} needs {k_max} sites (one voice session per site) but {} has {}; the engine at \
                 {addr} is already running, so loadgen cannot add sites: start it with a home that has enough \
                 and pass that home as --home",
                home_path.display(),
                base_sites.len()
            );
        }
        let dir = tempfile::Builder::new().prefix("alicia-loadgen-home-").tempdir()?;
        let path = dir.path().join("home.toml");
        let text = home::with_sites(&base, k_max)?;
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
        let sites = parse_sites(&text)?;
        let added: Vec<&str> = sites[base_sites.len()..].iter().map(|s| s.id.as_str()).collect();
        notes.push(format!(
            "K up to {k_max} > the {} sites of {}: the engine ran with that home plus {} generated sites, each \
             with its own speaker: {}",
            base_sites.len(),
            home_path.display(),
            added.len(),
            added.join(", ")
        ));
        (sites, path, Some(dir))
    };

    // Speech first: a missing espeak-ng fails before an engine is started.
    let mut speech: HashMap<String, Vec<u8>> = HashMap::new();
    for p in speech::phrases(&all_sites[0].speaker) {
        if !speech.contains_key(&p.text) {
            speech.insert(p.text.clone(), speech::synthesise(&p.text)?);
        }
    }

    let (engine, mqtt, engine_desc) = match opts.broker {
        Some(addr) => (None, addr, format!("running engine at {addr}")),
        None => {
            let config = config.context("no engine config found (bus-config/alicia.toml); pass --alicia-config")?;
            let e = engine::start(&opts.alicia_bin, &config, &engine_home, opts.startup_timeout)?;
            let (desc, mqtt) = (e.command.clone(), e.mqtt);
            (Some(e), mqtt, desc)
        }
    };
    let clips = opts.corpus.as_deref().map(recorded::clips).transpose()?.unwrap_or_default();
    let reference = opts.reference.as_deref().map(recorded::reference).transpose()?.unwrap_or_default();
    if let Some(missing) = clips.iter().find(|(id, ..)| opts.reference.is_some() && !reference.contains_key(id)) {
        bail!("--reference has no transcript of clip {}: run `make speech-reference` again", missing.0);
    }
    eprintln!("voice: engine {engine_desc}");
    let outcome = rt.block_on(async {
        let measure = async {
            let measured = satellite::measure_all(opts, &opts.sessions, &all_sites, &speech, &clips, mqtt).await?;
            let heard = recorded::transcribe_all(mqtt, &clips, &reference).await?;
            anyhow::Ok((measured, heard))
        };
        tokio::time::timeout(opts.timeout, measure).await
    });
    let log_tail = engine.as_ref().map(crate::engine_process::EngineProcess::log_tail);
    if let Some(e) = engine {
        e.stop()?;
    }
    let (satellite::Measured { first, runs, recorded_live }, recorded) = match outcome {
        Ok(Ok(measured)) => measured,
        Ok(Err(e)) => return Err(e.context(log_tail.unwrap_or_default())),
        Err(_) => bail!("voice run exceeded --timeout {:?}", opts.timeout),
    };

    // The gate is one session; more sessions are reported, and gated on request.
    let gated_sessions: Vec<usize> = match (opts.max_p95_ms, opts.gate_all) {
        (None, _) => Vec::new(),
        (Some(_), true) => opts.sessions.clone(),
        (Some(_), false) => opts.sessions.iter().min().copied().into_iter().collect(),
    };
    let mut verdict = Verdict::default();
    for r in &runs {
        if r.replies == 0 {
            verdict.problems.push(format!("K={}: no reply audio for any of {} requests", r.sessions, r.utterances));
        }
        if let (Some(max), true) = (opts.max_p95_ms, gated_sessions.contains(&r.sessions)) {
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
    print!("{}", summary::text(&runs));
    let report = summary::VoiceReport {
        scenario: "voice",
        method: METHOD,
        provenance: Provenance::collect(),
        engine: engine_desc,
        seed: opts.seed,
        interval_ms: opts.interval.as_secs_f64() * 1_000.0,
        notes,
        max_p95_ms: opts.max_p95_ms,
        gated_sessions,
        gate_failures: verdict.gate_failures.clone(),
        first_request: summary::FirstRequest { heard: first.transcript, first_audio_ms: first.first_audio_ms },
        runs,
        recorded,
        recorded_live,
    };
    let mut markdown = summary::markdown(&report);
    if !report.recorded.is_empty() {
        markdown.push('\n');
        markdown.push_str(&recorded::markdown(&report.recorded));
    }
    if !report.recorded_live.is_empty() {
        markdown.push('\n');
        markdown.push_str(&recorded_live::markdown(&report.recorded_live));
    }
    let (json_path, md_path) = report::write(&opts.out, "voice", &report, &markdown)?;
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(verdict)
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
