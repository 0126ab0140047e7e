//! A Piper voice: its `.onnx.json` (sample rate, phoneme ids, inference scales), its
//! VITS model on ONNX Runtime, and the conversion of what it says to the bus's audio
//! format (16 kHz mono s16le).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alicia_speech::AudioFormat;
use bytes::Bytes;
use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::error::TtsError;
use crate::onnx;
use crate::pcm;
use crate::phonemes::Phonemizer;
use crate::resample::Resampler;

/// What the bus carries: whisper's format, and most satellites'.
pub const OUTPUT_FORMAT: AudioFormat = AudioFormat::PCM16_MONO_16K;

// Piper's reserved symbols: start and end of an utterance, and the pad written after
// every phoneme.
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

/// Spoken once at load, into the void.
const WARM_UP_TEXT: &str = "Ready.";

/// Where a voice's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoiceFiles {
    /// The VITS model, e.g. `models/piper/en_US-joe-medium.onnx`.
    pub model: PathBuf,
    /// Its Piper config; by convention the model path plus `.json`.
    pub config: PathBuf,
    /// The ONNX Runtime shared library (`load-dynamic`).
    pub onnxruntime: PathBuf,
}

impl VoiceFiles {
    /// The model, its config beside it (`<model>.json`), and the runtime library.
    pub fn new(model: impl Into<PathBuf>, onnxruntime: impl Into<PathBuf>) -> Self {
        let model = model.into();
        let mut config = model.clone().into_os_string();
        config.push(".json");
        Self { model, config: config.into(), onnxruntime: onnxruntime.into() }
    }
}

/// Counts model runs; cloned handles share the count, so a test or a metrics exporter
/// can read it while the voice is busy.
#[derive(Clone, Debug, Default)]
pub struct ModelRuns(Arc<AtomicU64>);

