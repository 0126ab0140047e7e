//! A case: what one connection sends, step by step, and how it leaves; and how a case
//! is written down so a failure can be replayed by hand (`xxd -r -p | nc`).

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// The engine's door a case knocks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Mqtt,
    Wyoming,
}

/// What kind of input a case is; a closed set, so the report has one row for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Random or mutated bytes where the CONNECT should be.
    RawConnect,
    /// A valid CONNECT, then random bytes.
    RawAfterConnect,
    /// Structurally valid but odd MQTT 3.1.1 / 5 packets in a sequence.
    Packets,
    /// Such a sequence with bytes flipped, inserted, dropped or repeated.
    Mutated,
    /// JSON envelopes on `alicia/...` request topics.
    Envelopes,
    /// `alicia/voice/audio/{site}/start|frame|stop` (the voice plane).
    VoiceAudio,
    /// `alicia/voice/stt/request` (base64 WAV) and `alicia/voice/tts/request`.
    VoiceRequests,
    /// Wyoming events (the voice plane's Home Assistant door).
    Wyoming,
}

impl Family {
    pub const ALL: [Family; 8] = [
        Family::RawConnect,
        Family::RawAfterConnect,
        Family::Packets,
        Family::Mutated,
        Family::Envelopes,
        Family::VoiceAudio,
        Family::VoiceRequests,
        Family::Wyoming,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::RawConnect => "raw-connect",
            Family::RawAfterConnect => "raw-after-connect",
            Family::Packets => "packets",
            Family::Mutated => "mutated",
            Family::Envelopes => "envelopes",
            Family::VoiceAudio => "voice-audio",
            Family::VoiceRequests => "voice-requests",
            Family::Wyoming => "wyoming",
        }
    }

    /// Families that only mean something with the voice plane running.
    pub fn needs_voice(self) -> bool {
        matches!(self, Family::VoiceAudio | Family::VoiceRequests | Family::Wyoming)
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Family::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
            format!("unknown family `{s}` ({})", names.join(", "))
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Bytes written at once, or in `chunk`-byte pieces with a yield between (a slow
    /// link: every partial-read path of the engine's decoders).
    Send { bytes: Vec<u8>, chunk: Option<usize> },
    /// Give the engine a moment to act on what it has (answer, route, run a clock).
    Pause(Duration),
    /// Stop reading: what the engine writes to this client backs up.
    StopReading,
}

/// How a case's connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// FIN, after the engine had a moment to answer.
    Close,
    /// RST (SO_LINGER 0): whatever the engine had not read yet is gone.
    Reset,
    /// Our write side shut, the read side open: the engine must close its side.
    HalfClose,
    /// Open and unread for this long, in the background (the case's worker moves on):
    /// a client that went silent without leaving, past the engine's write timeout.
    Hold(Duration),
}

impl Ending {
    fn name(self) -> String {
        match self {
            Ending::Close => "close".into(),
            Ending::Reset => "reset".into(),
            Ending::HalfClose => "half-close".into(),
            Ending::Hold(d) => format!("held unread {} s", d.as_secs()),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub index: u64,
    pub family: Family,
    pub target: Target,
    /// One label per packet or event, in order: the case in words.
    pub labels: Vec<String>,
    pub steps: Vec<Step>,
    pub ending: Ending,
}

impl Case {
    pub(crate) fn new(index: u64, family: Family, target: Target) -> Case {
        Case { index, family, target, labels: Vec::new(), steps: Vec::new(), ending: Ending::Close }
    }

    pub(crate) fn send(&mut self, label: impl Into<String>, bytes: Vec<u8>) {
        self.labels.push(label.into());
        self.steps.push(Step::Send { bytes, chunk: None });
    }

    pub(crate) fn bytes_len(&self) -> usize {
        self.steps.iter().map(|s| if let Step::Send { bytes, .. } = s { bytes.len() } else { 0 }).sum()
    }

    /// One line: index, family, what was sent and how it ended.
    pub(crate) fn describe(&self) -> String {
        const MAX_LABELS: usize = 12;
        let mut labels = self.labels.iter().take(MAX_LABELS).cloned().collect::<Vec<_>>().join(", ");
        if self.labels.len() > MAX_LABELS {
            let _ = write!(labels, ", … ({} more)", self.labels.len() - MAX_LABELS);
        }
        let door = match self.target {
            Target::Mqtt => "mqtt",
            Target::Wyoming => "wyoming",
        };
        format!(
            "#{} {} ({door}, {} B): {labels} → {}",
            self.index,
            self.family.name(),
            self.bytes_len(),
            self.ending.name()
        )
    }

    /// The steps as hex, `max_per_step` bytes of each at most.
    pub(crate) fn hex(&self, max_per_step: usize) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                Step::Send { bytes, chunk } => {
                    let shown = &bytes[..bytes.len().min(max_per_step)];
                    let pieces = chunk.map(|c| format!(" in {c}-byte pieces")).unwrap_or_default();
                    let _ = write!(out, "  send {} B{pieces}: {}", bytes.len(), hex(shown));
                    if shown.len() < bytes.len() {
                        let _ = write!(out, "… (+{} B)", bytes.len() - shown.len());
                    }
                    out.push('\n');
                }
                Step::Pause(d) => {
                    let _ = writeln!(out, "  pause {} ms", d.as_millis());
                }
                Step::StopReading => out.push_str("  stop reading\n"),
            }
        }
        let _ = writeln!(out, "  {}", self.ending.name());
        out
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_and_dumps_a_case() {
        let mut case = Case::new(7, Family::Packets, Target::Mqtt);
        case.send("CONNECT v5", vec![0x10, 0x00]);
        case.steps.push(Step::Pause(Duration::from_millis(3)));
        case.send("PUBLISH qos3", vec![0x36; 40]);
        case.ending = Ending::Reset;
        assert_eq!(case.describe(), "#7 packets (mqtt, 42 B): CONNECT v5, PUBLISH qos3 → reset");
        let dump = case.hex(4);
        assert!(dump.contains("send 2 B: 1000\n"), "{dump}");
        assert!(dump.contains("send 40 B: 36363636… (+36 B)"), "{dump}");
        assert!(dump.contains("pause 3 ms") && dump.ends_with("reset\n"), "{dump}");
    }

    #[test]
    fn family_names_round_trip() {
        for f in Family::ALL {
            assert_eq!(f.name().parse::<Family>(), Ok(f));
        }
        assert!("nope".parse::<Family>().is_err());
    }
}
