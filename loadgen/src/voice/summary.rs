//! What a K run adds up to, and the tables and markdown report of all runs.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::home::Site;
use super::satellite::Utterance;
use super::speech;
use super::watcher::EngineTimings;
use crate::report::{self, ms, Provenance};
use crate::stats::new_histogram;

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

/// Medians over the requests whose reply carried the engine's per-stage timings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineMedians {
    /// Requests with timings.
    pub timed: usize,
    pub vad_p50_ms: f64,
    pub stt_p50_ms: f64,
    pub intent_p50_ms: f64,
    pub tts_p50_ms: f64,
    pub publish_p50_ms: f64,
    pub end_to_end_p50_ms: f64,
    /// Share of them whose transcript was prepared during the VAD hangover.
    pub speculative_share: f64,
}

impl EngineMedians {
    pub fn of(timings: &[EngineTimings]) -> Option<Self> {
        let p50 = |f: fn(&EngineTimings) -> f64| median(timings.iter().map(f).collect()).unwrap_or(f64::NAN);
        (!timings.is_empty()).then(|| EngineMedians {
            timed: timings.len(),
            vad_p50_ms: p50(|t| t.vad),
            stt_p50_ms: p50(|t| t.stt),
            intent_p50_ms: p50(|t| t.intent),
            tts_p50_ms: p50(|t| t.tts),
            publish_p50_ms: p50(|t| t.publish),
            end_to_end_p50_ms: p50(|t| t.end_to_end),
            speculative_share: timings.iter().filter(|t| t.speculative).count() as f64 / timings.len() as f64,
        })
    }
}

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| !x.is_nan());
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
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
    /// The same, for the requests understood and for the rest ([`understood`]).
    pub understood: Latency,
    pub misheard: Latency,
    pub misheard_requests: usize,
    /// Median of last frame sent → first reply audio (signed).
    pub after_last_frame_p50_ms: Option<f64>,
    pub word_error_rate: f64,
    pub intent_accuracy: f64,
    /// The engine's per-stage timings, per request, summarised (none from an engine
    /// that does not send them).
    pub engine: Option<EngineMedians>,
    pub wall_s: f64,
    pub results: Vec<Utterance>,
}

/// End of speech → first reply audio of `results`, as a histogram at µs precision.
pub(super) fn latencies<'a>(results: impl Iterator<Item = &'a Utterance>) -> Latency {
    let mut h = new_histogram();
    for v in results.filter_map(|u| u.first_audio_ms) {
        h.saturating_record(((v * 1_000.0).round() as u64).max(1));
    }
    Latency::of(&h)
}

/// Whether the engine understood the request: its command came (or none was due), and
/// the matcher knew the words. A misheard one gets an apology or a question back, which
/// must come as fast (issue 10).
pub fn understood(u: &Utterance) -> bool {
    u.intent_ok && u.phrase != speech::NOT_UNDERSTOOD
}

pub fn summarise(k: usize, sites: &[Site], results: Vec<Utterance>, wall_s: f64) -> VoiceRun {
    let errors: usize = results.iter().map(|u| u.word_errors).sum();
    let words: usize = results.iter().map(|u| u.reference_words).sum();
    let ok = results.iter().filter(|u| u.intent_ok).count();
    let timings: Vec<EngineTimings> = results.iter().filter_map(|u| u.engine_ms).collect();
    VoiceRun {
        sessions: k,
        sites: sites.iter().map(|s| s.id.clone()).collect(),
        utterances: results.len(),
        replies: results.iter().filter(|u| u.first_audio_ms.is_some()).count(),
        latency: latencies(results.iter()),
        understood: latencies(results.iter().filter(|u| understood(u))),
        misheard: latencies(results.iter().filter(|u| !understood(u))),
        misheard_requests: results.iter().filter(|u| !understood(u)).count(),
        after_last_frame_p50_ms: median(results.iter().filter_map(|u| u.after_last_frame_ms).collect()),
        word_error_rate: if words == 0 { 0.0 } else { errors as f64 / words as f64 },
        intent_accuracy: if results.is_empty() { 0.0 } else { ok as f64 / results.len() as f64 },
        engine: EngineMedians::of(&timings),
        wall_s,
        results,
    }
}

#[derive(Debug, Serialize)]
pub struct VoiceReport {
    pub scenario: &'static str,
    pub method: &'static str,
    pub provenance: Provenance,
    pub engine: String,
    pub seed: u64,
    pub interval_ms: f64,
    pub notes: Vec<String>,
    pub max_p95_ms: Option<f64>,
    /// The K runs the p95 gate applies to.
    pub gated_sessions: Vec<usize>,
    pub gate_failures: Vec<String>,
    /// The warm-up: the engine's first request after it started (not in the runs).
    pub first_request: FirstRequest,
    pub runs: Vec<VoiceRun>,
    /// Recorded human speech through `alicia/voice/stt/request` (`--corpus`).
    pub recorded: Vec<super::recorded::Heard>,
    /// The same clips streamed through the live pipeline.
    pub recorded_live: Vec<Utterance>,
}

/// The first request an engine answers after start, when a cold model would show.
#[derive(Debug, Serialize)]
pub struct FirstRequest {
    pub heard: Option<String>,
    pub first_audio_ms: Option<f64>,
}

const HEADERS: [&str; 17] = [
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
    "vad p50",
    "stt p50",
    "intent p50",
    "tts p50",
    "publish p50",
    "engine e2e p50",
    "speculative",
];

