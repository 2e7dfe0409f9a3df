//! `ckpt`: runs a program so that it can be checkpointed.
//!
//! It sets `LD_PRELOAD` to `libckpt.so` and execs the program in its own
//! place: same pid, same stdin/stdout/stderr, same exit status. The library
//! reads the rest of its configuration from the `CKPT_*` variables set here
//! (the scheme is described at the top of preload/src/config.rs): every
//! option has a variable of the same meaning, which the user may set
//! instead; ckpt checks both, the command line winning, and exports the
//! result in one normalized form.
//!
//! With `--interval`, a "ticker" sends the checkpoint signal periodically.
//! Nothing of it is visible to the program: it is not a thread of the
//! program, nor its child (ckpt double-forks it before the exec, so it is
//! reparented to init and lives in its own session), nor a timer. It holds a
//! pidfd of the program, opened before the fork, so it can never signal a
//! process that took over the pid, and it exits as soon as the program does.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Parser};
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const ABOUT: &str = "\
Runs PROGRAM so that it can be checkpointed: `kill -USR2 PID` writes its
whole state to an image and stops it; `restart IMAGE` brings it back.";

const AFTER_HELP: &str = "\
Every option can also be given in the environment (the [env: ...] above),
for batch scripts; an option on the command line wins over its variable.
The flags' variables take 1 or 0 (yes/no, true/false, on/off).

Examples:
  ckpt ./counting-test 5 &        # runs as ./counting-test 5 would
  kill -USR2 $!                   # writes myckpt.dat; the program stops (99)
  restart myckpt.dat              # carries on where it stopped

  ckpt --continue -o /tmp/job.dat ./job &
  kill -USR2 $!                   # writes /tmp/job.dat; the job goes on

  ckpt -i 10m --keep 3 ./job      # a checkpoint every 10 minutes; keeps
                                  # myckpt.dat, myckpt.1.dat, myckpt.2.dat

  ckpt -s USR1 ./server           # for a program that uses SIGUSR2 itself

The job is the program and every process it starts (a script's commands,
forked workers): one signal checkpoints them all into one image. With
--no-tree only the program is checkpointed; its children are named.

The program must not use the checkpoint signal itself: ckpt keeps it (and
signal 62, with which it stops threads) for itself, and says so if the
program tries to set a handler for it. Periodic checkpoints go on after a
restart (restart starts its own ticker from what the image records).

Exit status: the program's own; 99 when it stopped for a checkpoint;
2 for a usage error; 126 if PROGRAM cannot be run (or is statically linked,
setuid, setgid or has file capabilities: it could not be checkpointed);
127 if it is not found.";

