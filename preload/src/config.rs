//! What the user asked for, read once from the environment, and kept in
//! static storage for the signal handler.
//!
//! One set of variables serves both the user and the library. A batch
//! script may set them instead of passing options to `ckpt` (an option on
//! the command line wins over its variable); `ckpt` checks them, merges them
//! with its options, and exports every one, in the normalized form below,
//! to the program it runs, where the library's constructor ([`from_env`])
//! reads them. They stay in the program's environment (a child that runs
//! `ckpt` itself inherits them).
//!
//! | variable        | user form (ckpt checks it)     | form the library reads         |
//! |-----------------|--------------------------------|--------------------------------|
//! | `CKPT_OUTPUT`   | image path, relative to the directory ckpt runs in | absolute path |
//! | `CKPT_CONTINUE` | `1`/`yes`/`true`/`on` or `0`/`no`/`false`/`off` | `1` or `0` |
//! | `CKPT_INTERVAL` | seconds (`30`, `0.5`, `5m`, `1h`; `0`: none) | seconds (`30`, `0.5`), unset for none |
//! | `CKPT_KEEP`     | number of images kept, 1–1000  | the same                       |
//! | `CKPT_INCREMENTAL` | as `CKPT_CONTINUE`          | `1` or `0`                     |
//! | `CKPT_MAX_CHAIN` | deltas on a full image, 0–15 (default 8) | the same            |
//! | `CKPT_SIGNAL`   | `USR1`, `SIGUSR1`, `RTMIN+2`, `10` | signal number              |
//! | `CKPT_QUIET`    | as `CKPT_CONTINUE`             | `1` or `0`                     |
//! | `CKPT_VERBOSE`  | as `CKPT_CONTINUE`             | `1` or `0`                     |
//! | `CKPT_STRICT`   | as `CKPT_CONTINUE`             | `1` or `0`                     |
//! | `CKPT_NO_COW`   | as `CKPT_CONTINUE`             | `1` or `0`                     |
//! | `CKPT_PORTABLE` | a level (`x86-64`, `x86-64-v2`…`v4`), or as `CKPT_CONTINUE` (on: `x86-64-v2`) | the level, unset for none |
//! | `CKPT_ALLOW_FOREIGN_OUTPUT` | as `CKPT_CONTINUE`  | `1` or `0`                     |
//! | `CKPT_RELEASE_LOCKS` | as `CKPT_CONTINUE`        | `1` or `0`                     |
//! | `CKPT_COMPRESS` | `lz4`, or as `CKPT_CONTINUE` (on: `lz4`) | `lz4`, unset for none |
//! | `CKPT_PROGRESS_AFTER` | ms (not read by ckpt)    | the same: on a terminal, progress after that long |
//! | `CKPT_PID`      | (set by ckpt only)             | pid of the process ckpt exec'ed, 10 digits: only it is armed (restart puts its own pid there) |
//! | `CKPT_TREE`     | as `CKPT_CONTINUE` (unset: on) | `1` or `0`: its descendants are armed too, members of its job (unset: `1`) |
//!
//! `CKPT_INTERVAL` is informational for the library: the periodic signals
//! come from ckpt's ticker process, outside the program. The library
//! accepts a signal name in `CKPT_SIGNAL` too, and falls back to the
//! defaults (USR2, keep 1, stop after a checkpoint) on anything it cannot
//! read.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::fmt::Write as _;

use ckpt_image::xstate::{self, Component, Layout, NCOMP};
use ckpt_sys as sys;

// The longest output path, with room for the temporary and rotation suffixes.
use ckpt_sys::PATH_MAX;

/// Longest chain of deltas `--max-chain` allows: a delta names at most
/// `ckpt_image::MAX_CHAIN` parents.
pub const MAX_CHAIN: u32 = ckpt_image::MAX_CHAIN as u32 - 1;

/// Most images `--keep` may keep.
pub const MAX_KEEP: u32 = 1000;

