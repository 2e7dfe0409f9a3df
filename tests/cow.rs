//! Copy-on-write checkpoints (`--continue`, the default there): the program
//! is paused only while a writer process is forked; the writer writes the
//! image. Many busy threads, the program's own `wait`, a checkpoint asked
//! for while the writer runs, a writer killed mid-write, a writer that runs
//! out of room.
//!
//! The writer is found in /proc by its name (`ckpt-writer`) and the image
//! path in its environment (the program's own, which it shares).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn is_written(l: &str) -> bool {
    l.starts_with("ckpt: checkpoint written to ")
}

fn count_written(o: &Outcome) -> usize {
    o.text_lines(Stream::Stderr).iter().filter(|l| is_written(l)).count()
}

/// Polls `cond` every 2 ms until it gives a value; fails after TIMEOUT.
fn wait_for<T>(what: &str, cond: impl Fn() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out after {TIMEOUT:?} waiting for {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// The running copy-on-write writers of `image`: processes named
/// `ckpt-writer` whose environment names that image.
fn writers_of(image: &Path) -> Vec<i32> {
    let want = format!("CKPT_OUTPUT={}", image.display());
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != "ckpt-writer" || stat_field(pid, 0) == "Z" {
            continue;
        }
        let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Field `i` of /proc/PID/stat after the command name (0: state, 1: ppid).
fn stat_field(pid: i32, i: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    rest.split_whitespace().nth(i).unwrap_or("").to_string()
}

/// The descriptors of `pid` that point into `dir`.
fn files_in(pid: i32, dir: &Path) -> Vec<String> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().into_owned())
        .filter(|t| t.starts_with(&format!("{}/", dir.display())))
        .collect()
}

/// Temporaries (`*.tmp`) in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// cli-threads N: an uninterrupted run (ended once started), and one under
/// `ckpt -v --continue OPTIONS -o IMAGE`, started.
fn cli_threads(tools: &Tools, dir: &TempDir, image: &Path, options: &[&str], n: &str) -> (Outcome, Run) {
    let prog = demo("cli-threads");
    let reference = uninterrupted_until_started(&mut command(&prog, &[n], &dir.path));
    let mut opts = vec!["-v", "--continue"];
    opts.extend_from_slice(options);
    let run =
        spawn_started("ckpt --continue cli-threads", &mut tools.ckpt_with(&opts, Some(image), &prog, &[n], &dir.path));
    (reference, run)
}

/// `readckpt --verify IMAGE` exits 0.
fn verify(image: &Path, dir: &TempDir) {
    let v = spawn("readckpt --verify", &mut command(&exe("readckpt"), &["--verify", path_str(image)], &dir.path));
    v.finish().expect_code(0);
}

/// The image verifies and restarts (stdin /dev/null) to the reference's
/// output after "started".
fn restarts_like(tools: &Tools, image: &Path, dir: &TempDir, reference: &Outcome) {
    verify(image, dir);
    let o = spawn(&format!("restart {}", image.display()), &mut tools.restart(Some(image), &dir.path)).finish();
    o.expect_code(0);
    let want = reference.stdout_text().strip_prefix("started\n").unwrap().to_string();
    assert_same(&format!("restart of {}", image.display()), &o.stdout(), want.as_bytes());
}

/// Five copy-on-write checkpoints of 64 busy threads (half in the kernel,
/// half computing): each line says a writer wrote it and how long the
/// program was paused; the program ends with the output of an
/// uninterrupted run, and each of the five images (--keep 5) restarts to
/// it.
#[test]
fn cow_checkpoints_of_sixty_four_busy_threads() {
    let dir = TempDir::new("cow-64");
    let tools = Tools::new();
    let image = dir.join("threads.dat");
    let (reference, mut run) = cli_threads(&tools, &dir, &image, &["--keep", "5"], "64");
    for n in 1..=5 {
        run.checkpoint();
        let line = run.wait_line(Stream::Stderr, is_written, &format!("checkpoint {n}")).text();
        assert!(
            line.contains("the program was paused")
                && line.contains("65 threads")
                && line.contains("copy-on-write writer"),
            "checkpoint {n}: the line should say a writer wrote it, and the pause: {line:?}"
        );
    }
    run.close_stdin();
    let first = run.finish();
    first.expect_code(0);
    assert_same("64 threads, 5 copy-on-write checkpoints", &first.stdout(), &reference.stdout());
    assert_eq!(count_written(&first), 5, "{}", first.describe());
    assert!(!first.stderr_text().contains("failed"), "{}", first.describe());
    for older in ["threads.dat", "threads.1.dat", "threads.2.dat", "threads.3.dat", "threads.4.dat"] {
        restarts_like(&tools, &dir.join(older), &dir, &reference);
    }
}

/// The program's waitpid(-1) never reaps a writer and it gets no SIGCHLD
/// for one: cow-wait, checkpointed three times, prints what an
/// uninterrupted run prints (its own child reaped once, nothing else, one
/// SIGCHLD).
#[test]
fn the_programs_wait_never_sees_the_writer() {
    let dir = TempDir::new("cow-wait");
    let tools = Tools::new();
    let prog = demo("cow-wait");
    let image = dir.join("wait.dat");
    let reference = uninterrupted_until_started(&mut command(&prog, &[], &dir.path));
    assert!(reference.stdout_text().contains("own child reaped 1\nother processes reaped 0\nSIGCHLD caught 1\n"));

    let mut run = spawn_started(
        "ckpt --continue cow-wait",
        &mut tools.ckpt_with(&["--continue"], Some(&image), &prog, &[], &dir.path),
    );
    for n in 1..=3 {
        run.checkpoint();
        run.wait_line(Stream::Stderr, is_written, &format!("checkpoint {n}"));
    }
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert_same("cow-wait under copy-on-write checkpoints", &o.stdout(), &reference.stdout());
}

/// A job is judged at each checkpoint: bash alone is checkpointed
/// copy-on-write (a plain image); with a child running, the image is the
/// job's, written in place, and one line says so; alone again, copy-on-write
/// again. The program ends as it would, and the first image (--keep 3)
/// restarts to the rest of its output.
#[test]
fn a_job_is_copy_on_write_only_while_it_is_one_process() {
    let dir = TempDir::new("cow-job");
    let tools = Tools::new();
    let image = dir.join("job.dat");
    let script = "echo started; read a; sleep 60 & echo child; read b; kill $!; wait; echo alone; read c; echo done";
    let mut cmd = tools.ckpt_with(
        &["-v", "--continue", "--keep", "3"],
        Some(&image),
        Path::new("/bin/bash"),
        &["-c", script],
        &dir.path,
    );
    cmd.stdin(std::process::Stdio::piped());
    let mut run = spawn("ckpt --continue bash", &mut cmd);
    let checkpoint = |run: &mut Run, n: usize| {
        run.checkpoint();
        let line = run.wait_line(Stream::Stderr, is_written, &format!("checkpoint {n}")).text();
        wait_for("the writer to end", || writers_of(&image).is_empty().then_some(()));
        line
    };
    run.wait_line(Stream::Stdout, |l| l == "started\n", "started");
    let alone = checkpoint(&mut run, 1);
    assert!(alone.contains("copy-on-write writer") && !alone.contains("processes"), "bash alone: {alone:?}");
    run.write_stdin(b"\n");
    run.wait_line(Stream::Stdout, |l| l == "child\n", "child");
    let job = checkpoint(&mut run, 2);
    assert!(job.contains(", 2 processes)") && !job.contains("copy-on-write"), "bash and sleep: {job:?}");
    run.write_stdin(b"\n");
    run.wait_line(Stream::Stdout, |l| l == "alone\n", "alone");
    let again = checkpoint(&mut run, 3);
    assert!(again.contains("copy-on-write writer") && !again.contains("processes"), "bash alone again: {again:?}");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "started\nchild\nalone\ndone\n");
    let notice = "ckpt: the job has 2 processes: the image is written with the job paused (not copy-on-write); those \
                  are for a job of one process\n";
    let lines = o.text_lines(Stream::Stderr);
    assert_eq!(
        lines.iter().filter(|l| *l == notice).count(),
        1,
        "one notice, for the second checkpoint\n{}",
        o.describe()
    );
    // The first image: bash alone, waiting for its first line; from
    // /dev/null it reads none, and goes on to the end.
    let first = dir.join("job.2.dat");
    verify(&first, &dir);
    let r = spawn("restart of the first image", &mut tools.restart(Some(&first), &dir.path)).finish();
    r.expect_code(0);
    assert_eq!(r.stdout_text(), "child\nalone\ndone\n", "{}", r.describe());
}

