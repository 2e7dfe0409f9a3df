//! The exec family, in an armed process: the checkpoint signal is held
//! (blocked) across the exec, so that a checkpoint request never ends the
//! program that exec starts.
//!
//! At exec the kernel resets a caught signal to its default action. A JOIN
//! request (job.rs) that the root of the job sends while a member is inside
//! `execve` (the root saw the library's handler a moment before) would be
//! delivered to the new program at that default action, which for the
//! checkpoint signal ends it: a shell script's command killed by SIGUSR2,
//! a few checkpoints in a hundred for a busy script. Blocked, the request
//! waits instead (the signal mask and the pending signals survive exec):
//! the new program's library installs its handler and then lets the signal
//! in ([`release`], from the constructor), and the request joins the
//! barrier, or is stale and ignored. A failed exec puts the mask back.
//!
//! Held only where the new program will run the library armed: its
//! environment has the library in `LD_PRELOAD`, `CKPT_PID`, and (in a member)
//! not `CKPT_TREE=0`; the file is a script, or a dynamically linked ELF
//! program (`PT_INTERP`) that is not setuid or setgid. Any other program
//! starts with the mask as it was (the root names it at the checkpoint).
//!
//! Covered: `execve`, `execv`, `execvp`, `execvpe` (bash, dash, Python's
//! subprocess, make). Not the variadic `execl*`, `fexecve`, `execveat`, nor
//! raw system calls; `posix_spawn`'s child resets its handlers itself before
//! its exec, and is not signalled until the new program catches the signal.

use core::ffi::{c_char, c_int, CStr};
use core::sync::atomic::AtomicUsize;

use ckpt_sys::{self as sys, OwnedFd};

use crate::config;
use crate::intercept;

type ExecveFn = unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
type ExecvFn = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;

const NAMES: [&CStr; 4] = [c"execve", c"execv", c"execvp", c"execvpe"];
const EXECVE: usize = 0;
const EXECV: usize = 1;
const EXECVP: usize = 2;
const EXECVPE: usize = 3;

static REAL: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

extern "C" {
    static environ: *const *const c_char;
}

/// Looks up the real functions (constructor: a vfork child must not call
/// dlsym).
pub fn resolve() {
    for i in 0..NAMES.len() {
        real(i);
    }
}

fn real(i: usize) -> usize {
    intercept::next(NAMES[i], &REAL[i])
}

/// In the constructor, once the handler is in: lets in the checkpoint
/// signal that an exec held (a request that came meanwhile is taken now).
pub fn release(signal: i32) {
    if let Ok(mask) = sys::rt_sigprocmask(sys::SIG_BLOCK, 0) {
        if mask & bit(signal) != 0 {
            let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, mask & !bit(signal));
        }
    }
}

fn bit(signal: i32) -> u64 {
    1u64 << (signal - 1)
}

/// Blocks the checkpoint signal if the program `path` will run armed with
/// `envp`; returns the mask to put back if the exec fails.
///
/// # Safety
/// `path` is null or a C string, `envp` null or a NULL-terminated array of
/// C strings.
unsafe fn hold(path: *const c_char, envp: *const *const c_char) -> Option<u64> {
    let signal = intercept::armed_signal();
    if signal == 0 || path.is_null() || !armed_env(envp) || !runs_the_library(CStr::from_ptr(path)) {
        return None;
    }
    sys::rt_sigprocmask(sys::SIG_BLOCK, bit(signal)).ok()
}

fn unhold(old: Option<u64>) {
    if let Some(mask) = old {
        let _ = sys::rt_sigprocmask(sys::SIG_SETMASK, mask);
    }
}

/// Whether a program started with `envp` arms the library (config.rs).
///
/// # Safety
/// As [`hold`].
unsafe fn armed_env(envp: *const *const c_char) -> bool {
    let (mut preload, mut pid, mut tree) = (false, false, true);
    let mut p = envp;
    while !p.is_null() && !(*p).is_null() {
        let var = CStr::from_ptr(*p).to_bytes();
        if let Some(v) = var.strip_prefix(b"LD_PRELOAD=") {
            preload = v.windows(10).any(|w| w == b"libckpt.so");
        } else if var.starts_with(b"CKPT_PID=") {
            pid = true;
        } else if let Some(v) = var.strip_prefix(b"CKPT_TREE=") {
            tree = v != b"0";
        }
        p = p.add(1);
    }
    preload && pid && (tree || config::get().root == 0)
}

/// Whether the file at `path` is a script or a dynamically linked ELF
/// program, neither setuid nor setgid.
fn runs_the_library(path: &CStr) -> bool {
    let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_CLOEXEC) else { return false };
    let setid = sys::fstat(&fd).map_or(true, |st| st.mode & (libc::S_ISUID | libc::S_ISGID) != 0);
    !setid && matches!(kind(&fd), Kind::Script | Kind::Dynamic)
}

