//! Where the kernel puts the frames of ckpt's two signals.
//!
//! Both handlers are installed with `SA_ONSTACK`: on a thread that has an
//! alternate signal stack (`sigaltstack`) the kernel writes the signal frame
//! — every register, about 1 KiB, 3 KiB with AVX-512 — there, not on the
//! stack the thread was running on. Programs that run code on small stacks
//! (Go's goroutines, coroutine libraries built on `makecontext`) give their
//! threads such a stack for exactly this reason. The handlers then move to a
//! stack in the workspace before doing anything else, so that what ckpt
//! itself pushes on the program's stack is a few words, not a capture.
//!
//! A thread with no alternate stack would get the frame on its current
//! stack, as it does for any signal the program handles. So ckpt gives each
//! thread of the program one of its own (64 KiB, `MAP_NORESERVE`, a guard
//! page below), only if it has none: the main thread when the library
//! loads, every thread started with `pthread_create` as it starts (a
//! wrapper of its start routine; new threads never inherit one). The
//! program sees it (`sigaltstack` answers with it) and may replace or
//! disable it at any time, per thread (the kernel keeps one per thread);
//! ckpt never puts its own back. A thread's stack from ckpt is unmapped
//! when the thread ends (a thread-specific key's destructor), after being
//! disabled if it is still the thread's; the main thread's lives as long as
//! the process. (Go, with cgo, adopts an existing alternate stack as its
//! signal stack; 64 KiB is twice what it asks for.) Threads started with a
//! raw `clone` get none from ckpt.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use ckpt_sys as sys;

/// Size of an alternate stack from ckpt.
const SIZE: u64 = 64 << 10;
const GUARD: u64 = 4096;

/// Gives the calling thread an alternate signal stack if it has none.
/// Returns the mapping made (0: none). Not fatal if it fails: the handlers
/// still work, on the thread's own stack.
fn ensure() -> u64 {
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: `old` is a valid stack_t for the kernel to fill.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut old) } != 0 || old.ss_flags & libc::SS_DISABLE == 0 {
        return 0; // the program has one already (or we cannot tell)
    }
    // SAFETY: a new private mapping where the kernel chooses.
    let Ok(addr) = (unsafe {
        sys::mmap(
            0,
            GUARD + SIZE,
            sys::PROT_READ | sys::PROT_WRITE,
            sys::MAP_PRIVATE | sys::MAP_ANONYMOUS | sys::MAP_NORESERVE,
            -1,
            0,
        )
    }) else {
        return 0;
    };
    // SAFETY: the guard page is the bottom of the mapping just made.
    let _ = unsafe { sys::mprotect(addr, GUARD, sys::PROT_NONE) };
    let stack = libc::stack_t { ss_sp: (addr + GUARD) as *mut c_void, ss_flags: 0, ss_size: SIZE as usize };
    // SAFETY: the stack is ours, mapped above.
    if unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) } != 0 {
        // SAFETY: our own mapping, not in use.
        let _ = unsafe { sys::munmap(addr, GUARD + SIZE) };
        return 0;
    }
    addr
}

/// The main thread's (constructor only; its stack is never unmapped).
pub fn ensure_main() {
    ensure();
}

/// The key whose destructor unmaps a thread's stack from ckpt (MAX: none).
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Prepares [`pthread_create`]'s wrapping (constructor).
pub fn prepare_threads() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a plain destructor function; from the constructor.
    if unsafe { libc::pthread_key_create(&mut key, Some(release)) } == 0 {
        KEY.store(key, SeqCst);
    }
}

/// Thread-exit destructor: the thread's stack from ckpt goes (disabled
/// first if it is still the thread's alternate stack).
extern "C" fn release(addr: *mut c_void) {
    let addr = addr as u64;
    // SAFETY: reading the current alternate stack.
    let mut cur: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::sigaltstack(core::ptr::null(), &mut cur) } == 0 && cur.ss_sp as u64 == addr + GUARD {
        let off = libc::stack_t { ss_sp: core::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
        // SAFETY: disabling this thread's alternate stack; the destructor
        // does not run on it.
        if unsafe { libc::sigaltstack(&off, core::ptr::null_mut()) } != 0 {
            return; // still in use: leave it mapped
        }
    }
    // SAFETY: our own mapping, which the thread no longer uses.
    let _ = unsafe { sys::munmap(addr, GUARD + SIZE) };
}

type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;
type CreateFn = unsafe extern "C" fn(*mut libc::pthread_t, *const libc::pthread_attr_t, StartFn, *mut c_void) -> c_int;

static REAL_CREATE: AtomicUsize = AtomicUsize::new(0);

/// What the wrapped start routine needs (malloc'ed by the creator, freed
/// by the new thread).
struct Start {
    routine: StartFn,
    arg: *mut c_void,
}

extern "C" fn start(p: *mut c_void) -> *mut c_void {
    // SAFETY: the Start that pthread_create below allocated for this thread.
    let Start { routine, arg } = unsafe { (p as *const Start).read() };
    // SAFETY: allocated with malloc, read above, used no more.
    unsafe { libc::free(p) };
    let addr = ensure();
    let key = KEY.load(SeqCst);
    if addr != 0 && key != u32::MAX {
        // SAFETY: a key of ours; the value is only the mapping's address.
        unsafe { libc::pthread_setspecific(key, addr as *const c_void) };
    }
    routine(arg)
}

/// `pthread_create`: in the armed process, the new thread first gets an
/// alternate signal stack of ckpt's if it has none, then runs the
/// program's start routine.
///
/// # Safety
/// As pthread_create(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: StartFn,
    arg: *mut c_void,
) -> c_int {
    let mut real = REAL_CREATE.load(SeqCst);
    if real == 0 {
        // SAFETY: dlsym with a NUL-terminated name.
        real = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr()) } as usize;
        REAL_CREATE.store(real, SeqCst);
    }
    if real == 0 {
        return libc::ENOSYS;
    }
    // SAFETY: the address dlsym gave for "pthread_create".
    let real = unsafe { core::mem::transmute::<usize, CreateFn>(real) };
    if crate::intercept::protected() == 0 {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real(thread, attr, routine, arg) };
    }
    // SAFETY: a plain allocation of a plain struct.
    let p = unsafe { libc::malloc(core::mem::size_of::<Start>()) } as *mut Start;
    if p.is_null() {
        // SAFETY: as above.
        return unsafe { real(thread, attr, routine, arg) };
    }
    // SAFETY: `p` is a fresh allocation of the right size.
    unsafe { p.write(Start { routine, arg }) };
    // SAFETY: the caller's thread and attributes; `start` takes `p`.
    let r = unsafe { real(thread, attr, start, p as *mut c_void) };
    if r != 0 {
        // SAFETY: no thread took it.
        unsafe { libc::free(p as *mut c_void) };
    }
    r
}
