//! `alicia.toml` on disk, the source of truth: read with its environment overlay and the
//! command line's overrides (the effective config), written back atomically.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alicia_config::{AliciaConfig, ConfigErrors, IoBackend};

/// What `alicia serve`'s flags put over the file; they stay over it on every reload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub mqtt_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub wyoming_listen: Option<SocketAddr>,
    pub io: Option<IoBackend>,
    pub home: Option<PathBuf>,
    pub storage_dir: Option<PathBuf>,
}

impl Overrides {
    fn apply(&self, config: &mut AliciaConfig) {
        if let Some(addr) = self.mqtt_listen {
            config.mqtt.listen = addr;
        }
        if let Some(addr) = self.http_listen {
            config.http.listen = addr;
        }
        if let Some(addr) = self.wyoming_listen {
            config.wyoming.listen = addr;
        }
        if let Some(io) = self.io {
            config.mqtt.io = io;
        }
        if let Some(home) = &self.home {
            config.voice.home = home.clone();
        }
        if let Some(dir) = &self.storage_dir {
            config.storage.dir = Some(dir.clone());
        }
    }
}

/// Where the engine's configuration comes from.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// `environments/<name>.toml` beside the file, laid over it (never written).
    pub environment: Option<String>,
    pub overrides: Overrides,
}

impl ConfigFile {
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile { path: path.into(), environment: None, overrides: Overrides::default() }
    }

    /// The file's bytes as they are now.
    pub fn read_text(&self) -> Result<String, ConfigErrors> {
        std::fs::read_to_string(&self.path)
            .map_err(|e| one_error("<file>", format!("cannot read {}: {e}", self.path.display())))
    }

    /// The effective config the file would give: `text` as the base file, the overlay,
    /// the flags, and every rule checked; every error at once.
    pub fn effective(&self, text: &str) -> Result<AliciaConfig, ConfigErrors> {
        let mut config =
            AliciaConfig::load_text(text, &self.path, self.environment.as_deref()).map_err(|e| e.errors())?;
        self.overrides.apply(&mut config);
        // A flag may have moved a door off loopback: the same rules as the file.
        config.check()?;
        Ok(config)
    }

    /// Loads the file as `alicia serve` does at start.
    pub fn load(&self) -> Result<AliciaConfig, ConfigErrors> {
        self.effective(&self.read_text()?)
    }

    /// Replaces the file with `text` so that a crash leaves either the old file or the
    /// new one, never a mix: a temporary file in the same directory, synced, renamed
    /// over it, and the directory synced so the rename itself is on disk. The file's
    /// permissions are kept.
    pub fn write_atomically(&self, text: &str) -> std::io::Result<()> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(text.as_bytes())?;
            if let Ok(meta) = std::fs::metadata(&self.path) {
                file.set_permissions(meta.permissions())?;
            }
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)?;
            sync_dir(&dir)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

pub(crate) fn one_error(path: &str, message: String) -> ConfigErrors {
    ConfigErrors(vec![alicia_config::ConfigError { path: path.into(), message }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alicia.toml");
        std::fs::write(&path, "# old\n").unwrap();
        let file = ConfigFile::new(&path);
        file.write_atomically("# new\n[limits]\nmax_connections = 5\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# new\n[limits]\nmax_connections = 5\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("alicia.toml")]);
        assert_eq!(file.load().unwrap().limits.max_connections, 5);
    }

    #[test]
    fn flags_stay_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alicia.toml");
        std::fs::write(&path, "[mqtt]\nlisten = \"127.0.0.1:1883\"\n[storage]\ndir = \"data/store\"\n").unwrap();
        let mut file = ConfigFile::new(&path);
        file.overrides.mqtt_listen = Some("127.0.0.1:0".parse().unwrap());
        file.overrides.storage_dir = Some(dir.path().join("elsewhere"));
        let loaded = file.load().unwrap();
        assert_eq!(loaded.mqtt.listen.port(), 0);
        assert_eq!(loaded.storage.dir, Some(dir.path().join("elsewhere")));
    }
}
