//! Giving up a transcription mid-way: whisper.cpp polls an abort callback between the
//! steps of its computation, and this one reads an `AtomicBool` the caller owns. The
//! one place the crate crosses into C by hand, kept here so it can be read in one go.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use whisper_rs::FullParams;

/// Makes the `full` call run with `params` stop as soon as `flag` is set. The caller
/// keeps `flag` alive until that call returns: `params` holds a raw pointer to it.
pub(crate) fn give_up_when(params: &mut FullParams<'_, '_>, flag: &AtomicBool) {
    // SAFETY: the callback only reads through the pointer, as an `AtomicBool`, and the
    // caller (`WhisperStt::run`) borrows the flag for the whole `full` call, the only
    // time whisper.cpp calls it.
    unsafe {
        params.set_abort_callback(Some(flag_is_set));
        params.set_abort_callback_user_data(std::ptr::from_ref(flag).cast_mut().cast::<c_void>());
    }
}

/// whisper.cpp's abort callback: `flag` is the pointer `give_up_when` registered.
unsafe extern "C" fn flag_is_set(flag: *mut c_void) -> bool {
    // SAFETY: see `give_up_when`: a live `AtomicBool`, only read.
    let set = unsafe { (*flag.cast::<AtomicBool>()).load(Ordering::Relaxed) };
    if set {
        // whisper.cpp is about to log the stop as a failure, on this thread: it is not one.
        crate::logs::giving_up();
    }
    set
}
