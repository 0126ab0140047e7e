//! The engine's side of the config service: how the live keys of an update or a
//! SIGHUP are put in force (`[security]` and `[limits]` through the broker, `[voice]`'s
//! settings by rebuilding the pipeline, the log filter through the binary's reload
//! handle), and the service started on the bus.

use std::sync::Arc;

use alicia_broker::BrokerControl;
use alicia_config::AliciaConfig;
use alicia_config_service::{ConfigFile, Reconfigure};

/// Replaces the process's log filter with these directives (`engine.log_level`).
pub type LogFilter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Where the config came from and what the engine may change live besides the broker.
#[derive(Default, Clone)]
pub struct Live {
    /// The file the config was loaded from: updates are written to it, SIGHUP re-reads
    /// it. Without one, requests are answered and updates refused.
    pub file: Option<ConfigFile>,
    /// The log filter's reload handle; without one (an engine embedded in a program
    /// that owns its logging) `engine.log_level` changes are kept but change nothing.
    pub log: Option<LogFilter>,
}

pub(crate) struct EngineReconfigure {
    pub broker: BrokerControl,
    /// `[voice]`'s settings for the pipeline, which rebuilds itself with a new value.
    pub voice: tokio::sync::watch::Sender<alicia_voice_bus::VoiceSettings>,
    pub log: Option<LogFilter>,
}

impl Reconfigure for EngineReconfigure {
    fn apply(&self, current: &AliciaConfig, next: &AliciaConfig, changed: &[String]) -> Result<(), String> {
        // The log filter was checked with the config and cannot fail here; the security
        // files are read now and can, so they go first and an error leaves everything.
        // The limits can only be refused (a `max_connections` past the file descriptor
        // limit) before anything of them changes; a refusal puts the old security back.
        if changed.iter().any(|path| path.starts_with("security.")) {
            self.broker.apply_security(&next.security)?;
        }
        if changed.iter().any(|path| path.starts_with("limits.") || path.starts_with("mqtt.")) {
            if let Err(e) = self.broker.apply_limits(next) {
                if next.security != current.security {
                    let _ = self.broker.apply_security(&current.security);
                }
                return Err(e);
            }
        }
        if changed.iter().any(|path| path.starts_with("voice.")) {
            // Without the voice on, nobody listens; the value is kept for nobody.
            self.voice.send_replace(crate::speech::voice_settings(next));
        }
        if next.engine.log_level != current.engine.log_level {
            if let Some(log) = &self.log {
                log(&next.engine.log_level)?;
            }
        }
        Ok(())
    }
}
