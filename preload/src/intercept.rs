//! Keeps the program's hands off ckpt's two signals: the checkpoint signal
//! (`-s`, default SIGUSR2) and the thread-stop signal
//! ([`threads::THREAD_SIGNAL`]).
//!
//! libckpt.so comes first in the symbol lookup order (LD_PRELOAD), so the
//! program's calls to these libc functions land here:
//!
//! * `sigaction`, `__sigaction`, `signal`, `bsd_signal`, `ssignal`,
//!   `sysv_signal`, `__sysv_signal`, `sigset`, `sigignore`: for one of the
//!   two signals the program's wish is recorded, not installed, and later
//!   calls answer with the recorded action, so the program sees its own
//!   handler. The first time it sets a handler (or SIG_IGN) for the
//!   checkpoint signal one line on stderr says so; the thread signal is
//!   protected silently. The checkpoint handler hands the signals the
//!   program sends itself to the recorded handler ([`programs_own`]). Any other signal is forwarded, its `sa_mask`
//!   stripped of the two signals (a handler that never returns, or leaves
//!   with `longjmp`, would otherwise keep them blocked).
//! * `sigprocmask`, `pthread_sigmask`, `sigsuspend`, `sighold`, `sigblock`,
//!   `sigsetmask`: the two signals are removed from any set being blocked,
//!   so that no thread can block them (a thread blocking the thread signal
//!   would stall every checkpoint).
//!
//! The real functions come from `dlsym(RTLD_NEXT, …)`, resolved by the
//! constructor ([`resolve`]), or on first use if the program calls one
//! before it (another library's constructor). Until [`arm`] runs, and in a
//! process that is not armed, everything is forwarded unchanged.
//!
//! Not covered here: raw `rt_sigaction`/`rt_sigprocmask` system calls (see
//! [`rawsig`](crate::rawsig)), and the masks given to `pselect`, `ppoll`,
//! `epoll_pwait` or `signalfd`.
//!
//! Everything here is async-signal-safe once resolved: programs call these
//! functions from signal handlers. The recorded actions are guarded by a
//! spin lock taken with every signal blocked.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, CStr};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::*};

use libc::{sighandler_t, sigset_t};

use ckpt_sys as sys;

use crate::config;
use crate::msg;
use crate::threads::THREAD_SIGNAL;

type Action = libc::sigaction;
type SigactionFn = unsafe extern "C" fn(c_int, *const Action, *mut Action) -> c_int;
type SignalFn = unsafe extern "C" fn(c_int, sighandler_t) -> sighandler_t;
type MaskFn = unsafe extern "C" fn(c_int, *const sigset_t, *mut sigset_t) -> c_int;
type SuspendFn = unsafe extern "C" fn(*const sigset_t) -> c_int;
type SigFn = unsafe extern "C" fn(c_int) -> c_int;

/// The real functions, by index; 0: not resolved yet.
const NAMES: [&CStr; 11] = [
    c"sigaction",
    c"signal",
    c"sysv_signal",
    c"sigset",
    c"sigignore",
    c"sigprocmask",
    c"pthread_sigmask",
    c"sigsuspend",
    c"sighold",
    c"sigblock",
    c"sigsetmask",
];
const SIGACTION: usize = 0;
const SIGNAL: usize = 1;
const SYSV_SIGNAL: usize = 2;
const SIGSET: usize = 3;
const SIGIGNORE: usize = 4;
const SIGPROCMASK: usize = 5;
const PTHREAD_SIGMASK: usize = 6;
const SIGSUSPEND: usize = 7;
const SIGHOLD: usize = 8;
const SIGBLOCK: usize = 9;
const SIGSETMASK: usize = 10;

static REAL: [AtomicUsize; 11] = [const { AtomicUsize::new(0) }; 11];

/// The checkpoint signal once armed; 0: forward everything.
static ARMED: AtomicI32 = AtomicI32::new(0);

