//! Giving up a transcription mid-way: whisper.cpp polls an abort callback between the
//! steps of its computation, and this one reads an `AtomicBool` the caller owns. The
//! one place the crate crosses into C by hand, kept here so it can be read in one go.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use whisper_rs::FullParams;

/// When a `full` call stops early: the caller's flag is set (its result is no longer
/// wanted), a deadline passed (a fallback pass over its budget), or work that must
/// come first is waiting (`yield_to` above 0: another session's end of speech).
pub(crate) struct GiveUp<'a> {
    pub(crate) flag: Option<&'a AtomicBool>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) yield_to: Option<&'a AtomicUsize>,
}

impl GiveUp<'_> {
    pub(crate) fn now(&self) -> bool {
        self.flag.is_some_and(|f| f.load(Ordering::Relaxed))
            || self.deadline.is_some_and(|d| Instant::now() >= d)
            || self.yielding()
    }

    pub(crate) fn yielding(&self) -> bool {
        self.yield_to.is_some_and(|waiting| waiting.load(Ordering::Relaxed) > 0)
    }
}

/// Makes the `full` call run with `params` stop as soon as `when` says so. The caller
/// keeps `when` alive until that call returns: `params` holds a raw pointer to it.
pub(crate) fn give_up_when(params: &mut FullParams<'_, '_>, when: &GiveUp<'_>) {
    // SAFETY: the callback only reads through the pointer, as a `GiveUp`, and the
    // caller (`WhisperStt::decode`) borrows it for the whole `full` call, the only time
    // whisper.cpp calls it.
    unsafe {
        params.set_abort_callback(Some(should_stop));
        params.set_abort_callback_user_data(std::ptr::from_ref(when).cast_mut().cast::<c_void>());
    }
}

/// whisper.cpp's abort callback: `when` is the pointer `give_up_when` registered.
unsafe extern "C" fn should_stop(when: *mut c_void) -> bool {
    // SAFETY: see `give_up_when`: a live `GiveUp`, only read.
    let stop = unsafe { (*when.cast::<GiveUp<'_>>()).now() };
    if stop {
        // whisper.cpp is about to log the stop as a failure, on this thread: it is not one.
        crate::logs::giving_up();
    }
    stop
}
