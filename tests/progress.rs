//! Progress of long checkpoints and restarts (see tests/common for the
//! harness): on a terminal (a pseudo-terminal here), once the operation has
//! taken longer than `CKPT_PROGRESS_AFTER` ms (about a second by default;
//! 0 here, so that a small image shows it on any machine), a line rewritten
//! in place with the bytes done and the total, then erased before the final
//! line; and nothing of it when stderr is not a terminal, or when the
//! operation is shorter than the default.

mod common;

use common::*;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;

const MIB: &str = "64";

/// A pseudo-terminal: the slave end for a child's stderr, and everything
/// written to it, once every holder of the slave end has closed it.
fn pty() -> (OwnedFd, Receiver<Vec<u8>>) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills in two descriptors; no name, settings or size.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and ours alone.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut master = master;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once no one holds the slave end.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(all);
    });
    (slave, rx)
}

/// `cmd` with its stderr on a new pseudo-terminal; the terminal's output
/// comes with the outcome.
fn on_terminal(what: &str, mut cmd: Command, feed: Option<&[u8]>) -> (Outcome, String) {
    let (slave, rx) = pty();
    cmd.stderr(Stdio::from(slave));
    if feed.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut run = spawn(what, &mut cmd);
    drop(cmd); // our copy of the slave end
    if let Some(line) = feed {
        run.write_stdin(line);
        run.close_stdin();
    }
    let o = run.finish();
    let tty = rx.recv_timeout(TIMEOUT).unwrap_or_else(|_| panic!("{what}: the terminal was not closed"));
    (o, String::from_utf8_lossy(&tty).into_owned())
}

fn ckpt(dir: &TempDir, after: Option<&str>) -> Command {
    let mut c = command(&exe("ckpt"), &["-o", "img.dat", demo("bigmem").to_str().unwrap(), MIB], &dir.path);
    c.stdin(Stdio::piped());
    match after {
        Some(ms) => c.env("CKPT_PROGRESS_AFTER", ms),
        None => c.env_remove("CKPT_PROGRESS_AFTER"),
    };
    c
}

/// Checkpoints the bigmem that `run` runs under ckpt; its outcome.
fn checkpoint_bigmem(mut run: Run) -> Outcome {
    run.wait_line(Stream::Stdout, |l| l.starts_with("bigmem: ready"), "bigmem ready");
    run.checkpoint();
    run.finish()
}

/// Asserts `tty` shows progress lines of `what` ending erased.
fn assert_progress(tty: &str, what: &str) {
    let prefix = format!("\r{what}: ");
    let lines: Vec<&str> = tty.split(&prefix).skip(1).collect();
    assert!(!lines.is_empty(), "no progress line {prefix:?} on the terminal:\n{tty:?}");
    for l in &lines {
        let l = l.split('\r').next().unwrap();
        assert!(
            l.contains(" / ") && l.contains("%), ") && l.ends_with("/s\x1b[K"),
            "progress line {l:?} should read DONE / TOTAL (P%), RATE/s"
        );
    }
    let last = tty.rfind(&prefix).unwrap();
    assert!(tty[last..].contains("\r\x1b[K"), "the progress line is not erased at the end:\n{tty:?}");
}

#[test]
fn checkpoint_and_restart_show_progress_on_a_terminal() {
    let dir = TempDir::new("progress");
    // The checkpoint: stderr on a terminal.
    let (slave, rx) = pty();
    let mut cmd = ckpt(&dir, Some("0"));
    cmd.stderr(Stdio::from(slave));
    let run = spawn("ckpt bigmem on a terminal", &mut cmd);
    drop(cmd);
    let o = checkpoint_bigmem(run);
    o.expect_code(ckpt_image::EXIT_CHECKPOINTED);
    let tty = String::from_utf8_lossy(&rx.recv_timeout(TIMEOUT).expect("the terminal's output")).into_owned();
    assert_progress(&tty, "ckpt: writing the image");
    let after = &tty[tty.rfind("\r\x1b[K").unwrap()..];
    assert!(after.contains("ckpt: checkpoint written to "), "the final line must follow the progress:\n{tty:?}");

    // The restart: its stderr on a terminal, the program's line on stdin.
    let mut restart = command(&exe("restart"), &["img.dat"], &dir.path);
    restart.env("CKPT_PROGRESS_AFTER", "0");
    let (o, tty) = on_terminal("restart bigmem on a terminal", restart, Some(b"\n"));
    o.expect_code(0);
    assert!(o.stdout_text().contains("bigmem: OK"), "{}", o.describe());
    assert_progress(&tty, "restart: reading the image");
}

#[test]
fn no_progress_when_not_a_terminal_or_quick() {
    let dir = TempDir::new("progress-quiet");
    // stderr a pipe: the final line only, as ever.
    let o = checkpoint_bigmem(spawn("ckpt bigmem, stderr a pipe", &mut ckpt(&dir, Some("0"))));
    o.expect_code(ckpt_image::EXIT_CHECKPOINTED);
    let err = o.stderr_text();
    assert!(!err.contains("writing the image") && !err.contains('\r'), "progress on a pipe:\n{err:?}");
    assert!(err.lines().any(|l| l.starts_with("ckpt: checkpoint written to ")), "{}", o.describe());
    let mut restart = command(&exe("restart"), &["img.dat"], &dir.path);
    restart.env("CKPT_PROGRESS_AFTER", "0").stdin(Stdio::piped());
    let mut run = spawn("restart, stderr a pipe", &mut restart);
    run.write_stdin(b"\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert!(!o.stderr_text().contains("reading the image"), "progress on a pipe:\n{}", o.describe());

    // On a terminal, but far quicker than the default second.
    let (slave, rx) = pty();
    let mut cmd = ckpt(&dir, None);
    cmd.stderr(Stdio::from(slave));
    let run = spawn("ckpt bigmem on a terminal, default threshold", &mut cmd);
    drop(cmd);
    checkpoint_bigmem(run).expect_code(ckpt_image::EXIT_CHECKPOINTED);
    let tty = String::from_utf8_lossy(&rx.recv_timeout(TIMEOUT).unwrap()).into_owned();
    assert!(tty.contains("ckpt: checkpoint written to "), "{tty:?}");
    let ms: f64 = tty
        .split("MiB in ")
        .nth(1)
        .and_then(|s| s.split(" ms").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in the final line: {tty:?}"));
    if ms < 900.0 {
        assert!(!tty.contains("writing the image"), "a {ms} ms checkpoint showed progress:\n{tty:?}");
    }
}
