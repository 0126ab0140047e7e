//! One session's detector: waiting for speech with a pre-roll, then forwarding the
//! utterance until the hangover or the length limit ends it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use alicia_speech::{Frame, FrameMeta, PauseSignal, Payload, SpeechFrame};

use crate::config::{Limits, FORMAT};
use crate::level::{NoiseFloor, WindowMeter};

/// Why an utterance ended on the stage's own decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// The hangover of silence followed the speech.
    Silence,
    /// The utterance reached `max_utterance_ms`.
    MaxLength,
}

/// What one audio frame did to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// Held (waiting) or forwarded (speaking); the session goes on.
    Continue,
    /// The utterance ended after this frame; its end of stream was emitted.
    Ended(EndReason),
    /// `max_wait_ms` passed without speech; the held audio is released.
    NoSpeech { heard: Duration },
}

/// What a frame did to a pause in speech, for the stage's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PauseEvents {
    /// A pause began: a [`Payload::Pause`] was emitted.
    pub began: bool,
    /// Speech came back after a pause: the held silence was released.
    pub resumed: bool,
    /// The hangover had passed, but the words so far were judged unfinished, or not
    /// yet judged: the utterance went on waiting.
    pub waited: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Waiting,
    Speaking,
}

/// Something that may be speech: confirmed once it adds up to `min_speech`, dropped
/// back into the pre-roll after a hangover of silence.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    /// Index in `held` of the frame where it began; frames before it are pre-roll.
    start: usize,
    speech: u64,
    silence_run: u64,
}

/// Per-session detector state. Audio is held only as the frames' own `Bytes`.
#[derive(Debug)]
pub(crate) struct Session {
    phase: Phase,
    meter: WindowMeter,
    floor: NoiseFloor,
    /// Waiting: the pre-roll, then the candidate's frames.
    held: VecDeque<Frame>,
    held_bytes: usize,
    candidate: Option<Candidate>,
    /// Samples seen while waiting for speech.
    waited: u64,
    /// Samples forwarded in this utterance, pre-roll included.
    forwarded: u64,
    /// Speaking: samples of silence since the last speech window.
    silence_run: u64,
    /// Speaking: a pause was announced; the frames since are held (in `held`) until
    /// speech comes back (they are released, and the signal tells the stages working
    /// ahead that their work is wasted) or the hangover ends the utterance (they are
    /// dropped, so the utterance ends where its pause began).
    pause: Option<PauseSignal>,
    /// Arrival of the latest frame with a speech window.
    last_speech: Option<Instant>,
    pause_events: PauseEvents,
    /// The latest frame's meta, for the end of stream the stage emits.
    last: FrameMeta,
    /// Scratch for one frame's window levels, kept for its allocation.
    levels: Vec<f32>,
}