impl ModelRuns {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// The part of a Piper `.onnx.json` that synthesis reads.
#[derive(Debug, Deserialize)]
struct PiperJson {
    audio: AudioJson,
    espeak: EspeakJson,
    inference: InferenceJson,
    phoneme_type: Option<String>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct AudioJson {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakJson {
    voice: String,
}

#[derive(Debug, Deserialize)]
struct InferenceJson {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

/// A loaded Piper voice, ready to speak. Clones share the ONNX session, which runs one
/// utterance at a time (a clone waits for the other's run): a stage that dies is
/// rebuilt on the voice already in memory.
#[derive(Clone)]
pub struct PiperVoice {
    name: String,
    sample_rate: u32,
    phonemizer: Phonemizer,
    ids: HashMap<char, Vec<i64>>,
    /// `noise_scale`, `length_scale`, `noise_w`: the model's `scales` input.
    scales: [f32; 3],
    session: Arc<Mutex<Session>>,
    resampler: Resampler,
    runs: ModelRuns,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("name", &self.name)
            .field("sample_rate", &self.sample_rate)
            .field("espeak_voice", &self.phonemizer.voice())
            .field("scales", &self.scales)
            .finish_non_exhaustive()
    }
}

impl PiperVoice {
    /// Loads the voice and speaks one word to warm it up (~0.6 s). `intra_threads` is
    /// ONNX Runtime's thread count for one utterance.
    pub fn load(files: &VoiceFiles, intra_threads: usize) -> Result<Self, TtsError> {
        TtsError::require_file("piper voice model", &files.model)?;
        TtsError::require_file("piper voice config", &files.config)?;
        let json = parse_config(&files.config)?;
        let environment = onnx::environment(&files.onnxruntime)?;

        let model_load = |source: ort::Error| TtsError::ModelLoad { path: files.model.clone(), source };
        let session = Session::builder(&environment)
            .map_err(model_load)?
            .with_intra_threads(intra_threads.max(1))
            .map_err(|err| model_load(err.into()))?
            // Idle ONNX threads spin by default, burning a core the broker shares.
            .with_config_entry("session.intra_op.allow_spinning", "0")
            .map_err(|err| model_load(err.into()))?
            .commit_from_file(&files.model)
            .map_err(model_load)?;
        check_signature(&session, &files.model)?;

        let name = files.model.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        let ids = phoneme_ids_by_char(&json, &files.config)?;
        let InferenceJson { noise_scale, length_scale, noise_w } = json.inference;
        let mut voice = Self {
            name,
            sample_rate: json.audio.sample_rate,
            phonemizer: Phonemizer::new(json.espeak.voice),
            ids,
            scales: [noise_scale, length_scale, noise_w],
            session: Arc::new(Mutex::new(session)),
            resampler: Resampler::new(json.audio.sample_rate, OUTPUT_FORMAT.sample_rate),
            runs: ModelRuns::default(),
        };
        // The first utterance pays for espeak's start-up and ONNX Runtime's first
        // allocations; paying here keeps that out of the first reply, and a broken
        // espeak fails the build instead of that reply. The count starts after it.
        voice.speak(WARM_UP_TEXT)?;
        voice.runs = ModelRuns::default();
        Ok(voice)
    }

    /// The voice's name, from its file (`en_US-joe-medium`); cache keys include it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rate the model speaks at, before resampling (22,050 Hz for medium voices).
    pub fn native_sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// What [`speak`](Self::speak) returns.
    pub fn output_format(&self) -> AudioFormat {
        OUTPUT_FORMAT
    }

    /// A handle on the count of model runs.
    pub fn model_runs(&self) -> ModelRuns {
        self.runs.clone()
    }

    pub fn phonemizer(&self) -> &Phonemizer {
        &self.phonemizer
    }

    /// `text` (one or more sentences) as 16 kHz mono s16le, one model run per sentence.
    pub fn speak(&mut self, text: &str) -> Result<Bytes, TtsError> {
        let mut audio = Vec::new();
        for sentence in self.phonemizer.phonemize(text)? {
            let ids = self.phoneme_ids(&sentence);
            // `^ _ … $`: anything shorter has no phoneme the voice knows.
            if ids.len() > 3 {
                audio.extend(self.infer(ids)?);
            }
        }
        if audio.is_empty() {
            return Err(TtsError::NothingToSay);
        }
        Ok(pcm::to_pcm16(&self.resampler.process(&audio)))
    }

    /// Piper's id sequence for one sentence: `^ _`, each known phoneme's ids then `_`,
    /// then `$`. Phonemes the voice lacks are skipped, as Piper does.
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        let (bos, eos, pad) = (&self.ids[&BOS], &self.ids[&EOS], &self.ids[&PAD]);
        ids.extend(bos);
        ids.extend(pad);
        let mut unknown = 0usize;
        for phoneme in phonemes.nfd() {
            match self.ids.get(&phoneme) {
                Some(known) => {
                    ids.extend(known);
                    ids.extend(pad);
                }
                None => unknown += 1,
            }
        }
        ids.extend(eos);
        if unknown > 0 {
            tracing::debug!(voice = %self.name, unknown, "phonemes missing from the voice were skipped");
        }
        ids
    }

    /// One model run: phoneme ids → samples at the native rate.
    fn infer(&mut self, ids: Vec<i64>) -> Result<Vec<f32>, TtsError> {
        let len = ids.len();
        let input = Tensor::from_array(([1usize, len], ids)).map_err(TtsError::inference)?;
        let lengths = Tensor::from_array(([1usize], vec![len as i64])).map_err(TtsError::inference)?;
        let scales = Tensor::from_array(([3usize], self.scales.to_vec())).map_err(TtsError::inference)?;
        self.runs.increment();
        // A panic elsewhere while holding the lock leaves the session as it was: ONNX
        // Runtime keeps no state between runs.
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session
            .run(ort::inputs!["input" => input, "input_lengths" => lengths, "scales" => scales])
            .map_err(TtsError::inference)?;
        let (_, samples) = outputs[0].try_extract_tensor::<f32>().map_err(TtsError::inference)?;
        if samples.is_empty() {
            return Err(TtsError::inference("the model returned no audio"));
        }
        if samples.iter().any(|s| !s.is_finite()) {
            return Err(TtsError::inference("the model returned non-finite samples"));
        }
        Ok(samples.to_vec())
    }
}

fn parse_config(path: &Path) -> Result<PiperJson, TtsError> {
    let text = std::fs::read_to_string(path).map_err(|err| TtsError::voice_config(path, err))?;
    let json: PiperJson = serde_json::from_str(&text).map_err(|err| TtsError::voice_config(path, err))?;
    if let Some(kind) = json.phoneme_type.as_deref().filter(|kind| *kind != "espeak") {
        return Err(TtsError::voice_config(path, format!("phoneme_type {kind:?} is not supported, only \"espeak\"")));
    }
    if json.num_speakers.unwrap_or(1) > 1 {
        return Err(TtsError::voice_config(path, "multi-speaker voices are not supported"));
    }
    if json.audio.sample_rate == 0 {
        return Err(TtsError::voice_config(path, "audio.sample_rate is 0"));
    }
    Ok(json)
}

/// The id map keyed by character, NFD-normalised like the phonemes looked up in it. A
/// key that decomposes into several characters (`ç`) could never match and is left
/// out; its parts have ids of their own.
fn phoneme_ids_by_char(json: &PiperJson, path: &Path) -> Result<HashMap<char, Vec<i64>>, TtsError> {
    let mut ids = HashMap::with_capacity(json.phoneme_id_map.len());
    for (key, value) in &json.phoneme_id_map {
        let mut chars = key.nfd();
        if let (Some(phoneme), None) = (chars.next(), chars.next()) {
            ids.entry(phoneme).or_insert_with(|| value.clone());
        }
    }
    for reserved in [BOS, EOS, PAD] {
        if ids.get(&reserved).is_none_or(Vec::is_empty) {
            return Err(TtsError::voice_config(path, format!("phoneme_id_map has no id for {reserved:?}")));
        }
    }
    Ok(ids)
}

/// Refuses a model that is not a single-speaker Piper VITS graph, at load time rather
/// than on the first reply.
fn check_signature(session: &Session, path: &Path) -> Result<(), TtsError> {
    let mut inputs: Vec<&str> = session.inputs().iter().map(|input| input.name()).collect();
    inputs.sort_unstable();
    let expected = ["input", "input_lengths", "scales"];
    if inputs != expected || session.outputs().is_empty() {
        return Err(TtsError::voice_config(
            path,
            format!("model inputs are {inputs:?}, a single-speaker piper voice has {expected:?} and one output"),
        ));
    }
    Ok(())
}
