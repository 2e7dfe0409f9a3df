//! Integration tests of ckpt's command line (see tests/common for the
//! harness): --continue, --interval with --keep, -o, -s and the program's
//! own use of signals, option errors, the CKPT_* environment variables,
//! --help/--version, and many checkpoints in a row of a multi-threaded
//! program.
//!
//! Synchronisation is never a fixed sleep: a test waits for a line the
//! program prints (every demo here flushes its lines), for a "checkpoint
//! written" line on stderr, for a file to appear, or for a state in /proc.

mod common;

use ckpt_image::Header;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// `ckpt ARGS...` in `dir`, no stdin, piped stdout and stderr.
fn ckpt(args: &[&str], dir: &TempDir) -> Command {
    command(&exe("ckpt"), args, &dir.path)
}

/// `restart IMAGE` in `dir`.
fn restart(image: &Path, dir: &TempDir) -> Command {
    command(&exe("restart"), &[image.to_str().unwrap()], &dir.path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn image_header(image: &Path) -> Header {
    let bytes = read(image);
    Header::parse(&bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("{}: {e}", image.display()))
}

fn is_written(l: &str) -> bool {
    l.starts_with("ckpt: checkpoint written to ")
}

/// Waits for the next "checkpoint written" line on stderr.
fn wait_written(run: &mut Run, what: &str) -> String {
    run.wait_line(Stream::Stderr, is_written, what).text()
}

fn count_written(o: &Outcome) -> usize {
    o.text_lines(Stream::Stderr).iter().filter(|l| is_written(l)).count()
}

/// `readckpt --verify IMAGE` exits 0.
fn verify(image: &Path, dir: &TempDir) {
    let o =
        spawn("readckpt --verify", &mut command(&exe("readckpt"), &["--verify", path_str(image)], &dir.path)).finish();
    o.expect_code(0);
}

/// Asserts `got` is a non-empty suffix of `reference` starting at a line.
fn assert_line_suffix(what: &str, got: &str, reference: &str) {
    let ok = !got.is_empty()
        && reference.ends_with(got)
        && (got.len() == reference.len() || reference.as_bytes()[reference.len() - got.len() - 1] == b'\n');
    assert!(
        ok,
        "{what}: the output should be the end of the uninterrupted run's output\n--- got ---\n{got}--- uninterrupted ---\n{reference}---"
    );
}

/// Restarts `image` (stdin from /dev/null) and checks that its output is
/// how the uninterrupted run's output ends, and that it exits 0.
fn restart_ends_like(image: &Path, dir: &TempDir, reference: &str) -> Outcome {
    let o = spawn(&format!("restart {}", image.display()), &mut restart(image, dir)).finish();
    o.expect_code(0);
    assert_line_suffix(&format!("restart of {}", image.display()), &o.stdout_text(), reference);
    o
}

/// The mask field `key` ("SigCgt") of /proc/PID/status.
fn status_mask(pid: i32, key: &str) -> Option<u64> {
    ckpt_sys::status::hex(&fs::read(format!("/proc/{pid}/status")).ok()?, key.as_bytes())
}

/// Polls `cond` every 5 ms until it holds; fails the test after TIMEOUT.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < TIMEOUT, "timed out after {TIMEOUT:?} waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn reference_run(prog: &Path, args: &[&str], dir: &TempDir) -> Run {
    spawn("uninterrupted run", &mut command(prog, args, &dir.path))
}

#[test]
fn continue_keeps_the_program_running() {
    let dir = TempDir::new("cli-continue");
    let prog = demo("cli-count");
    let args = ["30", "50"];
    let reference = reference_run(&prog, &args, &dir);
    let image = dir.join("img.dat");
    let mut run =
        spawn("ckpt --continue", &mut ckpt(&["--continue", "-o", "img.dat", path_str(&prog), "30", "50"], &dir));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 5 "), "step 5");
    run.checkpoint();
    let line = wait_written(&mut run, "the checkpoint line");
    assert!(
        line.contains(path_str(&image)) && line.contains("the program was paused") && line.contains(" ms)"),
        "the checkpoint line should name the image and the pause: {line:?}"
    );
    let first = run.finish();
    first.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("ckpt --continue", &first.stdout(), &reference.stdout());
    assert_eq!(first.text_lines(Stream::Stderr).len(), 1, "one line on stderr\n{}", first.describe());
    verify(&image, &dir);

    let second = restart_ends_like(&image, &dir, &reference.stdout_text());
    assert!(
        !second.stdout_text().contains("step 5 "),
        "the image was written after step 5, but its restart printed it again\n{}",
        second.describe()
    );
}

/// The fields of /proc/PID/stat after the command name: state, ppid,
/// pgrp, session, ...
fn stat_fields(pid: i32) -> Vec<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = &stat[stat.rfind(')').map_or(stat.len(), |i| i + 1)..];
    after.split_whitespace().map(String::from).collect()
}

