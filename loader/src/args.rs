//! The command line, read from the kernel's initial stack and copied into
//! the loader's own memory (the initial stack is unmapped later).

use core::ffi::CStr;

use ckpt_sys as sys;

const USAGE: &str = "\
usage: restart [OPTIONS] [IMAGE]

Brings back the program saved in IMAGE (default: myckpt.dat) by ckpt. It
continues from the instruction where it was checkpointed, in this process
with its own pid and thread ids (in a user, pid and mount namespace that
restart creates; restart stays in between and passes signals on), with
restart's stdin, stdout and stderr. The image is not consumed: it can be
restarted again.

Options:
  --keep-stdio   reopen the program's own stdin/stdout/stderr (files) instead
                 of keeping restart's
  --strict       refuse to restart if an open file changed or cannot be
                 reopened (default: a warning)
  --trust-image  restart an image that belongs to another user or that
                 group or others may write (default: refused, since it
                 would run code they chose with your credentials)
  --exact-pids   refuse to restart (exit 1) where the pids cannot be
                 restored (user namespaces unavailable); default: restart
                 with new pids and say so in one line
  --new-pids     do not create namespaces: the program takes restart's pid
                 and new thread ids
  -v, --verbose  say what is restored
  -h, --help     this help
  -V, --version  the version

Examples:
  restart                    # restarts ./myckpt.dat
  restart /tmp/job.dat       # an image written with ckpt -o /tmp/job.dat

Exit status: the program's own; 1 if the image cannot be restarted (one line
on stderr says why); 2 for a usage error.
";

use ckpt_sys::PATH_MAX;

pub struct Options {
    /// The image path, NUL-terminated.
    path: [u8; PATH_MAX + 1],
    len: usize,
    /// Reopen the saved stdin/stdout/stderr instead of keeping restart's.
    pub keep_stdio: bool,
    /// Refuse to restart when anything would not come back as it was.
    pub strict: bool,
    /// Say what is being restored, on stderr.
    pub verbose: bool,
    /// Restart an image that is not the caller's own, or that others may write.
    pub trust_image: bool,
    /// Refuse to restart with pids other than the image's.
    pub exact_pids: bool,
    /// Restart with new pids, without namespaces.
    pub new_pids: bool,
    /// After how long reading the image shows its progress on a terminal
    /// (`CKPT_PROGRESS_AFTER` in the environment, ms).
    pub progress_after_ms: u64,
}

impl Options {
    pub fn image(&self) -> &[u8] {
        &self.path[..self.len]
    }

    pub fn image_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.path[..self.len + 1]).unwrap_or(c"myckpt.dat")
    }
}

fn usage_error(what: &[u8]) -> ! {
    let mut l = sys::msg::Line::new();
    l.push(b"restart: ").push(what).push(b" (try: restart --help)");
    l.emit();
    sys::exit_group(2)
}

/// Parses the arguments.
///
/// # Safety
/// `sp` must be the kernel's initial stack pointer: argc, then argv.
pub unsafe fn parse(sp: *const u64) -> Options {
    let mut opts = Options {
        path: [0; PATH_MAX + 1],
        len: 0,
        keep_stdio: false,
        strict: false,
        verbose: false,
        trust_image: false,
        exact_pids: false,
        new_pids: false,
        progress_after_ms: sys::progress::AFTER_MS,
    };
    // SAFETY: the kernel's initial stack: argc, then argc pointers to
    // NUL-terminated strings.
    let argc = unsafe { *sp } as usize;
    let mut image: Option<&[u8]> = None;
    for i in 1..argc {
        // SAFETY: as above.
        let arg = unsafe { CStr::from_ptr(*sp.add(1 + i) as *const core::ffi::c_char) }.to_bytes();
        match arg {
            b"-h" | b"--help" => {
                let _ = sys::write_all(1, USAGE.as_bytes());
                sys::exit_group(0)
            }
            b"-V" | b"--version" => {
                let _ = sys::write_all(1, concat!("restart ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
                sys::exit_group(0)
            }
            b"--keep-stdio" => opts.keep_stdio = true,
            b"--strict" => opts.strict = true,
            b"--trust-image" => opts.trust_image = true,
            b"--exact-pids" => opts.exact_pids = true,
            b"--new-pids" => opts.new_pids = true,
            b"-v" | b"--verbose" => opts.verbose = true,
            a if a.starts_with(b"-") && a.len() > 1 => usage_error(b"unknown option"),
            a if image.is_none() => image = Some(a),
            _ => usage_error(b"more than one image given"),
        }
    }
    // The environment follows argv and its NULL.
    for i in argc + 2.. {
        // SAFETY: the kernel's initial stack: envp, NULL-terminated.
        let p = unsafe { *sp.add(i) } as *const core::ffi::c_char;
        if p.is_null() {
            break;
        }
        // SAFETY: as above.
        let var = unsafe { CStr::from_ptr(p) }.to_bytes();
        if let Some(v) = var.strip_prefix(b"CKPT_PROGRESS_AFTER=") {
            opts.progress_after_ms = sys::progress::after_ms(Some(v));
        }
    }
    if opts.exact_pids && opts.new_pids {
        usage_error(b"--exact-pids and --new-pids exclude each other");
    }
    let image = image.unwrap_or(b"myckpt.dat");
    if image.is_empty() || image.len() > PATH_MAX {
        usage_error(b"the image path is empty or too long");
    }
    opts.path[..image.len()].copy_from_slice(image);
    opts.len = image.len();
    opts
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    /// `args::parse` on the initial stack the kernel would give `restart` run
    /// with `argv` and `envp`.
    fn parse(argv: &[&str], envp: &[&str]) -> super::Options {
        let strings: Vec<CString> = argv.iter().chain(envp).map(|s| CString::new(*s).unwrap()).collect();
        let mut stack = vec![argv.len() as u64];
        stack.extend(strings[..argv.len()].iter().map(|s| s.as_ptr() as u64));
        stack.push(0);
        stack.extend(strings[argv.len()..].iter().map(|s| s.as_ptr() as u64));
        stack.push(0);
        // SAFETY: argc, argv and envp as the kernel lays them out, the strings alive.
        unsafe { super::parse(stack.as_ptr()) }
    }

    #[test]
    fn command_line() {
        let o = parse(&["restart"], &[]);
        assert_eq!(o.image(), b"myckpt.dat");
        assert_eq!(o.image_cstr(), c"myckpt.dat");
        assert!(!o.keep_stdio && !o.strict && !o.verbose && !o.trust_image);
        let o =
            parse(&["restart", "--strict", "-v", "--keep-stdio", "--trust-image", "-"], &["CKPT_PROGRESS_AFTER=250"]);
        assert_eq!(o.image(), b"-", "a lone - is a file name");
        assert!(o.keep_stdio && o.strict && o.verbose && o.trust_image);
        assert_eq!(o.progress_after_ms, 250);
        let o = parse(&["restart", "/tmp/a b.dat"], &["X=1", "CKPT_PROGRESS_AFTERX=9"]);
        assert_eq!(o.image_cstr(), c"/tmp/a b.dat");
        assert_eq!(o.progress_after_ms, ckpt_sys::progress::AFTER_MS);
    }
}
