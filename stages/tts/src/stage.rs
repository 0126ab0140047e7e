//! [`PiperStage`]: reply text in, 16 kHz audio frames out, sentence by sentence.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use alicia_pipeline::{SessionId, Stage, StageError, StageHints};
use alicia_speech::{split_sentences, AudioChunk, AudioFormat, Frame, Outputs, PauseSignal, Payload, Speech};
use bytes::{Bytes, BytesMut};

use crate::cache::SentenceCache;
use crate::config::PiperConfig;
use crate::error::TtsError;
use crate::voice::{ModelRuns, PiperVoice, OUTPUT_FORMAT};

/// The TTS stage. Blocking: a sentence takes ~100 ms of model time.
///
/// For each `Payload::Text` reply it pushes, per sentence and as soon as that sentence
/// is synthesised, `Payload::Audio` frames of [`PiperConfig::chunk`] each, then one
/// `Payload::EndOfStream`. Output frames keep the reply's session, site and ingress
/// (latency stays measurable); `seq` numbers the reply's frames from 0 so the speaker
/// can spot a gap. The end of stream is sent even when a sentence fails, so a speaker
/// never waits for a reply that will not come. An upstream `EndOfStream` is absorbed:
/// every reply already ends its own stream. Audio frames are stamped `synthesised` with
/// the moment the reply's first audio was ready.
///
/// A `Payload::Prepare` (the reply to a provisional transcript) synthesises the reply's
/// first sentence into the cache, when no other frame is waiting, and emits nothing, so
/// when the final reply comes its first audio is already there.
///
/// A text whose meta says `reply_continues` is one piece of a reply still arriving (a
/// chat answer streamed sentence by sentence): it is spoken at once, with no end of
/// stream; the session's next piece goes on numbering its frames, and the piece
/// without the flag (possibly empty) ends the reply.
pub struct PiperStage {
    voice: PiperVoice,
    cache: Option<SentenceCache>,
    /// Replies to get ready, oldest first, when no frame is waiting (see `idle`).
    prepares: VecDeque<(String, PauseSignal)>,
    /// Replies whose next piece is still to come, by session: the next frame's `seq`.
    open_replies: HashMap<SessionId, u64>,
    chunk: Duration,
    hints: StageHints,
    stats: TtsStats,
}

/// Counters since the stage was built, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TtsStats {
    /// Sentences served from the cache.
    pub cache_hits: u64,
    /// Sentences synthesised (and then cached).
    pub cache_misses: u64,
    /// Sentences skipped because they had nothing to pronounce.
    pub silent_sentences: u64,
    /// Replies whose first sentence was synthesised ahead, from a `Prepare`.
    pub prepared: u64,
}

impl std::fmt::Debug for PiperStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperStage")
            .field("voice", &self.voice)
            .field("cached", &self.cache.as_ref().map_or(0, SentenceCache::len))
            .field("chunk", &self.chunk)
            .field("stats", &self.stats)
            .finish()
    }
}

impl PiperStage {
    pub fn new(voice: PiperVoice, config: &PiperConfig) -> Self {
        Self {
            voice,
            cache: SentenceCache::new(config.cache_sentences, config.cache_bytes),
            prepares: VecDeque::new(),
            open_replies: HashMap::new(),
            // A zero chunk would make `AudioChunk::chunks` emit one frame per sample.
            chunk: config.chunk.max(Duration::from_millis(1)),
            hints: StageHints::blocking(config.input_capacity.max(1)),
            stats: TtsStats::default(),
        }
    }

    pub fn voice(&self) -> &PiperVoice {
        &self.voice
    }

    /// The format of every audio frame and of [`synthesize`](Self::synthesize).
    pub fn output_format(&self) -> AudioFormat {
        OUTPUT_FORMAT
    }

    /// A handle on the count of model runs (cache hits do not run the model).
    pub fn model_runs(&self) -> ModelRuns {
        self.voice.model_runs()
    }

    pub fn stats(&self) -> TtsStats {
        self.stats
    }

    /// The whole reply as one PCM buffer (16 kHz mono s16le), through the same
    /// sentence split and cache as the stage: for `alicia say` and tests.
    pub fn synthesize(&mut self, text: &str) -> Result<Bytes, TtsError> {
        let mut parts = Vec::new();
        for sentence in split_sentences(text) {
            if let Some(audio) = self.sentence_audio(sentence)? {
                parts.push(audio);
            }
        }
        match parts.len() {
            0 => Err(TtsError::NothingToSay),
            1 => Ok(parts.swap_remove(0)),
            _ => {
                let mut joined = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                parts.iter().for_each(|part| joined.extend_from_slice(part));
                Ok(joined.freeze())
            }
        }
    }