fn stat_field(pid: i32, i: usize) -> i32 {
    stat_fields(pid).get(i).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The ckpt-ticker whose environment holds `mark`, if it is alive (not
/// a zombie).
fn find_ticker(mark: &str) -> Option<i32> {
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "ckpt-ticker" {
            continue;
        }
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !env.split(|&c| c == 0).any(|v| v == mark.as_bytes()) {
            continue;
        }
        match stat_fields(pid).first().map(String::as_str) {
            Some("Z") | Some("X") | None => continue, // exited (init reaps it)
            _ => return Some(pid),
        }
    }
    None
}

#[test]
fn interval_with_keep_three() {
    let dir = TempDir::new("cli-interval");
    let prog = demo("cli-count");
    let args = ["60", "100"];
    let reference = reference_run(&prog, &args, &dir);
    let mark = format!("CKPT_TEST_MARK={}", dir.path.display());
    let mut c = ckpt(&["--interval", "1", "--keep", "3", path_str(&prog), "60", "100"], &dir);
    c.env("CKPT_TEST_MARK", dir.path.to_str().unwrap());
    let mut run = spawn("ckpt -i 1 --keep 3", &mut c);
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 2 "), "step 2");

    // Nothing of the ticker is visible to the program: no other thread, no
    // child, no timer; the ticker is in a session of its own.
    let pid = run.pid;
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap().count();
    assert_eq!(tasks, 1, "the program should have one thread");
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    assert_eq!(children.trim(), "", "the program should have no child");
    if let Ok(timers) = fs::read_to_string(format!("/proc/{pid}/timers")) {
        assert_eq!(timers.trim(), "", "the program should have no POSIX timer");
    }
    let ticker = find_ticker(&mark).expect("a ckpt-ticker process runs");
    assert_ne!(stat_field(ticker, 1), pid, "the ticker must not be the program's child");
    assert_ne!(stat_field(ticker, 3), stat_field(pid, 3), "the ticker should be in a session of its own");

    for n in 1..=4 {
        wait_written(&mut run, &format!("periodic checkpoint {n}"));
    }
    let first = run.finish();
    first.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("ckpt -i 1", &first.stdout(), &reference.stdout());
    assert!(
        first.text_lines(Stream::Stderr).iter().all(|l| is_written(l)),
        "only checkpoint lines on stderr\n{}",
        first.describe()
    );

    // The ticker ends with the program.
    wait_until("the ticker exits", || find_ticker(&mark).is_none());

    let images: Vec<PathBuf> = ["myckpt.dat", "myckpt.1.dat", "myckpt.2.dat"].iter().map(|n| dir.join(n)).collect();
    for i in &images {
        assert!(i.is_file(), "{} should exist\n{}", i.display(), first.describe());
    }
    assert!(!dir.join("myckpt.3.dat").exists(), "only 3 images are kept");
    let leftovers: Vec<String> = fs::read_dir(&dir.path)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let created: Vec<u64> = images.iter().map(|i| image_header(i).created_ns).collect();
    assert!(
        created[0] > created[1] && created[1] > created[2],
        "myckpt.dat should be the newest image, myckpt.2.dat the oldest: {created:?}"
    );
    // Each restarted program goes on checkpointing periodically, into the
    // same rotation: restart copies, so that each restart starts from the
    // image as it was.
    let mut lengths = Vec::new();
    for (n, i) in images.iter().enumerate() {
        verify(i, &dir);
        let copy = dir.join(&format!("copy{n}.dat"));
        fs::copy(i, &copy).unwrap();
    }
    for n in 0..images.len() {
        let o = restart_ends_like(&dir.join(&format!("copy{n}.dat")), &dir, &reference.stdout_text());
        lengths.push(o.stdout().len());
    }
    assert!(
        lengths[0] < lengths[1] && lengths[1] < lengths[2],
        "an older image restarts from earlier: restarted output lengths {lengths:?}"
    );
}

#[test]
fn output_option() {
    let dir = TempDir::new("cli-output");
    fs::create_dir(dir.join("sub")).unwrap();
    let prog = demo("cli-count");
    let args = ["20", "50"];
    let reference = reference_run(&prog, &args, &dir);
    // A relative path, in the directory ckpt runs in.
    let image = dir.join("sub/job.img");
    let mut run = spawn("ckpt -o sub/job.img", &mut ckpt(&["-o", "sub/job.img", path_str(&prog), "20", "50"], &dir));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 3 "), "step 3");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert!(image.is_file(), "no image at {}\n{}", image.display(), first.describe());
    assert!(!dir.join("myckpt.dat").exists(), "-o should replace the default image path");
    assert!(first.stderr_text().contains(path_str(&image)), "{}", first.describe());
    let second = spawn("restart", &mut restart(&image, &dir)).finish();
    second.expect_code(0);
    let reference = reference.finish();
    assert_same("-o", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());

    // --output=ABSOLUTE
    let image = dir.join("abs.dat");
    let opt = format!("--output={}", image.display());
    let mut run = spawn("ckpt --output=", &mut ckpt(&[&opt, path_str(&prog), "20", "50"], &dir));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 1 "), "step 1");
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);
    verify(&image, &dir);
}

