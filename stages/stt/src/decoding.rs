//! How one utterance is decoded, and when a decoding is not to be trusted: the
//! reference decoder's safeguards (OpenAI's `transcribe`, faster-whisper), owned here
//! because whisper.cpp's own are blind on short commands.
//!
//! whisper.cpp has a temperature fallback, but it ends a decoding that reaches the
//! token limit as *completed*, and its repetition check (entropy of the last tokens)
//! starts only past 32 tokens: "six" decoded as "6, 6, 6, 6, ..." up to the limit is
//! accepted as it is. So each temperature is one whisper.cpp pass, and this module
//! judges the result the reference way: the text's zlib compression ratio (a loop
//! compresses well), its average log-probability, whether it ran into the token
//! budget, and whether a phrase repeats back to back.
//!
//! Speed comes from the encoder window: sized to the utterance it is 3-10× faster than
//! Whisper's fixed 30 s, but stock weights then loop more often (whisper.cpp #1951).
//! So the passes climb a ladder, each tried only when the one before was doubted:
//! greedy on the tight window (most requests end here), greedy on a wider one, the
//! reference decoding (beam search on the full 30 s window), then the reference's
//! temperature fallback on the full window. A floor on the window
//! ([`DecodeOptions::min_window`]) buys accuracy back where time allows: the live
//! pipeline keeps the tight window, whole recordings get a 20 s one.

use std::io::Write;

use crate::whisper::SAMPLE_RATE;

/// Encoder positions of Whisper's full 30 s window.
pub const FULL_AUDIO_CTX: usize = 1500;
/// Encoder positions per input sample: 1500 positions cover 30 s.
const SAMPLES_PER_POSITION: usize = 30 * SAMPLE_RATE as usize / FULL_AUDIO_CTX;
/// Extra positions past the audio on the first, tight pass (1.28 s): a window that
/// ends on the last word makes the decoder cut it or start the utterance over.
const TIGHT_MARGIN: usize = 64;
/// The second pass's margin (5.1 s): measured on recorded speech, it ends most loops
/// the tight window starts, at about twice its cost.
const WIDE_MARGIN: usize = 256;
/// The smallest window (3.2 s): one-word answers ("yes", "lights off") lose their
/// last sound in less.
const MIN_AUDIO_CTX: usize = 160;
/// The pipeline's floor on the window: [`MIN_AUDIO_CTX`], the fastest.
pub const LIVE_MIN_WINDOW: std::time::Duration =
    std::time::Duration::from_millis((MIN_AUDIO_CTX * SAMPLES_PER_POSITION * 1_000 / SAMPLE_RATE as usize) as u64);
/// The floor for whole recordings (Wyoming, the bus's STT requests, `alicia ask`):
/// on recorded speech (96 clips, 668 words) greedy decoding made 36 word errors on
/// the tight window, 31 with a 10 s floor and 29 with this one, against 30 for the
/// reference decoder on the full 30 s window (faster-whisper, same weights), in about
/// 90 % of its time; the tight window takes a quarter of it.
pub const RECORDING_MIN_WINDOW: std::time::Duration = std::time::Duration::from_millis(20_480);
/// Window sizes are multiples of this, so utterances of similar length share them.
const AUDIO_CTX_STEP: usize = 32;

/// How a pass picks its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beams {
    /// The most likely token at temperature 0; at a higher one, the most likely of
    /// `best_of` sampled sequences.
    Greedy {
        best_of: usize,
    },
    Search {
        beam_size: usize,
    },
}

/// One pass over the utterance: its encoder window, temperature and search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pass {
    pub audio_ctx: usize,
    pub temperature: f32,
    pub beams: Beams,
}

