//! Integration tests: event loops across checkpoint and restart — eventfd,
//! timerfd, signalfd, epoll, inotify and in-process socketpairs
//! (demo/events.c), and
//! real runtimes built on them (Node.js, Python asyncio, Go), each
//! checkpointed, restarted, checkpointed again and restarted, with the
//! output of the three runs together compared with an uninterrupted run.
mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// Runs commands directly, or as user `nobody` (through setpriv) from
/// copies of the tools in a directory everyone can read.
struct As {
    dir: PathBuf,
    nobody: bool,
    _bins: Option<TempDir>,
}

impl As {
    fn me() -> As {
        As { dir: root(), nobody: false, _bins: None }
    }

    /// As nobody when root (else as the current user, who is not root),
    /// with `programs` copied beside the tools.
    fn nobody(programs: &[PathBuf]) -> As {
        let bins = TempDir::new("events-bin");
        bins.chmod(0o755);
        let tools = ["ckpt", "restart", "libckpt.so"].map(exe);
        for p in tools.iter().chain(programs) {
            let to = bins.join(p.file_name().unwrap().to_str().unwrap());
            fs::copy(p, &to).unwrap();
            chmod(&to, 0o755);
        }
        let nobody = is_root();
        if nobody {
            assert!(Path::new("/usr/bin/setpriv").exists(), "running as root, but /usr/bin/setpriv is missing");
        }
        As { dir: bins.path.clone(), nobody, _bins: Some(bins) }
    }

    fn program(&self, p: &Path) -> PathBuf {
        if self._bins.is_some() {
            self.dir.join(p.file_name().unwrap())
        } else {
            p.to_path_buf()
        }
    }

    fn cmd(&self, program: &Path, args: &[&str], cwd: &Path) -> Command {
        if !self.nobody {
            return command(program, args, cwd);
        }
        let mut full = vec!["--reuid=65534", "--regid=65534", "--clear-groups", "--", program.to_str().unwrap()];
        full.extend_from_slice(args);
        command(Path::new("/usr/bin/setpriv"), &full, cwd)
    }

    fn ckpt(&self, image: &Path, program: &Path, args: &[&str], cwd: &Path) -> Command {
        let mut a = vec!["-o", image.to_str().unwrap(), program.to_str().unwrap()];
        a.extend_from_slice(args);
        self.cmd(&self.dir.join("ckpt"), &a, cwd)
    }

    fn restart(&self, image: &Path, cwd: &Path) -> Command {
        self.cmd(&self.dir.join("restart"), &[image.to_str().unwrap()], cwd)
    }
}

/// Runs `ckpt` (its stdin a pipe kept open), checkpoints the program once
/// it says `ready` on stderr; the run must end with the checkpoint status.
fn checkpointed_when_ready(ckpt: &mut Command, ready: &str) -> Outcome {
    ckpt.stdin(Stdio::piped());
    let mut run = spawn("checkpointed run", ckpt);
    run.wait_line(Stream::Stderr, |l| l == ready, ready);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    first
}

fn lines_starting(o: &Outcome, s: Stream, prefix: &str) -> Vec<String> {
    o.text_lines(s).into_iter().filter(|l| l.starts_with(prefix)).collect()
}

/// demo/events: uninterrupted, then checkpointed once it is ready and
/// restarted; the outputs must be equal, and say what the demo checks.
fn events_case(who: &As, dir: &TempDir) {
    let prog = who.program(&demo("events"));
    let reference = run_with_input("uninterrupted run", &mut who.cmd(&prog, &[], &dir.path), b"go\n");
    reference.expect_code(0);

    let image = dir.join("events.dat");
    let first = checkpointed_when_ready(&mut who.ckpt(&image, &prog, &[], &dir.path), "events: ready\n");
    assert!(
        lines_starting(&first, Stream::Stderr, "ckpt: warning").is_empty(),
        "event descriptors and the socketpairs are not lost\n{}",
        first.describe()
    );

    let second = run_with_input("restart", &mut who.restart(&image, &dir.path), b"go\n");
    second.expect_code(0);
    assert!(
        lines_starting(&second, Stream::Stderr, "restart: warning").is_empty(),
        "nothing is lost at restart\n{}",
        second.describe()
    );
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    let out = second.stdout_text();
    for want in [
        "fd 10 flags: nonblock, fd 17 cloexec\n",
        "epoll 17: 0x10(in)\n",
        "epoll 27: 0x1a(in) 0x1c(in)\n",
        "epoll 16: 0xa(in) 0xd(in) 0xf(in) 0x12(in) 0x14(in)\n",
        "epoll 16 again: 0xd(in) 0xf(in) 0x12(in)\n",
        "epoll 16 with 18 written: 0xd(in) 0xf(in) 0x12(in) 0x212(in)\n",
        "eventfd 10 read 8: 1\n",
        "eventfd 11 read 8: 0x123456789\n",
        "timerfd 12: armed, at most 30 s left\n",
        "timerfd 13 read 8: 1 expiration(s)\n",
        "timerfd 14: deadline kept\n",
        "signalfd 15 read 128: signal 10 (SIGUSR1)\n",
        "socket 20: 5 \"hello\"\n",
        "socket 21: 6 \"world!\"\n",
        "socket 20 then: 4 \"more\"\n",
        "datagram 1: 4 \"two2\"\n",
        "datagram 2: 7 \"three33\"\n",
        "inotify: watch 3 mask 0x100 name \"new\"\n",
        "inotify: watch 3 mask 0x8000 name \"\"\n",
        "inotify: watch 2 mask 0x100 name \"new\"\n",
        "memfd: seals 0x6, size 4096, read at 6: \"contents\"\n",
        "memfd: the mapping reaches the file; cannot shrink\n",
        "semaphore: 3, through its file 3\n",
    ] {
        assert!(out.contains(want), "missing {want:?}\n{}", second.describe());
    }
}