#[test]
fn signal_option_leaves_the_programs_usr2_alone() {
    let dir = TempDir::new("cli-usr1");
    let prog = demo("cli-signals");
    let image = dir.join("img.dat");
    let mut run = spawn(
        "ckpt -s USR1 cli-signals own",
        &mut ckpt(&["-s", "USR1", "-o", "img.dat", path_str(&prog), "own", "4"], &dir),
    );
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    for k in 1..=2 {
        run.signal(libc::SIGUSR2);
        run.wait_line(Stream::Stdout, |l| l == format!("usr2 {k}\n"), &format!("usr2 {k}"));
    }
    run.signal(libc::SIGUSR1);
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert_eq!(first.stdout_text(), "ready\nusr2 1\nusr2 2\n");
    assert!(
        !first.stderr_text().contains("handler"),
        "no warning: the program does not touch SIGUSR1\n{}",
        first.describe()
    );

    // After the restart, the program's SIGUSR2 handler still works, and
    // SIGUSR1 is still ckpt's. Wait until both are caught (the loader has
    // restored the handlers) before signalling.
    let mut second = spawn("restart", &mut restart(&image, &dir));
    let pid = program_pid(second.pid);
    let want = 1u64 << (libc::SIGUSR1 - 1) | 1u64 << (libc::SIGUSR2 - 1);
    wait_until("the restarted program catches SIGUSR1 and SIGUSR2", || {
        status_mask(pid, "SigCgt").is_some_and(|m| m & want == want)
    });
    for k in 3..=4 {
        second.signal(libc::SIGUSR2);
        second.wait_line(Stream::Stdout, |l| l == format!("usr2 {k}\n"), &format!("usr2 {k}"));
    }
    let second = second.finish();
    second.expect_code(0);
    assert_eq!(second.stdout_text(), "usr2 3\nusr2 4\ndone\n", "{}", second.describe());
}