/// The command line. Every option also has a `CKPT_*` variable; values are
/// taken as text here and checked in `options`, so that a bad one is
/// reported naming what the user wrote: the option, or the variable.
#[derive(Parser)]
#[command(
    name = "ckpt",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    override_usage = "ckpt [OPTIONS] PROGRAM [ARGS...]"
)]
struct Cli {
    /// Where to write the image (default: myckpt.dat in the directory where
    /// ckpt was started)
    #[arg(short, long, value_name = "PATH", env = "CKPT_OUTPUT", hide_env_values = true)]
    output: Option<OsString>,
    /// Keep running after each checkpoint (default: stop, exit status 99)
    #[arg(long = "continue", env = "CKPT_CONTINUE", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    cont: bool,
    /// Also checkpoint every TIME seconds (30, 0.5, or with a unit: 500ms,
    /// 30s, 5m, 1h); implies --continue
    #[arg(short, long, value_name = "TIME", env = "CKPT_INTERVAL", hide_env_values = true)]
    #[arg(allow_hyphen_values = true)]
    interval: Option<String>,
    /// Keep the last N images (default 1): the newest at PATH, the ones
    /// before as myckpt.1.dat (the previous one), myckpt.2.dat, ...
    /// myckpt.(N-1).dat
    #[arg(long, value_name = "N", env = "CKPT_KEEP", hide_env_values = true, allow_hyphen_values = true)]
    keep: Option<String>,
    /// With --continue or --interval, keep the program paused for the whole
    /// write (default: it is paused only to fork a copy-on-write writer
    /// process, which writes the image while the program runs on)
    #[arg(long = "no-cow", env = "CKPT_NO_COW", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    no_cow: bool,
    /// Write delta images: after the first (full) image, only the pages
    /// changed since the previous one, naming it as its parent
    #[arg(long, env = "CKPT_INCREMENTAL", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    incremental: bool,
    /// With --incremental: at most N deltas on a full image (default 8,
    /// at most 15; 0: every image full); then a full image, and the old
    /// chain is removed
    #[arg(long, value_name = "N", env = "CKPT_MAX_CHAIN", hide_env_values = true, allow_hyphen_values = true)]
    max_chain: Option<String>,
    /// Refuse to write an image that cannot hold the whole job: one that
    /// would lose an open descriptor (a socket to another process...), or
    /// with --no-tree while the program has child processes: one line names
    /// it, the program continues, the previous image stays
    #[arg(long, env = "CKPT_STRICT", hide_env_values = true, value_parser = parse_flag, action = ArgAction::SetTrue)]
    strict: bool,
    /// The whole process tree is the job (the default): every descendant of
    /// the program (fork, exec of a dynamic program) is checkpointed with
    /// it, into one image, by one signal to the program
    #[arg(long, env = "CKPT_TREE", hide_env_values = true, value_parser = parse_flag, action = ArgAction::SetTrue)]
    tree: bool,
    /// Only the program is the job: its children are named at each
    /// checkpoint and are not in the image (with --strict, refused)
    #[arg(long = "no-tree", action = ArgAction::SetTrue)]
    no_tree: bool,
    /// The checkpoint signal: a name (USR1, SIGUSR1, RTMIN+2) or a number
    /// (default USR2); not KILL, STOP, CHLD, CONT, a fault signal (SEGV,
    /// BUS, ...), 32, 33 or 62
    #[arg(short, long, value_name = "SIG", env = "CKPT_SIGNAL", hide_env_values = true)]
    #[arg(allow_hyphen_values = true)]
    signal: Option<String>,
    /// Hold glibc's CPU dispatch (memcpy, strlen, libm...) to LEVEL: x86-64,
    /// x86-64-v2 (the default), x86-64-v3 or x86-64-v4, so that the images
    /// restart on any CPU of that level
    #[arg(long, value_name = "LEVEL", env = "CKPT_PORTABLE", hide_env_values = true)]
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "x86-64-v2")]
    portable: Option<String>,
    /// Store the memory in the images compressed with CODEC (lz4, the
    /// default): parts that do not shrink by an eighth are stored as they are
    #[arg(long, value_name = "CODEC", env = "CKPT_COMPRESS", hide_env_values = true)]
    #[arg(num_args = 0..=1, require_equals = true, default_missing_value = "lz4")]
    compress: Option<String>,
    /// Replace an image at PATH that belongs to another user (default:
    /// refuse that checkpoint)
    #[arg(long, env = "CKPT_ALLOW_FOREIGN_OUTPUT", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    allow_foreign_output: bool,
    /// A program that stops at a checkpoint lets its file locks go when it
    /// exits (default: a lock keeper process holds them until a restart)
    #[arg(long, env = "CKPT_RELEASE_LOCKS", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    release_locks: bool,
    /// No line on stderr when a checkpoint is written
    #[arg(short, long, env = "CKPT_QUIET", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    quiet: bool,
    /// Say more on stderr (at startup, and per checkpoint)
    #[arg(short, long, env = "CKPT_VERBOSE", hide_env_values = true, value_parser = parse_flag)]
    #[arg(action = ArgAction::SetTrue)]
    verbose: bool,
    /// The program to run, found in PATH as exec finds it, and its arguments
    #[arg(value_name = "PROGRAM", required = true, num_args = 1.., trailing_var_arg = true)]
    command: Vec<OsString>,
}

/// The signal libckpt.so stops threads with (preload/src/threads.rs).
const THREAD_SIGNAL: i32 = 62;
/// Most images --keep may keep (preload/src/config.rs MAX_KEEP).
const MAX_KEEP: u32 = 1000;
/// Longest image path the library takes (with room for its suffixes).
const MAX_PATH: usize = 4000;

fn fail(status: i32, msg: impl std::fmt::Display) -> ! {
    ckpt_cli::fail("ckpt", status, msg)
}

