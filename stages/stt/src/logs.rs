//! whisper.cpp's and ggml's log lines, in tracing, at levels a person can trust.
//!
//! whisper.cpp prints to stderr by default, and the `tracing` bridge of whisper-rs
//! keeps its levels: the model load's thirty lines of hyperparameters at info, and
//! `whisper_full_with_state: failed to encode` at error each time the pipeline gives
//! up a provisional transcript on purpose (the user went on speaking). So the engine
//! installs its own callback: load chatter goes to debug, warnings stay warnings, and
//! an error that follows a deliberate give-up on the same thread is debug, because
//! nothing failed. Every line has the target `whisper`.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::ffi::{c_char, c_uint, c_void, CStr};
use std::sync::Once;

use whisper_rs::GGMLLogLevel;

thread_local! {
    /// Set when this thread's transcription in progress is being given up on purpose.
    static GIVING_UP: Cell<bool> = const { Cell::new(false) };
}

/// Installs the callback, once per process (whisper.cpp's logger is global).
pub(crate) fn route_to_tracing() {
    static INSTALLED: Once = Once::new();
    // SAFETY: `log_line` is an `extern "C"` function that never unwinds (it catches
    // panics), reads `text` only as the NUL-terminated string whisper.cpp passes, and
    // ignores the user data, which is null.
    INSTALLED.call_once(|| unsafe { whisper_rs::set_log_callback(Some(log_line), std::ptr::null_mut()) });
}

/// This thread's transcription is being given up on purpose (see `give_up.rs`).
pub(crate) fn giving_up() {
    GIVING_UP.with(|flag| flag.set(true));
}

/// A transcription starts or ends on this thread: whatever it logs is news again.
pub(crate) fn clear_giving_up() {
    GIVING_UP.with(|flag| flag.set(false));
}

unsafe extern "C" fn log_line(level: c_uint, text: *const c_char, _user_data: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: whisper.cpp and ggml pass a NUL-terminated string that lives for the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let _ = std::panic::catch_unwind(|| emit(GGMLLogLevel::from(level), text.trim()));
}

fn emit(level: GGMLLogLevel, text: &str) {
    if text.is_empty() {
        return;
    }
    match level {
        GGMLLogLevel::Error if GIVING_UP.with(Cell::get) => {
            tracing::debug!(target: "whisper", "{text} (the transcription was given up on purpose)");
        }
        GGMLLogLevel::Error => tracing::error!(target: "whisper", "{text}"),
        GGMLLogLevel::Warn => tracing::warn!(target: "whisper", "{text}"),
        GGMLLogLevel::Info | GGMLLogLevel::Unknown(_) => tracing::debug!(target: "whisper", "{text}"),
        GGMLLogLevel::Debug | GGMLLogLevel::Cont | GGMLLogLevel::None => tracing::trace!(target: "whisper", "{text}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    use crate::testing::{exclusive, model, speech};
    use crate::{SttError, WhisperModel, WhisperStt};

    /// Everything tracing prints on this thread while `run` runs, levels included.
    fn logged(run: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let buffer = Arc::clone(&buffer);
            move || Writer(Arc::clone(&buffer))
        };
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(writer)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text
    }

    struct Writer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_deliberate_give_up_is_not_an_error_and_a_real_run_logs_none() {
        let _only_model = exclusive();
        let audio = speech("turn on the kitchen lights");
        let log = logged(|| {
            let model = WhisperModel::load(model()).unwrap();
            let mut stt = WhisperStt::new(&model, 2).unwrap();
            let given_up = AtomicBool::new(true);
            let outcome = stt.transcribe_s16le_unless(std::slice::from_ref(&audio), &given_up);
            assert!(matches!(outcome, Err(SttError::GivenUp)), "{outcome:?}");
            let heard = stt.transcribe_s16le(std::slice::from_ref(&audio)).unwrap();
            assert!(heard.text.to_lowercase().contains("kitchen"), "{}", heard.text);
        });
        assert!(
            log.lines().any(|line| line.contains("DEBUG")
                && line.contains("failed to encode (the transcription was given up on purpose)")),
            "the give-up is logged, at debug:\n{log}"
        );
        assert!(!log.lines().any(|line| line.contains("ERROR") || line.contains("WARN")), "{log}");
        assert!(log.lines().any(|line| line.contains("whisper:")), "whisper.cpp's lines carry the target:\n{log}");
    }
}
