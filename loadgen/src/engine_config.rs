//! An engine config for one run: the checkout's config, its environment overlay merged
//! in, and the run's overrides (e.g. `limits.max_connections` for 10,000 idle
//! connections), written as one file so the engine is started without `--env`.
//!
//! The engine's own loader does the same merge (overlay values replace base values at
//! the same path); doing it here keeps the overlay and the overrides in one file the
//! report can point at, and leaves the checkout's files untouched.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use toml::{Table, Value};

/// A dotted key path and the value it gets.
pub type Override = (String, Value);

/// Writes `<dir>/alicia.toml`: `base` + `environments/<env>.toml` beside it + `overrides`.
pub fn write(base: &Path, env: Option<&str>, overrides: &[Override], dir: &Path) -> Result<PathBuf> {
    let mut config = read(base)?;
    if let Some(env) = env {
        let overlay = base.parent().unwrap_or(Path::new(".")).join("environments").join(format!("{env}.toml"));
        merge(&mut config, read(&overlay)?);
    }
    for (path, value) in overrides {
        set(&mut config, path, value.clone())?;
    }
    let out = dir.join("alicia.toml");
    fs::write(&out, toml::to_string(&config)?).with_context(|| format!("write {}", out.display()))?;
    Ok(out)
}

/// The checkout a config belongs to: `<repo>/bus-config/alicia.toml` → `<repo>`; relative
/// paths in it (models, home) resolve against this.
pub fn repo_of(config: &Path) -> PathBuf {
    let abs = config.canonicalize().unwrap_or_else(|_| config.to_path_buf());
    abs.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn read(path: &Path) -> Result<Table> {
    let text = fs::read_to_string(path).with_context(|| format!("read engine config {}", path.display()))?;
    text.parse::<Table>().with_context(|| format!("parse {}", path.display()))
}

fn merge(base: &mut Table, overlay: Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn set(config: &mut Table, path: &str, value: Value) -> Result<()> {
    let mut keys: Vec<&str> = path.split('.').collect();
    let Some(last) = keys.pop() else { bail!("empty config key") };
    let mut table = config;
    for key in keys {
        let entry = table.entry(key.to_string()).or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => bail!("config key {path}: {key} is not a table"),
        };
    }
    table.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlay_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("environments")).unwrap();
        let base = dir.path().join("base.toml");
        fs::write(&base, "[limits]\nmax_connections = 1000\nmax_queued_messages = 7\n[voice]\nenabled = false\n")
            .unwrap();
        fs::write(dir.path().join("environments/development.toml"), "[voice]\nenabled = true\n").unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let overrides = [("limits.max_connections".to_string(), Value::Integer(10_100))];
        let written = write(&base, Some("development"), &overrides, out_dir.path()).unwrap();
        let config = read(&written).unwrap();
        assert_eq!(config["limits"]["max_connections"].as_integer(), Some(10_100));
        assert_eq!(config["limits"]["max_queued_messages"].as_integer(), Some(7));
        assert_eq!(config["voice"]["enabled"].as_bool(), Some(true));
        assert!(write(&base, Some("moon"), &[], out_dir.path()).is_err());
    }
}