fn usage(msg: impl std::fmt::Display) -> ! {
    ckpt_cli::usage("ckpt", msg)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// What the command line and the environment asked for.
struct Options {
    output: PathBuf,
    cont: bool,
    /// `--no-cow`: --continue checkpoints written in place.
    no_cow: bool,
    allow_foreign: bool,
    /// `--release-locks`: no lock keeper when the program stops.
    release_locks: bool,
    /// `--strict`: a checkpoint the image cannot hold whole (children, a
    /// descriptor that cannot come back) fails.
    strict: bool,
    /// Every descendant is a member of the job (the default; `--no-tree`:
    /// only the program).
    tree: bool,
    /// Period of the ticker, ms; 0: none.
    interval_ms: u64,
    keep: u32,
    /// `--incremental`, and its `--max-chain`.
    incremental: bool,
    max_chain: u32,
    signal: i32,
    verbosity: Verbosity,
    /// `--portable`: the x86-64 level (1-4); 0: none.
    portable: u32,
    /// `--compress`: images store LZ4-compressed extents.
    compress: bool,
    program: OsString,
    args: Vec<OsString>,
}

use ckpt_image::signals::{Name, RTMAX};
use ckpt_image::xstate;

fn signal_name(sig: i32) -> String {
    Name(sig).to_string()
}

/// A signal name or number, checked to be one ckpt can use.
fn parse_signal(v: &str) -> Result<i32, String> {
    let Some(sig) = ckpt_image::signals::parse(v.as_bytes()) else {
        return Err(format!("unknown signal {v:?}; give a name like USR1 or a number like 10"));
    };
    let why = match sig {
        _ if !(1..=RTMAX).contains(&sig) => "is not a signal (1 to 64)",
        libc::SIGKILL | libc::SIGSTOP => "cannot be caught",
        libc::SIGCHLD => "is sent by the kernel whenever a child of the program stops or exits",
        libc::SIGCONT => "is sent by job control to resume a stopped program",
        32 | 33 => "is reserved by glibc",
        THREAD_SIGNAL => "is reserved by ckpt to stop threads",
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP | libc::SIGSYS => {
            "is raised by the kernel when a program faults"
        }
        _ => return Ok(sig),
    };
    Err(format!("signal {v} {why}; choose another, e.g. USR1 or USR2"))
}

/// A duration: seconds ("30", "0.5"), or with a unit: ms, s, m, h. 0: none.
fn parse_interval(v: &str) -> Result<u64, String> {
    let s = v.trim();
    let (num, unit_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let bad = || format!("bad interval {v:?}; give seconds like 30 or 0.5, or a time like 500ms, 5m, 1h");
    let x: f64 = num.trim().parse().map_err(|_| bad())?;
    if !x.is_finite() || x < 0.0 {
        return Err(bad());
    }
    let ms = (x * unit_ms).round();
    if x > 0.0 && ms < 10.0 {
        return Err(format!("interval {v} is too short; give at least 10ms"));
    }
    if ms > 366.0 * 86_400_000.0 {
        return Err(format!("interval {v} is too long; give at most a year"));
    }
    Ok(ms as u64)
}

/// Longest chain of deltas (`ckpt_image::MAX_CHAIN` - 1: preload/src/config.rs).
const MAX_CHAIN: u32 = 15;

fn parse_max_chain(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if n <= MAX_CHAIN => Ok(n),
        _ => Err(format!("bad chain length {v:?}; give a number from 0 to {MAX_CHAIN}")),
    }
}

fn parse_keep(v: &str) -> Result<u32, String> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_KEEP).contains(&n) => Ok(n),
        _ => Err(format!("bad number of images {v:?}; give a number from 1 to {MAX_KEEP}")),
    }
}

/// `x86-64`, `x86-64-v2` … `x86-64-v4` (or `v2`…); for the variable, also
/// a flag: on is x86-64-v2, off is none.
fn parse_portable(v: &str) -> Result<u32, String> {
    match (xstate::parse_level(v.trim().as_bytes()), parse_flag(v)) {
        (Some(level), _) => Ok(level),
        (None, Ok(on)) => Ok(if on { 2 } else { 0 }),
        _ => Err(format!("unknown level {v:?}; give x86-64, x86-64-v2, x86-64-v3 or x86-64-v4")),
    }
}