#[derive(Clone, Copy)]
pub struct Config {
    pub signal: i32,
    pub quiet: bool,
    pub verbose: bool,
    /// `ckpt --strict`: refuse a checkpoint whose image would not hold
    /// everything (a child process, a descriptor that cannot come back).
    pub strict: bool,
    /// Keep running after a checkpoint instead of stopping (exit status 99).
    pub cont: bool,
    /// Every descendant of the process ckpt started is a member of the job,
    /// and one checkpoint takes them all (`job.rs`); the default, off with
    /// `ckpt --no-tree`.
    pub tree: bool,
    /// In a job, the pid of its root (the process ckpt started) when this
    /// process is another member; 0 in the root.
    pub root: i32,
    /// Copy-on-write checkpoints ([`crate::cow`]): in --continue mode
    /// unless `CKPT_NO_COW`.
    pub cow: bool,
    /// Images kept: the newest at `output`, older ones numbered 1..keep-1.
    pub keep: u32,
    /// `--incremental`: write delta images on the previous one.
    pub incremental: bool,
    /// `--max-chain`: most deltas on a full image (0 to `MAX_CHAIN`).
    pub max_chain: u32,
    /// Period of the ticker's checkpoints in ms (0: none), for messages.
    pub interval_ms: u64,
    /// An image path that is another user's file may be replaced.
    pub allow_foreign: bool,
    /// `--release-locks`: a program that stops lets its file locks go at
    /// exit, instead of leaving them to a lock keeper ([`crate::keeper`]).
    pub release_locks: bool,
    /// After how long a checkpoint shows its progress on a terminal
    /// (`CKPT_PROGRESS_AFTER`, ms).
    pub progress_after_ms: u64,
    /// NUL-terminated absolute path of the image.
    pub output: [u8; PATH_MAX],
    /// `--portable`: the x86-64 level glibc's CPU dispatch is held to (0: none).
    pub portable_level: u32,
    /// The CPU, as the image records it.
    pub cpu_level: u32,
    pub cpu_brand: [u8; 48],
    pub xlayout: Layout,
    /// `--compress`: extents are stored LZ4-compressed where that pays.
    pub compress: bool,
}

const DEFAULT: Config = Config {
    signal: libc::SIGUSR2,
    quiet: false,
    verbose: false,
    strict: false,
    cont: false,
    tree: false,
    root: 0,
    cow: false,
    keep: 1,
    incremental: false,
    max_chain: 8,
    interval_ms: 0,
    allow_foreign: false,
    release_locks: false,
    progress_after_ms: sys::progress::AFTER_MS,
    output: [0; PATH_MAX],
    portable_level: 0,
    cpu_level: 0,
    cpu_brand: [0; 48],
    xlayout: Layout { comps: [Component { offset: 0, size: 0 }; NCOMP] },
    compress: false,
};

impl Config {
    /// The image path, without its NUL.
    pub fn output(&self) -> &[u8] {
        let len = self.output.iter().position(|&c| c == 0).unwrap_or(0);
        &self.output[..len]
    }
}

struct Global(UnsafeCell<Config>);
// SAFETY: written once by the constructor before the handler is installed,
// only read afterwards.
unsafe impl Sync for Global {}

static CONFIG: Global = Global(UnsafeCell::new(DEFAULT));

pub fn install(cfg: Config) {
    // SAFETY: see Global; the handler is not installed yet.
    unsafe { *CONFIG.0.get() = cfg };
}

/// In a child forked by a member of a job: it is a member too, of the same
/// root (the root's own children learn the root's pid here).
pub fn become_member() {
    let root = if get().root != 0 { get().root } else { sys::getppid() };
    // SAFETY: called in the child of a fork (pthread_atfork), single-threaded,
    // before the child can take a checkpoint signal (the fork blocked them).
    unsafe { (*CONFIG.0.get()).root = root };
}

pub fn get() -> &'static Config {
    // SAFETY: see Global.
    unsafe { &*CONFIG.0.get() }
}