#[test]
fn program_cannot_take_the_checkpoint_signal() {
    // The program sets a handler for SIGUSR2 three ways, checks it is told
    // its own handler back, and blocks every signal in two threads: the
    // checkpoint still works, the warning comes once, its handler is never
    // called.
    let dir = TempDir::new("cli-steal");
    let prog = demo("cli-signals");
    let reference = reference_run(&prog, &["steal", "30"], &dir);
    let image = dir.join("img.dat");
    let mut run = spawn("ckpt cli-signals steal", &mut ckpt(&["-o", "img.dat", path_str(&prog), "steal", "30"], &dir));
    run.wait_line(Stream::Stdout, |l| l == "step 5\n", "step 5");
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let err = first.text_lines(Stream::Stderr);
    let warnings = err.iter().filter(|l| l.contains("set a handler for SIGUSR2, the checkpoint signal")).count();
    assert_eq!(warnings, 1, "the warning should come exactly once\n{}", first.describe());
    assert!(
        err.iter().any(|l| l
            .contains("it is called only for the signals the program sends itself (choose another signal with -s)")),
        "{}",
        first.describe()
    );
    assert_eq!(count_written(&first), 1, "{}", first.describe());

    let second = spawn("restart", &mut restart(&image, &dir)).finish();
    second.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert!(reference.stdout_text().contains("old handler is mine: yes"));
    assert_same("cli-signals steal", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    assert!(!second.stderr_text().contains("set a handler"), "no second warning after the restart");
}

#[test]
fn option_errors() {
    let dir = TempDir::new("cli-errors");
    let prog = demo("cli-count");
    let p = path_str(&prog);
    fs::write(dir.join("not-executable"), "#!/bin/sh\necho hi\n").unwrap();
    chmod(&dir.join("not-executable"), 0o644);
    // (arguments, environment, exit status, what the one line names)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);
    let cases: &[Case] = &[
        (&["--bogus", p], &[], 2, "--bogus"),
        (&["-x"], &[], 2, "-x"),
        (&[], &[], 2, "no program"),
        (&["-o"], &[], 2, "-o"),
        (&["-i", "abc", p], &[], 2, "interval"),
        (&["--interval", "-3", p], &[], 2, "interval"),
        (&["--keep", "0", p], &[], 2, "--keep"),
        (&["--keep", "many", p], &[], 2, "--keep"),
        (&["-s", "FOO", p], &[], 2, "FOO"),
        (&["-s", "KILL", p], &[], 2, "KILL"),
        (&["--signal", "62", p], &[], 2, "62"),
        (&["--continue=yes", p], &[], 2, "--continue"),
        (&["-o", "no/such/dir/x.dat", p], &[], 2, "does not exist"),
        (&["-o", ".", p], &[], 2, "directory"),
        (&[p], &[("CKPT_KEEP", "x")], 2, "CKPT_KEEP"),
        (&[p], &[("CKPT_SIGNAL", "NOPE")], 2, "CKPT_SIGNAL"),
        (&[p], &[("CKPT_INTERVAL", "soon")], 2, "CKPT_INTERVAL"),
        (&[p], &[("CKPT_CONTINUE", "maybe")], 2, "CKPT_CONTINUE"),
        (&[p], &[("CKPT_QUIET", "1"), ("CKPT_VERBOSE", "1")], 2, "CKPT_QUIET"),
        (&["./no-such-program"], &[], 127, "no-such-program"),
        (&["no-such-command-anywhere"], &[], 127, "no-such-command-anywhere"),
        (&["./not-executable"], &[], 126, "not-executable"),
    ];
    for (args, env, code, needle) in cases {
        let mut c = ckpt(args, &dir);
        for (k, v) in *env {
            c.env(k, v);
        }
        let o = spawn(&format!("ckpt {args:?} with {env:?}"), &mut c).finish();
        o.expect_code(*code);
        let err = o.stderr_text();
        assert!(
            err.starts_with("ckpt: ") && err.lines().count() == 1 && err.contains(needle),
            "ckpt {args:?} with {env:?}: expected one line on stderr naming {needle:?}\n{}",
            o.describe()
        );
        assert!(o.stdout().is_empty(), "nothing on stdout\n{}", o.describe());
    }
    // A bad variable does not matter when its option is given.
    let mut c = ckpt(&["--keep", "2", "/bin/true"], &dir);
    c.env("CKPT_KEEP", "x");
    spawn("ckpt --keep 2 with CKPT_KEEP=x", &mut c).finish().expect_code(0);
    // The program's own exit status comes through.
    spawn("ckpt /bin/false", &mut ckpt(&["/bin/false"], &dir)).finish().expect_code(1);
}

#[test]
fn signals_that_cannot_serve_are_refused() {
    // Signals the kernel or job control send on their own (a checkpoint at
    // every child exit), that cannot be caught, or that ckpt keeps for
    // itself: refused before the program runs, as an option and from the
    // environment, with one line.
    let dir = TempDir::new("cli-bad-signals");
    let marker = dir.join("ran");
    let script = format!("touch {}", marker.display());
    for sig in ["CHLD", "SIGCHLD", "17", "CONT", "18", "KILL", "STOP", "19", "62", "RTMAX-2", "32"] {
        for from_env in [false, true] {
            let mut c = if from_env {
                let mut c = ckpt(&["/bin/sh", "-c", &script], &dir);
                c.env("CKPT_SIGNAL", sig);
                c
            } else {
                ckpt(&["-s", sig, "/bin/sh", "-c", &script], &dir)
            };
            let o = spawn(&format!("ckpt with signal {sig} (environment: {from_env})"), &mut c).finish();
            o.expect_code(2);
            let err = o.stderr_text();
            assert!(
                err.starts_with("ckpt: ") && err.lines().count() == 1 && err.contains(sig),
                "expected one line naming {sig}\n{}",
                o.describe()
            );
            assert!(!marker.exists(), "the program ran with checkpoint signal {sig}");
        }
    }
}

#[test]
fn environment_variables() {
    let dir = TempDir::new("cli-env");
    let prog = demo("cli-count");
    let args = ["30", "50"];
    let reference = reference_run(&prog, &args, &dir);
    // Every setting from the environment: continue, image path (relative,
    // no extension), signal, two images, verbose.
    let mut c = ckpt(&[path_str(&prog), "30", "50"], &dir);
    c.env("CKPT_CONTINUE", "1")
        .env("CKPT_OUTPUT", "envjob")
        .env("CKPT_SIGNAL", "SIGUSR1")
        .env("CKPT_KEEP", "2")
        .env("CKPT_VERBOSE", "1");
    let mut run = spawn("ckpt with CKPT_*", &mut c);
    let hello = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: pid "), "the verbose startup line").text();
    assert!(
        hello.contains(&format!("pid {}", run.pid))
            && hello.contains("checkpoint signal SIGUSR1")
            && hello.contains(path_str(&dir.join("envjob"))),
        "startup line: {hello:?}"
    );
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 3 "), "step 3");
    run.signal(libc::SIGUSR1);
    wait_written(&mut run, "checkpoint 1");
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 8 "), "step 8");
    run.signal(libc::SIGUSR1);
    wait_written(&mut run, "checkpoint 2");
    let first = run.finish();
    first.expect_code(0);
    let reference = reference.finish();
    assert_same("CKPT_CONTINUE=1", &first.stdout(), &reference.stdout());
    for name in ["envjob", "envjob.1"] {
        verify(&dir.join(name), &dir);
        restart_ends_like(&dir.join(name), &dir, &reference.stdout_text());
    }

    // The command line wins over the environment; CKPT_QUIET=1 silences the
    // checkpoint line (so the test waits for the image file instead).
    let mut c = ckpt(&["-o", "cli.dat", "--continue", "-s", "USR2", path_str(&prog), "30", "50"], &dir);
    c.env("CKPT_OUTPUT", "env.dat").env("CKPT_SIGNAL", "USR1").env("CKPT_QUIET", "1");
    let mut run = spawn("ckpt options over CKPT_*", &mut c);
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 2 "), "step 2");
    run.checkpoint();
    let image = dir.join("cli.dat");
    wait_until("cli.dat appears", || image.is_file());
    let o = run.finish();
    o.expect_code(0);
    assert_same("options over CKPT_*", &o.stdout(), &reference.stdout());
    assert!(o.stderr().is_empty(), "CKPT_QUIET=1: nothing on stderr\n{}", o.describe());
    assert!(!dir.join("env.dat").exists(), "-o wins over CKPT_OUTPUT");
    verify(&image, &dir);
}

#[test]
fn help_and_version() {
    let dir = TempDir::new("cli-help");
    for tool in ["ckpt", "restart", "readckpt"] {
        let o = spawn(&format!("{tool} --help"), &mut command(&exe(tool), &["--help"], &dir.path)).finish();
        o.expect_code(0);
        assert!(o.stdout_text().to_lowercase().contains("usage"), "{}", o.describe());
        let o = spawn(&format!("{tool} --version"), &mut command(&exe(tool), &["--version"], &dir.path)).finish();
        o.expect_code(0);
        assert!(o.stdout_text().contains(env!("CARGO_PKG_VERSION")), "{}", o.describe());
    }
    let o = spawn("ckpt -h", &mut ckpt(&["-h"], &dir)).finish();
    o.expect_code(0);
    let help = o.stdout_text();
    for needle in
        ["--continue", "--interval", "--keep", "--signal", "--verbose", "CKPT_INTERVAL", "99", "126", "127", "Examples"]
    {
        assert!(help.contains(needle), "ckpt --help should mention {needle}\n{help}");
    }
    for needle in ["--tree", "whole process tree is the job (the default)", "--no-tree", "Only the program is the job"]
    {
        assert!(help.contains(needle), "ckpt --help should say {needle:?}\n{help}");
    }
}

/// The process tree is the job unless --no-tree or CKPT_TREE=0 says
/// otherwise; of --tree and --no-tree the last one wins, and either wins
/// over the variable (an empty one is unset). What ckpt decided is what it
/// exports to the program, which `env` prints.
#[test]
fn tree_is_the_default() {
    let dir = TempDir::new("cli-tree");
    let cases: &[(&[&str], Option<&str>, &str)] = &[
        (&[], None, "1"),
        (&["--no-tree"], None, "0"),
        (&["--tree"], None, "1"),
        (&["--tree", "--no-tree"], None, "0"),
        (&["--no-tree", "--tree"], None, "1"),
        (&[], Some("0"), "0"),
        (&[], Some("off"), "0"),
        (&[], Some("1"), "1"),
        (&[], Some(""), "1"),
        (&["--tree"], Some("0"), "1"),
        (&["--no-tree"], Some("1"), "0"),
    ];
    for &(options, var, want) in cases {
        let mut args = options.to_vec();
        args.push("/usr/bin/env");
        let mut c = ckpt(&args, &dir);
        c.env_remove("CKPT_TREE");
        if let Some(v) = var {
            c.env("CKPT_TREE", v);
        }
        let o = spawn("ckpt env", &mut c).finish();
        o.expect_code(0);
        let got: Vec<_> = o.text_lines(Stream::Stdout).into_iter().filter(|l| l.starts_with("CKPT_TREE=")).collect();
        assert_eq!(got, [format!("CKPT_TREE={want}\n")], "ckpt {options:?} with CKPT_TREE={var:?}\n{}", o.describe());
    }
}

#[test]
fn twenty_fast_checkpoints_of_eight_threads() {
    let dir = TempDir::new("cli-threads");
    let (reference, mut run) = cli_threads(&dir, &[]);
    let image = dir.join("threads.dat");
    for n in 1..=20 {
        run.checkpoint();
        let line = wait_written(&mut run, &format!("checkpoint {n} of 20"));
        assert!(line.contains("paused"), "{line:?}");
    }
    // And a burst: signals that arrive during a checkpoint are dropped or
    // merged, never stall anything.
    for _ in 0..5 {
        run.checkpoint();
    }
    wait_written(&mut run, "a checkpoint of the burst");
    run.close_stdin();
    let first = run.finish();
    first.expect_code(0);
    assert_same("eight threads, 20 checkpoints", &first.stdout(), &reference.stdout());
    assert!(count_written(&first) >= 21, "{}", first.describe());
    assert!(!first.stderr_text().contains("failed"), "{}", first.describe());
    restart_cli_threads(&image, &dir, &reference);
}

/// An uninterrupted run of cli-threads with `args` (ended once started),
/// and one under `ckpt --continue -o threads.dat`, started.
fn cli_threads(dir: &TempDir, args: &[&str]) -> (Outcome, Run) {
    let prog = demo("cli-threads");
    let reference = uninterrupted_until_started(&mut command(&prog, args, &dir.path));
    let mut a = vec!["--continue", "-o", "threads.dat", path_str(&prog)];
    a.extend_from_slice(args);
    let run = spawn_started("ckpt --continue cli-threads", &mut ckpt(&a, dir));
    (reference, run)
}

/// The image verifies, and its restart resumes main in its read of stdin
/// (here /dev/null): the reference's output after "started".
fn restart_cli_threads(image: &Path, dir: &TempDir, reference: &Outcome) {
    verify(image, dir);
    let second = spawn("restart", &mut restart(image, dir)).finish();
    second.expect_code(0);
    let want = reference.stdout_text().strip_prefix("started\n").unwrap().to_string();
    assert_same("restart of the last image", &second.stdout(), want.as_bytes());
}

/// The coordination under stress: 150 checkpoints of 64 threads in
/// --continue mode (half of them in the kernel at each one, half
/// computing), each waited for; every thread's state checks out at the end,
/// the output equals an uninterrupted run's, and the last image restarts.
#[test]
fn many_checkpoints_of_sixty_four_threads() {
    const ROUNDS: usize = 150;
    let dir = TempDir::new("cli-threads-64");
    let (reference, mut run) = cli_threads(&dir, &["64"]);
    let image = dir.join("threads.dat");
    for n in 1..=ROUNDS {
        run.checkpoint();
        wait_written(&mut run, &format!("checkpoint {n} of {ROUNDS}"));
    }
    run.close_stdin();
    let first = run.finish();
    first.expect_code(0);
    assert_same("64 threads, 150 checkpoints", &first.stdout(), &reference.stdout());
    assert_eq!(count_written(&first), ROUNDS, "{}", first.describe());
    assert!(!first.stderr_text().contains("failed"), "{}", first.describe());
    restart_cli_threads(&image, &dir, &reference);
}

const FORK_SCRIPT: &str = r#"
import os, signal, sys
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, b"x")
    signal.pause()
    os._exit(0)