impl Session {
    pub(crate) fn new(limits: &Limits, meta: &FrameMeta) -> Self {
        Self {
            phase: Phase::Waiting,
            meter: WindowMeter::new(limits.window),
            floor: NoiseFloor::new(limits.floor_windows, limits.initial_floor_dbfs, limits.min_floor_dbfs),
            held: VecDeque::new(),
            held_bytes: 0,
            candidate: None,
            waited: 0,
            forwarded: 0,
            silence_run: 0,
            pause: None,
            last_speech: None,
            pause_events: PauseEvents::default(),
            last: meta.clone(),
            levels: Vec::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    pub(crate) fn held_frames(&self) -> usize {
        self.held.len()
    }

    /// Audio heard so far while waiting, for a `no_speech` report.
    pub(crate) fn waited(&self) -> Duration {
        FORMAT.duration_of(self.waited as usize * FORMAT.bytes_per_frame())
    }

    /// An end of stream after the last frame of the session, stamped with where speech
    /// ended and when the end was decided.
    pub(crate) fn end_of_stream(&self) -> Frame {
        let mut end = Frame::end_of_stream(self.last.clone());
        end.meta.seq = self.last.seq.wrapping_add(1);
        self.stamp_end(&mut end);
        end
    }

    /// Stamps `frame` as the end of this session's utterance, decided now.
    pub(crate) fn stamp_end(&self, frame: &mut Frame) {
        let speech_end = self.last_speech.unwrap_or(self.last.ingress);
        frame.meta.domain.stamp(|t| {
            t.speech_end = Some(speech_end);
            t.endpoint = Some(Instant::now());
        });
    }

    /// What the latest frame did to a pause; reset by each call to `feed`.
    pub(crate) fn pause_events(&self) -> PauseEvents {
        self.pause_events
    }

    /// Takes one audio frame of 16 kHz mono s16le (checked by the stage), pushing to
    /// `emit` whatever must go downstream now, in order.
    pub(crate) fn feed(&mut self, frame: Frame, limits: &Limits, emit: &mut Vec<Frame>) -> Fed {
        let Payload::Audio(chunk) = &frame.payload else {
            debug_assert!(false, "the stage feeds audio only");
            return Fed::Continue;
        };
        // A second handle on the frame's buffer, to measure it after the frame moves.
        let pcm = chunk.pcm.clone();
        let samples = (pcm.len() / FORMAT.bytes_per_frame()) as u64;
        self.last = frame.meta.clone();
        self.pause_events = PauseEvents::default();
        let ingress = frame.meta.ingress;
        match self.phase {
            Phase::Waiting => self.hold(frame),
            Phase::Speaking if self.pause.is_some() => {
                self.forwarded += samples;
                self.hold(frame);
            }
            Phase::Speaking => {
                self.forwarded += samples;
                emit.push(frame);
            }
        }

        let mut levels = std::mem::take(&mut self.levels);
        levels.clear();
        self.meter.measure(&pcm, &mut levels);
        let mut outcome = Fed::Continue;
        for &level in &levels {
            let ended = match self.phase {
                Phase::Waiting => {
                    self.waiting_window(level, ingress, limits, emit);
                    None
                }
                Phase::Speaking => self.speaking_window(level, ingress, limits, emit),
            };
            if let Some(reason) = ended {
                outcome = Fed::Ended(reason);
                break;
            }
        }
        self.levels = levels;

        match (outcome, self.phase) {
            (Fed::Ended(_), _) => {}
            (_, Phase::Waiting) => {
                if self.waited >= limits.max_wait {
                    let heard = self.waited();
                    self.release();
                    return Fed::NoSpeech { heard };
                }
                self.trim_pre_roll(limits.pre_roll_bytes);
            }
            (_, Phase::Speaking) => {
                if self.forwarded >= limits.max_utterance {
                    outcome = Fed::Ended(EndReason::MaxLength);
                } else if self.pause.is_none() && limits.pause > 0 && self.silence_run >= limits.pause {
                    // From here on frames are held, so what went downstream is exactly
                    // what the speculative transcript will have heard.
                    let pause = PauseSignal::new();
                    self.pause = Some(pause.clone());
                    self.pause_events.began = true;
                    emit.push(Frame::new(self.last.clone(), Payload::Pause(pause)));
                }
            }
        }
        if matches!(outcome, Fed::Ended(_)) {
            // The held frames are the pause's silence: the utterance ends where it began.
            self.release();
            emit.push(self.end_of_stream());
        }
        outcome
    }

    /// Drops whatever audio the session holds.
    pub(crate) fn release(&mut self) {
        self.held.clear();
        self.held_bytes = 0;
        self.candidate = None;
    }

    fn hold(&mut self, frame: Frame) {
        self.held_bytes += frame.as_audio().map_or(0, |chunk| chunk.pcm.len());
        self.held.push_back(frame);
    }

    fn is_speech(&mut self, level: f32, limits: &Limits) -> bool {
        level >= self.floor.estimate() + limits.threshold_db
    }

    fn waiting_window(&mut self, level: f32, ingress: Instant, limits: &Limits, emit: &mut Vec<Frame>) {
        let speech = self.is_speech(level, limits);
        if speech {
            self.last_speech = Some(ingress);
        }
        // While waiting every window shapes the floor, so a room that got louder
        // stops looking like speech after `floor_window_ms`.
        self.floor.record(level);
        self.waited += limits.window;
        let current_frame = self.held.len().saturating_sub(1);
        let candidate = match (self.candidate, speech) {
            (None, false) => None,
            (None, true) => Some(Candidate { start: current_frame, speech: limits.window, silence_run: 0 }),
            (Some(c), true) => Some(Candidate { speech: c.speech + limits.window, silence_run: 0, ..c }),
            (Some(c), false) => {
                let silence_run = c.silence_run + limits.window;
                (silence_run < limits.hangover).then_some(Candidate { silence_run, ..c })
            }
        };
        self.candidate = candidate;
        if let Some(candidate) = candidate.filter(|c| c.speech >= limits.min_speech) {
            self.start_speaking(candidate, limits, emit);
        }
    }

    /// Speech confirmed: the pre-roll and the candidate go downstream, in order.
    fn start_speaking(&mut self, candidate: Candidate, limits: &Limits, emit: &mut Vec<Frame>) {
        self.trim_pre_roll(limits.pre_roll_bytes);
        self.phase = Phase::Speaking;
        self.silence_run = candidate.silence_run;
        self.forwarded = (self.held_bytes / FORMAT.bytes_per_frame()) as u64;
        self.candidate = None;
        self.held_bytes = 0;
        emit.extend(self.held.drain(..));
    }

    fn speaking_window(
        &mut self,
        level: f32,
        ingress: Instant,
        limits: &Limits,
        emit: &mut Vec<Frame>,
    ) -> Option<EndReason> {
        let speech = self.is_speech(level, limits);
        if speech {
            self.silence_run = 0;
            self.last_speech = Some(ingress);
            if let Some(pause) = self.pause.take() {
                // The user went on: the held silence belongs to the utterance after all.
                pause.resume();
                self.pause_events.resumed = true;
                self.held_bytes = 0;
                emit.extend(self.held.drain(..));
            }
        } else {
            // Only quiet windows shape the floor while speaking: a long sentence must
            // not become its own floor and cut itself short.
            self.floor.record(level);
            self.silence_run += limits.window;
        }
        // With a pause out, the short hangover needs the stages' word that what was
        // said sounds finished; without one (pauses off) it is the whole rule.
        let finished = self.pause.as_ref().is_none_or(|pause| pause.verdict() == Some(true));
        let hangover = if finished { limits.hangover } else { limits.unfinished_hangover };
        let just_past_hangover = (limits.hangover..limits.hangover + limits.window).contains(&self.silence_run);
        self.pause_events.waited |= just_past_hangover && !finished;
        (self.silence_run >= hangover).then_some(EndReason::Silence)
    }

    /// Keeps at most `limit` bytes of audio before the candidate (all of `held` when
    /// there is none), slicing the oldest frame when it straddles the limit.
    fn trim_pre_roll(&mut self, limit: usize) {
        let pre_roll_frames = self.candidate.map_or(self.held.len(), |c| c.start);
        let mut pre_roll: usize = self.held.iter().take(pre_roll_frames).map(audio_len).sum();
        while pre_roll > limit {
            let Some(front) = self.held.front_mut() else { break };
            let len = audio_len(front);
            let excess = pre_roll - limit;
            if len <= excess {
                self.held.pop_front();
                if let Some(candidate) = &mut self.candidate {
                    candidate.start -= 1;
                }
                pre_roll -= len;
                self.held_bytes -= len;
            } else {
                if let Payload::Audio(chunk) = &mut front.payload {
                    // Both lengths are whole samples, so the cut is too; no copy.
                    *chunk = chunk.slice(excess..len);
                }
                pre_roll -= excess;
                self.held_bytes -= excess;
            }
        }
        debug_assert_eq!(self.held_bytes, self.held.iter().map(audio_len).sum::<usize>());
    }
}

fn audio_len(frame: &Frame) -> usize {
    frame.as_audio().map_or(0, |chunk| chunk.pcm.len())
}