/// Decoding settings; the defaults are the reference decoder's.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeOptions {
    /// Beams at temperature 0 (1: greedy). The reference decoder uses 5.
    pub beam_size: usize,
    /// Candidates sampled at each temperature above 0; the most likely is kept.
    pub best_of: usize,
    /// Temperature added at each fallback, from 0 up to 1.0; 0 turns fallback off.
    pub temperature_step: f32,
    /// A text whose zlib compression ratio is above this is a loop.
    pub compression_ratio_threshold: f32,
    /// A text whose mean token log-probability is below this is a guess.
    pub logprob_threshold: f32,
    /// Audio whose no-speech probability is above this, decoded as a guess, is
    /// silence: the transcript is empty.
    pub no_speech_threshold: f32,
    /// Words Whisper is told came before the utterance, to bias it towards them (the
    /// home's rooms and devices). Kept short: a long prompt costs decoder time and
    /// makes small models loop.
    pub initial_prompt: Option<String>,
    /// The fallback passes of one utterance end by this much time after it started
    /// (one still running then is stopped): the least doubtful pass so far is given.
    pub fallback_budget: std::time::Duration,
    /// The shortest encoder window, however short the audio (3.2 s at least, 30 s at
    /// most): a longer one costs time and gains accuracy (see
    /// [`RECORDING_MIN_WINDOW`]).
    pub min_window: std::time::Duration,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            beam_size: 5,
            best_of: 5,
            temperature_step: 0.2,
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            initial_prompt: None,
            fallback_budget: std::time::Duration::from_millis(3000),
            min_window: LIVE_MIN_WINDOW,
        }
    }
}

impl DecodeOptions {
    /// The passes to try on `samples` of audio, in order, each only if the one before
    /// was doubted: see the module docs.
    pub fn passes(&self, samples: usize) -> Vec<Pass> {
        let greedy = Beams::Greedy { best_of: 1 };
        let reference = if self.beam_size > 1 { Beams::Search { beam_size: self.beam_size } } else { greedy };
        let floor = self.min_audio_ctx();
        let mut passes = vec![
            Pass { audio_ctx: audio_ctx_for(samples, TIGHT_MARGIN).max(floor), temperature: 0.0, beams: greedy },
            Pass { audio_ctx: audio_ctx_for(samples, WIDE_MARGIN).max(floor), temperature: 0.0, beams: greedy },
            Pass { audio_ctx: FULL_AUDIO_CTX, temperature: 0.0, beams: reference },
        ];
        passes.dedup_by(|later, earlier| later.audio_ctx == earlier.audio_ctx && later.beams == earlier.beams);
        let sampled = Beams::Greedy { best_of: self.best_of.max(1) };
        passes.extend(self.temperatures().into_iter().skip(1).map(|temperature| Pass {
            audio_ctx: FULL_AUDIO_CTX,
            temperature,
            beams: sampled,
        }));
        passes
    }

    /// [`min_window`](Self::min_window) in encoder positions, a whole step, within
    /// Whisper's bounds.
    fn min_audio_ctx(&self) -> usize {
        let samples = (self.min_window.as_millis() as usize).saturating_mul(SAMPLE_RATE as usize) / 1_000;
        samples.div_ceil(SAMPLES_PER_POSITION).next_multiple_of(AUDIO_CTX_STEP).clamp(MIN_AUDIO_CTX, FULL_AUDIO_CTX)
    }

    /// The temperatures to try, in order: 0, then each step up to 1.0.
    pub fn temperatures(&self) -> Vec<f32> {
        if self.temperature_step <= 0.0 {
            return vec![0.0];
        }
        let steps = (1.0 / self.temperature_step + 1e-3).floor() as usize;
        (0..=steps).map(|i| (i as f32 * self.temperature_step).min(1.0)).collect()
    }
}

/// One pass of the decoder over the utterance, as judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// Mean log-probability of the text tokens (the reference divides by tokens + 1).
    pub avg_logprob: f32,
    /// Mean probability of the text tokens, 0..=1.
    pub confidence: f32,
    pub no_speech_prob: f32,
    /// Text tokens decoded.
    pub tokens: usize,
    /// The pass stopped at the token budget instead of at the end of the text.
    pub hit_token_limit: bool,
    pub temperature: f32,
}

/// Why a decoding was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doubt {
    /// Compresses too well, or a phrase repeats back to back.
    Repetitive,
    /// Ran into the token budget: the decoder did not find the end.
    TokenLimit,
    /// Its tokens were improbable.
    Unlikely,
}

