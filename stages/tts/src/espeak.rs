//! libespeak-ng: the one module of this crate that calls C.
//!
//! libespeak-ng keeps its state (voice, translator, the phoneme buffer it returns) in
//! globals, so every call goes through one process-wide lock and the returned C string
//! is copied before the lock is released.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Mutex, MutexGuard};

use crate::error::TtsError;

// From <espeak-ng/speak_lib.h> (API revision 12, libespeak-ng 1.51).
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(textptr: *mut *const c_void, textmode: c_int, phonememode: c_int) -> *const c_char;
}

/// What the lock guards: whether espeak is initialised and which voice is selected.
struct Espeak {
    voice: Option<String>,
}

static ESPEAK: Mutex<Option<Espeak>> = Mutex::new(None);

/// One clause as espeak split it: its IPA phonemes and the bytes of `text` it
/// consumed, from which the caller recovers the clause's punctuation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawClause {
    pub(crate) ipa: String,
    pub(crate) text: std::ops::Range<usize>,
}

/// IPA phonemes of `text`, clause by clause, in `voice` (e.g. `en-us`).
pub(crate) fn text_to_phonemes(voice: &str, text: &str) -> Result<Vec<RawClause>, TtsError> {
    // A NUL would end the C string early and silently drop the rest of the reply.
    let c_text = CString::new(text.replace('\0', " ")).map_err(|err| TtsError::phonemizer(err.to_string()))?;
    let mut guard = lock();
    let espeak = initialised(&mut guard)?;
    select_voice(espeak, voice)?;

    let start = c_text.as_ptr();
    let end_offset = c_text.as_bytes().len();
    let mut cursor: *const c_void = start.cast();
    let mut consumed = 0;
    let mut clauses = Vec::new();
    while !cursor.is_null() {
        // SAFETY: `cursor` points into `c_text`, a NUL-terminated buffer alive for this
        // whole loop; espeak reads up to the NUL and either advances `cursor` within the
        // buffer or sets it to null at the end. The lock serialises all espeak calls.
        let ipa = unsafe { espeak_TextToPhonemes(&mut cursor, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA) };
        let next = if cursor.is_null() {
            end_offset
        } else {
            // Address arithmetic, not pointer arithmetic: no assumption about where
            // espeak left the cursor, and clamped to the text.
            (cursor as usize).saturating_sub(start as usize).min(end_offset)
        };
        let ipa = if ipa.is_null() {
            String::new()
        } else {
            // SAFETY: espeak returns a NUL-terminated string in its own static buffer,
            // valid until the next espeak call, which the lock held here rules out; it
            // is copied out before the lock is released.
            unsafe { CStr::from_ptr(ipa) }.to_string_lossy().into_owned()
        };
        clauses.push(RawClause { ipa, text: consumed..next });
        if next <= consumed && !cursor.is_null() {
            // espeak made no progress: stop rather than spin.
            break;
        }
        consumed = next;
    }
    Ok(clauses)
}

fn lock() -> MutexGuard<'static, Option<Espeak>> {
    // A panic while holding the lock leaves espeak's globals as consistent as espeak
    // leaves them between calls; carrying on is better than failing every reply.
    ESPEAK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn initialised<'a>(guard: &'a mut MutexGuard<'static, Option<Espeak>>) -> Result<&'a mut Espeak, TtsError> {
    if guard.is_none() {
        // SAFETY: called once, under the lock; a null path means espeak's compiled-in
        // data directory, and DONT_EXIT keeps espeak from calling exit() on a missing
        // data directory.
        let rate =
            unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), ESPEAK_INITIALIZE_DONT_EXIT) };
        if rate <= 0 {
            return Err(TtsError::phonemizer(format!(
                "espeak_Initialize failed ({rate}): is espeak-ng-data installed (`make deps`)?"
            )));
        }
        **guard = Some(Espeak { voice: None });
    }
    Ok(guard.as_mut().expect("initialised above"))
}

fn select_voice(espeak: &mut Espeak, voice: &str) -> Result<(), TtsError> {
    if espeak.voice.as_deref() == Some(voice) {
        return Ok(());
    }
    let name = CString::new(voice).map_err(|_| TtsError::phonemizer(format!("voice name {voice:?} has a NUL")))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call;
    // espeak copies what it keeps. Called under the lock.
    let status = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
    if status != EE_OK {
        return Err(TtsError::phonemizer(format!("espeak-ng has no voice {voice:?} (status {status})")));
    }
    espeak.voice = Some(voice.to_owned());
    Ok(())
}
