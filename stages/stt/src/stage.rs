//! [`WhisperStage`]: collects each session's utterance as it streams in and
//! transcribes it at the session's end of stream, or earlier, at a pause, so the end
//! of stream finds the work done.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

use alicia_pipeline::{SessionId, Stage, StageError, StageHints};
use alicia_speech::{
    AudioChunk, AudioFormat, Frame, FrameMeta, Outputs, PauseSignal, Payload, Speech, SpeechFrame, Transcript,
};
use bytes::{Bytes, BytesMut};

use crate::ends_ahead::EndsAhead;
use crate::whisper::{Guess, SttError, WhisperStt, MAX_SAMPLES};

/// Times a guess gives way to other sessions' ends of speech before it runs to its
/// end whatever waits: a bound on the work a guess can lose, and on what a miscount
/// could cost.
const MAX_YIELDS: u8 = 3;

/// Whisper as a pipeline stage.
///
/// Input: [`Payload::Audio`] chunks (s16le, mono, 16 kHz) of one utterance per session,
/// closed by [`Payload::EndOfStream`]. Output: one [`Payload::Transcript`], then the
/// end of stream, both with the end-of-stream frame's meta (so latency is measured
/// from the end of speech) stamped `transcribed`. Sessions may interleave; each has
/// its own buffer. Other payloads pass through.
///
/// At a [`Payload::Pause`] the audio so far is transcribed, as soon as no other frame
/// is waiting (`idle`), and sent on as a provisional transcript, so the stages after
/// this one can prepare the reply while the VAD's hangover runs out. If no audio came
/// after the pause, the end of stream reuses that transcript (`timeline.speculative`);
/// otherwise the user went on speaking and the whole utterance is transcribed again. A
/// pause the user has already talked through (its [`PauseSignal`]) is skipped, one
/// they talk through while Whisper works on it is given up mid-way, and an end of
/// stream never waits behind other sessions' guesses: not behind queued ones, and,
/// with [`with_ends_ahead`](Self::with_ends_ahead), not behind the one running either.
pub struct WhisperStage {
    stt: WhisperStt,
    utterances: HashMap<SessionId, Utterance>,
    /// Pauses to guess at, oldest first, when no frame is waiting (see `idle`).
    guesses: VecDeque<PendingGuess>,
    /// Ends of stream on their way here, counted by the stage in front.
    ends_ahead: Option<EndsAhead>,
    stats: SttStats,
}

/// A pause to guess at, and how often its guess gave way already.
struct PendingGuess {
    meta: FrameMeta,
    pause: PauseSignal,
    yielded: u8,
}

/// Counters since the stage was built, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SttStats {
    /// Utterances transcribed to the end.
    pub transcribed: u64,
    /// Provisional transcripts made at pauses.
    pub provisional: u64,
    /// Final transcripts that were a provisional one, ready before the end.
    pub reused: u64,
    /// Pauses not transcribed, or given up mid-way, because the user went on speaking.
    pub given_up: u64,
    /// Guesses stopped mid-way for another session's end of speech, and tried again.
    pub yielded: u64,
}

/// Frames smaller than this count as small (a 10 ms frame, 320 bytes, does not).
const SMALL_FRAME: usize = 256;
/// Small frames copied together are kept in pieces of about this size.
const COPIED_PIECE: usize = 4096;

/// Small frames kept as handles before the rest are copied: an ordinary stream has one
/// (its last), a client sending tiny frames has thousands.
const SMALL_HANDLES: usize = 16;

/// One session's audio so far: the frames' own buffers, uncopied, unless a client
/// sends many small frames. Each handle costs 32 bytes and keeps the whole read buffer
/// its frame came in alive, so a stream of two-byte frames kept as handles would hold
/// many times its audio; past `SMALL_HANDLES` small frames are copied together
/// instead, and memory stays about the audio's size.
struct Utterance {
    chunks: Vec<Bytes>,
    /// Small frames kept as handles so far.
    small_handles: usize,
    /// Small frames copied together, not yet a chunk.
    tail: BytesMut,
    /// All of it, chunks and tail.
    bytes: usize,
    /// The latest frame's meta, for a transcript emitted at shutdown.
    last: FrameMeta,
    /// The transcript made at the latest pause, and how many bytes it heard.
    provisional: Option<(usize, Transcript)>,
}

impl Utterance {
    fn new(meta: &FrameMeta) -> Self {
        let (chunks, tail) = (Vec::new(), BytesMut::new());
        Utterance { chunks, small_handles: 0, tail, bytes: 0, last: meta.clone(), provisional: None }
    }