/// Whether process `pid` runs a statically linked program: one that will
/// never take the checkpoint signal (job.rs refuses it without waiting
/// long).
pub fn is_static(pid: u32) -> bool {
    let mut p = [0u8; 32];
    let path = crate::msg::c_path(&mut p, format_args!("/proc/{pid}/exe"), c"/proc/0/exe");
    let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_CLOEXEC) else { return false };
    matches!(kind(&fd), Kind::Static)
}

enum Kind {
    /// `#!`
    Script,
    /// An ELF file with a PT_INTERP program header.
    Dynamic,
    /// An ELF file without one.
    Static,
    Other,
}

fn kind(fd: &OwnedFd) -> Kind {
    let mut h = [0u8; 64];
    let n = sys::pread(fd, &mut h, 0).unwrap_or(0);
    if h[..n].starts_with(b"#!") {
        return Kind::Script;
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(h[32..40].try_into().unwrap_or([0; 8]));
    let (entsize, count) = (u16_at(54), u16_at(56));
    let mut ph = [0u8; 4096];
    let len = entsize * count;
    if n < 64 || !h.starts_with(b"\x7fELF\x02") || entsize < 4 || len > ph.len() {
        return Kind::Other;
    }
    let ph = &mut ph[..len];
    if sys::pread(fd, ph, phoff) != Ok(len) {
        return Kind::Other;
    }
    if ph.chunks(entsize).any(|e| u32::from_le_bytes([e[0], e[1], e[2], e[3]]) == libc::PT_INTERP) {
        Kind::Dynamic
    } else {
        Kind::Static
    }
}

/// The file `execvp` would run for `file` (the first executable one in
/// PATH), into `buf`; `file` itself if it names a path.
///
/// # Safety
/// `file` is a C string.
unsafe fn search(file: *const c_char, buf: &mut [u8; 4096]) -> Option<&CStr> {
    let name = CStr::from_ptr(file).to_bytes();
    if name.contains(&b'/') {
        let n = name.len().min(buf.len() - 1);
        buf[..n].copy_from_slice(&name[..n]);
        buf[n] = 0;
        return CStr::from_bytes_until_nul(&buf[..]).ok();
    }
    let path = libc::getenv(c"PATH".as_ptr());
    let path = if path.is_null() { b"/bin:/usr/bin" } else { CStr::from_ptr(path).to_bytes() };
    for dir in path.split(|&c| c == b':') {
        let dir = if dir.is_empty() { b"." } else { dir };
        let n = dir.len() + 1 + name.len();
        if name.is_empty() || n >= buf.len() {
            continue;
        }
        buf[..dir.len()].copy_from_slice(dir);
        buf[dir.len()] = b'/';
        buf[dir.len() + 1..n].copy_from_slice(name);
        buf[n] = 0;
        if CStr::from_bytes_until_nul(&buf[..]).is_ok_and(|c| sys::access(c, libc::X_OK).is_ok()) {
            return CStr::from_bytes_until_nul(&buf[..]).ok();
        }
    }
    None
}

/// Calls the real function `i` through `call`, with the signal held for
/// `path` and `envp`.
///
/// # Safety
/// As [`hold`].
unsafe fn with_hold(
    i: usize,
    path: *const c_char,
    envp: *const *const c_char,
    call: impl FnOnce(usize) -> c_int,
) -> c_int {
    let f = real(i);
    if f == 0 {
        intercept::set_errno(libc::ENOSYS);
        return -1;
    }
    let old = hold(path, envp);
    let r = call(f);
    let errno = *libc::__errno_location();
    unhold(old);
    intercept::set_errno(errno);
    r
}

/// # Safety
/// As execve(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    // SAFETY: the address dlsym gave for execve, with the caller's arguments.
    with_hold(EXECVE, path, envp, |f| core::mem::transmute::<usize, ExecveFn>(f)(path, argv, envp))
}

/// # Safety
/// As execv(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the address dlsym gave for execv, with the caller's arguments.
    with_hold(EXECV, path, environ, |f| core::mem::transmute::<usize, ExecvFn>(f)(path, argv))
}

/// # Safety
/// As execvp(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    let mut buf = [0u8; 4096];
    let path = if file.is_null() { None } else { search(file, &mut buf) };
    let path = path.map_or(core::ptr::null(), |p| p.as_ptr());
    // SAFETY: the address dlsym gave for execvp, with the caller's arguments.
    with_hold(EXECVP, path, environ, |f| core::mem::transmute::<usize, ExecvFn>(f)(file, argv))
}

/// # Safety
/// As execvpe(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    let mut buf = [0u8; 4096];
    let path = if file.is_null() { None } else { search(file, &mut buf) };
    let path = path.map_or(core::ptr::null(), |p| p.as_ptr());
    // SAFETY: the address dlsym gave for execvpe, with the caller's arguments.
    with_hold(EXECVPE, path, envp, |f| core::mem::transmute::<usize, ExecveFn>(f)(file, argv, envp))
}
