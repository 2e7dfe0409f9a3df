//! `ckpt-slurm`: a program under ckpt as a SLURM batch job that outlives its
//! time limit (README, "Batch jobs on SLURM").
//!
//! It is the batch script's process (`exec ckpt-slurm ...`), so SLURM's
//! warning signal (`--signal=B:USR1@T`) reaches it. It runs the program as
//! its child, `ckpt -o IMAGE PROGRAM ARGS` the first time, `restart IMAGE`
//! when the job's image is there, and waits, with the warning signal and
//! SIGCHLD blocked and taken by `sigtimedwait`:
//!
//! - on the warning, it sends the checkpoint signal with `sigqueue` and the
//!   value [`ckpt_image::signals::STOP_AFTER`], which makes the checkpoint
//!   stop the program even under `--continue` (nothing it prints after the
//!   image may be printed twice). It waits until the library has its handler
//!   installed first (before that, the signal would kill the program), and
//!   until the signal is not pending from ckpt's ticker (a standard signal
//!   already pending is merged with the new one, and the value lost). If a
//!   new image appears and the program still runs a second later, the value
//!   was lost all the same (the ticker sent in between): it sends again.
//! - when the program stops after writing a new image (status 99, and a new
//!   file at the image path), it runs `scontrol requeue $SLURM_JOB_ID` and
//!   exits 0: the job goes back to the queue, not to the failures.
//! - when the program ends with status 0, it removes the images (unless
//!   `--keep-images`); on any other end it keeps them (a failing program,
//!   or restart refusing the image, must not lose it). It exits with the
//!   program's status.

mod args;
mod image;

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::{Duration, Instant};

use args::{fail, usage};
use ckpt_image::signals::{Name, STOP_AFTER};

/// ckpt's, restart's and scontrol's way of saying the program stopped after
/// a checkpoint.
const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// `name` beside this executable (ckpt, restart), as installed or built.
fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .and_then(|e| e.canonicalize())
        .unwrap_or_else(|e| fail(126, format!("cannot find my own executable: {e}")));
    let p = exe.with_file_name(name);
    if !p.is_file() {
        fail(126, format!("{} not found beside ckpt-slurm (install them together)", p.display()));
    }
    p
}

/// Whether `sig` is in the mask `key` ("SigCgt", "ShdPnd") of `pid`'s status.
fn in_mask(pid: i32, key: &str, sig: i32) -> Option<bool> {
    let status = std::fs::read(format!("/proc/{pid}/status")).ok()?;
    Some(ckpt_sys::status::hex(&status, key.as_bytes())? & (1u64 << (sig - 1)) != 0)
}

/// Whether the checkpoint signal can be sent now: the library has its
/// handler installed (before that, the signal would kill the program), and
/// the signal is not pending already (from ckpt's ticker: a second one
/// would be merged into it, and its value lost).
fn ready(pid: i32, sig: i32) -> bool {
    in_mask(pid, "SigCgt", sig) == Some(true) && in_mask(pid, "ShdPnd", sig) == Some(false)
}

/// Where the checkpoint SLURM warned about stands.
#[derive(PartialEq)]
enum Warning {
    None,
    /// To be sent as soon as the program can take it.
    ToSend,
    /// Sent when the image was `image`; a new image seen at `new_at`.
    Sent {
        image: Option<image::Identity>,
        new_at: Option<Instant>,
    },
}

/// How long the program may still run after a new image appeared before
/// the stop is taken as lost (merged into a periodic checkpoint's signal).
const STOP_GRACE: Duration = Duration::from_secs(1);

fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialize and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Waits up to `ms` (forever if None) for one of `set`; the signal or None.
fn wait_signal(set: &libc::sigset_t, ms: Option<u64>) -> Option<i32> {
    let ts = ms.map(|ms| libc::timespec { tv_sec: (ms / 1000) as i64, tv_nsec: ((ms % 1000) * 1_000_000) as i64 });
    // SAFETY: the set is initialized; the timespec, if any, lives across the call.
    let sig = unsafe {
        libc::sigtimedwait(set, std::ptr::null_mut(), ts.as_ref().map_or(std::ptr::null(), |t| t as *const _))
    };
    (sig > 0).then_some(sig)
}