/// The glibc features each x86-64 level lacks, by the names its
/// `glibc.cpu.hwcaps` tunable takes (unknown names are ignored, so the
/// lists also serve glibc versions that lack some of them). Turning a
/// feature off makes glibc's IFUNC resolvers (string functions, memcpy,
/// libm) and its choice of glibc-hwcaps library directories pass over
/// every variant that needs it.
const ABOVE_LEVEL: [&[&str]; 4] = [
    // above x86-64: the x86-64-v2 features
    &["SSE3", "SSSE3", "SSE4_1", "SSE4_2", "POPCNT"],
    // above x86-64-v2
    &["AVX", "AVX2", "FMA", "FMA4", "BMI1", "BMI2", "LZCNT", "MOVBE", "AVX_Fast_Unaligned_Load", "AVX_VNNI"],
    // above x86-64-v3
    &["AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "AVX512ER", "AVX512PF", "AVX512_VNNI"],
    // above x86-64-v4: AVX-512 extensions glibc may dispatch on
    &["AVX512_BF16", "AVX512_FP16", "AVX512_VBMI", "AVX512_VBMI2", "AVX512_BITALG", "AVX512_VPOPCNTDQ", "AMX_TILE"],
];

/// `GLIBC_TUNABLES` for a program held to `level`, keeping what the user set.
fn portable_tunables(level: u32, user: Option<&OsStr>) -> OsString {
    let off: Vec<String> =
        ABOVE_LEVEL[level as usize - 1..].iter().flat_map(|l| l.iter()).map(|f| format!("-{f}")).collect();
    let mut t = OsString::from(format!("glibc.cpu.hwcaps={}", off.join(",")));
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        // The user's settings last: a later glibc.cpu.hwcaps of theirs wins.
        t.push(":");
        t.push(user);
    }
    t
}

/// `lz4`; for the variable, also a flag: on is lz4, off is none.
fn parse_compress(v: &str) -> Result<bool, String> {
    match (v.trim(), parse_flag(v)) {
        ("lz4", _) => Ok(true),
        (_, Ok(on)) => Ok(on),
        ("zstd", _) => Err("zstd is not supported by this version; give lz4".into()),
        _ => Err(format!("unknown codec {v:?}; give lz4")),
    }
}

fn parse_flag(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "" | "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not 1 or 0")),
    }
}

/// A valued option through its parser, from the command line or else from
/// its variable (empty: unset); a bad value is a usage error naming the
/// option, or the variable with its value.
fn checked<T>(m: &ArgMatches, id: &str, v: Option<String>, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
    let v = v?;
    let from_env = m.value_source(id) == Some(ValueSource::EnvVariable);
    if from_env && v.is_empty() {
        return None;
    }
    parse(&v).map(Some).unwrap_or_else(|e| {
        if from_env {
            usage(format!("CKPT_{}={v}: {e}", id.to_ascii_uppercase()))
        } else {
            usage(format!("--{id}: {e}"))
        }
    })
}

fn parse_args() -> Options {
    let (m, cli) = ckpt_cli::parse_args::<Cli>("ckpt", std::env::args_os());
    let cmdline = |id| m.value_source(id) == Some(ValueSource::CommandLine);
    let output = cli.output.filter(|v| !v.is_empty() || cmdline("output"));
    if output.as_ref().is_some_and(|v| v.is_empty()) {
        usage("--output needs a non-empty path");
    }
    let interval_ms = checked(&m, "interval", cli.interval, parse_interval).unwrap_or(0);
    let keep = checked(&m, "keep", cli.keep, parse_keep).unwrap_or(1);
    let max_chain = checked(&m, "max_chain", cli.max_chain, parse_max_chain).unwrap_or(8);
    let signal = checked(&m, "signal", cli.signal, parse_signal).unwrap_or(libc::SIGUSR2);
    let portable = checked(&m, "portable", cli.portable, |v| match parse_portable(v) {
        // On the command line, a level (the variable may also say 0).
        Ok(0) if cmdline("portable") => Err("give a level, e.g. --portable=x86-64-v2".into()),
        r => r,
    })
    .unwrap_or(0);
    let compress = checked(&m, "compress", cli.compress, |v| match parse_compress(v) {
        Ok(false) if cmdline("compress") => Err(format!("unknown codec {v:?}; give lz4")),
        r => r,
    })
    .unwrap_or(false);
    // The command line's last word wins; else the variables, which must
    // not contradict each other.
    let last = |id| m.index_of(id).filter(|_| cmdline(id));
    let verbosity = match (cli.quiet, cli.verbose) {
        _ if last("verbose") > last("quiet") => Verbosity::Verbose,
        _ if last("quiet").is_some() => Verbosity::Quiet,
        (true, true) => usage("CKPT_QUIET and CKPT_VERBOSE are both set; unset one"),
        (true, false) => Verbosity::Quiet,
        (false, true) => Verbosity::Verbose,
        (false, false) => Verbosity::Normal,
    };
    // The tree is the job unless --no-tree (or CKPT_TREE=0) says otherwise;
    // of --tree and --no-tree, the last one given wins.
    let tree = match (last("tree"), last("no_tree")) {
        (t, n) if t > n => true,
        (_, Some(_)) => false,
        _ if m.value_source("tree") == Some(ValueSource::EnvVariable) => {
            cli.tree || std::env::var_os("CKPT_TREE").is_some_and(|v| v.is_empty())
        }
        _ => true,
    };
    let mut command = cli.command.into_iter();
    let Some(program) = command.next() else { usage("no program given") };
    Options {
        output: PathBuf::from(output.unwrap_or_else(|| "myckpt.dat".into())),
        cont: cli.cont || interval_ms != 0,
        no_cow: cli.no_cow,
        allow_foreign: cli.allow_foreign_output,
        release_locks: cli.release_locks,
        strict: cli.strict,
        tree,
        interval_ms,
        keep,
        incremental: cli.incremental,
        max_chain,
        signal,
        verbosity,
        portable,
        compress,
        program,
        args: command.collect(),
    }
}

