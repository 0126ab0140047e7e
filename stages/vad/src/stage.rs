//! [`VadStage`]: per-session end-of-speech detection on a stream of audio frames.

use std::collections::HashMap;

use alicia_pipeline::{SessionId, Stage, StageError, StageHints};
use alicia_speech::{AudioChunk, Frame, FrameMeta, Outputs, Payload, Speech, SpeechFrame};

use crate::config::{Limits, VadConfig, FORMAT};
use crate::error::VadError;
use crate::session::{EndReason, Fed, Phase, Session};

/// The end-of-speech stage. Async: a 20 ms frame costs a few microseconds.
///
/// Input: [`Payload::Audio`] (s16le mono 16 kHz) of any frame size, sessions
/// interleaved, each closed by the client's [`Payload::EndOfStream`] (`stop`).
/// Output, per session: nothing while it waits for speech; at the onset the pre-roll
/// and the speech so far, then every frame as it comes, all the very frames that came
/// in (same `Bytes`, at most the oldest pre-roll frame sliced); then one
/// [`Payload::EndOfStream`] when the hangover of silence follows the speech, when the
/// utterance reaches its longest, or when the client stops first. After its end of
/// stream a session's frames are dropped until its stop, so a session is one
/// utterance. Other payloads pass through.
///
/// Speculation: after `pause_ms` of silence the stage emits a [`Payload::Pause`] and
/// holds the frames that follow. If speech comes back they go downstream after all
/// (the pause was a gap between words); if the hangover runs out they are dropped and
/// the end of stream follows at once. So at an end of stream after a pause, downstream
/// has seen exactly the audio it had at the pause, and whatever it prepared then is
/// the answer. The end of stream's [`FrameMeta::timeline`](alicia_speech::FrameMeta::timeline) carries where speech ended
/// and when the end was decided.
///
/// Per-frame errors, each reported once per session, which is then left to its stop:
/// `unsupported_audio_format`, `bad_audio` (a split sample), and `no_speech` (stop
/// before any speech, or `max_wait_ms` of audio without speech).
pub struct VadStage {
    limits: Limits,
    sessions: HashMap<SessionId, Slot>,
    hints: StageHints,
    stats: VadStats,
    /// Orders sessions by last use, for eviction.
    clock: u64,
    /// Scratch for the frames one call emits, kept for its allocation.
    emitted: Vec<Frame>,
}

enum Slot {
    Active {
        session: Box<Session>,
        used: u64,
    },
    /// Ended, failed or timed out: the rest of the stream is dropped until the stop.
    Closed {
        used: u64,
    },
}

impl Slot {
    fn used(&self) -> u64 {
        match self {
            Slot::Active { used, .. } | Slot::Closed { used } => *used,
        }
    }
}

/// Counters since the stage was built, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VadStats {
    /// Utterances ended by the hangover of silence.
    pub ended_by_silence: u64,
    /// Utterances cut at `max_utterance_ms`.
    pub ended_by_length: u64,
    /// Utterances ended by the client's stop while speech was going on.
    pub ended_by_stop: u64,
    /// Sessions that gave `no_speech`.
    pub no_speech: u64,
    /// Audio frames dropped because their session had already ended or failed.
    pub dropped_frames: u64,
    /// Sessions forgotten to stay within `max_sessions`.
    pub evicted_sessions: u64,
    /// Audio frames without a sample, dropped on arrival.
    pub empty_frames: u64,
    /// Pauses announced downstream (each lets the stages prepare an answer).
    pub pauses: u64,
    /// Pauses the user talked through: the answer prepared for them was wasted.
    pub resumed_after_pause: u64,
    /// Utterances that went on past the hangover because what was said so far sounded
    /// cut short, or had not been judged yet.
    pub waited_past_hangover: u64,
}

impl std::fmt::Debug for VadStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VadStage")
            .field("sessions", &self.sessions.len())
            .field("buffered_bytes", &self.buffered_bytes())
            .field("stats", &self.stats)
            .finish()
    }
}

impl VadStage {
    pub(crate) fn new(limits: Limits, input_capacity: usize) -> Self {
        Self {
            limits,
            sessions: HashMap::new(),
            hints: StageHints::asynchronous(input_capacity),
            stats: VadStats::default(),
            clock: 0,
            emitted: Vec::new(),
        }
    }

    /// The stage with [`VadConfig::default`].
    pub fn with_defaults() -> Self {
        VadConfig::default().build().expect("the default config is valid")
    }

    pub fn stats(&self) -> VadStats {
        self.stats
    }

    /// Audio held across all sessions (pre-roll and unconfirmed speech), in bytes.
    pub fn buffered_bytes(&self) -> usize {
        self.sessions
            .values()
            .map(|slot| match slot {
                Slot::Active { session, .. } => session.held_bytes(),
                Slot::Closed { .. } => 0,
            })
            .sum()
    }

    /// Frames held across all sessions (each a handle on its audio and its meta).
    pub fn held_frames(&self) -> usize {
        self.sessions
            .values()
            .map(|slot| match slot {
                Slot::Active { session, .. } => session.held_frames(),
                Slot::Closed { .. } => 0,
            })
            .sum()
    }

