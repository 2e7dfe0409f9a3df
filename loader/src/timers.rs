//! Restoring the POSIX timers (`ckpt_image::timers`) under the ids they
//! had: the program keeps its `timer_t` values (glibc's SIGEV_THREAD timers
//! hold the kernel's id in their own memory) and uses them as before.
//!
//! Linux 6.15+ creates a timer under a chosen id while
//! `PR_TIMER_CREATE_RESTORE_IDS` is on (the id is read from `timer_create`'s
//! third argument); on older kernels timers are made in id order until the
//! kernel hands out the one wanted, and the fillers are deleted at the end
//! (the kernel gives ids in increasing order in a process that has none).
//!
//! Called once every thread exists (a `SIGEV_THREAD_ID` timer's thread
//! must) and before any runs program code; every signal is blocked, so a
//! timer that expires at once has its signal pending until the threads'
//! own masks come back. A relative timer goes on with the time it had left
//! at the checkpoint, its period kept. What cannot be restored is said in
//! one `restart: warning:` line and left out.

use core::fmt::Write;

use ckpt_image::timers::{PosixTimer, SIGEV_THREAD_ID};
use ckpt_image::Meta;
use ckpt_sys::msg::Line;
use ckpt_sys::timers::{self as t, ITimerSpec, SigEvent};
use ckpt_sys::{self as sys, Errno};

use crate::threads;

/// Attempts at most, per timer, to reach its id on a kernel without
/// restore-ids mode.
const MAX_FILLERS: u32 = 1 << 16;

pub fn restore(meta: &Meta) {
    let timers = meta.timers();
    if timers.is_empty() {
        return;
    }
    let exact = t::restore_ids(true).is_ok();
    let mut fillers_up_to = None;
    for timer in timers.iter() {
        let made = sigevent(&timer).and_then(|ev| {
            if exact {
                create_exact(&timer, &ev)
            } else {
                create_in_order(&timer, &ev, &mut fillers_up_to)
            }
        });
        let armed = made.and_then(|()| match timer.value_ns {
            0 => Ok(()),
            left => t::set(timer.id as i32, &ITimerSpec::from_ns(left, timer.interval_ns)).map(drop),
        });
        if let Err(e) = armed {
            let mut l = Line::new();
            let _ = write!(l, "restart: warning: cannot restore POSIX timer {}: ", timer.id);
            let _ = write!(l, "{} ({})", sys::errno_text(e), sys::errno_name(e));
            l.emit();
        }
    }
    if exact {
        let _ = t::restore_ids(false);
    }
    if let Some(last) = fillers_up_to {
        for id in (0..=last).filter(|&id| !timers.iter().any(|x| x.id == id)) {
            let _ = t::delete(id as i32);
        }
    }
}

/// The timer's sigevent; a thread-directed one goes to its thread's tid now
/// (the same one, but in the new-pids fallback).
fn sigevent(timer: &PosixTimer) -> Result<SigEvent, Errno> {
    let tid = match timer.notify & SIGEV_THREAD_ID {
        0 => 0,
        _ => threads::tid_now(timer.tid).ok_or(Errno::ESRCH)?,
    };
    Ok(SigEvent {
        value: timer.value,
        signo: timer.signal as i32,
        notify: timer.notify as i32,
        tid: tid as i32,
        ..Default::default()
    })
}

fn create_exact(timer: &PosixTimer, ev: &SigEvent) -> Result<(), Errno> {
    let mut id = timer.id as i32;
    t::create(timer.clock, ev, &mut id)?;
    if id == timer.id as i32 {
        Ok(())
    } else {
        let _ = t::delete(id);
        Err(Errno::EBUSY)
    }
}

/// Creates timers until the kernel gives `timer`'s id; the ones before it
/// are fillers, deleted at the end (`fillers_up_to`: the highest id made).
fn create_in_order(timer: &PosixTimer, ev: &SigEvent, fillers_up_to: &mut Option<u32>) -> Result<(), Errno> {
    for _ in 0..MAX_FILLERS {
        let mut id = 0;
        t::create(timer.clock, ev, &mut id)?;
        let id = id as u32;
        *fillers_up_to = Some(fillers_up_to.map_or(id, |m: u32| m.max(id)));
        if id == timer.id {
            return Ok(());
        }
        if id > timer.id {
            return Err(Errno::EBUSY); // passed it: the id is lost
        }
    }
    Err(Errno::EBUSY)
}
