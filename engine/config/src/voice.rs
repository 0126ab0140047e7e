//! `[voice]` and `[wyoming]`: the voice data plane (models, home, silences, limits) and
//! the Wyoming server in front of it. The pipeline's finer tunables are in
//! `voice_tuning`, the chat model in `chat`.

use std::net::SocketAddr;

use alicia_auth::Cidr;
use serde::{Deserialize, Serialize};

/// The voice data plane: models and the home they act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSection {
    /// Load the models at start and serve speech (off by default: it needs `make models`
    /// and ~400 MB of memory).
    pub enabled: bool,
    /// Where `alicia models` put them.
    pub models: std::path::PathBuf,
    /// Rooms, devices and sites (`bus-config/home.toml`).
    pub home: std::path::PathBuf,
    /// Threads for Whisper.
    pub stt_threads: usize,
    /// Silence after speech that ends an utterance whose words make a finished request
    /// ("turn on the kitchen lights"): the reply's wait.
    pub hangover_ms: u32,
    /// Silence that ends an utterance whose words sound cut short ("turn on the"): the
    /// time a user may pause mid-sentence.
    pub unfinished_hangover_ms: u32,
    /// Silence after speech at which the transcript and the reply are prepared ahead
    /// (and the words judged finished or not), so they are ready when the hangover
    /// ends; 0 turns that off, and then every utterance ends after `hangover_ms`.
    pub pause_ms: u32,
    /// A started session that sends no audio for this long is closed (as if stopped)
    /// and reported as `session_timeout`.
    pub session_timeout_ms: u64,
    /// Smallest audio frame a site may send (an empty one carries nothing but cost).
    pub min_frame_bytes: usize,
    /// Largest audio frame a site may send (64 KiB is 2 s of 16 kHz speech).
    pub max_frame_bytes: usize,
    /// Longest `session_id` of a start, in bytes; it travels with every frame.
    pub max_session_id_bytes: usize,
    /// Largest start, stop, `tts/request` or `ai/request` envelope the voice parses.
    pub max_envelope_bytes: usize,
    /// Largest seeds-style `stt/request` envelope (its base64 WAV included); 2 MiB
    /// holds the 30 s Whisper hears at once.
    pub max_stt_request_bytes: usize,
    /// Longest text a `tts/request` may ask to be spoken, in characters.
    pub max_tts_text_chars: usize,
    /// Longest question an `ai/request` may ask, in characters.
    pub max_ai_text_chars: usize,
    /// The chat model for what the matcher does not understand (`[voice.chat]`);
    /// absent: off, and such requests get "Sorry, I didn't catch that."
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<crate::chat::VoiceChatSection>,
    /// How speech is told from silence (`[voice.vad]`).
    pub vad: crate::voice_tuning::VoiceVadSection,
    /// The pipeline's Whisper decoding (`[voice.stt]`).
    pub stt: crate::voice_tuning::VoiceSttSection,
    /// The TTS's sentence cache (`[voice.tts]`).
    pub tts: crate::voice_tuning::VoiceTtsSection,
}

impl Default for VoiceSection {
    fn default() -> Self {
        Self {
            enabled: false,
            models: "models".into(),
            home: "bus-config/home.toml".into(),
            stt_threads: 2,
            hangover_ms: 250,
            unfinished_hangover_ms: 700,
            pause_ms: 40,
            session_timeout_ms: 5_000,
            min_frame_bytes: 2,
            max_frame_bytes: 64 << 10,
            max_session_id_bytes: 128,
            max_envelope_bytes: 64 << 10,
            max_stt_request_bytes: 2 << 20,
            max_tts_text_chars: 1_000,
            max_ai_text_chars: 1_000,
            chat: None,
            vad: Default::default(),
            stt: Default::default(),
            tts: Default::default(),
        }
    }
}

/// The Wyoming protocol server (Home Assistant's speech integration); runs when
/// `voice.enabled`. Its limits bound what one client can make it hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingSection {
    pub listen: SocketAddr,
    /// Peers outside every block are closed at accept, before a byte is read.
    pub allow: Vec<Cidr>,
    /// Longest event header line.
    pub max_header_bytes: usize,
    /// Largest extra JSON data of one event.
    pub max_data_bytes: usize,
    /// Largest binary payload of one event (an audio chunk).
    pub max_payload_bytes: usize,
    /// Longest utterance of one `transcribe`, in seconds of its own format.
    pub max_utterance_seconds: u32,
    /// Most bytes of audio of one utterance, whatever its format.
    pub max_utterance_bytes: usize,
    /// Longest `synthesize` text, in characters.
    pub max_text_chars: usize,
    /// Connections at once; one more is refused with `too_many_connections`.
    pub max_connections: usize,
    /// Connections at once from one IP address.
    pub max_connections_per_source: usize,
    /// A connection silent between events this long is closed.
    pub idle_timeout_ms: u64,
    /// An event must arrive whole within this of its first byte.
    pub event_timeout_ms: u64,
}

impl Default for WyomingSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 10300)),
            allow: Cidr::loopback(),
            max_header_bytes: 64 << 10,
            max_data_bytes: 64 << 10,
            max_payload_bytes: 1 << 20,
            max_utterance_seconds: 30,
            max_utterance_bytes: 6 << 20,
            max_text_chars: 1_000,
            max_connections: 32,
            max_connections_per_source: 8,
            idle_timeout_ms: 60_000,
            event_timeout_ms: 10_000,
        }
    }
}