/// The program's recorded actions: [checkpoint signal, thread signal].
struct Saved(UnsafeCell<[Action; 2]>);
// SAFETY: only touched under LOCK.
unsafe impl Sync for Saved {}
// SAFETY: sigaction is plain data; all zeroes is SIG_DFL, no flags, empty mask.
static SAVED: Saved = Saved(UnsafeCell::new(unsafe { core::mem::zeroed() }));
static LOCK: AtomicBool = AtomicBool::new(false);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Looks up every real function (constructor).
pub fn resolve() {
    for i in 0..NAMES.len() {
        real(i);
    }
}

/// Starts protecting `signal` and THREAD_SIGNAL (after their handlers are
/// installed).
pub fn arm(signal: i32) {
    ARMED.store(signal, SeqCst);
    // SAFETY: registering a plain function, from the constructor.
    unsafe { libc::pthread_atfork(None, None, Some(disarm_in_child)) };
}

/// A child forked from the program is not the process ckpt runs: it gets
/// the program's own wishes for the two signals back (SIG_DFL unless the
/// program set something), so a checkpoint signal sent to it (or to its
/// process group) does what it would without ckpt, and never writes over
/// the parent's image.
extern "C" fn disarm_in_child() {
    if config::get().tree {
        // In a job (`ckpt --tree`) a child is a member: it stays armed.
        config::become_member();
        return;
    }
    let armed = ARMED.swap(0, SeqCst);
    if armed == 0 {
        return;
    }
    for (slot, sig) in [(0, armed), (1, THREAD_SIGNAL)] {
        // SAFETY: the child is single-threaded here; SAVED holds plain data.
        let wish = unsafe { (*SAVED.0.get())[slot] };
        // SAFETY: a valid sigaction for a valid signal.
        unsafe { real_sigaction(sig, &wish, core::ptr::null_mut()) };
    }
}

fn real(i: usize) -> usize {
    next(NAMES[i], &REAL[i])
}

/// The definition of `name` after this library's (libc's), looked up once
/// into `slot` (0: none).
pub fn next(name: &CStr, slot: &AtomicUsize) -> usize {
    let f = slot.load(Relaxed);
    if f != 0 {
        return f;
    }
    // SAFETY: dlsym with a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) } as usize;
    slot.store(f, Relaxed);
    f
}

