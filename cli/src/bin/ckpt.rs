//! `ckpt`: runs a program so that it can be checkpointed.
//!
//! It sets `LD_PRELOAD` to `libckpt.so` and execs the program in its own
//! place: same pid, same stdin/stdout/stderr, same exit status. The library
//! reads the rest of its configuration from the `CKPT_*` variables set here.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const USAGE: &str = "\
usage: ckpt [OPTIONS] PROGRAM [ARGS...]

Runs PROGRAM so that it can be checkpointed: `kill -USR2 PID` writes its
whole state to an image and stops it; `restart IMAGE` brings it back.

Options:
  -o, --output PATH  where to write the image (default: myckpt.dat in the
                     directory where ckpt was started)
  -q, --quiet        no line on stderr when a checkpoint is written
  -h, --help         this help
  -V, --version      the version

Examples:
  ckpt ./counting-test 5 &    # runs as ./counting-test 5 would
  kill -USR2 $!               # writes myckpt.dat; the program stops (status 99)
  restart myckpt.dat          # carries on where it stopped

Exit status: the program's own; 99 when it stopped for a checkpoint;
2 for a usage error; 126 if PROGRAM cannot be run; 127 if it is not found.";

fn fail(status: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("ckpt: {msg}");
    exit(status)
}

struct Options {
    output: Option<PathBuf>,
    quiet: bool,
    program: OsString,
    args: Vec<OsString>,
}

fn parse_args() -> Options {
    let mut args = std::env::args_os().skip(1);
    let mut output = None;
    let mut quiet = false;
    while let Some(arg) = args.next() {
        match arg.as_bytes() {
            b"-h" | b"--help" => {
                println!("{USAGE}");
                exit(0)
            }
            b"-V" | b"--version" => {
                println!("ckpt {}", env!("CARGO_PKG_VERSION"));
                exit(0)
            }
            b"-q" | b"--quiet" => quiet = true,
            b"-o" | b"--output" => match args.next() {
                Some(p) => output = Some(PathBuf::from(p)),
                None => fail(2, "-o needs a path (try: ckpt -o /tmp/job.dat PROGRAM)"),
            },
            b"--" => {
                let program = args.next().unwrap_or_else(|| fail(2, "no program given (try: ckpt --help)"));
                return Options { output, quiet, program, args: args.collect() };
            }
            a if a.starts_with(b"--output=") => output = Some(PathBuf::from(OsStr::from_bytes(&a[9..]))),
            a if a.starts_with(b"-") && a.len() > 1 => {
                fail(2, format!("unknown option {} (try: ckpt --help)", arg.to_string_lossy()))
            }
            _ => return Options { output, quiet, program: arg, args: args.collect() },
        }
    }
    fail(2, "no program given (try: ckpt --help)")
}

/// Finds the program as exec does: a name with a slash is a path, any other
/// name is looked up in PATH.
fn find_program(name: &OsStr) -> Option<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: access() reads a NUL-terminated path.
    p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
}

/// Refuses an ELF executable without an interpreter: a statically linked
/// program never loads libckpt.so, so it would run unprotected.
fn check_dynamic(path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !data.starts_with(b"\x7fELF") {
        return Ok(()); // a script: its interpreter is what runs
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| data.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    if data.get(4) != Some(&2) {
        return Err(format!("{}: not a 64-bit program; ckpt supports x86-64 only", path.display()));
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err(format!("{}: truncated ELF header", path.display()));
    };
    let has_interp = (0..phnum).any(|i| {
        data.get(phoff + i * phentsize..phoff + i * phentsize + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            == Some(3) // PT_INTERP
    });
    if has_interp {
        Ok(())
    } else {
        Err(format!(
            "{} is statically linked: LD_PRELOAD cannot reach it, so it could not be checkpointed; \
             link it dynamically",
            path.display()
        ))
    }
}

/// libckpt.so beside this executable, or in its install prefix.
fn find_library() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let dir = exe.parent()?;
    [dir.join("libckpt.so"), dir.join("../lib/ckpt/libckpt.so"), dir.join("../lib/libckpt.so")]
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}

fn main() {
    let opts = parse_args();
    let Some(program) = find_program(&opts.program) else {
        fail(127, format!("{}: command not found", opts.program.to_string_lossy()))
    };
    if let Err(e) = check_dynamic(&program) {
        fail(126, e)
    }
    let Some(lib) = find_library() else {
        fail(126, "libckpt.so not found beside the ckpt executable (run `make` first)")
    };
    let cwd = std::env::current_dir().unwrap_or_else(|e| fail(126, format!("cannot read the working directory: {e}")));
    let output = cwd.join(opts.output.unwrap_or_else(|| PathBuf::from("myckpt.dat")));
    let mut preload = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = Command::new(&program);
    cmd.arg0(&opts.program)
        .args(&opts.args)
        .env("LD_PRELOAD", preload)
        .env("CKPT_PID", std::process::id().to_string())
        .env("CKPT_OUTPUT", &output);
    if opts.quiet {
        cmd.env("CKPT_QUIET", "1");
    }
    let err = cmd.exec();
    let status = if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    fail(status, format!("{}: {err}", program.display()))
}