fn row(r: &VoiceRun) -> Vec<String> {
    let engine = |f: fn(&EngineMedians) -> f64| r.engine.as_ref().map(|e| ms(f(e))).unwrap_or_else(|| "-".into());
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
        engine(|e| e.vad_p50_ms),
        engine(|e| e.stt_p50_ms),
        engine(|e| e.intent_p50_ms),
        engine(|e| e.tts_p50_ms),
        engine(|e| e.publish_p50_ms),
        engine(|e| e.end_to_end_p50_ms),
        r.engine.as_ref().map(|e| format!("{:.0}%", e.speculative_share * 100.0)).unwrap_or_else(|| "-".into()),
    ]
}

pub fn text(runs: &[VoiceRun]) -> String {
    report::text_table(&HEADERS, &runs.iter().map(row).collect::<Vec<_>>())
}

fn request_row(run: &VoiceRun, u: &Utterance) -> Vec<String> {
    let stages = u.engine_ms.map(|t| [t.vad, t.stt, t.intent, t.tts, t.publish].map(ms).join(" / "));
    vec![
        run.sessions.to_string(),
        u.site.clone(),
        format!("{:.1}", u.start_ms / 1_000.0),
        u.phrase.clone(),
        u.transcript.clone().unwrap_or_else(|| "-".into()),
        u.first_audio_ms.map(ms).unwrap_or_else(|| "-".into()),
        stages.unwrap_or_else(|| "-".into()),
        u.engine_ms.map(|t| if t.speculative { "yes" } else { "no" }.to_string()).unwrap_or_else(|| "-".into()),
        if u.intent_ok { "ok".into() } else { "MISSED".into() },
    ]
}

pub fn markdown(r: &VoiceReport) -> String {
    let mut out = String::from("# Voice: end of speech → first reply audio\n\n");
    out += &r.provenance.markdown();
    let _ = writeln!(out, "- engine: `{}`", r.engine);
    let _ = writeln!(out, "- pacing: think time uniform in [0.5, 1.5] × {:.1} s, seed {}", r.interval_ms / 1e3, r.seed);
    let _ = writeln!(
        out,
        "- first request after start (the warm-up, not counted below): first audio {} ms, heard {:?}\n",
        r.first_request.first_audio_ms.map(ms).unwrap_or_else(|| "-".into()),
        r.first_request.heard.as_deref().unwrap_or("-")
    );
    out += "## Results\n\n";
    out += &report::markdown_table(&HEADERS, &r.runs.iter().map(row).collect::<Vec<_>>(), true);
    out += "\nLatency columns: end of speech (the last 20 ms frame above -50 dBFS) → first reply audio chunk, at the \
            satellite side; this includes the VAD's hangover (voice.hangover_ms, 250 by default, for a finished request). \"after last frame\" starts at the last frame sent \
            (negative: the reply began while the quiet tail was still streaming). \
            Stage columns (ms): per-request medians of the engine's own timings of each reply, in engine time: vad = \
            last speech frame in → end-of-speech decision, stt → final transcript, intent → reply text, tts → first \
            audio chunk, publish → chunk published; engine e2e = their sum; speculative = share of replies whose \
            transcript was prepared during the hangover. \"-\": the engine sent no timings.\n\n## Requests\n\n";
    let rows: Vec<Vec<String>> =
        r.runs.iter().flat_map(|run| run.results.iter().map(move |u| request_row(run, u))).collect();
    let headers = [
        "K",
        "site",
        "start s",
        "said",
        "heard",
        "first audio ms",
        "vad / stt / intent / tts / publish ms",
        "spec",
        "intent",
    ];
    out += &report::markdown_table(&headers, &rows, false);
    out += "\n## Understood and misheard requests\n\nThe same latency, split: a request is misheard when the \
            matcher did not get what was meant (the phrasing it does not know, answered with an apology, or words \
            heard wrong: no command or the wrong one), and its answer must come as fast.\n\n";
    let split: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            let understood = run.utterances - run.misheard_requests;
            vec![
                run.sessions.to_string(),
                understood.to_string(),
                ms(run.understood.p50_ms),
                ms(run.understood.p95_ms),
                run.misheard_requests.to_string(),
                ms(run.misheard.p50_ms),
                ms(run.misheard.p95_ms),
            ]
        })
        .collect();
    let headers = ["K", "understood", "p50 ms", "p95 ms", "misheard", "p50 ms", "p95 ms"];
    out += &report::markdown_table(&headers, &split, true);
    out += "\n## Gate\n\n";
    let gated = r.gated_sessions.iter().map(|k| format!("K={k}")).collect::<Vec<_>>().join(", ");
    match r.max_p95_ms {
        None => out += "No gate set.\n",
        Some(max) if r.gate_failures.is_empty() => {
            let _ = writeln!(out, "--max-p95-ms {max} on {gated}: **passed**.");
        }
        Some(max) => {
            let _ = writeln!(out, "--max-p95-ms {max} on {gated}: **missed**:\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timings(vad: f64, speculative: bool) -> EngineTimings {
        EngineTimings { vad, stt: 100.0, intent: 1.0, tts: 50.0, publish: 0.5, end_to_end: vad + 151.5, speculative }
    }

    #[test]
    fn engine_medians_are_per_request_and_absent_without_timings() {
        assert_eq!(EngineMedians::of(&[]), None);
        let m = EngineMedians::of(&[timings(300.0, true), timings(310.0, false), timings(900.0, true)]).unwrap();
        assert_eq!((m.timed, m.vad_p50_ms, m.end_to_end_p50_ms), (3, 310.0, 461.5));
        assert!((m.speculative_share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