pub fn set_errno(e: c_int) {
    // SAFETY: the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// The real `sigaction`, for the library's own handlers.
///
/// # Safety
/// As sigaction(2): `act` and `oact` are null or valid.
pub unsafe fn real_sigaction(sig: c_int, act: *const Action, oact: *mut Action) -> c_int {
    match real(SIGACTION) {
        0 => {
            set_errno(libc::ENOSYS);
            -1
        }
        // SAFETY: the address dlsym gave for "sigaction".
        f => core::mem::transmute::<usize, SigactionFn>(f)(sig, act, oact),
    }
}

/// The checkpoint signal once armed; 0: not armed.
pub fn armed_signal() -> i32 {
    ARMED.load(Relaxed)
}

/// Which recorded slot `sig` uses, if the process is armed and it is ours.
pub fn slot(sig: c_int) -> Option<usize> {
    let armed = ARMED.load(Relaxed);
    match sig {
        _ if armed == 0 => None,
        _ if sig == armed => Some(0),
        THREAD_SIGNAL => Some(1),
        _ => None,
    }
}

/// The two signals as a kernel mask (0 if the process is not armed).
pub fn protected() -> u64 {
    match ARMED.load(Relaxed) {
        0 => 0,
        armed => 1u64 << (armed - 1) | 1u64 << (THREAD_SIGNAL - 1),
    }
}

/// Removes the two signals from `set` (armed processes only).
fn strip(set: &mut sigset_t) {
    let armed = ARMED.load(Relaxed);
    if armed != 0 {
        // SAFETY: valid set, valid signal numbers.
        unsafe {
            libc::sigdelset(set, armed);
            libc::sigdelset(set, THREAD_SIGNAL);
        }
    }
}

/// Replaces the recorded action of `slot` (if `new`), returns the old one.
fn swap(slot: usize, new: Option<&Action>) -> Action {
    // Block every signal while holding the lock: a handler that calls
    // sigaction on this thread must not spin on it.
    let mask = sys::rt_sigprocmask(sys::SIG_BLOCK, !0).ok();
    while LOCK.swap(true, Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: under LOCK.
    let saved = unsafe { &mut (*SAVED.0.get())[slot] };
    let old = *saved;
    if let Some(a) = new {
        *saved = *a;
    }
    LOCK.store(false, Release);
    if let Some(m) = mask {
        let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, m);
    }
    old
}

/// Whether the checkpoint signal `info` describes is the program's own
/// doing: sent by the process to itself (`kill`, `raise`, `sigqueue`,
/// `pthread_kill`, `tgkill` with its own pid), or by a timer, message queue
/// or asynchronous I/O it set up. Signals from any other process — the
/// user's `kill`, ckpt's ticker — are checkpoint requests.
fn self_sent(info: &libc::siginfo_t) -> bool {
    match info.si_code {
        // SAFETY: these codes carry the sender's pid.
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL => (unsafe { info.si_pid() }) == sys::getpid(),
        libc::SI_TIMER | libc::SI_MESGQ | libc::SI_ASYNCIO | libc::SI_SIGIO => true,
        _ => false,
    }
}

/// Hands a checkpoint signal the program sent itself to the program, if it
/// has set its own disposition for the signal: its handler is called as the
/// kernel would call it (its mask and flags; the kernel's frame `uc`), or
/// nothing happens if it ignores the signal. Returns false (take a
/// checkpoint) for signals from outside, and when the program has left the
/// signal at its default. Called first thing in the checkpoint handler,
/// with every signal blocked.
///
/// # Safety
/// `info` and `uc` are the handler's arguments, from the kernel.
pub unsafe fn programs_own(sig: c_int, info: *mut libc::siginfo_t, uc: *mut core::ffi::c_void) -> bool {
    // SAFETY: the kernel's siginfo, or null.
    if info.is_null() || !self_sent(&*info) {
        return false;
    }
    let act = swap(0, None);
    if act.sa_sigaction == libc::SIG_DFL {
        return false;
    }
    if act.sa_sigaction == libc::SIG_IGN {
        return true;
    }
    if act.sa_flags & libc::SA_RESETHAND != 0 {
        swap(0, Some(&simple(libc::SIG_DFL, 0, 0)));
    }
    // The mask the kernel would give the handler: the interrupted one, the
    // handler's own, the signal itself unless SA_NODEFER; never the thread
    // signal (a checkpoint must be able to stop this thread meanwhile).
    // SAFETY: the kernel's ucontext; sigset_t begins with the 64 bits the
    // kernel uses.
    let interrupted =
        core::ptr::read_unaligned(&(*(uc as *const libc::ucontext_t)).uc_sigmask as *const sigset_t as *const u64);
    // SAFETY: as above, for the recorded action's mask.
    let own = core::ptr::read_unaligned(&act.sa_mask as *const sigset_t as *const u64);
    let bit = |s: c_int| 1u64 << (s - 1);
    let mut mask = interrupted | own;
    if act.sa_flags & libc::SA_NODEFER == 0 {
        mask |= bit(sig);
    } else {
        mask &= !bit(sig);
    }
    mask &= !bit(THREAD_SIGNAL);
    let ours = sys::rt_sigprocmask(sys::SIG_SETMASK, mask).ok();
    if act.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the program gave this address as an SA_SIGINFO handler.
        let f = core::mem::transmute::<usize, extern "C" fn(c_int, *mut libc::siginfo_t, *mut core::ffi::c_void)>(
            act.sa_sigaction,
        );
        f(sig, info, uc);
    } else {
        // SAFETY: the program gave this address as a plain handler.
        let f = core::mem::transmute::<usize, extern "C" fn(c_int)>(act.sa_sigaction);
        f(sig);
    }
    if let Some(m) = ours {
        let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, m);
    }
    true
}

