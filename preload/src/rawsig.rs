//! Signal system calls that bypass libc's `sigaction`: the program's way
//! around [`intercept`](crate::intercept).
//!
//! A handler installed with a raw `rt_sigaction` system call replaces ckpt's
//! in the kernel, and the checkpoint signal then silently stops
//! checkpointing. ckpt cannot see a system call as it happens without a
//! seccomp filter, and a filter is no option: it survives `exec` into every
//! child, armed or not (a trapped `rt_sigaction` kills a child that has no
//! handler for the trap, a static Go program for one), and without
//! CAP_SYS_ADMIN it needs `no_new_privs`, which would stop setuid programs
//! the job runs from gaining their privileges. So, short of that:
//!
//! * libc's `syscall()` is interposed: `rt_sigaction` and `rt_sigprocmask`
//!   for ckpt's two signals through it are treated as `sigaction` and
//!   `sigprocmask` are (the wish recorded, the signals not blocked);
//! * a Go program that does not link `runtime/cgo` sets every handler with
//!   its own system calls: the constructor recognizes one (a Go executable
//!   without cgo's `x_cgo_sigaction`) and says at once that the checkpoint
//!   signal will not reach ckpt;
//! * whenever ckpt's code runs — the program calls `sigaction` for any
//!   signal, or the checkpoint signal arrives — the two handlers are checked,
//!   and a replaced one is named on stderr (once).

use core::ffi::{c_int, c_long};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

use ckpt_sys as sys;

use crate::{config, intercept, msg, threads::THREAD_SIGNAL};

type SyscallFn = unsafe extern "C" fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long;

static REAL_SYSCALL: AtomicUsize = AtomicUsize::new(0);
static WARNED: [AtomicBool; 2] = [const { AtomicBool::new(false) }; 2];

/// Looks up libc's `syscall` (constructor; or at the first call, if that
/// comes before it).
pub fn resolve() -> usize {
    let f = REAL_SYSCALL.load(Relaxed);
    if f != 0 {
        return f;
    }
    // SAFETY: dlsym with a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"syscall".as_ptr()) } as usize;
    REAL_SYSCALL.store(f, Relaxed);
    f
}

/// libc's `syscall(2)`, as seen by the program. (Variadic in C; on x86-64
/// the integer arguments of a variadic call are where these are.)
///
/// # Safety
/// As syscall(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if n == libc::SYS_rt_sigaction && a4 == 8 {
        if let Some(slot) = intercept::slot(a1 as c_int) {
            // SAFETY: the program's kernel sigaction pointers, null or valid.
            let new = (a2 as *const sys::KSigAction).as_ref().map(to_libc);
            let old = intercept::record(slot, a1 as c_int, new.as_ref());
            if let Some(o) = (a3 as *mut sys::KSigAction).as_mut() {
                *o = to_kernel(&old);
            }
            return 0;
        }
    }
    let stripped: u64;
    let a2 = if n == libc::SYS_rt_sigprocmask
        && a2 != 0
        && a4 == 8
        && (a1 as c_int == libc::SIG_BLOCK || a1 as c_int == libc::SIG_SETMASK)
    {
        // SAFETY: the program's set, 8 bytes as a4 says.
        stripped = core::ptr::read_unaligned(a2 as *const u64) & !intercept::protected();
        &stripped as *const u64 as c_long
    } else {
        a2
    };
    match resolve() {
        0 => {
            *libc::__errno_location() = libc::ENOSYS;
            -1
        }
        // SAFETY: the address dlsym gave for "syscall"; `stripped` lives until
        // it returns.
        f => core::mem::transmute::<usize, SyscallFn>(f)(n, a1, a2, a3, a4, a5, a6),
    }
}

fn to_libc(k: &sys::KSigAction) -> libc::sigaction {
    // SAFETY: plain data; zero is a valid empty action.
    let mut a: libc::sigaction = unsafe { core::mem::zeroed() };
    a.sa_sigaction = k.handler as usize;
    a.sa_flags = k.flags as c_int;
    // SAFETY: a restorer address (or 0: None), as the kernel takes it.
    a.sa_restorer = unsafe { core::mem::transmute::<usize, Option<extern "C" fn()>>(k.restorer as usize) };
    // SAFETY: sigset_t begins with the 64 bits the kernel uses.
    unsafe { core::ptr::write_unaligned(&mut a.sa_mask as *mut libc::sigset_t as *mut u64, k.mask) };
    a
}