    fn keep(&mut self, pcm: &Bytes) {
        let small = pcm.len() < SMALL_FRAME;
        if !small || self.small_handles < SMALL_HANDLES {
            self.small_handles += usize::from(small);
            self.close_tail();
            // A reference-counted handle on the frame's buffer: no copy.
            self.chunks.push(pcm.clone());
        } else {
            self.tail.extend_from_slice(pcm);
            if self.tail.len() >= COPIED_PIECE {
                self.close_tail();
            }
        }
        self.bytes += pcm.len();
    }

    /// The audio so far, in order, as chunks.
    fn audio(&mut self) -> &[Bytes] {
        self.close_tail();
        &self.chunks
    }

    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push(self.tail.split().freeze());
        }
    }
}

impl std::fmt::Debug for WhisperStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStage").field("stt", &self.stt).field("open_sessions", &self.utterances.len()).finish()
    }
}

impl WhisperStage {
    /// Deep, because what waits here is mostly audio frames (a `Bytes` handle each) of
    /// sessions still speaking while Whisper runs for another: with a shallow queue the
    /// VAD in front would block and decide every session's end of speech late. 512
    /// frames is a second of ten satellites' 20 ms frames.
    pub const INPUT_CAPACITY: usize = 512;
    /// The one audio layout the stage takes.
    pub const FORMAT: AudioFormat = AudioFormat::PCM16_MONO_16K;
    const MAX_BYTES: usize = MAX_SAMPLES * 2;

    pub fn new(stt: WhisperStt) -> Self {
        Self { stt, utterances: HashMap::new(), guesses: VecDeque::new(), ends_ahead: None, stats: SttStats::default() }
    }

    /// A guess running for one session stops when another's end of stream is on its
    /// way (counted in `ends`, whose [`EndsAhead::sent`] the stage in front calls), and
    /// is tried again after it.
    pub fn with_ends_ahead(mut self, ends: EndsAhead) -> Self {
        self.ends_ahead = Some(ends);
        self
    }

    pub fn stats(&self) -> SttStats {
        self.stats
    }

    /// Loads the model once, here, not per utterance.
    pub fn load(model: impl AsRef<Path>, threads: usize) -> Result<Self, SttError> {
        WhisperStt::load(model, threads).map(Self::new)
    }

    /// The model, for callers that also transcribe outside a pipeline.
    pub fn stt(&mut self) -> &mut WhisperStt {
        &mut self.stt
    }

    fn accept(&mut self, meta: &FrameMeta, chunk: &AudioChunk) -> Result<(), StageError> {
        if chunk.format != Self::FORMAT {
            return Err(StageError::frame(
                "unsupported_audio_format",
                format!(
                    "whisper takes s16le mono 16 kHz audio, got {} Hz, {} channel(s), {}-byte samples",
                    chunk.format.sample_rate, chunk.format.channels, chunk.format.sample_width
                ),
            ));
        }
        if !chunk.pcm.len().is_multiple_of(2) {
            return Err(stt_error(SttError::OddLength { len: chunk.pcm.len() }));
        }
        let utterance = self.utterances.entry(meta.session_id.clone()).or_insert_with(|| Utterance::new(meta));
        if utterance.bytes + chunk.pcm.len() > Self::MAX_BYTES {
            let seconds = (utterance.bytes + chunk.pcm.len()) as f64 / Self::FORMAT.bytes_per_second() as f64;
            return Err(stt_error(SttError::TooLong { seconds }));
        }
        utterance.keep(&chunk.pcm);
        utterance.last = meta.clone();
        Ok(())
    }