os.close(w)
os.read(r, 1)
os.kill(pid, signal.SIGUSR2)
_, st = os.waitpid(pid, 0)
print("child killed by", os.WTERMSIG(st) if os.WIFSIGNALED(st) else None, flush=True)
"#;

/// With --no-tree, a child forked by the program (no exec) is not the
/// process ckpt runs: the checkpoint signal does to it what it would
/// without ckpt (SIGUSR2 terminates it), and no image is written over the
/// parent's.
#[test]
fn forked_child_is_not_checkpointed() {
    let dir = TempDir::new("fork");
    let script = dir.join("fork.py");
    fs::write(&script, FORK_SCRIPT).unwrap();
    let args = ["--no-tree", "-o", "img.dat", "/usr/bin/python3", path_str(&script)];
    let o = spawn("forking program", &mut ckpt(&args, &dir)).finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), format!("child killed by {}\n", libc::SIGUSR2), "{}", o.describe());
    assert!(!dir.join("img.dat").exists(), "the child wrote an image\n{}", o.describe());
}

/// Periodic checkpoints go on after a restart: the program is killed
/// outright after its first periodic image (a crash), restarted from it,
/// and the restarted program writes new images on its own, then ends with
/// the complete output.
#[test]
fn interval_goes_on_after_a_restart() {
    let dir = TempDir::new("interval-restart");
    let image = dir.join("img.dat");
    let counting = exe("counting-test");
    let mut run =
        spawn("periodic run", &mut ckpt(&["-i", "0.3", "-o", path_str(&image), path_str(&counting), "0"], &dir));
    wait_written(&mut run, "the first periodic checkpoint");
    run.signal(libc::SIGKILL);
    let _ = run.finish();
    let first = image_header(&image).created_ns;

    let mut again = spawn("restart", &mut restart(&image, &dir));
    wait_written(&mut again, "a periodic checkpoint of the restarted program");
    let o = again.finish_within(Duration::from_secs(40));
    o.expect_code(0);
    assert!(image_header(&image).created_ns > first, "no new image after the restart\n{}", o.describe());
    let want: String = (0..10).map(|i| format!("{i}\n")).collect();
    assert_eq!(o.stdout_text(), want, "{}", o.describe());
}