#[test]
fn event_descriptors_keep_their_state() {
    let dir = TempDir::new("events");
    events_case(&As::me(), &dir);
}

/// `readckpt --json --verify` on a real image (threads, signal handlers,
/// every kind of event descriptor) keeps schema 1: the members, their order,
/// types and nesting of tests/fixtures/readckpt-json.shape.
#[test]
fn readckpt_json_shape_of_a_real_image() {
    let dir = TempDir::new("json-shape");
    let (me, image) = (As::me(), dir.join("events.dat"));
    checkpointed_when_ready(&mut me.ckpt(&image, &demo("events"), &[], &dir.path), "events: ready\n");
    let args = ["--json", "--verify", image.to_str().unwrap()];
    let o = spawn("readckpt --json --verify", &mut command(&exe("readckpt"), &args, &dir.path)).finish();
    o.expect_code(0);
    let problems = json_shape::shape_mismatches(&o.stdout_text(), json_shape::READCKPT_SHAPE);
    assert!(problems.is_empty(), "{problems:#?}\n{}", o.describe());
    // The restart lets the demo remove its semaphore.
    run_with_input("restart", &mut me.restart(&image, &dir.path), b"go\n").expect_code(0);
}

#[test]
fn event_descriptors_as_nobody() {
    let who = As::nobody(&[demo("events")]);
    let dir = TempDir::new("events-nobody");
    dir.chmod(0o777);
    events_case(&who, &dir);
}

/// `program args`, run uninterrupted in `ref_dir`, then under ckpt in
/// `run_dir`: checkpointed once its stdout shows a line starting with
/// `marks[0]`, restarted, checkpointed again at `marks[1]`, and restarted
/// to its end. The three runs' stdout together must be the uninterrupted
/// run's, and none may have lost a descriptor. Returns the uninterrupted
/// run and the last restart.
fn two_generations(
    program: &Path,
    args: &[&str],
    (run_dir, ref_dir): (&Path, &Path),
    marks: [&str; 2],
) -> (Outcome, Outcome) {
    two_generations_with(&As::me(), program, args, (run_dir, ref_dir), marks)
}

/// As [`two_generations`], run by `who`.
fn two_generations_with(
    who: &As,
    program: &Path,
    args: &[&str],
    (run_dir, ref_dir): (&Path, &Path),
    marks: [&str; 2],
) -> (Outcome, Outcome) {
    let program = &who.program(program);
    let reference = spawn("uninterrupted run", &mut who.cmd(program, args, ref_dir)).finish();
    reference.expect_code(0);
    let image = run_dir.join("gen.dat");
    let mut runs = Vec::new();
    for (gen, mark) in marks.iter().enumerate() {
        let mut c = if gen == 0 { who.ckpt(&image, program, args, run_dir) } else { who.restart(&image, run_dir) };
        let mut run = spawn(&format!("generation {gen}"), &mut c);
        run.wait_line(Stream::Stdout, |l| l.starts_with(mark), mark);
        run.checkpoint();
        let o = run.finish();
        o.expect_code(CHECKPOINTED);
        runs.push(o);
    }
    let last = spawn("last restart", &mut who.restart(&image, run_dir)).finish();
    last.expect_code(0);
    runs.push(last);
    for o in &runs {
        let lost: Vec<String> =
            o.text_lines(Stream::Stderr).into_iter().filter(|l| l.contains("warning: fd")).collect();
        assert!(lost.is_empty(), "descriptors were lost\n{}", o.describe());
    }
    let parts: Vec<Vec<u8>> = runs.iter().map(|o| o.stdout()).collect();
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    assert_same("stdout of the three runs", &cat(&parts), &reference.stdout());
    (reference, runs.pop().unwrap())
}