/// memtouch under `ckpt -v --continue`, started ("ready"), with `mib` MiB
/// reserved and touched.
fn memtouch(tools: &Tools, dir: &TempDir, image: &Path, mib: &str) -> Run {
    memtouch_sparse(tools, dir, image, mib, mib)
}

/// The same with `reserve` MiB reserved, `touch` MiB of it touched.
fn memtouch_sparse(tools: &Tools, dir: &TempDir, image: &Path, reserve: &str, touch: &str) -> Run {
    // The copy that `unprivileged` made, if any (nobody runs it).
    let copy = tools.bin("memtouch");
    let prog = if copy.exists() { copy } else { demo("memtouch") };
    let mut run = spawn(
        "ckpt --continue memtouch",
        &mut tools.ckpt_with(&["-v", "--continue"], Some(image), &prog, &[reserve, touch], &dir.path),
    );
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    if let Some((uid, _)) = tools.user {
        let status = fs::read_to_string(format!("/proc/{}/status", run.pid)).unwrap_or_default();
        let real = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or("");
        assert_eq!(real.split_whitespace().next(), Some(uid.to_string().as_str()), "not running as {uid}");
    }
    run
}

/// Checkpoints `run` until its writer is caught, stopped (SIGSTOP), while
/// it still has its temporary image file open; returns its pid. A writer
/// that finished before it was caught is let be, and another checkpoint
/// asked for.
fn stop_a_writer_mid_write(run: &mut Run, image: &Path, dir: &Path) -> i32 {
    use std::os::unix::fs::MetadataExt;
    let inode = || fs::metadata(image).map(|m| m.ino()).ok();
    for _ in 0..20 {
        let before = inode();
        run.checkpoint();
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Some(&w) = writers_of(image).first() {
                if !files_in(w, dir).is_empty() {
                    // SAFETY: kill(2) on a pid of ours.
                    unsafe { libc::kill(w, libc::SIGSTOP) };
                    wait_for("the writer to stop", || (stat_field(w, 0) == "T").then_some(()));
                    if !files_in(w, dir).is_empty() {
                        return w;
                    }
                    // SAFETY: as above.
                    unsafe { libc::kill(w, libc::SIGCONT) };
                    break;
                }
            }
            if inode() != before {
                break; // written already
            }
            thread::sleep(Duration::from_millis(1));
        }
        run.wait_line(Stream::Stderr, is_written, "the writer that was not caught");
        wait_for("that writer to end", || writers_of(image).is_empty().then_some(()));
    }
    panic!("never caught a writer while it wrote");
}

