//! Whisper and Piper behind the Wyoming server ([`alicia_wyoming::SpeechBackend`]) and
//! behind the bus's base64 STT requests ([`Transcriber`]): the models the pipeline
//! loaded, each with a decoder state of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use alicia_speech::split_sentences;
use alicia_stage_stt::{DecodeOptions, WhisperStt};
use alicia_stage_tts::PiperStage;
use alicia_wyoming::{AudioOut, BackendError, SpeechBackend};
use bytes::Bytes;

use crate::{Transcriber, VoiceModels};

/// Sentences of Wyoming `synthesize` requests, by whether they were synthesised or
/// skipped because the client had gone.
pub const SENTENCES_TOTAL: &str = "alicia_wyoming_sentences_total";

/// The models behind every speech request. One model run at a time each: both use every
/// core they are given, so queueing beats thrashing on a small machine.
pub struct LocalSpeech {
    stt: Mutex<WhisperStt>,
    tts: Mutex<PiperStage>,
    synthesized: metrics::Counter,
    skipped: metrics::Counter,
}

impl LocalSpeech {
    /// Whisper and Piper on the models the pipeline loaded: the same weights and the
    /// same ONNX session (one model run at a time each, which on two cores is what
    /// runs fastest anyway), with a decoder state of its own decoding as `decoding`
    /// says (whole recordings: a wider window than the pipeline's), warmed up.
    pub fn load(models: &VoiceModels, stt_threads: usize, decoding: DecodeOptions) -> anyhow::Result<LocalSpeech> {
        let mut stt = WhisperStt::new(models.whisper(), stt_threads)?.with_options(decoding);
        stt.warm_up()?;
        let (voice, config) = models.piper();
        let tts = PiperStage::new(voice.clone(), config);
        metrics::describe_counter!(
            SENTENCES_TOTAL,
            metrics::Unit::Count,
            "sentences of Wyoming synthesize requests: synthesized, or skipped for a client that left"
        );
        Ok(LocalSpeech {
            stt: Mutex::new(stt),
            tts: Mutex::new(tts),
            synthesized: metrics::counter!(SENTENCES_TOTAL, "outcome" => "synthesized"),
            skipped: metrics::counter!(SENTENCES_TOTAL, "outcome" => "skipped"),
        })
    }
}

impl SpeechBackend for LocalSpeech {
    fn transcribe(&self, pcm: Bytes, client_gone: &AtomicBool) -> Result<String, BackendError> {
        let mut stt =
            self.stt.lock().map_err(|_| BackendError::new("stt_poisoned", "speech-to-text failed earlier"))?;
        if client_gone.load(Ordering::Relaxed) {
            // Gone while this waited for the model: not a step of it for nobody.
            return Err(BackendError::new("given_up", "the client has gone"));
        }
        // Straight from the bytes: the f32 conversion inside is the one copy. Whisper
        // polls `client_gone` between steps and stops for a client that has left.
        stt.transcribe_s16le_unless(std::slice::from_ref(&pcm), client_gone)
            .map(|t| t.text)
            .map_err(|e| BackendError::new(e.error_type(), e.to_string()))
    }

    fn synthesize(&self, text: &str, out: &mut AudioOut) -> Result<(), BackendError> {
        let sentences = split_sentences(text);
        let mut tts =
            self.tts.lock().map_err(|_| BackendError::new("tts_poisoned", "text-to-speech failed earlier"))?;
        // Sentence by sentence, so the first audio leaves before the rest is synthesised,
        // and the model stops for a client that has gone (waiting for the lock included).
        for (done, sentence) in sentences.iter().enumerate() {
            if !out.wanted() {
                self.skipped.increment((sentences.len() - done) as u64);
                return Ok(());
            }
            let audio = tts.synthesize(sentence).map_err(|e| BackendError::new(e.error_type(), e.to_string()))?;
            self.synthesized.increment(1);
            if out.send(audio).is_err() {
                self.skipped.increment((sentences.len() - done - 1) as u64);
                return Ok(());
            }
        }
        Ok(())
    }
}

impl LocalSpeech {
    /// The bus's STT requests on this Whisper: a bus request has no client to lose, so
    /// it is never given up.
    pub fn transcriber(self: &Arc<Self>) -> Transcriber {
        let speech = Arc::clone(self);
        let stays = AtomicBool::new(false);
        Arc::new(move |pcm| speech.transcribe(pcm, &stays).map_err(|e| (e.error_type(), e.message().to_string())))
    }
}