/// A program the test needs, or a skip line saying why it is missing.
fn tool(path: &str, package: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        Some(p)
    } else {
        println!("skip: {path} not found (Debian package {package}; .ci/run installs it)");
        None
    }
}

/// Python asyncio: a timer, a socketpair stream and `run_in_executor`
/// threads. Its running loop records the pid (to detect a fork): it works
/// across restarts because the pid is the program's own again (namespace
/// mode; with new pids it ends in "RuntimeError: no running event loop").
#[test]
fn python_asyncio_timers_streams_and_executor() {
    let Some(python) = tool("/usr/bin/python3", "python3") else { return };
    let dir = TempDir::new("events-asyncio");
    let (unshare, args) = UNSHARE_PROBE;
    if !namespaces_available(command(Path::new(unshare), &args, &dir.path), "python_asyncio") {
        return;
    }
    let (run, reference) = subdirs(&dir);
    let script = root().join("demo/runtimes/aio.py");
    two_generations(&python, &[script.to_str().unwrap(), "40"], (&run, &reference), ["tick 8:", "tick 20:"]);
}

fn subdirs(dir: &TempDir) -> (PathBuf, PathBuf) {
    let (run, reference) = (dir.join("run"), dir.join("ref"));
    fs::create_dir(&run).unwrap();
    fs::create_dir(&reference).unwrap();
    (run, reference)
}

#[test]
fn nodejs_set_interval_and_fs_promises() {
    let Some(node) = tool("/usr/bin/node", "nodejs") else { return };
    let dir = TempDir::new("events-node");
    let (run, reference) = subdirs(&dir);
    let script = root().join("demo/runtimes/tick.js");
    let args = [script.to_str().unwrap(), "40", "out.txt"];
    two_generations(&node, &args, (&run, &reference), ["tick 8:", "tick 20:"]);
    assert_same("the file it wrote", &read(&run.join("out.txt")), &read(&reference.join("out.txt")));
}

#[test]
fn ruby_threads_do_not_busy_poll_after_restart() {
    let Some(ruby) = tool("/usr/bin/ruby", "ruby") else { return };
    let dir = TempDir::new("events-ruby");
    let (run, reference) = subdirs(&dir);
    let script = root().join("demo/runtimes/tick.rb");
    // Ruby 3.1 arms a POSIX timer for its thread scheduler and creates it
    // again only when its pid changed: with its own pid back (namespace
    // mode) it goes on with the one it had, which must be there (at exit
    // it deletes it, and crashed when timers were not restored).
    let (reference, last) =
        two_generations(&ruby, &[script.to_str().unwrap(), "60"], (&run, &reference), ["tick 10:", "tick 25:"]);
    // CPU seconds the script reports at its end ("cpu S" on stderr).
    let cpu = |o: &Outcome| -> f64 {
        let line = o.text_lines(Stream::Stderr).into_iter().find(|l| l.starts_with("cpu ")).expect("a cpu line");
        line[4..].trim().parse().unwrap()
    };
    // The last restart runs the last 35 of 60 ticks: with its eventfds
    // lost, Ruby busy-polls for the whole of them (1.2 s of CPU where the
    // whole uninterrupted run takes 0.04 s). The restart's own work
    // (reading and checking the image) is allowed 0.1 s more.
    assert!(
        cpu(&last) <= 2.0 * cpu(&reference) + 0.1,
        "the restarted run used {} s of CPU, the uninterrupted one {} s\n{}",
        cpu(&last),
        cpu(&reference),
        last.describe()
    );
}

/// demo/posix-timers: a periodic signal timer, a one-shot, a timer that
/// signals one thread, a glibc SIGEV_THREAD one (its helper thread blocks
/// the thread signal: preload/src/nudge.rs) and a SIGEV_NONE one,
/// checkpointed twice;
/// the output (every tick once, each timer's count, its id still valid and
/// deletable at the end) is the uninterrupted run's.
fn posix_timers_case(who: &As, dir: &TempDir) {
    let (run, reference) = subdirs(dir);
    for d in [&run, &reference] {
        chmod(d, 0o777);
    }
    let (_, last) =
        two_generations_with(who, &demo("posix-timers"), &[], (&run, &reference), ["tick 5\n", "tick 15\n"]);
    assert!(
        last.stdout_text().ends_with("done oneshot=1 thread=12 callback=8 realtime=armed errors=0 ids ok\n"),
        "{}",
        last.describe()
    );
    let warned = lines_starting(&last, Stream::Stderr, "restart: warning");
    assert!(warned.is_empty(), "nothing is lost at restart\n{}", last.describe());
}

#[test]
fn posix_timers_keep_their_ids_and_time() {
    posix_timers_case(&As::me(), &TempDir::new("events-timers"));
}