/// Checkpoints asked for while the writer runs (here: stopped) are
/// coalesced: no second writer starts, the program runs on, and once the
/// writer is done exactly one more checkpoint is taken. The writer is not
/// the program's child. As root, and as nobody (the writer's signal).
fn coalesced(tools: &Tools, dir: &TempDir) {
    let image = dir.join("big.dat");
    let mut run = memtouch(tools, dir, &image, "128");
    let w = stop_a_writer_mid_write(&mut run, &image, &dir.path);
    assert_ne!(stat_field(w, 1), run.pid.to_string(), "the writer's parent is the program");
    assert_ne!(stat_field(w, 1), std::process::id().to_string(), "the writer's parent is the program's parent");
    let children = fs::read_to_string(format!("/proc/{0}/task/{0}/children", run.pid)).unwrap_or_default();
    assert!(!children.split_whitespace().any(|c| c == w.to_string()), "the writer is a child of the program");
    for _ in 0..3 {
        run.checkpoint();
    }
    // The program runs on meanwhile (a hundred more ticks), and still only
    // one writer exists.
    let tick = |l: &str| l.strip_prefix("tick ").and_then(|n| n.trim().parse::<u64>().ok());
    let last = run.wait_line(Stream::Stdout, |l| tick(l).is_some(), "a tick").text();
    let target = tick(&last).unwrap() + 100;
    run.wait_line(Stream::Stdout, |l| tick(l).is_some_and(|n| n >= target), "a hundred more ticks");
    assert_eq!(writers_of(&image), vec![w], "a second writer started while the first one ran");
    // SAFETY: kill(2) on a pid of ours.
    unsafe { libc::kill(w, libc::SIGCONT) };
    run.wait_line(Stream::Stderr, is_written, "the stopped writer's line");
    run.wait_line(Stream::Stderr, is_written, "the one coalesced checkpoint");
    // Then one more, asked for when no writer runs; then the end.
    wait_for("the second writer to end", || writers_of(&image).is_empty().then_some(()));
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "a checkpoint after them");
    wait_for("the last writer to end", || writers_of(&image).is_empty().then_some(()));
    run.signal(libc::SIGKILL);
    let o = run.finish();
    assert_eq!(count_written(&o), 3, "three checkpoints, not five\n{}", o.describe());
    assert!(!o.stderr_text().contains("failed"), "{}", o.describe());
    verify(&image, dir);
}

