//! [`SpeechBackend`]: what the server needs from the engine's models, and
//! [`AudioOut`], where synthesis sends its audio.

use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::BackendError;

/// The engine's speech models as the Wyoming server sees them. Both calls may block
/// for as long as a model runs: the server calls them on tokio's blocking pool, one
/// request per connection at a time, so a backend shared by many connections decides
/// itself how many run at once.
pub trait SpeechBackend: Send + Sync + 'static {
    /// 16 kHz s16le mono PCM of one utterance → transcript text. `client_gone` is set
    /// when the client leaves before the transcript: a backend checks it before waiting
    /// for a model and, where the model allows, while it runs, and gives up (any error
    /// will do: nobody reads it).
    fn transcribe(&self, pcm: Bytes, client_gone: &AtomicBool) -> Result<String, BackendError>;

    /// Text → 16 kHz s16le mono PCM, sentence by sentence into `out`: each sentence
    /// goes to the client while the next is synthesised. A backend checks
    /// [`AudioOut::wanted`] before each sentence (and before waiting for a model) and
    /// stops as soon as the client has gone, so no model works for nobody.
    fn synthesize(&self, text: &str, out: &mut AudioOut) -> Result<(), BackendError>;
}

/// The client has gone: the rest of the audio is not wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client has gone")]
pub struct ClientGone;

/// The way from a synthesising backend (on a blocking thread) to the client's
/// connection: bounded, so a backend runs at most a few sentences ahead of a slow
/// client, and closed by the connection once the client is gone.
#[derive(Debug)]
pub struct AudioOut {
    tx: mpsc::Sender<Bytes>,
}

impl AudioOut {
    /// An `AudioOut` and the receiving end, holding up to `ahead` sentences.
    pub fn channel(ahead: usize) -> (AudioOut, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(ahead.max(1));
        (AudioOut { tx }, rx)
    }

    /// Whether the client still waits for audio.
    pub fn wanted(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Sends one piece of PCM (whole 16-bit samples), waiting while the client is
    /// `ahead` sentences behind. Blocks: call it from the backend's thread only.
    pub fn send(&mut self, pcm: Bytes) -> Result<(), ClientGone> {
        self.tx.blocking_send(pcm).map_err(|_| ClientGone)
    }
}
