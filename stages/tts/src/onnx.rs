//! The process's ONNX Runtime: the shared library loaded once from an explicit path,
//! and the one `ort` environment that every session of the process shares.
//!
//! `ort` allows a single environment per process and loads the library only once, so
//! both live here behind a lock rather than in each voice.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::TtsError;

struct Loaded {
    library: PathBuf,
    environment: Environment,
}

static RUNTIME: Mutex<Option<Loaded>> = Mutex::new(None);

/// The environment, loading `library` (e.g. `models/onnxruntime/libonnxruntime.so.1.32.0`)
/// on first use. Later calls with another path get the library already loaded, since a
/// process cannot hold two ONNX Runtimes; that is logged.
pub(crate) fn environment(library: &Path) -> Result<Environment, TtsError> {
    // Checked even when a runtime is loaded: a configured path that does not exist is a
    // setup mistake whichever voice happens to load first.
    TtsError::require_file("ONNX Runtime library", library)?;
    let mut runtime = RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(loaded) = runtime.as_ref() {
        if loaded.library != library {
            tracing::warn!(
                loaded = %loaded.library.display(),
                requested = %library.display(),
                "onnx runtime already loaded; using it"
            );
        }
        return Ok(loaded.environment.clone());
    }
    let failed = |reason: String| TtsError::OnnxRuntime { path: library.to_path_buf(), reason };
    let environment = ort::init_from(library)
        .map_err(|err| failed(err.to_string()))?
        .with_name("alicia-tts")
        .with_telemetry(false)
        .build()
        .map_err(|err| failed(err.to_string()))?;
    *runtime = Some(Loaded { library: library.to_path_buf(), environment: environment.clone() });
    Ok(environment)
}
