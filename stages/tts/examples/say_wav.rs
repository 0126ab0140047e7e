//! Writes a reply as a WAV file: `cargo run -p alicia-stage-tts --example say_wav -- "text" out.wav`.

use alicia_speech::write_wav;
use alicia_stage_tts::PiperConfig;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let text = args.next().unwrap_or_else(|| "Turning on the kitchen lights.".to_owned());
    let path = args.next().unwrap_or_else(|| "/tmp/alicia-say.wav".to_owned());
    let mut stage = PiperConfig::from_models_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models")).build()?;
    let pcm = stage.synthesize(&text)?;
    write_wav(std::fs::File::create(&path)?, &pcm, stage.output_format())?;
    println!("{path}: {:?}", stage.output_format().duration_of(pcm.len()));
    Ok(())
}