    /// Handles one frame, handing each output frame to `emit` the moment it exists.
    /// [`Stage::process`] passes `Outputs::push`; tests and the CLI pass their own
    /// closure to watch the order in which audio leaves.
    pub fn speak(
        &mut self,
        frame: Frame,
        mut emit: impl FnMut(Frame) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        let text = match &frame.payload {
            Payload::Text(text) => text.as_str(),
            Payload::Prepare { text, pause } => {
                self.prepares.push_back((text.clone(), pause.clone()));
                return Ok(());
            }
            Payload::EndOfStream => return Ok(()),
            other => {
                let kind = other.kind();
                return Err(StageError::frame("unexpected_payload", format!("tts takes text, got {kind}")));
            }
        };
        let open = self.open_replies.remove(&frame.meta.session_id);
        let mut seq = open.unwrap_or(0);
        let spoken = match self.speak_reply(&frame, text, &mut seq, &mut emit) {
            // A piece of a streamed reply may hold nothing to say (the empty last one).
            Err(err) if err.error_type() == "empty_text" && (open.is_some() || frame.meta.domain.reply_continues) => {
                Ok(())
            }
            other => other,
        };
        if matches!(&spoken, Err(err) if err.is_fatal()) {
            return spoken;
        }
        if frame.meta.domain.reply_continues && spoken.is_ok() {
            self.open_replies.insert(frame.meta.session_id.clone(), seq);
            return Ok(());
        }
        let mut end = frame.derive(Payload::EndOfStream);
        end.meta.seq = seq;
        emit(end)?;
        spoken
    }

    fn speak_reply(
        &mut self,
        frame: &Frame,
        text: &str,
        seq: &mut u64,
        emit: &mut impl FnMut(Frame) -> Result<(), StageError>,
    ) -> Result<(), StageError> {
        let started = Instant::now();
        let mut first_audio = None;
        for sentence in split_sentences(text) {
            let Some(audio) = self.sentence_audio(sentence)? else { continue };
            let ready = *first_audio.get_or_insert_with(Instant::now);
            for chunk in AudioChunk::new(audio, OUTPUT_FORMAT).chunks(self.chunk) {
                let mut out = frame.derive(Payload::Audio(chunk));
                out.meta.domain.stamp(|t| t.synthesised = Some(ready));
                out.meta.seq = *seq;
                *seq += 1;
                emit(out)?;
            }
        }
        let Some(first_audio) = first_audio else {
            return Err(TtsError::NothingToSay.into());
        };
        tracing::debug!(
            session = %frame.meta.session_id,
            frames = *seq,
            first_audio_ms = first_audio.duration_since(started).as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "reply spoken"
        );
        Ok(())
    }

    /// Gets the oldest queued reply ready, unless the user went on speaking since its
    /// pause (the reply will not be this one); `false` when none is queued.
    pub fn prepare_next(&mut self) -> bool {
        let Some((text, pause)) = self.prepares.pop_front() else { return false };
        if !pause.is_over() {
            self.prepare(&text);
        }
        true
    }

    /// Synthesises `text`'s first sentence into the cache. Only the first: it is what
    /// the user waits for, and later ones are made while it plays. A failure is only
    /// logged; the final reply meets it again and reports it.
    fn prepare(&mut self, text: &str) {
        if self.cache.is_none() {
            return;
        }
        let Some(&first) = split_sentences(text).first() else { return };
        self.stats.prepared += 1;
        let started = Instant::now();
        match self.sentence_audio(first) {
            Ok(_) => tracing::debug!(took_ms = started.elapsed().as_secs_f64() * 1e3, "reply prepared"),
            Err(err) => tracing::debug!(error = %err, "reply not prepared"),
        }
    }

    /// One sentence's audio, from the cache or the model; `None` when the sentence
    /// has nothing to pronounce (`"..."` between two sentences is not an error).
    fn sentence_audio(&mut self, sentence: &str) -> Result<Option<Bytes>, TtsError> {
        let key = SentenceCache::key(self.voice.name(), sentence);
        if let Some(audio) = self.cache.as_mut().and_then(|cache| cache.get(&key)) {
            self.stats.cache_hits += 1;
            return Ok(Some(audio));
        }
        match self.voice.speak(sentence) {
            Ok(audio) => {
                self.stats.cache_misses += 1;
                if let Some(cache) = self.cache.as_mut() {
                    cache.insert(key, audio.clone());
                }
                Ok(Some(audio))
            }
            Err(TtsError::NothingToSay) => {
                self.stats.silent_sentences += 1;
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }
}

impl Stage<Speech> for PiperStage {
    fn name(&self) -> &'static str {
        "piper"
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        self.speak(frame, |frame| out.push(frame))
    }

    fn hints(&self) -> StageHints {
        self.hints
    }

    /// Prepares wait for an empty queue: a reply queued behind them is spoken first.
    fn idle(&mut self, _out: &mut Outputs) -> Result<bool, StageError> {
        Ok(self.prepare_next())
    }
}
