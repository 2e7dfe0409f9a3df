//! The outer `restart` process, in the caller's pid namespace: the pid the
//! shell, `ckpt-slurm` and `kill` know. It stands in for the program:
//!
//! * every signal a process sends it (`kill -USR2`, `kill -TERM`, SLURM's
//!   warning) goes on to init, which hands it to the program;
//! * when the program stops (Ctrl-Z, SIGSTOP), it stops itself by the same
//!   signal, so that the shell's job control sees the job stopped; a
//!   SIGCONT sent to it goes on to the program;
//! * when the program ends, it ends the same way: the same exit status, or
//!   killed by the same signal (with no core dump of its own).
//!
//! Signals the kernel sends to the whole process group (the terminal's
//! Ctrl-C, Ctrl-Z, SIGWINCH, SIGHUP) reach the program directly, so they
//! are not forwarded (`si_code` > 0). Every signal stays blocked here and
//! is read from a signalfd.

use ckpt_sys::{self as sys, ns, RLimit};

use crate::pidns::Report;

const SIGCHLD: i32 = 17;
const RLIMIT_CORE: i32 = 4;

/// Serves until the program ends; never returns.
pub fn run(init: i32, report: i32) -> ! {
    let sfd = ns::signalfd(!0).unwrap_or(-1);
    loop {
        let ready = if sfd < 0 { 2 } else { ns::poll_any(&[sfd, report]).unwrap_or(0) };
        // The report first: init writes the program's end, then exits; a
        // SIGCHLD seen first would take init's own status (0) for it.
        if ready & 2 != 0 {
            match Report::receive(report) {
                Some(Report::Stopped(sig)) => stop(sig),
                Some(Report::Ended(status)) => {
                    let _ = sys::wait4(init);
                    end(status)
                }
                _ => {
                    let status = sys::wait4(init).unwrap_or(1 << 8);
                    end(status)
                }
            }
        }
        if ready & 1 != 0 {
            match ns::read_signal(sfd) {
                Ok(si) if si.signo == SIGCHLD => {
                    if let Ok(Some((_, status))) = ns::wait_any(init, ns::WNOHANG) {
                        end(status); // init died without a report: its own end
                    }
                }
                Ok(si) if si.code <= 0 => {
                    let _ = sys::kill(init, si.signo);
                }
                _ => {}
            }
        }
    }
}

/// Stops this process by `sig`, as the program was; returns once continued.
fn stop(sig: i32) {
    let all = sys::rt_sigprocmask(sys::SIG_SETMASK, !0).unwrap_or(!0);
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, all & !bit(sig));
    let _ = sys::kill(sys::getpid(), sig);
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, all);
}

fn bit(sig: i32) -> u64 {
    if (1..=64).contains(&sig) {
        1 << (sig - 1)
    } else {
        0
    }
}

/// Ends this process as a process with wait status `status` ended.
fn end(status: i32) -> ! {
    let sig = status & 0x7f;
    if sig == 0 {
        sys::exit_group((status >> 8) & 0xff)
    }
    let _ = sys::prlimit64(0, RLIMIT_CORE, Some(&RLimit { soft: 0, hard: 0 }));
    let dfl = sys::KSigAction { handler: 0, flags: 0, restorer: 0, mask: 0 };
    let _ = sys::rt_sigaction(sig, Some(&dfl), None);
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, !bit(sig));
    let _ = sys::kill(sys::getpid(), sig);
    sys::exit_group(128 + sig)
}