impl Decoded {
    /// The reference decoder's verdict on this pass: `None` if it can be kept.
    pub fn doubt(&self, options: &DecodeOptions) -> Option<Doubt> {
        if self.hit_token_limit {
            return Some(Doubt::TokenLimit);
        }
        if compression_ratio(&self.text) > options.compression_ratio_threshold || repeats_back_to_back(&self.text) {
            return Some(Doubt::Repetitive);
        }
        if self.avg_logprob < options.logprob_threshold {
            return Some(Doubt::Unlikely);
        }
        None
    }

    /// Silence, by the reference rule: the model thinks there is no speech and the
    /// words it found anyway are a guess.
    pub fn is_silence(&self, options: &DecodeOptions) -> bool {
        self.no_speech_prob > options.no_speech_threshold && self.avg_logprob < options.logprob_threshold
    }
}

/// Of passes that were all doubted, the one to give: a pass that ended by itself over
/// one that ran into the budget, then the fewest repeats, then the most likely.
pub fn least_doubtful(passes: Vec<Decoded>, options: &DecodeOptions) -> Option<Decoded> {
    let rank = |d: &Decoded| match d.doubt(options) {
        None => 0,
        Some(Doubt::Unlikely) => 1,
        Some(Doubt::Repetitive) => 2,
        Some(Doubt::TokenLimit) => 3,
    };
    passes.into_iter().min_by(|a, b| rank(a).cmp(&rank(b)).then(b.avg_logprob.total_cmp(&a.avg_logprob)))
}

/// The encoder window for `samples` of audio: the positions the audio covers plus
/// `margin`, rounded up, at most Whisper's full 30 s.
fn audio_ctx_for(samples: usize, margin: usize) -> usize {
    let positions = samples.div_ceil(SAMPLES_PER_POSITION) + margin;
    positions.next_multiple_of(AUDIO_CTX_STEP).clamp(MIN_AUDIO_CTX, FULL_AUDIO_CTX)
}

/// `text`'s length over its zlib-compressed length, as the reference decoder computes
/// it: above 2.4 the text is mostly repeats.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = encoder.write_all(text.as_bytes()).and_then(|()| encoder.finish()).map_or(0, |v| v.len());
    text.len() as f32 / compressed.max(1) as f32
}