#[test]
fn posix_timers_as_nobody() {
    let who = As::nobody(&[demo("posix-timers")]);
    let dir = TempDir::new("events-timers-nobody");
    dir.chmod(0o777);
    posix_timers_case(&who, &dir);
}

#[test]
fn go_goroutines_and_ticker_with_cgo() {
    let Some(go) = tool("/usr/bin/go", "golang-go") else { return };
    let dir = TempDir::new("events-go");
    let (run, reference) = subdirs(&dir);
    // Built by the test, with cgo (so dynamically linked: LD_PRELOAD works).
    let bin = dir.join("go-ticker");
    let cache = root().join("target/go-cache");
    let build = Command::new(go)
        .args(["build", "-o", bin.to_str().unwrap(), "."])
        .current_dir(root().join("demo/runtimes/go-ticker"))
        .env("CGO_ENABLED", "1")
        .env("GOCACHE", &cache)
        .env("GOPATH", root().join("target/go-path"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(build.status.success(), "go build: {}", String::from_utf8_lossy(&build.stderr));
    two_generations(&bin, &["40"], (&run, &reference), ["tick 8:", "tick 20:"]);
}

/// tokio (demo/runtimes/tokio, built by `make`): a multi-threaded runtime
/// (its epoll, eventfd and internal socketpair), interval timers, a
/// socketpair between two tasks and the blocking pool.
#[test]
fn tokio_multi_threaded_runtime_with_timers_and_a_socketpair() {
    let bin = root().join("target/runtimes/release/tokio-ticker");
    assert!(bin.exists(), "{} does not exist: run `make` first", bin.display());
    let dir = TempDir::new("events-tokio");
    let (run, reference) = subdirs(&dir);
    two_generations(&bin, &["40"], (&run, &reference), ["tick 8:", "tick 20:"]);
}

#[test]
fn glib_main_loop_with_thread_pool_and_socketpair() {
    // In place of tokio (its crates cannot be built here offline): a C
    // program on GLib's main loop, built against the system's GLib.
    let flags = Command::new("pkg-config").args(["--cflags", "--libs", "glib-2.0"]).output();
    let Some(flags) = flags.ok().filter(|o| o.status.success()) else {
        println!("skip: pkg-config or glib-2.0 not found (Debian packages pkg-config, libglib2.0-dev; .ci/run installs them)");
        return;
    };
    let dir = TempDir::new("events-glib");
    let (run, reference) = subdirs(&dir);
    let bin = dir.join("glib-loop");
    let source = root().join("demo/runtimes/glib-loop.c");
    let mut args = vec!["-O2".to_string(), "-o".into(), bin.to_str().unwrap().into(), source.to_str().unwrap().into()];
    args.extend(String::from_utf8(flags.stdout).unwrap().split_whitespace().map(String::from));
    let build = Command::new("gcc").args(&args).output().unwrap();
    assert!(build.status.success(), "gcc: {}", String::from_utf8_lossy(&build.stderr));
    two_generations(&bin, &["40"], (&run, &reference), ["job 8:", "job 20:"]);
}

#[test]
fn ckpt_strict_refuses_an_image_that_would_lose_a_socket() {
    // files-socket holds a listening TCP socket (fd 12) among a socketpair,
    // an eventfd and a file, which can all be restored.
    let dir = TempDir::new("events-strict");
    let prog = demo("files-socket");
    let reference = run_with_input("uninterrupted run", &mut command(&prog, &[], &dir.path), b"go\n");
    reference.expect_code(0);
    let (refusal, o) = strict_refusal(&prog, &dir, "files-socket: ready\n");
    assert!(
        refusal.starts_with("ckpt: checkpoint failed: fd 12 (socket:[") && refusal.contains("--strict"),
        "{refusal}"
    );
    assert_same("stdout", &o.stdout(), &reference.stdout());
}

/// `ckpt --strict PROGRAM` checkpointed once it says `ready`: the
/// checkpoint must fail with one line, write no image, and the program go
/// on to its end (given a line on stdin). Returns that line and the run.
fn strict_refusal(prog: &Path, dir: &TempDir, ready: &str) -> (String, Outcome) {
    let image = dir.join("strict.dat");
    let mut c = command(&exe("ckpt"), &["--strict", "-o", image.to_str().unwrap(), prog.to_str().unwrap()], &dir.path);
    c.stdin(Stdio::piped());
    let mut run = spawn("ckpt --strict", &mut c);
    run.wait_line(Stream::Stderr, |l| l == ready, ready);
    run.checkpoint();
    let refusal = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt:"), "the refusal").text();
    run.write_stdin(b"go\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    let said: Vec<String> = o.text_lines(Stream::Stderr).into_iter().filter(|l| l.starts_with("ckpt:")).collect();
    assert_eq!(said, vec![refusal.clone()], "one line\n{}", o.describe());
    assert!(!image.exists(), "no image is written");
    (refusal, o)
}

#[test]
fn file_locks_are_taken_again() {
    let dir = TempDir::new("events-locks");
    let (run, reference) = subdirs(&dir);
    let prog = demo("locks");
    let ref_out = run_with_input("uninterrupted run", &mut command(&prog, &[], &reference), b"go\n");
    ref_out.expect_code(0);
    assert!(ref_out.stdout_text().starts_with("held: record Resource temporarily unavailable, ofd Resource"));

    let image = dir.join("locks.dat");
    let first = checkpointed_when_ready(&mut As::me().ckpt(&image, &prog, &[], &run), "locks: ready\n");
    let second = run_with_input("restart", &mut As::me().restart(&image, &run), b"go\n");
    second.expect_code(0);
    assert!(!second.stderr_text().contains("warning"), "{}", second.describe());
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &ref_out.stdout());

    // Another process holds the flock lock now: --strict refuses in one
    // line; without it, a warning, and the program goes on without it.
    let Some(python) = tool("/usr/bin/python3", "python3") else { return };
    let holder = "import fcntl, sys\nf = open('lk-flock', 'r+')\nfcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.readline()\n";
    let mut c = command(&python, &["-c", holder], &run);
    c.stdin(Stdio::piped());
    let mut holder = spawn("lock holder", &mut c);
    holder.wait_line(Stream::Stdout, |l| l == "held\n", "held");
    // (Refused before the program runs: its stdin is never read.)
    let strict =
        spawn("restart --strict", &mut command(&exe("restart"), &["--strict", image.to_str().unwrap()], &run)).finish();
    strict.expect_code(1);
    let err = strict.stderr_text();
    assert!(
        err.lines().count() == 1
            && err.contains("fd 12 (")
            && err.contains("flock write lock is held by another process"),
        "{}",
        strict.describe()
    );
    let warned = run_with_input("restart", &mut As::me().restart(&image, &run), b"go\n");
    warned.expect_code(0);
    let warnings = lines_starting(&warned, Stream::Stderr, "restart: warning");
    assert!(
        warnings.len() == 1 && warnings[0].contains("its flock write lock is held by another process; not re-acquired"),
        "{}",
        warned.describe()
    );
    holder.close_stdin();
    holder.finish().expect_code(0);
}

#[test]
fn epoll_registration_of_a_file_no_descriptor_holds() {
    // Named at checkpoint and at restart (the program goes on without it);
    // with ckpt --strict the checkpoint fails, naming the epoll.
    let dir = TempDir::new("events-orphan");
    let prog = demo("epoll-orphan");
    let image = dir.join("orphan.dat");
    let first = checkpointed_when_ready(&mut As::me().ckpt(&image, &prog, &[], &dir.path), "epoll-orphan: ready\n");
    let warned = lines_starting(&first, Stream::Stderr, "ckpt: warning");
    assert!(
        warned.len() == 1
            && warned[0].contains("fd 6 (epoll): its registration of fd 5 is of a file no descriptor holds"),
        "{}",
        first.describe()
    );
    let second = run_with_input("restart", &mut As::me().restart(&image, &dir.path), b"go\n");
    second.expect_code(0);
    let warned = lines_starting(&second, Stream::Stderr, "restart: warning");
    assert!(warned.len() == 1 && warned[0].contains("the registration of fd 5 was dropped"), "{}", second.describe());
    assert_eq!(second.stdout_text(), "epoll_wait: 0\n");

    let (refusal, _) = strict_refusal(&prog, &dir, "epoll-orphan: ready\n");
    assert!(refusal.starts_with("ckpt: checkpoint failed: fd 6 (anon_inode:[eventpoll])"), "{refusal}");
}

/// The pid of the lock keeper that `o` (a checkpointed run) names on
/// stderr, as the namespace the run was in sees it; None without that line.
fn keeper_pid(o: &Outcome) -> Option<i32> {
    let said = lines_starting(o, Stream::Stderr, "ckpt: locks held by keeper pid ");
    assert!(said.len() <= 1, "one keeper line at most\n{}", o.describe());
    let line = said.first()?;
    assert!(line.ends_with(" until restart (kill it to release)\n"), "{line}");
    Some(line["ckpt: locks held by keeper pid ".len()..].split(' ').next()?.parse().expect("a pid"))
}

/// Whether process `pid` has ended (gone, or a zombie its new parent has
/// not reaped yet).
fn ended(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
}

/// Waits (within the usual timeout) until process `pid` has ended.
fn wait_ended(pid: i32, what: &str) {
    let start = std::time::Instant::now();
    while !ended(pid) {
        assert!(start.elapsed() < TIMEOUT, "{what} (pid {pid}) is still running");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// demo/runtimes/sqlite-wal.py, run by `who`: a program holds a sqlite
/// database in WAL mode and is checkpointed twice while it waits; each
/// time, while it is stopped, another process reads the database, adds a
/// row, and closes it. The program's lock keeper keeps that process from
/// being the last connection (which would checkpoint the WAL into the
/// database and delete it and the -shm file under the stopped program:
/// "disk I/O error" at its next COMMIT); the restarted program sees the
/// other process's rows. Everything printed must be what it is when the
/// other process runs at the same points beside an uninterrupted program.
fn sqlite_wal_case(who: &As, dir: &TempDir) {
    let Some(python) = tool("/usr/bin/python3", "python3") else { return };
    let probe = spawn("python3 -c 'import sqlite3'", &mut command(&python, &["-c", "import sqlite3"], &dir.path));
    if probe.finish().status.code() != Some(0) {
        println!("skip: python3 has no sqlite3 module (Debian package libpython3-stdlib)");
        return;
    }
    let script = dir.join("sqlite-wal.py");
    fs::copy(root().join("demo/runtimes/sqlite-wal.py"), &script).unwrap();
    chmod(&script, 0o644);
    let script = script.to_str().unwrap();
    let (run, reference) = subdirs(dir);
    chmod(&run, 0o777);
    chmod(&reference, 0o777);
    let other = |cwd: &Path| -> Vec<u8> {
        let o = spawn("the other process", &mut who.cmd(&python, &[script, "other"], cwd)).finish();
        o.expect_code(0);
        o.stdout()
    };

    let mut c = who.cmd(&python, &[script, "program"], &reference);
    c.stdin(Stdio::piped());
    let mut uninterrupted = spawn("uninterrupted run", &mut c);
    let mut ref_other = Vec::new();
    for gen in 0..2 {
        let ready = format!("ready {gen}:");
        uninterrupted.wait_line(Stream::Stdout, |l| l.starts_with(&ready), &ready);
        ref_other.extend(other(&reference));
        uninterrupted.write_stdin(b"\n");
    }
    uninterrupted.close_stdin();
    let ref_out = uninterrupted.finish();
    ref_out.expect_code(0);
    let ref_other = String::from_utf8(ref_other).unwrap();
    assert_eq!(ref_other.matches("; WAL kept after close").count(), 2, "{ref_other}");
    assert!(ref_out.stdout_text().ends_with(", 2 from the other process, integrity ok\n"), "{}", ref_out.describe());

    let image = run.join("wal.dat");
    let mut runs = Vec::new();
    let mut run_other = Vec::new();
    for gen in 0..2 {
        let mut c =
            if gen == 0 { who.ckpt(&image, &python, &[script, "program"], &run) } else { who.restart(&image, &run) };
        c.stdin(Stdio::piped());
        let mut p = spawn(&format!("generation {gen}"), &mut c);
        if gen > 0 {
            p.write_stdin(b"\n");
        }
        let ready = format!("ready {gen}:");
        p.wait_line(Stream::Stdout, |l| l.starts_with(&ready), &ready);
        p.checkpoint();
        let o = p.finish();
        o.expect_code(CHECKPOINTED);
        assert!(keeper_pid(&o).is_some(), "a lock keeper is named\n{}", o.describe());
        run_other.extend(other(&run));
        runs.push(o);
    }
    let last = run_with_input("last restart", &mut who.restart(&image, &run), b"\n");
    last.expect_code(0);
    runs.push(last);
    assert_same("the other process's output", &run_other, ref_other.as_bytes());
    let parts: Vec<Vec<u8>> = runs.iter().map(|o| o.stdout()).collect();
    let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    assert_same("stdout of the three runs", &cat(&parts), &ref_out.stdout());
    for o in &runs[1..] {
        let err = o.stderr_text();
        assert!(
            !err.contains("not re-acquired") && !err.contains("no longer reaches the file"),
            "the locks and the -shm mapping come back\n{}",
            o.describe()
        );
    }
}

#[test]
fn sqlite_wal_database_kept_by_a_lock_keeper_while_stopped() {
    sqlite_wal_case(&As::me(), &TempDir::new("events-sqlite"));
}

#[test]
fn sqlite_wal_database_kept_by_a_lock_keeper_as_nobody() {
    let who = As::nobody(&[]);
    let dir = TempDir::new("events-sqlite-nobody");
    dir.chmod(0o777);
    sqlite_wal_case(&who, &dir);
}

/// `locks | cat`, checkpointed: the keeper holds only the locked files
/// (and its socket), so `cat` sees the end of its input when the program
/// stops; the locks stay held (an flock probe cannot take lk-flock) until
/// the restart, which takes them back without a warning.
#[test]
fn lock_keeper_holds_the_locks_and_nothing_else() {
    let Some(flock) = tool("/usr/bin/flock", "util-linux") else { return };
    let dir = TempDir::new("events-keeper");
    let (run, reference) = subdirs(&dir);
    let prog = demo("locks");
    let ref_out = run_with_input("uninterrupted run", &mut command(&prog, &[], &reference), b"go\n");
    ref_out.expect_code(0);

    let mut reader = command(Path::new("/bin/cat"), &[], &run);
    reader.stdin(Stdio::piped());
    let mut cat_run = spawn("cat", &mut reader);
    let image = dir.join("locks.dat");
    let mut c = As::me().ckpt(&image, &prog, &[], &run);
    c.stdout(Stdio::from(cat_run.take_stdin()));
    let first = checkpointed_when_ready(&mut c, "locks: ready\n");
    drop(c); // (it holds the pipe's write end too)
    let keeper = keeper_pid(&first).unwrap_or_else(|| panic!("a lock keeper is named\n{}", first.describe()));
    // The pipe's reader sees its end: no one holds its write end now.
    let piped = cat_run.finish();
    piped.expect_code(0);
    assert_eq!(fs::read_to_string(format!("/proc/{keeper}/comm")).unwrap(), "ckpt-locks\n");
    let mut held: Vec<String> = fs::read_dir(format!("/proc/{keeper}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let to = fs::read_link(e.path()).unwrap();
            let to = to.to_string_lossy();
            let to = if to.starts_with("socket:") { "socket" } else { to.rsplit('/').next().unwrap() };
            format!("{} {to}", e.file_name().to_string_lossy())
        })
        .collect();
    held.sort_by_key(|s| s.split(' ').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(held[1..], ["10 lk-record", "11 lk-ofd", "12 lk-flock", "13 lk-flock"], "{held:?}");
    assert!(held[0].ends_with(" socket"), "{held:?}");
    let probe = |what: &str| spawn(what, &mut command(&flock, &["-n", "-E", "3", "lk-flock", "true"], &run)).finish();
    probe("flock probe while stopped").expect_code(3);

    // (--strict: the locks the keeper holds are the program's own.)
    let args = ["--strict", image.to_str().unwrap()];
    let second = run_with_input("restart --strict", &mut command(&exe("restart"), &args, &run), b"go\n");
    second.expect_code(0);
    assert!(!second.stderr_text().contains("warning"), "{}", second.describe());
    assert_same("stdout", &cat(&[&piped.stdout(), &second.stdout()]), &ref_out.stdout());
    wait_ended(keeper, "the released keeper");
}

/// Once a keeper is gone, another user may bind its address (abstract
/// names are listed in /proc/net/unix for everyone): the restart does not
/// take that process for the keeper (its SO_PEERCRED uid is not the
/// caller's); one warning says so, and the locks are taken as usual.
#[test]
fn a_process_of_another_user_at_the_keepers_address_is_ignored() {
    if !is_root() {
        println!(
            "skip: a_process_of_another_user_at_the_keepers_address_is_ignored runs the other user as root's nobody"
        );
        return;
    }
    let Some(python) = tool("/usr/bin/python3", "python3") else { return };
    let dir = TempDir::new("events-foreign-keeper");
    dir.chmod(0o755);
    let (run, reference) = subdirs(&dir);
    let prog = demo("locks");
    let ref_out = run_with_input("uninterrupted run", &mut command(&prog, &[], &reference), b"go\n");
    ref_out.expect_code(0);
    let image = dir.join("locks.dat");
    let first = checkpointed_when_ready(&mut As::me().ckpt(&image, &prog, &[], &run), "locks: ready\n");
    let keeper = keeper_pid(&first).unwrap_or_else(|| panic!("a lock keeper is named\n{}", first.describe()));
    // The keeper's address: the /proc/net/unix line of its socket's inode.
    let inode = fs::read_dir(format!("/proc/{keeper}/fd"))
        .unwrap()
        .filter_map(|e| fs::read_link(e.unwrap().path()).ok())
        .find_map(|to| to.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
        .expect("the keeper's socket");
    let table = fs::read_to_string("/proc/net/unix").unwrap();
    let name = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() == 8 && w[6] == inode)
        .map(|w| w[7].to_string())
        .expect("the keeper's address in /proc/net/unix");
    assert!(name.starts_with("@ckpt-locks/0/"), "{name}");
    // SAFETY: kill(2) of the keeper this run named.
    assert_eq!(unsafe { libc::kill(keeper, libc::SIGTERM) }, 0);
    wait_ended(keeper, "the killed keeper");

    let squatter = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1].replace('@', '\\0', 1))\ns.listen()\nprint('bound', flush=True)\nsys.stdin.readline()\n";
    let mut c = command_as(65534, 65534, &python, &["-c", squatter, &name], &run);
    c.stdin(Stdio::piped());
    let mut squatting = spawn("another user's process at the address", &mut c);
    squatting.wait_line(Stream::Stdout, |l| l == "bound\n", "bound");
    let second = run_with_input("restart", &mut As::me().restart(&image, &run), b"go\n");
    second.expect_code(0);
    let warned = lines_starting(&second, Stream::Stderr, "restart: warning");
    assert!(
        warned.len() == 1
            && warned[0].contains("the lock keeper's address of this image is taken by a process of another user"),
        "{}",
        second.describe()
    );
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &ref_out.stdout());
    squatting.close_stdin();
    squatting.finish().expect_code(0);
}

/// `ckpt --release-locks`: no keeper, the locks are free while the program
/// is stopped (as before keepers); a keeper the user kills frees them too.
/// Either way the restart takes them again (no one else holds them).
#[test]
fn locks_released_by_option_or_by_killing_the_keeper() {
    let Some(flock) = tool("/usr/bin/flock", "util-linux") else { return };
    let dir = TempDir::new("events-release");
    let (run, reference) = subdirs(&dir);
    let prog = demo("locks");
    let ref_out = run_with_input("uninterrupted run", &mut command(&prog, &[], &reference), b"go\n");
    ref_out.expect_code(0);
    let probe = || spawn("flock probe", &mut command(&flock, &["-n", "-E", "3", "lk-flock", "true"], &run)).finish();
    let image = dir.join("locks.dat");
    for release in ["--release-locks", "kill"] {
        let mut c = if release == "--release-locks" {
            command(&exe("ckpt"), &[release, "-o", image.to_str().unwrap(), prog.to_str().unwrap()], &run)
        } else {
            As::me().ckpt(&image, &prog, &[], &run)
        };
        let first = checkpointed_when_ready(&mut c, "locks: ready\n");
        match keeper_pid(&first) {
            None if release == "--release-locks" => {}
            Some(pid) if release == "kill" => {
                probe().expect_code(3);
                // SAFETY: kill(2) of the keeper this run named.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
                wait_ended(pid, "the killed keeper");
            }
            _ => panic!("{release}: {}", first.describe()),
        }
        probe().expect_code(0);
        let second = run_with_input("restart", &mut As::me().restart(&image, &run), b"go\n");
        second.expect_code(0);
        assert!(!second.stderr_text().contains("warning"), "{release}\n{}", second.describe());
        assert_same(release, &cat(&[&first.stdout(), &second.stdout()]), &ref_out.stdout());
    }
}

/// A job (`ckpt --tree`) of two processes that hold locks
/// (demo/runtimes/locks-job.py): each gets a keeper of its own, named on
/// stderr; while the job is stopped the parent's flock lock stays held;
/// the restart has each keeper let go, and each process takes its locks
/// again (the child finds `a` held by its parent, as without a checkpoint).
#[test]
fn each_process_of_a_job_keeps_its_locks() {
    let Some(python) = tool("/usr/bin/python3", "python3") else { return };
    let Some(flock) = tool("/usr/bin/flock", "util-linux") else { return };
    let dir = TempDir::new("events-job-locks");
    let (run, reference) = subdirs(&dir);
    let script = root().join("demo/runtimes/locks-job.py");
    let script = script.to_str().unwrap();
    let ref_out = run_with_input("uninterrupted run", &mut command(&python, &[script], &reference), b"\n");
    ref_out.expect_code(0);
    assert!(ref_out.stdout_text().contains("child: a is held\n"), "{}", ref_out.describe());

    let image = dir.join("job.dat");
    let args = ["--tree", "-o", image.to_str().unwrap(), python.to_str().unwrap(), script];
    let mut c = command(&exe("ckpt"), &args, &run);
    c.stdin(Stdio::piped());
    let mut job = spawn("checkpointed job", &mut c);
    job.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    job.checkpoint();
    let first = job.finish();
    first.expect_code(CHECKPOINTED);
    let root_keeper = keeper_pid(&first).unwrap_or_else(|| panic!("the root's keeper\n{}", first.describe()));
    let members = lines_starting(&first, Stream::Stderr, "ckpt: the locks of process ");
    assert!(members.len() == 1 && members[0].contains(" are held by keeper pid "), "{}", first.describe());
    let probe = spawn("flock probe", &mut command(&flock, &["-n", "-E", "3", "a", "true"], &run)).finish();
    probe.expect_code(3);

    let second = run_with_input("restart", &mut As::me().restart(&image, &run), b"\n");
    second.expect_code(0);
    assert!(!second.stderr_text().contains("not re-acquired"), "{}", second.describe());
    assert_same("stdout", &cat(&[&first.stdout(), &second.stdout()]), &ref_out.stdout());
    wait_ended(root_keeper, "the root's released keeper");
}