/// ckpt's own line on stderr never raises a signal in the program: a
/// `--continue` program whose stderr reader went away (a closed pipe) is
/// checkpointed twice and goes on to its end, as if nothing happened.
#[test]
fn closed_stderr_pipe_does_not_kill_the_program() {
    let dir = TempDir::new("cli-epipe");
    let prog = demo("cli-count");
    let reference = reference_run(&prog, &["30", "30"], &dir);
    let image = dir.join("img.dat");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = ckpt(&["--continue", "-o", "img.dat", path_str(&prog), "30", "30"], &dir);
    c.stderr(writer);
    let mut run = spawn("ckpt --continue, stderr a closed pipe", &mut c);
    for (step, n) in [("step 3 ", 1), ("step 8 ", 2)] {
        run.wait_line(Stream::Stdout, |l| l.starts_with(step), step);
        let before = fs::metadata(&image).ok().and_then(|m| m.modified().ok());
        run.checkpoint();
        wait_until(&format!("checkpoint {n} is written"), || {
            fs::metadata(&image).ok().and_then(|m| m.modified().ok()).is_some_and(|t| Some(t) != before)
        });
    }
    let first = run.finish();
    first.expect_code(0);
    let reference = reference.finish();
    reference.expect_code(0);
    assert_same("ckpt --continue with a closed stderr", &first.stdout(), &reference.stdout());
    verify(&image, &dir);
}

/// Around its line on a broken stderr, ckpt neither leaves a SIGPIPE of
/// its own pending in a program that blocks SIGPIPE, nor takes away one
/// the program had pending itself.
#[test]
fn closed_stderr_pipe_leaves_the_programs_pending_sigpipe_as_it_was() {
    let dir = TempDir::new("cli-epipe-pending");
    let prog = demo("sigpipe-blocked");
    for (mode, want) in [("clean", "no"), ("raise", "yes")] {
        let image = dir.join(&format!("{mode}.dat"));
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = ckpt(&["--continue", "-o", path_str(&image), path_str(&prog), mode, "20"], &dir);
        c.stderr(writer);
        let mut run = spawn(&format!("sigpipe-blocked {mode}"), &mut c);
        run.wait_line(Stream::Stdout, |l| l == "step 3\n", "step 3");
        run.checkpoint();
        wait_until("the image is written", || image.exists());
        let o = run.finish();
        o.expect_code(0);
        let last = o.text_lines(Stream::Stdout).pop().unwrap_or_default();
        assert_eq!(last, format!("SIGPIPE pending: {want}\n"), "{mode}: {}", o.describe());
    }
}