fn to_kernel(a: &libc::sigaction) -> sys::KSigAction {
    sys::KSigAction {
        handler: a.sa_sigaction as u64,
        flags: a.sa_flags as u32 as u64,
        restorer: a.sa_restorer.map_or(0, |f| f as usize as u64),
        // SAFETY: as in to_libc.
        mask: unsafe { core::ptr::read_unaligned(&a.sa_mask as *const libc::sigset_t as *const u64) },
    }
}

/// Whether ckpt's handler of `sig` is still the one in the kernel.
fn intact(sig: c_int) -> bool {
    let ours = if sig == THREAD_SIGNAL {
        crate::threads::on_thread_signal as *const () as usize
    } else {
        crate::handler as *const () as usize
    };
    let mut k = sys::KSigAction::default();
    sys::rt_sigaction(sig, None, Some(&mut k)).is_err() || k.handler as usize == ours
}

/// Names, once each, a handler of ckpt's that the program replaced behind
/// libc's back.
pub fn check() {
    for (i, sig) in [(0, config::get().signal), (1, THREAD_SIGNAL)] {
        if intact(sig) || WARNED[i].swap(true, Relaxed) {
            continue;
        }
        let mut l = msg::Line::new();
        l.push(b"ckpt: the program replaced ckpt's handler of ");
        config::write_signal(&mut l, sig);
        l.push(b" with a raw rt_sigaction system call: ");
        l.push(if i == 0 {
            b"the checkpoint signal no longer checkpoints it (choose another signal with -s)"
        } else {
            b"checkpoints cannot stop its other threads any more"
        });
        l.emit();
    }
}

/// Says at start that a Go program without cgo will not be checkpointed
/// (constructor).
pub fn check_go() {
    // SAFETY: dlsym with a NUL-terminated name.
    let cgo = !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"x_cgo_sigaction".as_ptr()) }.is_null();
    if cgo || !is_go_executable() {
        return;
    }
    let mut l = msg::Line::new();
    l.push(b"ckpt: this Go program does not link runtime/cgo: the Go runtime sets its signal handlers with raw system calls, over ckpt's, and ");
    config::write_signal(&mut l, config::get().signal);
    l.push(b" will not checkpoint it (build it with cgo: import \"C\")");
    l.emit();
}

/// Whether /proc/self/exe has a `.note.go.buildid` section (reads the ELF
/// header, the section headers and their names only).
fn is_go_executable() -> bool {
    use std::os::unix::fs::FileExt;
    const NOTE: &[u8] = b".note.go.buildid\0";
    let Ok(f) = std::fs::File::open("/proc/self/exe") else { return false };
    let read = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).ok().map(|()| b)
    };
    let num = |b: &[u8], o: usize, n: usize| -> u64 {
        b.get(o..o + n).map_or(0, |x| x.iter().rev().fold(0u64, |v, &c| v << 8 | c as u64))
    };
    let Some(eh) = read(0, 64) else { return false };
    if eh.get(..4) != Some(b"\x7fELF") {
        return false;
    }
    let (shoff, shentsize, shnum, shstrndx) =
        (num(&eh, 0x28, 8), num(&eh, 0x3a, 2), num(&eh, 0x3c, 2), num(&eh, 0x3e, 2));
    if shentsize < 0x28 || shnum > 4096 || shstrndx >= shnum {
        return false;
    }
    let Some(sh) = read(shoff, (shentsize * shnum) as usize) else { return false };
    let strtab = (shstrndx * shentsize) as usize;
    let (names_off, names_len) = (num(&sh, strtab + 0x18, 8), num(&sh, strtab + 0x20, 8));
    let Some(names) = read(names_off, names_len.min(1 << 20) as usize) else { return false };
    (0..shnum as usize).any(|i| {
        let name = num(&sh, i * shentsize as usize, 4) as usize;
        names.get(name..name + NOTE.len()) == Some(NOTE)
    })
}
