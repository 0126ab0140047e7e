//! The engine with its voice on, started like `hostile` starts it ([`EngineProcess`]) but
//! with the `--env development` overlay, the repository as working directory (the
//! config's `models/` are relative to it) and the home loadgen measures with passed as
//! `--home`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::engine_config::repo_of;
use crate::engine_process::{EngineLaunch, EngineProcess};

pub fn start(alicia_bin: &Path, config: &Path, home: &Path, timeout: Duration) -> Result<EngineProcess> {
    let repo = repo_of(config);
    let models = repo.join("models");
    if !models.is_dir() {
        bail!("voice models missing: {} does not exist (run `make models`)", models.display());
    }
    EngineProcess::start(&EngineLaunch {
        bin: alicia_bin.to_path_buf(),
        config: config.to_path_buf(),
        env: Some("development".into()),
        cwd: repo,
        extra_args: vec!["--home".into(), home.display().to_string()],
        fresh_store: true,
        startup_timeout: timeout,
        envs: Vec::new(),
    })
}
