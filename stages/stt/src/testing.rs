//! What the tests share: the real model (fetched and converted once by the models
//! step) and speech synthesised by espeak-ng, resampled by sox.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use alicia_models::pinned::WHISPER_TINY_EN;
use bytes::Bytes;

/// The converted Whisper tiny.en under the workspace's `models/` (or
/// `ALICIA_MODELS_DIR`), made by the models step if it is not there yet. A file of the
/// pinned size is taken as is: hashing it is the models crate's test, and slow in a
/// debug build.
pub(crate) fn model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::env::var_os("ALICIA_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
                .join("../../models")
        });
        let path = alicia_models::ModelPaths::under(&dir).whisper;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == WHISPER_TINY_EN.size => path,
            _ => alicia_models::ensure_whisper(&dir, |line| eprintln!("models: {line}"))
                .unwrap_or_else(|err| panic!("the Whisper model is needed: {err}")),
        }
    })
}

/// Held by every test that runs the model. ggml's worker threads spin while they
/// wait, so two transcriptions at once on a small machine take many times longer than
/// two in a row.
pub(crate) fn exclusive() -> MutexGuard<'static, ()> {
    static RUNNING: Mutex<()> = Mutex::new(());
    RUNNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `text` spoken by espeak-ng (en-us, 150 words/min), as s16le mono 16 kHz.
pub(crate) fn speech(text: &str) -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    let (wav, raw) = (dir.path().join("speech.wav"), dir.path().join("speech.raw"));
    run(Command::new("espeak-ng").args(["-v", "en-us", "-s", "150", "-w"]).arg(&wav).arg(text));
    run(Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-L"])
        .arg(&raw));
    Bytes::from(std::fs::read(&raw).unwrap())
}

pub(crate) fn samples(pcm: &[u8]) -> Vec<i16> {
    pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

fn run(command: &mut Command) {
    let status =
        command.status().unwrap_or_else(|err| panic!("{command:?}: {err} (install espeak-ng and sox: `make deps`)"));
    assert!(status.success(), "{command:?}: {status}");
}

/// One clip of recorded human speech from `tests/speech/corpus.tsv`.
pub(crate) struct Recorded {
    pub id: String,
    pub transcript: String,
    /// 16 kHz mono samples.
    pub samples: Vec<i16>,
}

/// The recorded human speech corpus, fetched by `tests/speech/fetch-corpus.sh` into
/// the workspace's `models/speech-corpus` if it is not there yet.
pub(crate) fn recorded_speech() -> Vec<Recorded> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = model().parent().and_then(Path::parent).expect("models/whisper/<file>").join("speech-corpus");
    run(Command::new(root.join("tests/speech/fetch-corpus.sh")).arg(&dir));
    let manifest = std::fs::read_to_string(dir.join("corpus.tsv")).unwrap();
    manifest
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let wav = std::fs::read(dir.join(format!("{}.wav", fields[0]))).unwrap();
            Recorded { id: fields[0].into(), transcript: fields[3].into(), samples: samples(wav_data(&wav)) }
        })
        .collect()
}

/// The `data` chunk of a RIFF WAV file.
fn wav_data(wav: &[u8]) -> &[u8] {
    let mut at = 12;
    while at + 8 <= wav.len() {
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().unwrap()) as usize;
        if &wav[at..at + 4] == b"data" {
            return &wav[at + 8..(at + 8 + size).min(wav.len())];
        }
        at += 8 + size + size % 2;
    }
    panic!("a WAV file without a data chunk")
}