/// The absolute image path, checked now rather than at the first
/// checkpoint: its directory must exist, and it must not be a directory.
fn image_path(output: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|e| fail(126, format!("cannot read the working directory: {e}")));
    let path = cwd.join(output);
    let shown = output.display();
    if path.as_os_str().len() > MAX_PATH {
        usage(format!("image path {shown} is too long (at most {MAX_PATH} bytes)"));
    }
    if path.is_dir() || output.as_os_str().as_bytes().ends_with(b"/") {
        usage(format!(
            "image path {shown} is a directory; give a file name, e.g. {}",
            path.join("myckpt.dat").display()
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        usage(format!("the directory of image {shown}, {}, does not exist; create it first", dir.display()));
    }
    let c = CString::new(dir.as_os_str().as_bytes()).unwrap_or_default();
    // SAFETY: access() reads a NUL-terminated path.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        usage(format!("cannot write image {shown}: the directory {} is not writable", dir.display()));
    }
    path
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
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
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

/// Refuses a program that the kernel would run with privileges the caller
/// does not have: setuid to another user, setgid to another group, or with
/// file capabilities (`security.capability`; not for the real root, who has
/// them all). The dynamic loader runs such a program in secure mode, which
/// ignores LD_PRELOAD: it would run unprotected, and the first checkpoint
/// signal would kill it. (A script's set-id bits and capabilities are
/// ignored by the kernel: its interpreter is what runs.)
fn check_unprivileged(path: &Path) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut magic = [0u8; 4];
    let elf = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF";
    if !elf {
        return Ok(());
    }
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: these calls cannot fail.
    let (uid, euid, egid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getegid()) };
    let why = if m.mode() & 0o4000 != 0 && m.uid() != euid {
        format!("is setuid (it runs as uid {})", m.uid())
    } else if m.mode() & 0o2010 == 0o2010 && m.gid() != egid {
        format!("is setgid (it runs as gid {})", m.gid())
    } else if uid != 0 && has_file_capabilities(path) {
        "has file capabilities (security.capability)".to_string()
    } else {
        return Ok(());
    };
    Err(format!(
        "{} {why}: the dynamic loader ignores LD_PRELOAD for such a program, so it could not be checkpointed",
        path.display()
    ))
}

