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
//!
//! Tools that check whether the job catches the checkpoint signal before
//! sending it (ckpt-slurm reads `SigCgt` in /proc/PID/status) look at this
//! process: it installs a handler for that signal, which never runs (the
//! signal stays blocked); the program's process holds such a signal pending
//! until it is restored, then takes the checkpoint at once.

use ckpt_sys::{self as sys, ns, RLimit};

use crate::pidns::Report;

const SIGCHLD: i32 = 17;
const RLIMIT_CORE: i32 = 4;

/// Serves until the program ends; never returns. `checkpoint_signal`: the
/// image's (0: none known).
pub fn run(init: i32, report: i32, checkpoint_signal: i32) -> ! {
    let signals = ns::signalfd(!0).ok();
    let sfd = signals.as_ref().map_or(-1, sys::OwnedFd::as_raw);
    if bit(checkpoint_signal) != 0 {
        set_handler(checkpoint_signal, never_runs as *const () as usize as u64);
    }
    loop {
        let ready = if sfd < 0 { 2 } else { ns::poll_any(&[sfd, report]).unwrap_or(0) };
        if ready & 1 != 0 {
            match ns::read_signal(sfd) {
                Ok(si) if si.signo == SIGCHLD => {
                    if let Ok(Some((_, status))) = ns::wait_any(init, ns::WNOHANG) {
                        ended(report, status);
                    }
                }
                Ok(si) if si.code <= 0 => {
                    let _ = ns::forward(init, &si);
                }
                _ => {}
            }
        }
        if ready & 2 != 0 {
            match Report::receive(report) {
                Some(Report::Stopped(sig)) => stop(sig),
                Some(Report::Ended(status, stays)) => {
                    // (An init that stays for lock keepers is not waited for.)
                    if !stays {
                        let _ = sys::wait4(init);
                    }
                    end(status)
                }
                _ => end(sys::wait4(init).unwrap_or(1 << 8)),
            }
        }
    }
}

/// The handler of the checkpoint signal here: it is never unblocked.
extern "C" fn never_runs(_: i32) {}

fn set_handler(sig: i32, handler: u64) {
    const SA_RESTORER: u64 = 0x0400_0000;
    let restorer = restore_rt as *const () as usize as u64;
    let act = sys::KSigAction { handler, flags: SA_RESTORER, restorer, mask: !0 };
    let _ = sys::rt_sigaction(sig, Some(&act), None);
}

core::arch::global_asm!(
    ".globl ckpt_outer_restore_rt",
    ".hidden ckpt_outer_restore_rt",
    "ckpt_outer_restore_rt:",
    "    mov eax, {rt_sigreturn}",
    "    syscall",
    rt_sigreturn = const sys::Sysno::rt_sigreturn as u32,
);
extern "C" {
    #[link_name = "ckpt_outer_restore_rt"]
    fn restore_rt();
}

/// init has ended (wait status `init_status`): ends as the program did,
/// by init's last report (init reports before it exits, and its end may be
/// seen first), or as init did if it ended without one.
fn ended(report: i32, init_status: i32) -> ! {
    loop {
        match Report::receive(report) {
            Some(Report::Ended(status, _)) => end(status),
            Some(_) => continue,
            None => end(init_status),
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
    set_handler(sig, 0); // SIG_DFL
    let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, !bit(sig));
    let _ = sys::kill(sys::getpid(), sig);
    sys::exit_group(128 + sig)
}
