//! `alicia ask` and `alicia say`: the voice stages run directly on a file, for people
//! trying the assistant and for checking the models without a bus.

use std::path::{Path, PathBuf};
use std::time::Instant;

use alicia_home::Home;
use alicia_speech::{pcm16k_from_wav, write_wav, WavError};
use alicia_stage_intent::IntentMatcher;
use alicia_stage_stt::WhisperStt;
use alicia_stage_tts::{PiperConfig, OUTPUT_FORMAT};
use anyhow::{bail, Context};

/// Where the models and the home description live.
pub struct VoicePaths {
    pub models: PathBuf,
    pub home: PathBuf,
}

/// Transcribes a spoken request, matches it, and saves the spoken reply.
pub fn ask(paths: &VoicePaths, wav: &Path, site: &str, out: &Path) -> anyhow::Result<()> {
    let home = Home::load(&paths.home).with_context(|| format!("home description {}", paths.home.display()))?;
    if !home.sites.contains_key(site) {
        bail!("unknown site {site:?} (sites in {}: {})", paths.home.display(), home.site_list());
    }
    let pcm = read_wav_16k_mono(wav)?;
    let models = alicia_models::verify_all(&paths.models).context("voice models")?;

    let started = Instant::now();
    let mut stt = WhisperStt::load(&models.whisper, 2)?;
    let mut tts = PiperConfig::from_models_dir(&paths.models).build()?;
    println!("models loaded in {:.0} ms", ms(started));

    let t = Instant::now();
    let transcript = stt.transcribe_s16le(std::slice::from_ref(&pcm))?;
    let stt_ms = ms(t);
    let t = Instant::now();
    let understood = IntentMatcher::new(&home).understand(&transcript.text, site, chrono::Local::now().naive_local());
    let intent_ms = ms(t);
    let t = Instant::now();
    let reply = tts.synthesize(&understood.reply)?;
    let tts_ms = ms(t);

    println!("transcript: {:?} (confidence {:.2})", transcript.text, transcript.confidence);
    println!("intent:     {:?}", understood.intent);
    if understood.commands.is_empty() {
        println!("action:     none");
    }
    for command in &understood.commands {
        println!("action:     {} {}", command.topic(), command.to_json());
    }
    println!("reply:      {:?}", understood.reply);
    println!("latency:    stt {stt_ms:.0} ms · intent {intent_ms:.2} ms · tts {tts_ms:.0} ms");
    save(out, &reply)?;
    Ok(())
}

/// Speaks `text` with the Piper voice into a WAV file.
pub fn say(paths: &VoicePaths, text: &str, out: &Path) -> anyhow::Result<()> {
    alicia_models::verify_all(&paths.models).context("voice models")?;
    let mut tts = PiperConfig::from_models_dir(&paths.models).build()?;
    let t = Instant::now();
    let audio = tts.synthesize(text)?;
    println!("synthesised {:.2} s of audio in {:.0} ms", seconds_of(&audio), ms(t));
    save(out, &audio)
}

fn save(out: &Path, pcm: &[u8]) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
    write_wav(std::io::BufWriter::new(file), pcm, OUTPUT_FORMAT)?;
    println!("saved:      {} ({:.2} s, 16 kHz mono)", out.display(), seconds_of(pcm));
    Ok(())
}

/// Reads a 16-bit PCM WAV at 16 kHz mono, the bus's audio format.
fn read_wav_16k_mono(path: &Path) -> anyhow::Result<bytes::Bytes> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    pcm16k_from_wav(bytes.into()).map_err(|e| match e {
        WavError::Unsupported { .. } => {
            anyhow::anyhow!(
                "{}: {e}: convert it with: sox {} -r 16000 -c 1 -b 16 out.wav",
                path.display(),
                path.display()
            )
        }
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn seconds_of(pcm: &[u8]) -> f64 {
    pcm.len() as f64 / 2.0 / 16_000.0
}