    /// A pause: transcribes the audio so far and sends it on as provisional, unless
    /// the user has gone on speaking already, and giving up as soon as they do. A
    /// failure is only logged: the end of stream tries again and reports it.
    fn provisional(&mut self, guess: PendingGuess, out: &mut Outputs) -> Result<(), StageError> {
        let (meta, pause) = (&guess.meta, &guess.pause);
        let Some(utterance) = self.utterances.get_mut(&meta.session_id) else { return Ok(()) };
        let heard = utterance.bytes;
        if utterance.provisional.as_ref().is_some_and(|(bytes, _)| *bytes == heard) {
            return Ok(());
        }
        if pause.is_over() {
            self.stats.given_up += 1;
            return Ok(());
        }
        let started = Instant::now();
        // Quick passes only: the judgement is due within the hangover. A guess the
        // quick passes could not settle is still judged, but not kept: the end of the
        // utterance is transcribed in full.
        let yield_to = self.ends_ahead.as_ref().filter(|_| guess.yielded < MAX_YIELDS);
        let guessed = match yield_to {
            Some(ends) => self.stt.guess_s16le_yielding(utterance.audio(), pause.flag(), ends.counter()),
            None => self.stt.guess_s16le_unless(utterance.audio(), pause.flag()),
        };
        match guessed {
            Ok(Guess { transcript, settled }) => {
                tracing::debug!(
                    session = %meta.session_id,
                    took_ms = started.elapsed().as_secs_f64() * 1e3,
                    settled,
                    "provisional transcript"
                );
                self.stats.provisional += 1;
                let mut sent = transcript.clone();
                sent.pause = Some(pause.clone());
                if settled {
                    utterance.provisional = Some((heard, transcript));
                }
                out.push(Frame::new(meta.clone(), Payload::Transcript(sent)))
            }
            Err(SttError::GivenUp) => {
                self.stats.given_up += 1;
                Ok(())
            }
            Err(SttError::Yielded) => {
                // First in line again: it runs once the ends of stream are served.
                self.stats.yielded += 1;
                self.guesses.push_front(PendingGuess { yielded: guess.yielded + 1, ..guess });
                Ok(())
            }
            Err(err) => {
                tracing::debug!(session = %meta.session_id, error = %err, "no provisional transcript");
                Ok(())
            }
        }
    }

    /// Transcribes and forgets `session`'s utterance (or takes the transcript made at
    /// its last pause, when nothing came after it); pushes the transcript and an end
    /// of stream derived from `meta`.
    fn finish(&mut self, meta: &FrameMeta, out: &mut Outputs) -> Result<(), StageError> {
        // A guess not made yet is moot: this is the answer.
        self.guesses.retain(|pending| pending.meta.session_id != meta.session_id);
        let Some(mut utterance) = self.utterances.remove(&meta.session_id) else {
            return Err(stt_error(SttError::NoAudio));
        };
        let (transcript, reused) = match utterance.provisional.take() {
            Some((heard, transcript)) if heard == utterance.bytes => (transcript, true),
            _ => (self.stt.transcribe_s16le(utterance.audio()).map_err(stt_error)?, false),
        };
        self.stats.transcribed += 1;
        self.stats.reused += u64::from(reused);
        tracing::debug!(
            session = %meta.session_id,
            audio_ms = Self::FORMAT.duration_of(utterance.bytes).as_millis() as u64,
            confidence = transcript.confidence,
            reused,
            "transcribed"
        );
        let mut meta = meta.clone();
        meta.domain.stamp(|t| {
            t.transcribed = Some(Instant::now());
            t.speculative = reused;
        });
        out.push(Frame::new(meta.clone(), Payload::Transcript(transcript)))?;
        out.push(Frame::end_of_stream(meta))
    }

    /// The chunks buffered for `session`.
    #[cfg(test)]
    pub(crate) fn buffered(&self, session: &SessionId) -> &[Bytes] {
        self.utterances.get(session).map_or(&[], |u| &u.chunks)
    }
}

fn stt_error(err: SttError) -> StageError {
    StageError::frame(err.error_type(), err)
}

impl Stage<Speech> for WhisperStage {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn hints(&self) -> StageHints {
        StageHints::blocking(Self::INPUT_CAPACITY)
    }

    /// Guesses wait for an empty queue: an end of stream queued behind them is served
    /// first, so one session's final transcript never waits for another's guess.
    fn idle(&mut self, out: &mut Outputs) -> Result<bool, StageError> {
        let Some(guess) = self.guesses.pop_front() else { return Ok(false) };
        self.provisional(guess, out)?;
        Ok(true)
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        match &frame.payload {
            Payload::Audio(chunk) => self.accept(&frame.meta, chunk),
            Payload::EndOfStream => {
                if let Some(ends) = &self.ends_ahead {
                    ends.arrived();
                }
                self.finish(&frame.meta, out)
            }
            Payload::Pause(pause) => {
                self.guesses.push_back(PendingGuess { meta: frame.meta.clone(), pause: pause.clone(), yielded: 0 });
                Ok(())
            }
            Payload::Text(_) | Payload::Transcript(_) | Payload::Prepare { .. } | Payload::Message { .. } => {
                out.push(frame)
            }
        }
    }

    /// At shutdown, utterances that never got their end of stream are transcribed
    /// anyway (oldest session id first); the first failure is returned after all ran.
    fn flush(&mut self, out: &mut Outputs) -> Result<(), StageError> {
        let mut open: Vec<FrameMeta> = self.utterances.values().map(|u| u.last.clone()).collect();
        open.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let mut first_error = None;
        for meta in open {
            if let Err(err) = self.finish(&meta, out) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod topology_tests;
