//! What the user asked for, read once from the environment that `ckpt` set,
//! and kept in static storage for the signal handler.
//!
//! | variable      | meaning                                               |
//! |---------------|-------------------------------------------------------|
//! | `CKPT_PID`    | pid of the process ckpt exec'ed: only it is armed     |
//! | `CKPT_OUTPUT` | absolute path of the image                            |
//! | `CKPT_SIGNAL` | checkpoint signal number (default SIGUSR2)            |
//! | `CKPT_QUIET`  | `1`: no line on stderr after a successful checkpoint  |

use core::cell::UnsafeCell;
use core::ffi::CStr;

use ckpt_sys as sys;

/// Longest output path (with room for the temporary suffix).
const PATH_MAX: usize = 4096;

#[derive(Clone, Copy)]
pub struct Config {
    pub signal: i32,
    pub quiet: bool,
    /// NUL-terminated absolute path of the image.
    pub output: [u8; PATH_MAX],
}

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

static CONFIG: Global = Global(UnsafeCell::new(Config { signal: 0, quiet: false, output: [0; PATH_MAX] }));

pub fn install(cfg: Config) {
    // SAFETY: see Global; the handler is not installed yet.
    unsafe { *CONFIG.0.get() = cfg };
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

/// The configuration, if this process is the one `ckpt` started.
pub fn from_env() -> Option<Config> {
    let pid = number(env(c"CKPT_PID")?)?;
    if pid != sys::getpid() as i64 {
        return None;
    }
    let mut cfg = Config { signal: libc::SIGUSR2, quiet: false, output: [0; PATH_MAX] };
    if let Some(sig) = env(c"CKPT_SIGNAL").and_then(number) {
        if (1..=64).contains(&sig) {
            cfg.signal = sig as i32;
        }
    }
    cfg.quiet = env(c"CKPT_QUIET").is_some_and(|v| v == b"1");
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
            push(other.unwrap_or(b"myckpt.dat"));
        }
    }
    Some(cfg)
}
