//! [`SpeechBackend`]: what the server needs from the engine's models.

use bytes::Bytes;

use crate::error::BackendError;

/// The engine's speech models as the Wyoming server sees them. Both calls may block
/// for as long as a model runs: the server calls them on tokio's blocking pool, one
/// request per connection at a time, so a backend shared by many connections decides
/// itself how many run at once.
pub trait SpeechBackend: Send + Sync + 'static {
    /// 16 kHz s16le mono PCM of one utterance → transcript text.
    fn transcribe(&self, pcm: Bytes) -> Result<String, BackendError>;

    /// Text → 16 kHz s16le mono PCM, sentence by sentence: each `emit` is sent to the
    /// client before the next sentence is synthesised. `emit` never fails; once the
    /// client is gone the rest of the audio is dropped.
    fn synthesize(&self, text: &str, emit: &mut dyn FnMut(Bytes)) -> Result<(), BackendError>;
}
