//! Process-wide kernel state beyond memory: interval timers, resource
//! limits, pending signals, prctl flags (`ckpt_image::ProcessState`), and
//! each thread's own pending signals.
//!
//! Runs inside the capture (raw system calls only, no allocation).

use ckpt_image::ProcessState;

/// Fills `state` for the whole process. Called by the coordinator while
/// every thread is parked.
pub fn capture(state: &mut ProcessState) {
    let _ = state;
}

/// The calling thread's own pending signals (bit n-1 for signal n).
/// Called by each thread in its checkpoint handler.
pub fn thread_pending() -> u64 {
    0
}