    /// Sessions the stage is tracking, closed ones awaiting their stop included.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    fn audio(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        self.clock += 1;
        let used = self.clock;
        let id = frame.meta.session_id.clone();
        if let Some(slot @ Slot::Closed { .. }) = self.sessions.get_mut(&id) {
            *slot = Slot::Closed { used };
            self.stats.dropped_frames += 1;
            return Ok(());
        }
        let chunk = frame.as_audio().expect("called for audio frames");
        if let Err(err) = check_audio(chunk) {
            self.close(&id, used, out)?;
            return Err(err.into());
        }
        if chunk.pcm.is_empty() {
            // No audio, no news: holding it would cost a frame of memory for nothing
            // (the pre-roll is trimmed by bytes), and a stream of them would grow it.
            self.stats.empty_frames += 1;
            return Ok(());
        }
        if !self.sessions.contains_key(&id) {
            self.make_room(out)?;
        }
        let slot = self
            .sessions
            .entry(id.clone())
            .or_insert_with(|| Slot::Active { session: Box::new(Session::new(&self.limits, &frame.meta)), used });
        let Slot::Active { session, used: last_used } = slot else { unreachable!("closed slots return above") };
        *last_used = used;
        let fed = session.feed(frame, &self.limits, &mut self.emitted);
        let pause = session.pause_events();
        self.stats.pauses += u64::from(pause.began);
        self.stats.resumed_after_pause += u64::from(pause.resumed);
        self.stats.waited_past_hangover += u64::from(pause.waited);
        let emitted = std::mem::take(&mut self.emitted);
        let pushed = push_all(emitted, &mut self.emitted, out);
        match fed {
            Fed::Continue => {}
            Fed::Ended(reason) => {
                match reason {
                    EndReason::Silence => self.stats.ended_by_silence += 1,
                    EndReason::MaxLength => self.stats.ended_by_length += 1,
                }
                tracing::debug!(session = %id, ?reason, "end of speech");
                self.sessions.insert(id, Slot::Closed { used });
            }
            Fed::NoSpeech { heard } => {
                self.stats.no_speech += 1;
                self.sessions.insert(id, Slot::Closed { used });
                pushed?;
                return Err(VadError::NoSpeech { heard }.into());
            }
        }
        pushed
    }

    /// The client's stop: ends an utterance in progress, or reports that there was
    /// none. The session is forgotten either way.
    fn stop(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        match self.sessions.remove(&frame.meta.session_id) {
            Some(Slot::Active { session, .. }) if session.phase() == Phase::Speaking => {
                self.stats.ended_by_stop += 1;
                let mut frame = frame;
                session.stamp_end(&mut frame);
                out.push(frame)
            }
            Some(Slot::Active { session, .. }) => {
                self.stats.no_speech += 1;
                Err(VadError::NoSpeech { heard: session.waited() }.into())
            }
            Some(Slot::Closed { .. }) => Ok(()),
            None => {
                self.stats.no_speech += 1;
                Err(VadError::NoSpeech { heard: std::time::Duration::ZERO }.into())
            }
        }
    }

    /// Marks `id` closed, dropping its audio; an utterance already flowing gets its
    /// end of stream so downstream does not keep half of it.
    fn close(&mut self, id: &SessionId, used: u64, out: &mut Outputs) -> Result<(), StageError> {
        let previous = self.sessions.insert(id.clone(), Slot::Closed { used });
        match previous {
            Some(Slot::Active { session, .. }) if session.phase() == Phase::Speaking => {
                out.push(session.end_of_stream())
            }
            _ => Ok(()),
        }
    }

    /// Forgets the least recently fed session when a new one would exceed the limit.
    fn make_room(&mut self, out: &mut Outputs) -> Result<(), StageError> {
        if self.sessions.len() < self.limits.max_sessions {
            return Ok(());
        }
        let Some(oldest) = self.sessions.iter().min_by_key(|(_, slot)| slot.used()).map(|(id, _)| id.clone()) else {
            return Ok(());
        };
        self.stats.evicted_sessions += 1;
        tracing::warn!(session = %oldest, max_sessions = self.limits.max_sessions, "vad session evicted");
        match self.sessions.remove(&oldest) {
            Some(Slot::Active { session, .. }) if session.phase() == Phase::Speaking => {
                out.push(session.end_of_stream())
            }
            _ => Ok(()),
        }
    }
}

fn check_audio(chunk: &AudioChunk) -> Result<(), VadError> {
    if chunk.format != FORMAT {
        return Err(VadError::UnsupportedFormat { format: chunk.format });
    }
    if !chunk.pcm.len().is_multiple_of(FORMAT.bytes_per_frame()) {
        return Err(VadError::OddLength { len: chunk.pcm.len() });
    }
    Ok(())
}

/// Pushes `frames` in order and hands their emptied vector back to `scratch`.
fn push_all(mut frames: Vec<Frame>, scratch: &mut Vec<Frame>, out: &mut Outputs) -> Result<(), StageError> {
    let mut result = Ok(());
    for frame in frames.drain(..) {
        if result.is_ok() {
            result = out.push(frame);
        }
    }
    *scratch = frames;
    result
}

impl Stage<Speech> for VadStage {
    fn name(&self) -> &'static str {
        "vad"
    }

    fn hints(&self) -> StageHints {
        self.hints
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        match frame.payload {
            Payload::Audio(_) => self.audio(frame, out),
            Payload::EndOfStream => self.stop(frame, out),
            Payload::Text(_)
            | Payload::Transcript(_)
            | Payload::Prepare { .. }
            | Payload::Pause(_)
            | Payload::Message { .. } => out.push(frame),
        }
    }

    /// At shutdown, utterances still flowing get their end of stream (by session id),
    /// so downstream transcribes them; sessions still waiting are dropped.
    fn flush(&mut self, out: &mut Outputs) -> Result<(), StageError> {
        let mut speaking: Vec<FrameMeta> = self
            .sessions
            .drain()
            .filter_map(|(_, slot)| match slot {
                Slot::Active { session, .. } if session.phase() == Phase::Speaking => {
                    Some(session.end_of_stream().meta)
                }
                _ => None,
            })
            .collect();
        speaking.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        for meta in speaking {
            out.push(Frame::end_of_stream(meta))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
