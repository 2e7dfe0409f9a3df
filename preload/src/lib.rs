//! `libckpt.so`: the capture side of ckpt.
//!
//! `ckpt` starts a program with this library in `LD_PRELOAD`. Its
//! constructor ([`init`]) prepares everything a checkpoint will need, while
//! the program has not started yet and allocation is still allowed:
//!
//! * the loader's address range is reserved (PROT_NONE), so the program can
//!   never map anything where `restart` will live;
//! * one anonymous "workspace" mapping holds the capture stack and every
//!   buffer and table the capture fills in ([`workspace`]);
//! * glibc's rseq registration and the offset of the tid it caches in its
//!   thread descriptor are looked up;
//! * the main thread gets an alternate signal stack if it has none, and
//!   the two signal handlers are installed ([`altstack`]).
//!
//! On the checkpoint signal, [`handler`] switches to the workspace stack and
//! runs [`capture`]. The signal may have interrupted the program anywhere —
//! inside malloc, inside printf, holding a lock — so from there on only raw
//! system calls ([`ckpt_sys`]) and the workspace are used: no allocation, no
//! stdio, no locks, no libc.
//!
//! The library never writes to the program's stdout. It speaks on stderr,
//! one line per event, prefixed `ckpt:`.

// The unit tests (`cargo test -p ckpt-preload`) exercise the pure parts;
// the library's entry points are unused there.
#![cfg_attr(test, allow(dead_code))]

mod altstack;
mod capture;
mod children;
mod config;
mod cow;
mod delta;
mod dirty;
mod events;
mod exec;
mod fdinfo;
mod files;
mod inotify;
mod intercept;
mod job;
mod keeper;
mod links;
mod locks;
mod memfd;
mod msg;
mod nudge;
mod output;
mod process;
mod procfs;
mod rawsig;
mod shm;
mod sockets;
mod threads;
mod timers;
mod walk;
mod workspace;
mod writer;

use core::ffi::c_void;

use ckpt_sys as sys;

/// Runs before `main` of the program, in the program's own process (not in
/// the unit tests' process, where the interceptors are not exported either).
#[used]
#[cfg_attr(not(test), link_section = ".init_array")]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    // The real signal functions, looked up now: the interceptors may be
    // called from signal handlers, where dlsym must not run.
    intercept::resolve();
    exec::resolve();
    let _ = rawsig::resolve();
    // Only the process that `ckpt` exec'ed is armed: children that inherit
    // LD_PRELOAD run as they would alone.
    let Some(cfg) = config::from_env() else { return };
    if let Err(what) = arm(cfg) {
        msg::line(&[b"ckpt: ", what.as_bytes(), b"; checkpointing is off for this program"]);
    }
}

fn arm(cfg: config::Config) -> Result<(), &'static str> {
    use ckpt_image::{LOADER_BASE, LOADER_SIZE};
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; the
    // range is reserved, not used.
    let reserved = unsafe {
        sys::mmap(
            LOADER_BASE,
            LOADER_SIZE,
            sys::PROT_NONE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE | sys::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    match reserved {
        Ok(a) if a == LOADER_BASE => {}
        // Reserved already: this is a program restarted from an image, whose
        // loader lives there now. (A restarted program does not run
        // constructors again, but a fork of it that execs might.)
        Err(sys::Errno::EEXIST) => {}
        _ => return Err("cannot reserve the restart loader's address range"),
    }
    workspace::create()?;
    files::note_inherited_stdio();
    threads::prepare();
    config::install(cfg);
    if cfg.cow {
        cow::prepare();
    }
    altstack::ensure_main();
    altstack::prepare_threads();
    install_handler(threads::THREAD_SIGNAL, threads::on_thread_signal)?;
    install_handler(cfg.signal, handler)?;
    // From now on the program cannot replace, ignore or block the two.
    intercept::arm(cfg.signal);
    // A checkpoint request held across the exec that started this program.
    exec::release(cfg.signal);
    config::announce();
    rawsig::check_go();
    Ok(())
}

type Handler = extern "C" fn(i32, *mut libc::siginfo_t, *mut c_void);

fn install_handler(signal: i32, handler: Handler) -> Result<(), &'static str> {
    // SAFETY: plain libc calls from the constructor, on a zeroed sigaction;
    // glibc fills in its own SA_RESTORER trampoline. (libc's own sigaction:
    // the exported one is the interceptor.) SA_ONSTACK: the frame goes to
    // the thread's alternate stack when it has one ([`altstack`]).
    let ok = unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = handler as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigfillset(&mut act.sa_mask);
        // glibc's sigfillset leaves out its own SIGCANCEL (32) and
        // SIGSETXID (33); block them too. nudge.rs sends SIGSETXID, with
        // this handler, to a thread that blocks the thread signal: a thread
        // already in the handler (which blocks it) must not enter it again
        // and claim a second slot that it never fills.
        *(&mut act.sa_mask as *mut libc::sigset_t as *mut u64) |= 3 << 31;
        intercept::real_sigaction(signal, &act, core::ptr::null_mut()) == 0
    };
    if ok {
        Ok(())
    } else {
        Err("cannot install the checkpoint signal handler")
    }
}