fn env(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: the constructor runs before the program's main, single-threaded;
    // getenv returns a pointer into the environment, which lives as long as
    // the process (or NULL).
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: getenv returns a NUL-terminated string.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

fn number(v: &[u8]) -> Option<i64> {
    core::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn flag(v: Option<&[u8]>) -> bool {
    matches!(v, Some(b"1" | b"yes" | b"true" | b"on"))
}

/// "30" or "0.5" seconds, in ms.
fn seconds_ms(v: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut ms = int.parse::<u64>().ok()?.checked_mul(1000)?;
    let mut scale = 100;
    for c in frac.bytes().take(3) {
        ms += (c as char).to_digit(10)? as u64 * scale;
        scale /= 10;
    }
    Some(ms)
}

/// A signal given as a number or a name (`USR1`, `SIGUSR1`, `RTMIN+2`).
pub fn parse_signal(v: &[u8]) -> Option<i32> {
    ckpt_image::signals::parse(v)
}

/// Writes the signal's name ("SIGUSR2", "SIGRTMIN+3", "signal 70").
pub fn write_signal(l: &mut impl core::fmt::Write, sig: i32) {
    let _ = write!(l, "{}", ckpt_image::signals::Name(sig));
}

/// The configuration, if this process is the one `ckpt` started, or (unless
/// `CKPT_TREE=0`) one of its descendants, a member of its job.
pub fn from_env() -> Option<Config> {
    let pid = number(env(c"CKPT_PID")?)?;
    let mut cfg = DEFAULT;
    cfg.tree = env(c"CKPT_TREE").is_none_or(|v| flag(Some(v)));
    if pid != sys::getpid() as i64 {
        if !cfg.tree || pid <= 1 || pid > i32::MAX as i64 {
            return None;
        }
        cfg.root = pid as i32;
    }
    if let Some(sig) = env(c"CKPT_SIGNAL").and_then(parse_signal) {
        cfg.signal = sig;
    }
    cfg.quiet = flag(env(c"CKPT_QUIET"));
    cfg.verbose = flag(env(c"CKPT_VERBOSE"));
    cfg.strict = flag(env(c"CKPT_STRICT"));
    cfg.cont = flag(env(c"CKPT_CONTINUE"));
    cfg.allow_foreign = flag(env(c"CKPT_ALLOW_FOREIGN_OUTPUT"));
    cfg.release_locks = flag(env(c"CKPT_RELEASE_LOCKS"));
    cfg.compress = env(c"CKPT_COMPRESS") == Some(b"lz4");
    cfg.interval_ms = env(c"CKPT_INTERVAL").and_then(seconds_ms).unwrap_or(0);
    cfg.progress_after_ms = sys::progress::after_ms(env(c"CKPT_PROGRESS_AFTER"));
    if cfg.interval_ms != 0 {
        cfg.cont = true;
    }
    cfg.cow = cfg.cont && !flag(env(c"CKPT_NO_COW"));
    cfg.cpu_level = sys::cpu::level();
    // Held to a level above its CPU's, the program could use only its CPU's.
    cfg.portable_level = env(c"CKPT_PORTABLE").and_then(xstate::parse_level).map_or(0, |l| l.min(cfg.cpu_level));
    cfg.cpu_brand = sys::cpu::brand();
    cfg.xlayout = Layout::from_components(sys::cpu::xstate_components());
    cfg.incremental = flag(env(c"CKPT_INCREMENTAL"));
    if let Some(n) = env(c"CKPT_MAX_CHAIN").and_then(number) {
        cfg.max_chain = n.clamp(0, MAX_CHAIN as i64) as u32;
    }
    if let Some(keep) = env(c"CKPT_KEEP").and_then(number) {
        cfg.keep = keep.clamp(1, MAX_KEEP as i64) as u32;
    }
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        let n = bytes.len().min(PATH_MAX - 64 - len);
        cfg.output[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    match env(c"CKPT_OUTPUT") {
        Some(path) if path.first() == Some(&b'/') => push(path),
        other => {
            let mut cwd = [0u8; 2048];
            let n = sys::getcwd(&mut cwd).unwrap_or(0);
            push(&cwd[..n]);
            push(b"/");
            push(other.filter(|p| !p.is_empty()).unwrap_or(b"myckpt.dat"));
        }
    }
    Some(cfg)
}

/// Writes `ms` as seconds ("5 s", "0.25 s").
pub fn write_seconds(l: &mut impl core::fmt::Write, ms: u64) {
    let _ = if ms.is_multiple_of(1000) {
        write!(l, "{} s", ms / 1000)
    } else {
        let frac = ms % 1000;
        let (frac, width) = if frac.is_multiple_of(100) {
            (frac / 100, 1)
        } else if frac.is_multiple_of(10) {
            (frac / 10, 2)
        } else {
            (frac, 3)
        };
        write!(l, "{}.{:0width$} s", ms / 1000, frac, width = width)
    };
}

/// With `-v`, says once at startup what is armed.
pub fn announce() {
    let c = get();
    if !c.verbose || c.root != 0 {
        return;
    }
    let mut l = crate::msg::Line::new();
    let _ = write!(l, "ckpt: pid {}, checkpoint signal ", sys::getpid());
    write_signal(&mut l, c.signal);
    l.push(b", image ").push(c.output());
    if c.cont {
        l.push(b"; the program continues after each checkpoint");
        if c.cow {
            l.push(b" (paused only to copy it: a copy-on-write writer process writes the image)");
        }
    } else {
        let _ = write!(l, "; the program stops after a checkpoint (exit status {})", ckpt_image::EXIT_CHECKPOINTED);
    }
    if c.interval_ms != 0 {
        l.push(b"; a checkpoint every ");
        write_seconds(&mut l, c.interval_ms);
    }
    if c.incremental {
        let _ = write!(l, "; incremental: delta images, at most {} on a full one", c.max_chain);
    }
    if c.keep > 1 {
        let _ = write!(l, "; the last {} images are kept", c.keep);
    }
    if c.compress {
        l.push(b"; images are compressed (lz4)");
    }
    l.emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_the_variables() {
        assert_eq!(number(b" 1234\n"), Some(1234));
        assert_eq!(number(b"12x"), None);
        assert!(flag(Some(b"1")) && flag(Some(b"on")) && !flag(Some(b"0")) && !flag(Some(b"")) && !flag(None));
        assert_eq!(seconds_ms(b"30"), Some(30_000));
        assert_eq!(seconds_ms(b"0.5"), Some(500));
        assert_eq!(seconds_ms(b"1.2345"), Some(1234));
        assert_eq!(seconds_ms(b"1.x"), None);
        assert_eq!(seconds_ms(b"-1"), None);
        assert_eq!(parse_signal(b"SIGUSR1"), Some(10));
        let mut s = std::string::String::new();
        write_signal(&mut s, 36);
        assert_eq!(s, "SIGRTMIN+2");
    }
}