#[test]
fn checkpoints_asked_for_while_the_writer_runs_are_coalesced() {
    coalesced(&Tools::new(), &TempDir::new("cow-coalesce"));
}

#[test]
fn checkpoints_asked_for_while_the_writer_runs_are_coalesced_as_nobody() {
    let (_bins, tools, work) = unprivileged("cow-coalesce-nobody", &[&demo("memtouch")]);
    coalesced(&tools, &work);
}

/// A writer killed with SIGKILL in the middle of its write leaves the
/// previous image byte for byte as it was, and no temporary file; the
/// program runs on, and the next checkpoint says what happened and
/// writes a good image. As root, and as nobody.
fn killed_writer(tools: &Tools, dir: &TempDir) {
    let image = dir.join("big.dat");
    let mut run = memtouch(tools, dir, &image, "128");
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "the first checkpoint");
    wait_for("the first writer to end", || writers_of(&image).is_empty().then_some(()));
    let before = read(&image);
    run.lines.clear();
    let w = stop_a_writer_mid_write(&mut run, &image, &dir.path);
    // SAFETY: kill(2) on a pid of ours.
    unsafe { libc::kill(w, libc::SIGKILL) };
    wait_for("the killed writer to be gone", || writers_of(&image).is_empty().then_some(()));
    assert!(read(&image) == before, "the killed writer changed the previous image");
    assert_eq!(temporaries(&dir.path), Vec::<String>::new(), "temporary files left behind");
    let tick = |l: &str| l.starts_with("tick ");
    run.lines.clear();
    run.wait_line(Stream::Stdout, tick, "the program running on");
    run.checkpoint();
    let note = run.wait_line(Stream::Stderr, |l| !l.contains("warning"), "the next checkpoint's first line").text();
    assert!(note.contains("writer of the previous checkpoint was killed"), "{note:?}");
    run.wait_line(Stream::Stderr, is_written, "the next checkpoint");
    wait_for("the last writer to end", || writers_of(&image).is_empty().then_some(()));
    run.signal(libc::SIGKILL);
    let o = run.finish();
    assert!(!o.stderr_text().contains("failed"), "{}", o.describe());
    verify(&image, dir);
}

#[test]
fn a_killed_writer_leaves_the_previous_image_and_no_temporary() {
    let dir = TempDir::new("cow-killed");
    killed_writer(&Tools::new(), &dir);
}

#[test]
fn a_killed_writer_leaves_the_previous_image_as_nobody() {
    let (_bins, tools, work) = unprivileged("cow-killed-nobody", &[&demo("memtouch")]);
    killed_writer(&tools, &work);
}

/// Checkpoints `run` (cli-threads, started) once: its writer cannot write
/// `image`, and one line says the checkpoint failed, and `why`; the
/// program runs on to the end of an uninterrupted run, and nothing is
/// left in the image's directory.
fn writer_out_of_room(mut run: Run, reference: &Outcome, image: &Path, why: &str) {
    run.checkpoint();
    let line = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: checkpoint"), "the checkpoint's line").text();
    assert!(
        line.contains("checkpoint failed") && line.contains(why) && line.contains("the program continues"),
        "{line:?}"
    );
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    let lines = o.text_lines(Stream::Stderr);
    assert_eq!(lines.iter().filter(|l| l.starts_with("ckpt: checkpoint")).count(), 1, "{}", o.describe());
    assert_same("the program after its writer failed", &o.stdout(), &reference.stdout());
    assert!(!image.exists(), "an image was written");
    assert_eq!(temporaries(image.parent().unwrap()), Vec::<String>::new(), "temporary files left behind");
}

/// The writer's file size limit (the program's) is far below the image's
/// size.
#[test]
fn a_writer_out_of_room_leaves_the_program_running() {
    let dir = TempDir::new("cow-fsize");
    let prog = demo("cli-threads");
    let reference = uninterrupted_until_started(&mut command(&prog, &["4"], &dir.path));
    let image = dir.join("img.dat");
    let script = r#"ulimit -f 64; exec "$0" --continue -o "$1" "$2" 4"#;
    let ckpt = exe("ckpt");
    let args = ["-c", script, path_str(&ckpt), path_str(&image), path_str(&prog)];
    let run = spawn_started("ckpt with a small file size limit", &mut command(Path::new("/bin/sh"), &args, &dir.path));
    writer_out_of_room(run, &reference, &image, "File too large");
}

