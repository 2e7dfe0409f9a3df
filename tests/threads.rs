//! Multi-threaded programs: every thread is stopped at the checkpoint and
//! recreated at the restart. Each test checkpoints a threaded program in
//! the middle of its run, restarts it, and checks that the output of the two
//! halves equals an uninterrupted run's, with the same exit status.
//!
//! The programs print their progress on stderr (unbuffered); a test waits
//! for such a line before it sends the checkpoint signal.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// `ckpt -o IMAGE PROGRAM ARGS`, in `dir`.
fn ckpt(dir: &TempDir, image: &Path, program: &Path, args: &[&str]) -> std::process::Command {
    let mut a = vec!["-o", image.to_str().unwrap(), program.to_str().unwrap()];
    a.extend_from_slice(args);
    command(&exe("ckpt"), &a, &dir.path)
}

fn restart(dir: &TempDir, image: &Path) -> std::process::Command {
    command(&exe("restart"), &[image.to_str().unwrap()], &dir.path)
}

/// Runs the program under ckpt until it prints a stderr line matching
/// `trigger`, checkpoints it, and returns the checkpointed run's outcome.
fn checkpoint_at(dir: &TempDir, image: &Path, program: &Path, args: &[&str], trigger: &str) -> Outcome {
    let mut run = spawn("checkpointed run", &mut ckpt(dir, image, program, args));
    run.wait_line(Stream::Stderr, |l| l.starts_with(trigger), trigger);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    assert!(image.is_file(), "no image written\n{}", first.describe());
    first
}

/// Checkpoint at `trigger`, restart, and compare stdout and exit status with
/// an uninterrupted run (started at the same time).
fn round_trip(tag: &str, program: &Path, args: &[&str], trigger: &str) -> (TempDir, PathBuf, Outcome) {
    let dir = TempDir::new(tag);
    let image = dir.join("img.dat");
    let reference = spawn("uninterrupted run", &mut command(program, args, &dir.path));
    let first = checkpoint_at(&dir, &image, program, args, trigger);
    let second = spawn("restart", &mut restart(&dir, &image)).finish();
    let reference = reference.finish_within(Duration::from_secs(60));
    assert_eq!(
        second.status.code(),
        reference.status.code(),
        "exit status differs\n{}\n{}",
        second.describe(),
        reference.describe()
    );
    assert_same(tag, &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    (dir, image, reference)
}

#[test]
fn four_threads_mutex_condvar_tls() {
    let (_, _, reference) = round_trip("threads4", &demo("threads-count"), &["4", "300"], "round 100");
    assert!(reference.stdout_text().contains("total 3000, sum of thread-local 3000"));
}

#[test]
fn sixty_four_threads() {
    let (_, _, reference) = round_trip("threads64", &demo("threads-count"), &["64", "60"], "round 20");
    assert!(reference.stdout_text().contains("total 124800, sum of thread-local 124800"));
}

#[test]
fn threads_created_exiting_joined_signalled_after_restart() {
    let (_, _, reference) = round_trip("threadlife", &demo("threads-life"), &[], "ready");
    assert_eq!(reference.stdout_text(), "join Success 1, created 380, worker hits 1, main hits 1\n");
}

#[test]
fn threads_blocked_in_read_and_cond_wait() {
    let (_, _, reference) = round_trip("blocked", &demo("threads-blocked"), &[], "ready");
    assert_eq!(reference.stdout_text(), "reader got 'through the pipe', waiter got 42\n");
}

#[test]
fn openmp_thread_pool() {
    round_trip("openmp", &demo("omp-sum"), &[], "slice 10");
}

const PYTHON_THREADS: &str = r#"
import sys, threading, time
lock = threading.Lock()
counts = [0] * 4
def work(i):
    for n in range(60):
        with lock:
            counts[i] += i + 1
        if i == 0:
            print("tick", n, file=sys.stderr, flush=True)
        time.sleep(0.01)
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("counts", counts, sum(counts))
"#;

#[test]
fn python3_threading() {
    let dir = TempDir::new("pythreads");
    let script = dir.join("threads.py");
    std::fs::write(&script, PYTHON_THREADS).unwrap();
    let (_, _, reference) =
        round_trip("pythreads", Path::new("/usr/bin/python3"), &[script.to_str().unwrap()], "tick 20");
    assert!(reference.stdout_text().contains("counts [60, 120, 180, 240] 600"));
}

#[test]
fn three_generations_and_twice_restarted() {
    let dir = TempDir::new("threadgens");
    let image = dir.join("img.dat");
    let program = demo("threads-count");
    let args = ["8", "400"];
    let reference = spawn("uninterrupted run", &mut command(&program, &args, &dir.path));
    let first = checkpoint_at(&dir, &image, &program, &args, "round 60");
    let mut outputs = vec![first.stdout()];
    for generation in 2..=3 {
        let mut run = spawn(&format!("generation {generation}"), &mut restart(&dir, &image));
        // Each generation gets further: wait for a later round.
        let round = 60 + 100 * (generation - 1);
        run.wait_line(Stream::Stderr, |l| l.trim() == format!("round {round}"), "a later round");
        run.checkpoint();
        let o = run.finish();
        o.expect_code(CHECKPOINTED);
        outputs.push(o.stdout());
    }
    let reference = reference.finish_within(Duration::from_secs(60));
    // The last image, restarted twice: both runs finish the same way.
    for n in 1..=2 {
        let last = spawn(&format!("last restart {n}"), &mut restart(&dir, &image)).finish();
        last.expect_code(0);
        let mut all = outputs.clone();
        all.push(last.stdout());
        let parts: Vec<&[u8]> = all.iter().map(|v| v.as_slice()).collect();
        assert_same(&format!("three generations, restart {n}"), &cat(&parts), &reference.stdout());
    }
}