/// Whether some phrase comes back to back where speech does not repeat it: a word
/// three times ("6, 6, 6"; twice is speech: "five five", "very very"), or a phrase of
/// two to eight words twice ("light off in the kitchen. light off in the kitchen.").
/// Too short for the compression ratio to notice, and never how a request is said.
pub fn repeats_back_to_back(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    (1..=8).any(|n| {
        let times = if n == 1 { 3 } else { 2 };
        (0..words.len()).any(|start| {
            start + times * n <= words.len()
                && (1..times).all(|k| words[start..start + n] == words[start + k * n..start + (k + 1) * n])
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(text: &str, avg_logprob: f32, hit_token_limit: bool) -> Decoded {
        Decoded {
            text: text.into(),
            avg_logprob,
            confidence: avg_logprob.exp(),
            no_speech_prob: 0.01,
            tokens: text.split_whitespace().count(),
            hit_token_limit,
            temperature: 0.0,
        }
    }

    #[test]
    fn the_window_follows_the_utterance() {
        assert_eq!(SAMPLES_PER_POSITION, 320);
        // 1.05 s (the padded minimum) → 53 positions + margin → 117: the floor, 160.
        assert_eq!(audio_ctx_for(16_800, TIGHT_MARGIN), MIN_AUDIO_CTX);
        // 2 s → 100 + 64 → 192; 5 s → 250 + 64 → 320; 30 s → all of Whisper's 1500.
        assert_eq!(audio_ctx_for(32_000, TIGHT_MARGIN), 192);
        assert_eq!(audio_ctx_for(80_000, TIGHT_MARGIN), 320);
        assert_eq!(audio_ctx_for(480_000, TIGHT_MARGIN), FULL_AUDIO_CTX);
        assert_eq!(audio_ctx_for(32_000, WIDE_MARGIN), 384);
    }

    #[test]
    fn the_passes_climb_from_the_tight_window_to_the_reference_decoding() {
        let passes = DecodeOptions::default().passes(32_000);
        let plan: Vec<(usize, f32, Beams)> = passes.iter().map(|p| (p.audio_ctx, p.temperature, p.beams)).collect();
        let greedy = Beams::Greedy { best_of: 1 };
        assert_eq!(plan[..3], [(192, 0.0, greedy), (384, 0.0, greedy), (1500, 0.0, Beams::Search { beam_size: 5 })]);
        assert_eq!(plan[3..].iter().map(|p| p.1).collect::<Vec<_>>(), [0.2, 0.4, 0.6, 0.8, 1.0]);
        assert!(plan[3..].iter().all(|p| p.0 == 1500 && p.2 == Beams::Greedy { best_of: 5 }));
        // A 25 s utterance's wide window is already the full one: no pass twice.
        let long = DecodeOptions { beam_size: 1, ..DecodeOptions::default() }.passes(400_000);
        assert_eq!(long.iter().filter(|p| p.temperature == 0.0).count(), 2, "{long:?}");
    }

    #[test]
    fn a_window_floor_widens_the_quick_passes_of_short_audio_only() {
        let recordings = DecodeOptions { min_window: RECORDING_MIN_WINDOW, ..DecodeOptions::default() };
        assert_eq!(recordings.min_audio_ctx(), 1024);
        // 2 s: both quick passes would be 1024 positions, so they are one.
        let plan: Vec<usize> = recordings.passes(32_000).iter().map(|p| p.audio_ctx).collect();
        assert_eq!(plan[..2], [1024, 1500]);
        // 25 s of audio needs more than the floor.
        assert_eq!(recordings.passes(400_000)[0].audio_ctx, 1344);
        assert_eq!(DecodeOptions::default().min_audio_ctx(), MIN_AUDIO_CTX);
        assert_eq!(LIVE_MIN_WINDOW, std::time::Duration::from_millis(3_200));
        let huge = DecodeOptions { min_window: std::time::Duration::from_secs(600), ..DecodeOptions::default() };
        assert_eq!(huge.min_audio_ctx(), FULL_AUDIO_CTX);
    }

    #[test]
    fn the_reference_temperatures() {
        assert_eq!(DecodeOptions::default().temperatures(), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let off = DecodeOptions { temperature_step: 0.0, ..DecodeOptions::default() };
        assert_eq!(off.temperatures(), [0.0]);
    }

    #[test]
    fn loops_are_doubted_and_speech_is_not() {
        let options = DecodeOptions::default();
        let six = "6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6";
        assert!(compression_ratio(six) > 2.4, "{}", compression_ratio(six));
        assert_eq!(pass(six, -0.2, false).doubt(&options), Some(Doubt::Repetitive));
        let reading = "Call for reading. Call for reading. Call for reading.";
        assert_eq!(pass(reading, -0.3, false).doubt(&options), Some(Doubt::Repetitive));
        assert_eq!(pass("turn off the kitchen lights", -0.2, true).doubt(&options), Some(Doubt::TokenLimit));
        assert_eq!(pass("turn of the kitten lice", -1.4, false).doubt(&options), Some(Doubt::Unlikely));
        let twice = "Light off in the kitchen. Light off in the kitchen.";
        assert_eq!(pass(twice, -0.3, false).doubt(&options), Some(Doubt::Repetitive));
        for speech in ["Five, five.", "he was not an ill disposed young man", "very very good", "six", "bye bye"] {
            assert_eq!(pass(speech, -0.3, false).doubt(&options), None, "{speech}");
        }
    }

    #[test]
    fn silence_needs_both_signals() {
        let options = DecodeOptions::default();
        let mut quiet = pass("you", -1.5, false);
        quiet.no_speech_prob = 0.9;
        assert!(quiet.is_silence(&options));
        quiet.avg_logprob = -0.2;
        assert!(!quiet.is_silence(&options), "confident words are kept whatever no_speech says");
    }

    #[test]
    fn the_least_doubtful_pass_is_given_when_all_are_doubted() {
        let options = DecodeOptions::default();
        let passes = vec![
            pass("six six six six six", -0.1, true),
            pass("six, six, six", -0.2, false),
            pass("sex", -1.3, false),
            pass("sicks", -1.1, false),
        ];
        assert_eq!(least_doubtful(passes, &options).unwrap().text, "sicks");
    }
}