/// The image's file system is full: a 256 KiB tmpfs (root only).
#[test]
fn a_writer_on_a_full_disk_leaves_the_program_running() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = TempDir::new("cow-full");
    let mnt = dir.join("small");
    fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", path_str(&mnt)])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let image = mnt.join("img.dat");
    let (reference, run) = cli_threads(&Tools::new(), &dir, &image, &[], "4");
    writer_out_of_room(run, &reference, &image, "No space left");
}

/// Memory the program marked `MADV_DONTFORK` is not in a forked writer's
/// copy: the writer says so, and the program writes that checkpoint, and
/// the next ones, in place. The image holds that memory: it restarts to
/// the end of an uninterrupted run (which checks it).
#[test]
fn memory_a_writer_does_not_get_is_written_in_place() {
    let dir = TempDir::new("cow-dontfork");
    let tools = Tools::new();
    let prog = demo("cow-dontfork");
    let image = dir.join("df.dat");
    let reference = uninterrupted_until_started(&mut command(&prog, &[], &dir.path));
    let mut run = spawn_started(
        "ckpt cow-dontfork",
        &mut tools.ckpt_with(&["-v", "--continue"], Some(&image), &prog, &[], &dir.path),
    );
    run.checkpoint();
    run.wait_line(Stream::Stderr, |l| l.contains("MADV_DONTFORK"), "the writer's note");
    for n in 1..=2 {
        let line = run.wait_line(Stream::Stderr, is_written, &format!("checkpoint {n}, in place")).text();
        assert!(line.contains("paused") && !line.contains("copy-on-write"), "{line:?}");
        if n == 1 {
            run.checkpoint();
        }
    }
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert_same("cow-dontfork", &o.stdout(), &reference.stdout());
    restarts_like(&tools, &image, &dir, &reference);
}

/// `--no-cow`, or `CKPT_NO_COW=1`: the checkpoints of `--continue` are
/// written in place, the program paused meanwhile, as before; no writer.
#[test]
fn no_cow_writes_in_place() {
    let dir = TempDir::new("cow-off");
    let tools = Tools::new();
    let prog = demo("cli-threads");
    let reference = uninterrupted_until_started(&mut command(&prog, &["4"], &dir.path));
    for (option, env) in [(Some("--no-cow"), "0"), (None, "1")] {
        let image = dir.join("off.dat");
        let mut opts = vec!["-v", "--continue"];
        opts.extend(option);
        let mut c = tools.ckpt_with(&opts, Some(&image), &prog, &["4"], &dir.path);
        c.env("CKPT_NO_COW", env);
        let mut run = spawn_started("ckpt --no-cow", &mut c);
        run.checkpoint();
        let line = run.wait_line(Stream::Stderr, is_written, "the checkpoint").text();
        assert!(line.contains("paused") && !line.contains("copy-on-write"), "{option:?} CKPT_NO_COW={env}: {line:?}");
        run.close_stdin();
        let o = run.finish();
        o.expect_code(0);
        assert_same("--no-cow", &o.stdout(), &reference.stdout());
        restarts_like(&tools, &image, &dir, &reference);
    }
}

/// The writer finds the pages of private anonymous memory itself (from its
/// own pagemap): memory reserved but never touched stays out of the image,
/// and the image restarts (memtouch ticks on).
#[test]
fn untouched_memory_stays_out_of_a_cow_image() {
    let dir = TempDir::new("cow-sparse");
    let tools = Tools::new();
    let image = dir.join("sparse.dat");
    let mut run = memtouch_sparse(&tools, &dir, &image, "512", "8");
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "the checkpoint");
    wait_for("the writer to end", || writers_of(&image).is_empty().then_some(()));
    run.signal(libc::SIGKILL);
    run.finish();
    let size = fs::metadata(&image).unwrap().len();
    assert!((8 << 20..64 << 20).contains(&size), "the image of 8 MiB touched in 512 reserved is {size} bytes");
    verify(&image, &dir);
    let mut restarted = spawn("restart", &mut tools.restart(Some(&image), &dir.path));
    restarted.wait_line(Stream::Stdout, |l| l.starts_with("tick "), "a tick after the restart");
    restarted.signal(libc::SIGKILL);
    restarted.finish();
}