fn main() {
    let opts = args::parse();
    let Some(job) = std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty()) else {
        usage("SLURM_JOB_ID is not set: run ckpt-slurm from a batch script submitted with sbatch")
    };
    let cwd = std::env::current_dir().unwrap_or_else(|e| fail(1, format!("cannot read the working directory: {e}")));
    let path = cwd.join(opts.output.clone().unwrap_or_else(|| format!("ckpt-{job}.dat").into()));
    let mut command_line = vec![opts.program.clone()];
    command_line.extend(opts.args.iter().cloned());
    let restarts = std::env::var("SLURM_RESTART_COUNT").unwrap_or_else(|_| "0".into());

    // SLURM's warning must not be lost between now and the wait, nor kill
    // us: blocked (and not ignored: an ignored signal is discarded), it
    // waits for sigtimedwait. The child starts with an empty mask.
    let set = sigset(&[opts.warning, libc::SIGCHLD]);
    // SAFETY: a default disposition and a mask for this single thread.
    unsafe {
        libc::signal(opts.warning, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }

    let lock = image::lock(&path, &job).unwrap_or_else(|e| fail(1, e));
    let mut cmd;
    if image::identity(&path).is_some() {
        if let Err(why) = image::belongs(&path, &command_line) {
            fail(1, format!("cannot restart {}: {why}; move it away or choose another -o", path.display()));
        }
        eprintln!("ckpt-slurm: job {job} (restart {restarts}): restarting from {}", path.display());
        cmd = Command::new(sibling("restart"));
        cmd.arg(&path);
    } else {
        eprintln!("ckpt-slurm: job {job} (restart {restarts}): no image at {}; starting", path.display());
        cmd = Command::new(sibling("ckpt"));
        cmd.args(&opts.ckpt_options).arg("-o").arg(&path).arg("--").args(&command_line);
    }
    let before = image::identity(&path);
    let mut child = cmd.spawn().unwrap_or_else(|e| fail(126, format!("{}: {e}", cmd.get_program().to_string_lossy())));
    let pid = child.id() as i32;

    // Waiting: for the program's end, and for SLURM's warning.
    let mut warning = Warning::None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| fail(1, format!("waiting for the program: {e}"))) {
            break s;
        }
        match warning {
            Warning::ToSend if ready(pid, opts.signal) => {
                let value = libc::sigval { sival_ptr: STOP_AFTER as usize as *mut libc::c_void };
                let image = image::identity(&path);
                // SAFETY: queues a signal to our own, unreaped child.
                if unsafe { libc::sigqueue(pid, opts.signal, value) } == 0 {
                    warning = Warning::Sent { image, new_at: None };
                }
            }
            Warning::Sent { image, new_at } if image::identity(&path) != image => match new_at {
                None => warning = Warning::Sent { image, new_at: Some(Instant::now()) },
                // A checkpoint that let the program go on: ours was merged
                // into another's signal. Again.
                Some(t) if t.elapsed() > STOP_GRACE => warning = Warning::ToSend,
                Some(_) => {}
            },
            _ => {}
        }
        // While a checkpoint is to be sent or awaited, look again soon.
        let poll = (warning != Warning::None).then_some(20);
        if wait_signal(&set, poll) == Some(opts.warning) && warning == Warning::None {
            warning = Warning::ToSend;
            eprintln!(
                "ckpt-slurm: job {job}: {} from SLURM: checkpointing {} (pid {pid})",
                Name(opts.warning),
                opts.program.to_string_lossy()
            );
        }
    };

    let checkpointed = status.code() == Some(CHECKPOINTED) && image::identity(&path) != before;
    if checkpointed {
        requeue(&job, &path);
    }
    let kept = |how: String| {
        if image::identity(&path).is_some() {
            eprintln!("ckpt-slurm: {how}; the images are kept ({})", path.display());
        }
    };
    match (status.code(), status.signal()) {
        (Some(0), _) if !opts.keep_images => {
            for p in image::all(&path, opts.keep).iter().chain([&lock.path]) {
                match std::fs::remove_file(p) {
                    Ok(()) if *p != lock.path => eprintln!("ckpt-slurm: removed {}", p.display()),
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => eprintln!("ckpt-slurm: cannot remove {}: {e}", p.display()),
                }
            }
            exit(0)
        }
        // A failure, the program's or restart's (an image this machine
        // cannot take): nothing is removed.
        (Some(code), _) => {
            if code != 0 {
                kept(format!("exit status {code}"));
            }
            exit(code)
        }
        (None, Some(sig)) => {
            kept(format!("the program was killed by {}", Name(sig)));
            exit(128 + sig)
        }
        _ => exit(1),
    }
}

/// After a checkpoint: the job back to the queue, and this run ends well.
fn requeue(job: &str, image: &Path) -> ! {
    let o = Command::new("scontrol").args(["requeue", job]).output();
    match o {
        Ok(o) if o.status.success() => {
            eprintln!("ckpt-slurm: job {job}: checkpoint written to {}; job requeued", image.display());
            exit(0)
        }
        Ok(o) => fail(
            1,
            format!(
                "scontrol requeue {job} failed ({}): {}; the image is kept at {}: \
                 submit the job again with -o {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim(),
                image.display(),
                image.display()
            ),
        ),
        Err(e) => fail(1, format!("cannot run scontrol: {e}; the image is kept at {}", image.display())),
    }
}