/// Records the program's wish for one of our signals; warns once if it
/// would have switched checkpointing off.
pub fn record(slot: usize, sig: c_int, new: Option<&Action>) -> Action {
    let old = swap(slot, new);
    if let Some(a) = new {
        if slot == 0 && a.sa_sigaction != libc::SIG_DFL && !WARNED.swap(true, Relaxed) {
            let mut l = msg::Line::new();
            l.push(b"ckpt: the program ");
            l.push(if a.sa_sigaction == libc::SIG_IGN { b"asked to ignore " } else { b"set a handler for " });
            config::write_signal(&mut l, sig);
            if a.sa_sigaction == libc::SIG_IGN {
                l.push(b", the checkpoint signal; it still takes checkpoints (choose another signal with -s)");
            } else {
                l.push(b", the checkpoint signal; it is called only for the signals the program sends itself (choose another signal with -s)");
            }
            l.emit();
        }
    }
    old
}

/// An action as `signal`-style functions set it.
fn simple(handler: sighandler_t, flags: c_int, mask_sig: c_int) -> Action {
    // SAFETY: plain data; zero is a valid empty action.
    let mut a: Action = unsafe { core::mem::zeroed() };
    a.sa_sigaction = handler;
    a.sa_flags = flags;
    if mask_sig != 0 {
        // SAFETY: valid set and signal.
        unsafe { libc::sigaddset(&mut a.sa_mask, mask_sig) };
    }
    a
}

unsafe fn do_sigaction(sig: c_int, act: *const Action, oact: *mut Action) -> c_int {
    if let Some(s) = slot(sig) {
        let old = record(s, sig, act.as_ref());
        if !oact.is_null() {
            *oact = old;
        }
        return 0;
    }
    if ARMED.load(Relaxed) != 0 {
        crate::rawsig::check();
    }
    if ARMED.load(Relaxed) != 0 && !act.is_null() {
        let mut a = *act;
        strip(&mut a.sa_mask);
        return real_sigaction(sig, &a, oact);
    }
    real_sigaction(sig, act, oact)
}

/// # Safety
/// As sigaction(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const Action, oact: *mut Action) -> c_int {
    do_sigaction(sig, act, oact)
}

/// # Safety
/// As sigaction(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __sigaction(sig: c_int, act: *const Action, oact: *mut Action) -> c_int {
    do_sigaction(sig, act, oact)
}

unsafe fn forward_signal(i: usize, sig: c_int, handler: sighandler_t) -> sighandler_t {
    match real(i) {
        0 => {
            set_errno(libc::ENOSYS);
            libc::SIG_ERR
        }
        // SAFETY: the address dlsym gave for a signal()-like function.
        f => core::mem::transmute::<usize, SignalFn>(f)(sig, handler),
    }
}

/// BSD semantics, as glibc's `signal`: SA_RESTART, the signal blocked in
/// its handler.
unsafe fn bsd_signal_impl(sig: c_int, handler: sighandler_t) -> sighandler_t {
    match slot(sig) {
        Some(s) => record(s, sig, Some(&simple(handler, libc::SA_RESTART, sig))).sa_sigaction,
        None => forward_signal(SIGNAL, sig, handler),
    }
}

/// # Safety
/// As signal(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    bsd_signal_impl(sig, handler)
}

/// # Safety
/// As signal(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bsd_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    bsd_signal_impl(sig, handler)
}

/// # Safety
/// As signal(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ssignal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    bsd_signal_impl(sig, handler)
}

unsafe fn sysv_signal_impl(sig: c_int, handler: sighandler_t) -> sighandler_t {
    match slot(sig) {
        Some(s) => record(s, sig, Some(&simple(handler, libc::SA_RESETHAND | libc::SA_NODEFER, 0))).sa_sigaction,
        None => forward_signal(SYSV_SIGNAL, sig, handler),
    }
}

