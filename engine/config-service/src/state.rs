//! The configuration in force and the one on disk, and the two ways they change: an
//! update from the bus (merged, checked, applied, written) and a reload of the file
//! (SIGHUP). One at a time: both hold the state's lock from reading the file to
//! writing it.

use std::collections::BTreeMap;

use alicia_config::{AliciaConfig, ConfigErrors};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::changes::{changed_paths, is_live, with_live_parts};
use crate::file::{one_error, ConfigFile};
use crate::merge::{self, Change};
use crate::redact::redact;

/// What the engine does to put the live keys of a config in force.
pub trait Reconfigure: Send + Sync {
    /// Puts `next` in force in place of `current`; `changed` are the live paths that
    /// differ. All or nothing: an error leaves `current` in force.
    fn apply(&self, current: &AliciaConfig, next: &AliciaConfig, changed: &[String]) -> Result<(), String>;
}

/// How an update or a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every change is in force.
    Applied,
    /// Written; some changes take effect at the next restart (`restart_required`).
    Accepted,
    /// Nothing differs from what is in force and on disk.
    Unchanged,
    /// Not applied, not written: `errors` says why; the old config stays.
    Refused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Accepted => "accepted",
            Status::Unchanged => "unchanged",
            Status::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    /// Live keys put in force by this change.
    pub applied: Vec<String>,
    /// Keys that differ from what runs and wait for a restart.
    pub restart_required: Vec<String>,
    pub errors: ConfigErrors,
}

impl Outcome {
    pub fn refused_with(errors: ConfigErrors) -> Outcome {
        Outcome { status: Status::Refused, applied: Vec::new(), restart_required: Vec::new(), errors }
    }

    pub fn to_json(&self) -> Value {
        let errors: Vec<Value> = self.errors.iter().map(|e| json!({ "path": e.path, "message": e.message })).collect();
        json!({
            "status": self.status.as_str(),
            "applied": self.applied,
            "restart_required": self.restart_required,
            "errors": errors,
        })
    }
}

struct Inner {
    /// What the running engine uses.
    in_force: AliciaConfig,
    /// What the file (with overlay and flags) says; differs from `in_force` by the
    /// changes that wait for a restart.
    on_disk: AliciaConfig,
}

/// The config service's state, shared by the bus service and SIGHUP.
pub struct ConfigState {
    file: Option<ConfigFile>,
    live: Box<dyn Reconfigure>,
    inner: Mutex<Inner>,
}

impl ConfigState {
    /// `config` is what the engine started with, loaded from `file` when there is one.
    pub fn new(config: AliciaConfig, file: Option<ConfigFile>, live: Box<dyn Reconfigure>) -> ConfigState {
        ConfigState { file, live, inner: Mutex::new(Inner { in_force: config.clone(), on_disk: config }) }
    }

    pub fn file(&self) -> Option<&ConfigFile> {
        self.file.as_ref()
    }

    /// The config in force.
    pub fn in_force(&self) -> AliciaConfig {
        self.inner.lock().in_force.clone()
    }

    /// The effective config as JSON, secrets redacted, cut to `sections` (all when
    /// `None`), with the keys that wait for a restart.
    pub fn view(&self, sections: Option<&[&str]>) -> Value {
        let inner = self.inner.lock();
        let mut config = serde_json::to_value(&inner.in_force).unwrap_or(Value::Null);
        if let (Some(sections), Value::Object(all)) = (sections, &mut config) {
            all.retain(|name, _| sections.contains(&name.as_str()));
        }
        redact(&mut config);
        let pending = changed_paths(&inner.in_force, &inner.on_disk);
        json!({
            "config": config,
            "restart_required": pending,
            "file": self.file.as_ref().map(|f| f.path.display().to_string()),
            "environment": self.file.as_ref().and_then(|f| f.environment.clone()),
        })
    }

    /// An update from the bus: laid over the file, checked as a whole (every error
    /// listed), the live part applied, the file written back atomically. A refused
    /// update changes nothing, on disk or in force.
    pub(crate) fn update(&self, changes: &BTreeMap<String, Change>) -> Outcome {
        let Some(file) = &self.file else {
            return Outcome::refused_with(one_error(
                "<file>",
                "the engine was started without a configuration file: there is nothing to update".into(),
            ));
        };
        let mut inner = self.inner.lock();
        let text = match file.read_text() {
            Ok(text) => text,
            Err(errors) => return Outcome::refused_with(errors),
        };
        let new_text = match merge::apply(&text, changes) {
            Ok(new_text) => new_text,
            Err(errors) => return Outcome::refused_with(errors),
        };
        let wanted = match file.effective(&new_text) {
            Ok(wanted) => wanted,
            Err(errors) => return Outcome::refused_with(errors),
        };
        let before = inner.in_force.clone();
        let outcome = match self.put_in_force(&mut inner, wanted) {
            Ok(outcome) => outcome,
            Err(errors) => return Outcome::refused_with(errors),
        };
        if new_text != text {
            if let Err(e) = file.write_atomically(&new_text) {
                // What is in force must match a file: put the old config back.
                let next = std::mem::replace(&mut inner.in_force, before.clone());
                if let Err(undo) = self.live.apply(&next, &before, &outcome.applied) {
                    tracing::error!(error = %undo, "config: cannot restore the old config after a failed write");
                }
                return Outcome::refused_with(one_error(
                    "<file>",
                    format!("cannot write {}: {e}", file.path.display()),
                ));
            }
        }
        outcome
    }

    /// Re-reads the file (SIGHUP) and puts its live part in force. A broken file
    /// changes nothing and every error is returned.
    pub fn reload(&self) -> Result<Outcome, ConfigErrors> {
        let Some(file) = &self.file else {
            return Ok(Outcome {
                status: Status::Unchanged,
                applied: Vec::new(),
                restart_required: Vec::new(),
                errors: ConfigErrors::default(),
            });
        };
        let mut inner = self.inner.lock();
        let wanted = file.load()?;
        self.put_in_force(&mut inner, wanted)
    }

    fn put_in_force(&self, inner: &mut Inner, wanted: AliciaConfig) -> Result<Outcome, ConfigErrors> {
        let changed = changed_paths(&inner.in_force, &wanted);
        let (applied, restart_required): (Vec<String>, Vec<String>) = changed.into_iter().partition(|p| is_live(p));
        let next = with_live_parts(&inner.in_force, &wanted);
        if !applied.is_empty() {
            self.live.apply(&inner.in_force, &next, &applied).map_err(|e| one_error("<apply>", e))?;
        }
        let status = match (applied.is_empty(), restart_required.is_empty()) {
            (_, false) => Status::Accepted,
            (false, true) => Status::Applied,
            (true, true) if inner.on_disk == wanted => Status::Unchanged,
            (true, true) => Status::Applied,
        };
        inner.in_force = next;
        inner.on_disk = wanted;
        Ok(Outcome { status, applied, restart_required, errors: ConfigErrors::default() })
    }
}