fn has_file_capabilities(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: getxattr with a NUL-terminated path and name and no buffer
    // (size 0) returns the attribute's size, or -1 (ENODATA: none).
    unsafe { libc::getxattr(c.as_ptr(), c"security.capability".as_ptr(), core::ptr::null_mut(), 0) >= 0 }
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

/// `ms` as the seconds the library reads back ("30", "0.5").
fn seconds(ms: u64) -> String {
    let s = format!("{}.{:03}", ms / 1000, ms % 1000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Starts the ticker that sends `signal` to this process (the program,
/// once exec'ed) every `interval_ms`. Returns its pid.
fn start_ticker(signal: i32, interval_ms: u64) -> Result<i32, String> {
    let me = std::process::id() as i32;
    // SAFETY: plain system calls on our own process; the launcher has a
    // single thread, so fork is safe, and the intermediate child only forks
    // and exits.
    unsafe {
        // The pidfd is taken now, while the pid is certainly ours; it is
        // close-on-exec, so the program never sees it.
        let pidfd = libc::syscall(libc::SYS_pidfd_open, me, 0) as i32;
        if pidfd < 0 {
            return Err(format!(
                "--interval: cannot open a pidfd of this process: {} (Linux 5.3 or later is needed)",
                std::io::Error::last_os_error()
            ));
        }
        // If ckpt is a child subreaper, the orphaned ticker would come back
        // to it, that is to the program: not while it is being orphaned.
        let mut subreaper: libc::c_int = 0;
        libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut subreaper as *mut libc::c_int);
        if subreaper != 0 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0);
        }
        let mut pipe = [0i32; 2];
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(format!("--interval: pipe: {}", std::io::Error::last_os_error()));
        }
        let child = libc::fork();
        if child == 0 {
            let ticker = libc::fork();
            if ticker == 0 {
                libc::close(pipe[0]);
                ckpt_sys::ticker::run(pidfd, me, signal, interval_ms * 1_000_000);
            }
            let _ = libc::write(pipe[1], &ticker as *const i32 as *const libc::c_void, 4);
            libc::_exit(0);
        }
        libc::close(pipe[1]);
        let mut ticker: i32 = -1;
        let got = if child > 0 { libc::read(pipe[0], &mut ticker as *mut i32 as *mut libc::c_void, 4) } else { -1 };
        let err = std::io::Error::last_os_error();
        libc::close(pipe[0]);
        if child > 0 {
            let mut status = 0;
            libc::waitpid(child, &mut status, 0);
        }
        if subreaper != 0 {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
        libc::close(pidfd);
        if child < 0 || got != 4 || ticker <= 0 {
            return Err(format!("--interval: cannot start the ticker process: {err}"));
        }
        Ok(ticker)
    }
}

fn main() {
    let opts = parse_args();
    let output = image_path(&opts.output);
    let Some(program) = find_program(&opts.program) else {
        fail(127, format!("{}: command not found (check the name, or give its path)", opts.program.to_string_lossy()))
    };
    if !program.exists() {
        fail(127, format!("{}: no such file (check the path)", program.display()))
    }
    if let Err(e) = check_dynamic(&program).and_then(|()| check_unprivileged(&program)) {
        fail(126, e)
    }
    let Some(lib) = find_library() else {
        fail(126, "libckpt.so not found beside the ckpt executable (run `make` first)")
    };
    let mut preload = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let flag = |b: bool| if b { "1" } else { "0" };
    let mut cmd = Command::new(&program);
    cmd.arg0(&opts.program)
        .args(&opts.args)
        .env("LD_PRELOAD", preload)
        // Zero-padded: restart rewrites it in place with its own pid
        // (loader/src/environ.rs), so that a re-exec stays armed.
        .env("CKPT_PID", format!("{:010}", std::process::id()))
        .env("CKPT_OUTPUT", &output)
        .env("CKPT_SIGNAL", opts.signal.to_string())
        .env("CKPT_CONTINUE", flag(opts.cont))
        .env("CKPT_NO_COW", flag(opts.no_cow))
        .env("CKPT_ALLOW_FOREIGN_OUTPUT", flag(opts.allow_foreign))
        .env("CKPT_RELEASE_LOCKS", flag(opts.release_locks))
        .env("CKPT_STRICT", flag(opts.strict))
        .env("CKPT_TREE", flag(opts.tree))
        .env("CKPT_KEEP", opts.keep.to_string())
        .env("CKPT_INCREMENTAL", flag(opts.incremental))
        .env("CKPT_MAX_CHAIN", opts.max_chain.to_string())
        .env("CKPT_QUIET", flag(opts.verbosity == Verbosity::Quiet))
        .env("CKPT_VERBOSE", flag(opts.verbosity == Verbosity::Verbose));
    if opts.portable != 0 {
        cmd.env("CKPT_PORTABLE", xstate::level_name(opts.portable))
            .env("GLIBC_TUNABLES", portable_tunables(opts.portable, std::env::var_os("GLIBC_TUNABLES").as_deref()));
    } else {
        cmd.env_remove("CKPT_PORTABLE");
    }
    if opts.compress {
        cmd.env("CKPT_COMPRESS", "lz4");
    } else {
        cmd.env_remove("CKPT_COMPRESS");
    }
    if opts.interval_ms != 0 {
        cmd.env("CKPT_INTERVAL", seconds(opts.interval_ms));
        match start_ticker(opts.signal, opts.interval_ms) {
            Ok(pid) if opts.verbosity == Verbosity::Verbose => eprintln!(
                "ckpt: ticker (pid {pid}) sends {} every {} s",
                signal_name(opts.signal),
                seconds(opts.interval_ms)
            ),
            Ok(_) => {}
            Err(e) => fail(126, e),
        }
    } else {
        cmd.env_remove("CKPT_INTERVAL");
    }
    let err = cmd.exec();
    let status = if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    fail(status, format!("{}: {err}", program.display()))
}