/// # Safety
/// As sysv_signal(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    sysv_signal_impl(sig, handler)
}

/// # Safety
/// As sysv_signal(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __sysv_signal(sig: c_int, handler: sighandler_t) -> sighandler_t {
    sysv_signal_impl(sig, handler)
}

/// glibc's SIG_HOLD.
const SIG_HOLD: sighandler_t = 2;

/// # Safety
/// As sigset(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigset(sig: c_int, disp: sighandler_t) -> sighandler_t {
    match slot(sig) {
        // Holding (blocking) is refused: the signal stays deliverable.
        Some(s) if disp == SIG_HOLD => record(s, sig, None).sa_sigaction,
        Some(s) => record(s, sig, Some(&simple(disp, 0, 0))).sa_sigaction,
        None => forward_signal(SIGSET, sig, disp),
    }
}

unsafe fn forward_sig(i: usize, sig: c_int) -> c_int {
    match real(i) {
        0 => {
            set_errno(libc::ENOSYS);
            -1
        }
        // SAFETY: the address dlsym gave for an int(int) function.
        f => core::mem::transmute::<usize, SigFn>(f)(sig),
    }
}

/// # Safety
/// As sigignore(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigignore(sig: c_int) -> c_int {
    match slot(sig) {
        Some(s) => {
            record(s, sig, Some(&simple(libc::SIG_IGN, 0, 0)));
            0
        }
        None => forward_sig(SIGIGNORE, sig),
    }
}

/// # Safety
/// As sighold(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sighold(sig: c_int) -> c_int {
    match slot(sig) {
        Some(_) => 0,
        None => forward_sig(SIGHOLD, sig),
    }
}

/// `sigblock`/`sigsetmask`: 4.2BSD masks of signals 1..32 in an int.
unsafe fn int_mask(i: usize, mask: c_int) -> c_int {
    let armed = ARMED.load(Relaxed);
    let mask = if (1..=32).contains(&armed) { mask & !(1 << (armed - 1)) } else { mask };
    forward_sig(i, mask)
}

/// # Safety
/// As sigblock(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigblock(mask: c_int) -> c_int {
    int_mask(SIGBLOCK, mask)
}

/// # Safety
/// As sigsetmask(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigsetmask(mask: c_int) -> c_int {
    int_mask(SIGSETMASK, mask)
}

unsafe fn mask_impl(i: usize, how: c_int, set: *const sigset_t, old: *mut sigset_t, fail: c_int) -> c_int {
    let f = real(i);
    if f == 0 {
        set_errno(libc::ENOSYS);
        return fail;
    }
    // SAFETY: the address dlsym gave for sigprocmask or pthread_sigmask.
    let f = core::mem::transmute::<usize, MaskFn>(f);
    if ARMED.load(Relaxed) != 0 && !set.is_null() && (how == libc::SIG_BLOCK || how == libc::SIG_SETMASK) {
        let mut s = *set;
        strip(&mut s);
        return f(how, &s, old);
    }
    f(how, set, old)
}

/// # Safety
/// As sigprocmask(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigprocmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int {
    mask_impl(SIGPROCMASK, how, set, old, -1)
}

/// # Safety
/// As pthread_sigmask(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pthread_sigmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int {
    mask_impl(PTHREAD_SIGMASK, how, set, old, libc::ENOSYS)
}

/// # Safety
/// As sigsuspend(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigsuspend(set: *const sigset_t) -> c_int {
    let f = real(SIGSUSPEND);
    if f == 0 {
        set_errno(libc::ENOSYS);
        return -1;
    }
    // SAFETY: the address dlsym gave for sigsuspend.
    let f = core::mem::transmute::<usize, SuspendFn>(f);
    if ARMED.load(Relaxed) != 0 && !set.is_null() {
        let mut s = *set;
        strip(&mut s);
        return f(&s);
    }
    f(set)
}