/// The checkpoint signal handler. A signal the program sent itself goes to
/// the program's own handler, if it set one ([`intercept::programs_own`]);
/// any other is a checkpoint request (one queued with `STOP_AFTER`, from
/// `ckpt-slurm`, asks that the program stop after it even in --continue
/// mode). It runs on the thread's alternate signal stack (or, if it has
/// none, on the stack it was on) with every signal blocked, and leaves that
/// stack at once: the capture runs on the workspace stack, so that nothing
/// it does changes memory that is being written to the image, and so that a
/// small stack is not overrun.
pub(crate) extern "C" fn handler(sig: i32, info: *mut libc::siginfo_t, uc: *mut c_void) {
    use core::sync::atomic::Ordering::SeqCst;
    // SAFETY: the handler's own arguments, from the kernel.
    if unsafe { intercept::programs_own(sig, info, uc) } {
        return;
    }
    // In a job (`ckpt --tree`), a member checkpoints only when its root
    // asks (job.rs); any other checkpoint signal to it is ignored.
    let cfg = config::get();
    // SAFETY: the kernel's siginfo for this signal.
    let join = cfg.tree && unsafe { job::note_request(info) };
    if cfg.tree && !join && cfg.root != 0 {
        return;
    }
    // SAFETY: the kernel's siginfo for this signal (SA_SIGINFO); si_value
    // is only read for a sigqueue'd signal, which has one.
    let stop = unsafe {
        !info.is_null()
            && (*info).si_code == libc::SI_QUEUE
            && (*info).si_value().sival_ptr as usize as u32 == ckpt_image::signals::STOP_AFTER as u32
    };
    if stop {
        capture::STOP_AFTER.store(true, SeqCst);
    }
    // SAFETY: the workspace exists once the handler is installed.
    let sync = &unsafe { workspace::shared() }.sync;
    let cow = config::get().cow;
    loop {
        // A copy-on-write writer is still writing the previous image: it
        // takes the request, and signals again when it is done.
        if cow && cow::defer() {
            return;
        }
        let generation = loop {
            if let Some(g) = threads::begin(sync) {
                sync.again.store(0, SeqCst); // this checkpoint is the one asked for
                break g;
            }
            if join {
                let _ = job::take_request(); // this process is being checkpointed already
                return;
            }
            // A checkpoint is being taken: its coordinator takes another
            // when it ends, unless it ended meanwhile (then try again here).
            sync.again.store(1, SeqCst);
            if sync.active.load(SeqCst) % 2 == 1 {
                return;
            }
        };
        let top = workspace::stack_top();
        // SAFETY: `top` is the top of the workspace stack, which nothing
        // else uses (the handler is not reentrant: every signal is blocked
        // in it).
        unsafe { capture::call_on_stack(uc, capture::run, top) };
        // Back on the program's stack (the program continues: --continue,
        // or the checkpoint failed): only now may another checkpoint, in
        // another thread, take the workspace stack.
        threads::end(sync, generation);
        // A checkpoint signal that came meanwhile: one more checkpoint, from
        // here (re-sending the signal would look like one the program sent
        // itself).
        if sync.again.swap(0, SeqCst) == 0 {
            return;
        }
    }
}
