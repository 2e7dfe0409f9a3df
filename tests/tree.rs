//! Integration tests: `ckpt --tree`, a whole process tree as one job (see
//! tests/common for the harness). The program's descendants (a shell's
//! pipeline, its command substitution, its background job) are checkpointed
//! with it by one signal to it, into one job image whose member table
//! (pid, parent, process group, session, state) the tests compare with what
//! /proc said before the checkpoint.
//!
//! Synchronisation is the program's flushed output, the processes that
//! /proc lists, and "checkpoint written" lines.

mod common;

use ckpt_image::job::{Job, JobHeader, Link, Member, JOB_HEADER_SIZE, LINK_FILE, MEMBER_RUNNING, MEMBER_ZOMBIE};
use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

/// What /proc says of one process: (ppid, pgid, sid, comm).
type Proc = (u32, u32, u32, String);

fn stat_of(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (name, rest) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))?;
    let f: Vec<&str> = rest.split(' ').collect();
    Some((f[1].parse().ok()?, f[2].parse().ok()?, f[3].parse().ok()?, name.to_string()))
}

/// Every descendant of `root` (not `root` itself), by pid.
fn descendants(root: u32) -> BTreeMap<u32, Proc> {
    let all: BTreeMap<u32, Proc> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_of(pid)?)))
        .collect();
    let mut found = BTreeMap::new();
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for (&pid, s) in all.iter().filter(|(_, s)| s.0 == p) {
            found.insert(pid, s.clone());
            parents.push(pid);
        }
    }
    found
}

/// Waits until the descendants of `root` include a process named after
/// each of `comms`; returns them.
fn wait_tree(root: i32, comms: &[&str]) -> BTreeMap<u32, Proc> {
    let start = Instant::now();
    loop {
        let d = descendants(root as u32);
        if comms.iter().all(|c| d.values().any(|p| p.3 == *c)) {
            return d;
        }
        assert!(start.elapsed() < TIMEOUT, "the tree of {root} never had {comms:?}: {d:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The member table of a job image.
fn members(image: &Path) -> Vec<(Member, String)> {
    with_job(image, |job| {
        (0..job.len())
            .map(|i| {
                let m = job.member(i);
                let cmd = String::from_utf8_lossy(job.command(&m)).replace('\0', " ").trim_end().to_string();
                (m, cmd)
            })
            .collect()
    })
}

fn with_job<T>(image: &Path, f: impl FnOnce(&Job) -> T) -> T {
    let bytes = fs::read(image).unwrap();
    let h = JobHeader::parse(&bytes, bytes.len() as u64).unwrap_or_else(|e| panic!("not a job image: {e:?}"));
    let table = &bytes[JOB_HEADER_SIZE..JOB_HEADER_SIZE + h.table_len() as usize];
    f(&Job::parse(h, table).unwrap())
}

/// The links of a job image, with the bytes each holds.
fn links(image: &Path) -> Vec<(Link, Vec<u8>)> {
    with_job(image, |job| {
        (0..job.header.n_links as usize)
            .map(|i| {
                let l = job.link(i);
                (l, job.string(l.data).to_vec())
            })
            .collect()
    })
}

fn is_written(l: &str) -> bool {
    l.starts_with("ckpt: checkpoint written to ")
}

fn alive(pid: u32) -> bool {
    stat_of(pid).is_some_and(|_| {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'))
    })
}

/// A shell with a pipeline, a command substitution and a background job in
/// flight, checkpointed (stop mode): one job image holds every process,
/// each with its parent, group and session as /proc gave them; every one
/// of them stops; readckpt verifies them all; restart brings back the shell
/// and names the processes it does not restart.
fn whole_tree_stops(tools: &Tools, work: &TempDir) {
    let image = work.join("tree.dat");
    let script = "echo start; sleep 60 & x=$(sleep 61; echo sub) | cat; wait";
    let mut run = spawn(
        "ckpt --tree sh",
        &mut tools.ckpt_with(&["--tree"], Some(&image), Path::new("/bin/bash"), &["-c", script], &work.path),
    );
    run.wait_line(Stream::Stdout, |l| l == "start\n", "start");
    let before = wait_tree(run.pid, &["sleep", "cat"]);
    // Both sleeps (the background job's and the substitution's) are there.
    let wanted = |d: &BTreeMap<u32, Proc>| d.values().filter(|p| p.3 == "sleep").count() == 2;
    let start = Instant::now();
    let before = if wanted(&before) {
        before
    } else {
        loop {
            let d = descendants(run.pid as u32);
            if wanted(&d) {
                break d;
            }
            assert!(start.elapsed() < TIMEOUT, "the second sleep never started: {d:?}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let root = run.pid as u32;
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let o = run.finish();
    o.expect_code(CHECKPOINTED);
    let n = before.len() + 1;
    assert!(
        o.stderr_text().contains(&format!(", {n} processes)")),
        "the line should count {n} processes\n{}",
        o.describe()
    );
    let start = Instant::now();
    while let Some(pid) = before.keys().find(|&&p| alive(p)) {
        assert!(start.elapsed() < TIMEOUT, "process {pid} of the job did not stop: {before:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let table = members(&image);
    assert_eq!(table.len(), n, "members {table:?}, /proc said {before:?}");
    assert_eq!(table[0].0.pid, root, "the root comes first: {table:?}");
    assert_eq!(table[0].1, format!("/bin/bash -c {script}"));
    for (m, cmd) in &table[1..] {
        let p = before.get(&m.pid).unwrap_or_else(|| panic!("member {m:?} ({cmd}) was not a descendant: {before:?}"));
        assert_eq!((m.ppid, m.pgid, m.sid), (p.0, p.1, p.2), "member {cmd}: {m:?} against /proc {p:?}");
        assert_eq!(m.state, MEMBER_RUNNING, "{cmd}");
        // Parents before children.
        let parent = table.iter().position(|(x, _)| x.pid == m.ppid).expect("its parent is a member");
        let me = table.iter().position(|(x, _)| x.pid == m.pid).unwrap();
        assert!(parent < me, "parent after child: {table:?}");
    }
    let v = tools.cmd(&tools.bin("readckpt"), &["--verify", image.to_str().unwrap()], &work.path).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "readckpt --verify: {}\n{text}", String::from_utf8_lossy(&v.stderr));
    assert!(text.starts_with(&format!("job:          {n} processes")), "{text}");
    assert_eq!(text.matches("verify: OK").count(), n, "{text}");
    // Restart brings the whole tree back, each process at its pid in
    // restart's pid namespace (where there is one; else the shell alone,
    // naming the others).
    let r = spawn("restart of the job", &mut tools.restart(Some(&image), &work.path));
    if !job_namespaces(tools, work) {
        let o = r.finish();
        for (m, _) in &table[1..] {
            let needle = format!("restart: warning: process {} (", m.pid);
            assert!(o.stderr_text().contains(&needle), "no line names {}\n{}", m.pid, o.describe());
        }
        return;
    }
    // The restarted processes as this (the host's) /proc sees them, once
    // each is back (its name again: no longer a loader).
    let comms: Vec<&str> = before.values().map(|p| p.3.as_str()).chain(["bash"]).collect();
    let start = Instant::now();
    let back = loop {
        let d = descendants(r.pid as u32);
        let back: Vec<u32> = d.iter().filter(|(_, p)| p.3 != "restart").map(|(&pid, _)| pid).collect();
        let mut names: Vec<&str> = d.values().filter(|p| p.3 != "restart").map(|p| p.3.as_str()).collect();
        let mut want = comms.clone();
        names.sort();
        want.sort();
        if names == want {
            break back;
        }
        assert!(start.elapsed() < TIMEOUT, "the restarted tree has {d:?}, not {comms:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut pids: Vec<u32> = back.iter().map(|&p| ns_pid(p)).collect();
    let mut want: Vec<u32> = table.iter().map(|(m, _)| m.pid).collect();
    pids.sort();
    want.sort();
    assert_eq!(pids, want, "the same pids in restart's namespace");
    r.signal(libc::SIGKILL);
    let _ = r.finish();
}

/// The pid of host process `pid` in its own (innermost) pid namespace.
fn ns_pid(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("NSpid:")).unwrap_or("NSpid:\t0");
    line.split_whitespace().last().and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// A test run by the caller (`$name`) and its twin run as `nobody`
/// (`$twin`), each in a directory named after `$dir`: both call `$body`
/// with their tools and directory (two tests, so that a failure names who
/// ran it).
macro_rules! as_caller_and_nobody {
    ($name:ident, $twin:ident, $dir:literal, $body:expr) => {
        #[test]
        fn $name() {
            let body: fn(&Tools, &TempDir) = $body;
            body(&Tools::new(), &TempDir::new($dir));
        }

        #[test]
        fn $twin() {
            let body: fn(&Tools, &TempDir) = $body;
            let (_bins, tools, work) = unprivileged(concat!("nobody-", $dir), &[]);
            body(&tools, &work);
        }
    };
}

as_caller_and_nobody!(
    whole_tree_stops_at_one_signal,
    unprivileged_whole_tree_stops_at_one_signal,
    "tree-stop",
    whole_tree_stops
);

/// A descriptor every member inherited from outside the job (a pipe to
/// the test, at 200) is named once at the checkpoint, by the topmost member
/// that holds it, not once per process (it was 3 lines for 3 processes).
#[test]
fn an_outside_pipe_the_members_share_is_named_once() {
    let work = TempDir::new("tree-outside-pipe");
    let mut ends = [0i32; 2];
    // SAFETY: pipe writes two descriptors into `ends`, a live local.
    assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
    let image = work.join("tree.dat");
    // The shell opens the test's pipe through /proc (the test's commands
    // inherit no descriptor above 2).
    let script =
        format!("exec 200>/proc/{}/fd/{}; echo start; sleep 60 & sleep 61 & wait", std::process::id(), ends[1]);
    let mut run = spawn(
        "ckpt bash with a pipe at 200",
        &mut Tools::new().ckpt_with(&[], Some(&image), Path::new("/bin/bash"), &["-c", &script], &work.path),
    );
    run.wait_line(Stream::Stdout, |l| l == "start\n", "start");
    let start = Instant::now();
    while descendants(run.pid as u32).values().filter(|p| p.3 == "sleep").count() < 2 {
        assert!(start.elapsed() < TIMEOUT, "the sleeps never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let o = run.finish();
    for fd in ends {
        // SAFETY: the test's own ends of its pipe, no longer needed.
        unsafe { libc::close(fd) };
    }
    o.expect_code(CHECKPOINTED);
    let named: Vec<String> =
        o.text_lines(Stream::Stderr).into_iter().filter(|l| l.starts_with("ckpt: warning: fd 200 ")).collect();
    assert_eq!(named.len(), 1, "one line for the shared pipe at 200\n{}", o.describe());
    assert!(o.stderr_text().contains("3 processes"), "the job is bash and its two sleeps\n{}", o.describe());
}

/// With --continue every process of the job goes on: a shell loop whose
/// external command is in flight at the checkpoint, then a command
/// substitution, give the same output and exit status as an uninterrupted
/// run; the image holds the shell and its children of the moment.
fn tree_continues(tools: &Tools, work: &TempDir) {
    let script = "for i in 1 2 3; do sh -c \"sleep 0.2; exit $i\"; echo status $?; done; \
                  x=$(sh -c 'sleep 0.2; echo inner'); echo got $x; exit 5";
    let plain = tools.cmd(Path::new("/bin/bash"), &["-c", script], &work.path).output().unwrap();
    assert_eq!(plain.status.code(), Some(5));
    let image = work.join("cont.dat");
    let mut run = spawn(
        "ckpt --tree --continue bash",
        &mut tools.ckpt_with(
            &["--tree", "--continue"],
            Some(&image),
            Path::new("/bin/bash"),
            &["-c", script],
            &work.path,
        ),
    );
    run.wait_line(Stream::Stdout, |l| l == "status 1\n", "status 1");
    wait_tree(run.pid, &["sleep"]);
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let o = run.finish();
    o.expect_code(5);
    assert_same("the shell under ckpt --tree --continue", &o.stdout(), &plain.stdout);
    let table = members(&image);
    assert!(table.len() >= 2, "the children in flight are members: {table:?}");
    assert!(table.iter().any(|(_, c)| c.starts_with("sh -c sleep 0.2; exit")), "{table:?}");
}

as_caller_and_nobody!(
    tree_continues_after_a_checkpoint,
    unprivileged_tree_continues_after_a_checkpoint,
    "tree-continue",
    tree_continues
);

const ZOMBIE_SCRIPT: &str = r#"
import os, sys
pid = os.fork()
if pid == 0:
    os._exit(7)
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
print("zombie", pid, flush=True)
sys.stdin.readline()
_, st = os.waitpid(pid, 0)
print("reaped", os.WEXITSTATUS(st), flush=True)
"#;

/// Runs the python3 `script` under `ckpt --tree --continue` (image at
/// `image`), its stdin a pipe for the script to wait on.
fn python_tree_continue(tools: &Tools, work: &TempDir, script: &str, image: &Path, what: &str) -> Run {
    let path = work.join("script.py");
    fs::write(&path, script).unwrap();
    let mut cmd = tools.ckpt_with(
        &["--tree", "--continue"],
        Some(image),
        Path::new("/usr/bin/python3"),
        &[path.to_str().unwrap()],
        &work.path,
    );
    cmd.stdin(std::process::Stdio::piped());
    spawn(what, &mut cmd)
}

/// A child that has exited and is not yet waited for is in the job as a
/// zombie with its wait status; with --continue its parent then reaps it
/// as if nothing had happened.
#[test]
fn zombie_is_recorded_with_its_status() {
    let work = TempDir::new("tree-zombie");
    let image = work.join("z.dat");
    let tools = Tools::new();
    let mut run = python_tree_continue(&tools, &work, ZOMBIE_SCRIPT, &image, "python with a zombie");
    let l = run.wait_line(Stream::Stdout, |l| l.starts_with("zombie "), "zombie").text();
    let zombie: u32 = l.trim().strip_prefix("zombie ").unwrap().parse().unwrap();
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    run.write_stdin(b"\n");
    let o = run.finish();
    o.expect_code(0);
    assert!(o.stdout_text().ends_with("reaped 7\n"), "{}", o.describe());
    let table = members(&image);
    assert_eq!(table.len(), 2, "{table:?}");
    let (m, _) = &table[1];
    assert_eq!((m.pid, m.ppid, m.state, m.wait_status), (zombie, run_pid(&table), MEMBER_ZOMBIE, 7 << 8), "{m:?}");
    assert_eq!((m.offset, m.len), (0, 0), "a zombie has no process image");
}

fn run_pid(table: &[(Member, String)]) -> u32 {
    table[0].0.pid
}

/// A descendant that cannot be in the job (a static executable never takes
/// the checkpoint signal) fails the checkpoint, named in one line; the
/// previous image stays, and the program goes on.
#[test]
fn static_descendant_is_named_and_refused() {
    let work = TempDir::new("tree-static");
    let prog = build_static(&work, "static-wait", STATIC_WAIT);
    let image = work.join("s.dat");
    fs::write(&image, b"the previous image").unwrap();
    let script = format!("{}; echo status $?", prog.to_str().unwrap());
    let tools = Tools::new();
    let mut cmd = tools.ckpt_with(&["--tree"], Some(&image), Path::new("/bin/bash"), &["-c", &script], &work.path);
    cmd.stdin(std::process::Stdio::piped());
    let mut run = spawn("bash running a static program", &mut cmd);
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    let d = wait_tree(run.pid, &["static-wait"]);
    let pid = d.iter().find(|(_, p)| p.3 == "static-wait").map(|(&p, _)| p).unwrap();
    run.checkpoint();
    let l = run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: "), "ckpt's line").text();
    assert_eq!(
        l,
        format!(
            "ckpt: checkpoint failed: process {pid} ({}) never took the checkpoint signal (a static executable, or a \
             program run without the capture library: it cannot be in the job); the program continues, any previous \
             image is unchanged\n",
            prog.to_str().unwrap()
        )
    );
    run.write_stdin(b"\n");
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "ready\nstatus 4\n");
    assert_eq!(read(&image), b"the previous image");
}

/// A job of one process is written as a plain process image, which restart
/// takes as before.
#[test]
fn job_of_one_is_a_plain_image() {
    let work = TempDir::new("tree-one");
    let image = work.join("one.dat");
    let tools = Tools::new();
    let prog = "import sys; print('ready', flush=True); sys.stdin.readline(); print('done')";
    let mut cmd = tools.ckpt_with(&["--tree"], Some(&image), Path::new("/usr/bin/python3"), &["-c", prog], &work.path);
    cmd.stdin(std::process::Stdio::piped());
    let mut run = spawn("ckpt --tree python3", &mut cmd);
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);
    assert_eq!(&read(&image)[..8], &ckpt_image::MAGIC, "a plain process image");
    let r = spawn("restart", &mut tools.restart(Some(&image), &work.path)).finish();
    r.expect_code(0);
    assert_eq!(r.stdout_text(), "done\n", "{}", r.describe());
}

/// What ties the processes together is recorded: a pipe between two
/// members with the bytes waiting in it (read, not consumed: with
/// --continue the reader still gets them), and the stdout every process
/// inherited, one open file description for all.
#[test]
fn pipes_and_shared_descriptions_are_recorded() {
    let work = TempDir::new("tree-links");
    let image = work.join("links.dat");
    let script = "echo start; sh -c \"printf 'waiting bytes\\n'; touch written\" \
                  | { while [ ! -e go ]; do sleep 0.05; done; cat; }; echo end";
    let tools = Tools::new();
    let mut run = spawn(
        "ckpt --tree --continue bash",
        &mut tools.ckpt_with(
            &["--tree", "--continue"],
            Some(&image),
            Path::new("/bin/bash"),
            &["-c", script],
            &work.path,
        ),
    );
    run.wait_line(Stream::Stdout, |l| l == "start\n", "start");
    let start = Instant::now();
    while !work.join("written").exists() {
        assert!(start.elapsed() < TIMEOUT, "the writer never wrote");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    wait_tree(run.pid, &["sleep"]); // the reader's loop: it is there
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    fs::write(work.join("go"), b"").unwrap();
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "start\nwaiting bytes\nend\n", "the bytes were not consumed\n{}", o.describe());
    let table = members(&image);
    let links = links(&image);
    let pid_of = |l: &Link| table[l.member as usize].0.pid;
    // The pipe: its read end is the subshell's stdin, the bytes are there.
    let pipe: Vec<_> = links.iter().filter(|(l, d)| l.channel != 0 && d == b"waiting bytes\n").collect();
    assert_eq!(pipe.len(), 1, "one read end holds the bytes: {links:?}\n{table:?}");
    // (The shell itself may still hold the read end it is handing to the
    // reader: then it is one description with the reader's stdin.)
    let d = pipe[0].0.description;
    let reader = links.iter().map(|(l, _)| l).find(|l| l.description == d && l.fd == 0 && l.member != 0);
    let reader = reader.unwrap_or_else(|| panic!("the reader's stdin is the pipe's read end: {links:?}"));
    // The stdout the root and the reader inherited: one description.
    let out = links.iter().map(|(l, _)| l).find(|l| l.member == 0 && l.fd == 1).expect("the root's stdout is shared");
    let outs: Vec<&Link> = links.iter().map(|(l, _)| l).filter(|l| l.channel == out.channel && l.fd == 1).collect();
    let reader = pid_of(reader);
    assert!(outs.iter().any(|l| pid_of(l) == reader), "the reader holds the root's stdout: {links:?}");
    assert!(outs.iter().all(|l| l.description == outs[0].description), "one description: {outs:?}");
}

const SOCKETPAIR_SCRIPT: &str = r#"
import os, socket, sys
a, b = socket.socketpair()
pid = os.fork()
if pid == 0:
    a.close()
    b.send(b"from the child")
    sys.stdin.readline()
    print("child got", b.recv(100).decode(), flush=True)
    os._exit(0)
b.close()
a.send(b"from the parent")
a.recv(100, socket.MSG_PEEK)  # the child's message is there
print("ready", flush=True)
sys.stdin.readline()
os.waitpid(pid, 0)
print("parent got", a.recv(100).decode(), flush=True)
"#;

/// A socketpair made before a fork ties the parent and the child: its two
/// ends are links of one pair, each with the message waiting on it (peeked,
/// not consumed: with --continue each process still reads its own).
#[test]
fn socketpair_between_processes_is_recorded() {
    let work = TempDir::new("tree-socketpair");
    let image = work.join("sp.dat");
    let tools = Tools::new();
    let mut run = python_tree_continue(&tools, &work, SOCKETPAIR_SCRIPT, &image, "python with a socketpair");
    run.wait_line(Stream::Stdout, |l| l == "ready\n", "ready");
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    run.write_stdin(b"\n\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "ready\nchild got from the parent\nparent got from the child\n", "{}", o.describe());
    let links = links(&image);
    let socks: Vec<_> = links.iter().filter(|(l, _)| l.kind == ckpt_image::job::LINK_SOCKET).collect();
    assert_eq!(socks.len(), 2, "{links:?}");
    assert_ne!(socks[0].0.member, socks[1].0.member, "{socks:?}");
    assert!(socks[0].0.channel != 0 && socks[0].0.channel == socks[1].0.channel, "one pair: {socks:?}");
    let holds = |member: u32, text: &[u8]| {
        socks.iter().any(|(l, d)| l.member == member && d.windows(text.len()).any(|w| w == text))
    };
    assert!(holds(0, b"from the child"), "the parent's end holds the child's message: {socks:?}");
    assert!(holds(1, b"from the parent"), "the child's end holds the parent's message: {socks:?}");
}

const SHARED_SCRIPT: &str = r#"
import mmap, os, sys
m = mmap.mmap(-1, 8192)  # MAP_SHARED | MAP_ANONYMOUS
pid = os.fork()
if pid == 0:
    m[:5] = b"child"
    sys.stdin.readline()
    os._exit(0)
while m[:5] != b"child":
    os.sched_yield()
print("ready", hex(m.__len__()), flush=True)
sys.stdin.readline()
os.waitpid(pid, 0)
print("seen", m[:5].decode(), flush=True)
"#;

/// MAP_SHARED anonymous memory mapped before a fork is one object that both
/// processes map, at the same place.
#[test]
fn shared_memory_between_processes_is_recorded() {
    let work = TempDir::new("tree-shm");
    let image = work.join("shm.dat");
    let tools = Tools::new();
    let mut run = python_tree_continue(&tools, &work, SHARED_SCRIPT, &image, "python with shared memory");
    run.wait_line(Stream::Stdout, |l| l.starts_with("ready"), "ready");
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    run.write_stdin(b"\n\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    assert!(o.stdout_text().ends_with("seen child\n"), "{}", o.describe());
    let maps = with_job(&image, |job| (0..job.header.n_shared as usize).map(|i| job.shared(i)).collect::<Vec<_>>());
    let of_size: Vec<_> = maps.iter().filter(|m| m.end - m.start == 8192).collect();
    assert_eq!(of_size.len(), 2, "the 8 KiB mapping, in both processes: {maps:?}");
    assert_eq!(of_size[0].object, of_size[1].object, "{maps:?}");
    assert_eq!((of_size[0].member, of_size[1].member), (0, 1), "{maps:?}");
    assert_eq!(of_size[0].start, of_size[1].start, "inherited at the same place: {maps:?}");
}

// ---------------------------------------------------------------------------
// Restart of a whole job (exact pids in restart's namespaces).

/// Runs python3 `script` (written to NAME.py, with `args` after it) under
/// `ckpt --tree`, stdin piped, and checkpoints it (stop mode) once a line
/// for which `ready` holds is out; returns that line and the image.
fn checkpointed_python(
    tools: &Tools,
    work: &TempDir,
    name: &str,
    script: &str,
    args: &[&str],
    ready: impl Fn(&str) -> bool,
) -> (String, std::path::PathBuf) {
    let path = work.join(&format!("{name}.py"));
    fs::write(&path, script).unwrap();
    let image = work.join(&format!("{name}.dat"));
    let mut all = vec![path.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut cmd = tools.ckpt_with(&["--tree"], Some(&image), Path::new("/usr/bin/python3"), &all, &work.path);
    cmd.stdin(std::process::Stdio::piped());
    let mut run = spawn(&format!("python {name}"), &mut cmd);
    let line = run.wait_line(Stream::Stdout, ready, "its ready line").text();
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    run.finish().expect_code(CHECKPOINTED);
    (line, image)
}

/// `restart IMAGE` with stdin piped (the run, not finished).
fn restart_piped(tools: &Tools, work: &TempDir, image: &Path) -> Run {
    let mut cmd = tools.restart(Some(image), &work.path);
    cmd.stdin(std::process::Stdio::piped());
    spawn("restart", &mut cmd)
}

/// Whether this machine lets restart make its namespaces (else restart
/// falls back to new pids and only the root comes back: the tests below
/// say so in a skip line, and skip). Probed as the user the tools run as.
fn job_namespaces(tools: &Tools, work: &TempDir) -> bool {
    let (program, args) = UNSHARE_PROBE;
    namespaces_available(tools.cmd(Path::new(program), &args, &work.path), "restart of a whole job")
}

/// The tools and a directory for a test of a job's restart, or None (after
/// a skip line) where restart cannot make the job's namespaces here.
fn job_test(dir: &str) -> Option<(Tools, TempDir)> {
    let (tools, work) = (Tools::new(), TempDir::new(dir));
    job_namespaces(&tools, &work).then_some((tools, work))
}

/// [`job_round_trip`] of a bash `script` that prints "start" and runs
/// `sleep` in the tree, where restart can make the job's namespaces.
fn bash_job(tools: &Tools, work: &TempDir, script: &str, generations: usize) {
    if job_namespaces(tools, work) {
        job_round_trip(tools, work, script, "start\n", "sleep", generations);
    }
}

/// Runs `script` with bash uninterrupted, then under `ckpt --tree`,
/// checkpointed once `ready` is seen and `comm` runs in the tree; restarts
/// the image `generations` times (each restarted job checkpointed again
/// the same way but the last); the output of all runs together and the
/// last exit status must be the uninterrupted run's.
fn job_round_trip(tools: &Tools, work: &TempDir, script: &str, ready: &str, comm: &str, generations: usize) {
    let plain = tools.cmd(Path::new("/bin/bash"), &["-c", script], &work.path).output().unwrap();
    let image = work.join("job.dat");
    let mut run = spawn(
        "ckpt --tree bash",
        &mut tools.ckpt_with(&["--tree"], Some(&image), Path::new("/bin/bash"), &["-c", script], &work.path),
    );
    run.wait_line(Stream::Stdout, |l| l == ready, ready);
    wait_tree(run.pid, &[comm]);
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    // (Kept for inspection: the next generation writes over the image.)
    fs::copy(&image, work.join("first-job.dat")).unwrap();
    let mut out = first.stdout();
    for g in 1..=generations {
        let mut run = spawn(&format!("restart, generation {g}"), &mut tools.restart(Some(&image), &work.path));
        if g < generations {
            wait_tree(run.pid, &[comm]);
            run.checkpoint();
            run.wait_line(Stream::Stderr, is_written, "checkpoint written");
            let o = run.finish();
            o.expect_code(CHECKPOINTED);
            out.extend(o.stdout());
        } else {
            let o = run.finish();
            out.extend(o.stdout());
            assert_eq!(o.status.code(), plain.status.code(), "exit status after restart\n{}", o.describe());
        }
    }
    assert_same("the job across its restarts", &out, &plain.stdout);
}

const LOOP_SCRIPT: &str = "echo start; for i in 1 2 3; do sh -c 'sleep 0.3; exit 3'; echo \"status $?\"; done; \
                           x=$(sh -c 'sleep 0.3; echo inner'); echo \"got $x\"; exit 7";

// A shell loop whose external command is in flight at the checkpoint:
// after restart the shell gets that command's status (3), not 0.
as_caller_and_nobody!(
    loop_command_in_flight_keeps_its_status,
    unprivileged_loop_command_in_flight_keeps_its_status,
    "tree-loop",
    |tools, work| bash_job(tools, work, LOOP_SCRIPT, 1)
);

const SUBST_SCRIPT: &str = "echo start; x=$(sh -c 'sleep 0.5; echo inner; sleep 0.5; echo more'); echo \"got $x\"";

/// A command substitution in flight at the checkpoint (twice: the restarted
/// job is checkpointed again) yields its real output.
#[test]
fn substitution_in_flight_yields_its_output() {
    let work = TempDir::new("tree-subst");
    let tools = Tools::new();
    if job_namespaces(&tools, &work) {
        job_round_trip(&tools, &work, SUBST_SCRIPT, "start\n", "sleep", 2);
    }
}

const PIPELINE_SCRIPT: &str = r#"
producer() { for i in $(seq 1 12); do echo "line $i"; sleep 0.05; done; }
filter() { while read -r l; do echo "[$l]"; done; }
consumer() { n=0; while read -r l; do n=$((n+1)); echo "$l"; done; echo "consumed $n"; }
echo start
sleep 0.4 & bg=$!
producer | filter | consumer
s=$(echo sub; sleep 0.2; echo stitution)
echo $s
wait $bg; echo "background $?"
exit 4
"#;

// A pipeline (producer | filter | consumer), a command substitution and a
// background job: the same output and exit status as an uninterrupted
// run, across two restarts.
as_caller_and_nobody!(
    pipeline_substitution_and_background_job,
    unprivileged_pipeline_substitution_and_background_job,
    "tree-pipeline",
    |tools, work| bash_job(tools, work, PIPELINE_SCRIPT, 2)
);

/// A zombie at the checkpoint (stop mode) is a zombie after restart: its
/// parent reaps it and gets its status.
#[test]
fn zombie_reaped_after_restart_gets_its_status() {
    let Some((tools, work)) = job_test("tree-zombie-restart") else { return };
    let (_, image) = checkpointed_python(&tools, &work, "z", ZOMBIE_SCRIPT, &[], |l| l.starts_with("zombie "));
    let mut r = restart_piped(&tools, &work, &image);
    r.write_stdin(b"\n");
    let o = r.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "reaped 7\n", "{}", o.describe());
}

const GROUP_SCRIPT: &str = r#"
import os, signal, sys, time
os.setpgid(0, 0)
def say(text):
    os.write(1, (text + "\n").encode())
r, w = os.pipe()
def child(n):
    signal.signal(signal.SIGTERM, lambda *a: (say(f"child {n} got TERM"), os._exit(n)))
    os.write(w, b"x")
    while True:
        signal.pause()
pids = []
for n in (1, 2):
    pid = os.fork()
    if pid == 0:
        child(n)
    pids.append(pid)
signal.signal(signal.SIGTERM, lambda *a: say("parent got TERM"))
os.read(r, 1), os.read(r, 1)
say("ready")
st = sorted(os.WEXITSTATUS(os.waitpid(p, 0)[1]) for p in pids)
say(f"children ended {st}")
"#;

/// After restart the job's processes are one process group again: a
/// signal to the group reaches them all.
#[test]
fn process_group_signal_after_restart_reaches_all() {
    let Some((tools, work)) = job_test("tree-pgid") else { return };
    let (_, image) = checkpointed_python(&tools, &work, "g", GROUP_SCRIPT, &[], |l| l == "ready\n");
    let table = members(&image);
    assert_eq!(table.len(), 3, "{table:?}");
    assert!(table.iter().all(|(m, _)| m.pgid == table[0].0.pid), "one group, led by the root: {table:?}");
    let r = spawn("restart", &mut tools.restart(Some(&image), &work.path));
    // The restarted processes, as this (the host's) /proc sees them, once
    // each is back (its name again: its handlers are in place).
    let start = Instant::now();
    let group = loop {
        let d = descendants(r.pid as u32);
        let back: Vec<&Proc> = d.values().filter(|p| p.3 == "python3").collect();
        if back.len() == 3 && back.iter().all(|p| p.1 == back[0].1) {
            break back[0].1;
        }
        assert!(start.elapsed() < TIMEOUT, "the restarted job never was one group: {d:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SAFETY: kill(2) of the process group of processes this test started.
    assert_eq!(unsafe { libc::kill(-(group as i32), libc::SIGTERM) }, 0);
    let o = r.finish();
    o.expect_code(0);
    let mut lines = o.text_lines(Stream::Stdout);
    lines.sort();
    assert_eq!(
        lines,
        ["child 1 got TERM\n", "child 2 got TERM\n", "children ended [1, 2]\n", "parent got TERM\n"],
        "{}",
        o.describe()
    );
}

const COUNTER_SCRIPT: &str = r#"
import mmap, os, struct, sys
m = mmap.mmap(-1, 4096)  # MAP_SHARED | MAP_ANONYMOUS: one counter for both
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)  # the parent's go, after the restart
    struct.pack_into("q", m, 0, struct.unpack_from("q", m, 0)[0] + 1000)
    os._exit(0)
struct.pack_into("q", m, 0, 7)
print("ready", flush=True)
sys.stdin.readline()
os.write(w, b"g")
os.waitpid(pid, 0)
print("counter", struct.unpack_from("q", m, 0)[0], flush=True)
"#;

/// Memory mapped shared by two processes comes back shared: the child
/// writes after the restart, the parent reads what it wrote.
#[test]
fn shared_memory_comes_back_shared() {
    let Some((tools, work)) = job_test("tree-shm-restart") else { return };
    let (_, image) = checkpointed_python(&tools, &work, "c", COUNTER_SCRIPT, &[], |l| l == "ready\n");
    let mut r = restart_piped(&tools, &work, &image);
    r.write_stdin(b"\n");
    let o = r.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "counter 1007\n", "{}", o.describe());
}

const POOL_SCRIPT: &str = r#"
import multiprocessing as mp, time

def init(t, l):
    global T, L
    T, L = t, l

def job(i):
    time.sleep(0.03)
    with L:
        T.value += i
    return i * i

if __name__ == "__main__":
    total, lock, q = mp.Value("q", 0), mp.Lock(), mp.Queue()
    print("start", flush=True)
    with mp.get_context("fork").Pool(2, initializer=init, initargs=(total, lock)) as pool:
        res = pool.map(job, range(40), chunksize=1)
    q.put(sum(res))
    print("squares", q.get(), "total", total.value, flush=True)
"#;

/// Python's multiprocessing: a Pool(2) sharing a Value and a Lock with its
/// parent, and a Queue: the same result after a checkpoint in the middle
/// of the pool's work and a restart (and as nobody).
fn python_pool(tools: &Tools, work: &TempDir) {
    if !job_namespaces(tools, work) {
        return;
    }
    let script = work.join("pool.py");
    fs::write(&script, POOL_SCRIPT).unwrap();
    chmod(&script, 0o644);
    let run = format!("exec /usr/bin/python3 {}", script.display());
    job_round_trip(tools, work, &run, "start\n", "python3", 1);
}

as_caller_and_nobody!(
    python_pool_with_shared_value_lock_and_queue,
    unprivileged_python_pool_with_shared_value_lock_and_queue,
    "tree-pool",
    python_pool
);

/// `make -j2` of a small C project whose compile steps are slow,
/// checkpointed mid-build and restarted: the build completes, with the
/// same artefacts as an uninterrupted build.
#[test]
fn make_j2_completes_after_restart() {
    let Some((tools, work)) = job_test("tree-make") else { return };
    let project = |dir: &Path| {
        fs::create_dir_all(dir).unwrap();
        for (name, body) in
            [("a", "int a(void) { return 1; }"), ("b", "int b(void) { return 2; }"), ("c", "int c(void) { return 3; }")]
        {
            fs::write(dir.join(format!("{name}.c")), format!("{body}\n")).unwrap();
        }
        fs::write(
            dir.join("main.c"),
            "#include <stdio.h>\nint a(void), b(void), c(void);\nint main(void) { printf(\"%d\\n\", a() * 100 + b() * 10 + c()); return 0; }\n",
        )
        .unwrap();
        fs::write(
            dir.join("Makefile"),
            "prog: a.o b.o c.o main.o\n\tgcc -o $@ $^\n%.o: %.c\n\tsleep 0.3 && gcc -O2 -c $< -o $@\n",
        )
        .unwrap();
    };
    let plain_dir = work.join("plain");
    project(&plain_dir);
    let plain = tools.cmd(Path::new("/usr/bin/make"), &["-s", "-j2"], &plain_dir).output().unwrap();
    assert!(plain.status.success(), "make: {}", String::from_utf8_lossy(&plain.stderr));
    let dir = work.join("job");
    project(&dir);
    let image = work.join("make.dat");
    let mut run = spawn(
        "ckpt --tree make -j2",
        &mut tools.ckpt_with(&["--tree"], Some(&image), Path::new("/usr/bin/make"), &["-s", "-j2"], &dir),
    );
    wait_tree(run.pid, &["sleep"]);
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    run.finish().expect_code(CHECKPOINTED);
    assert!(!dir.join("prog").exists(), "the build was finished before the checkpoint");
    let o = spawn("restart of make", &mut tools.restart(Some(&image), &dir)).finish();
    o.expect_code(0);
    for f in ["a.o", "b.o", "c.o", "main.o"] {
        assert_same(f, &read(&dir.join(f)), &read(&plain_dir.join(f)));
    }
    let out = Command::new(dir.join("prog")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "123\n");
}

const SERVER_SCRIPT: &str = r#"
import os, socket, sys
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(8)
ends = []
for n in (1, 2):
    a, b = socket.socketpair()
    if os.fork() == 0:
        a.close()
        for e in ends:
            e.close()
        c, _ = srv.accept()
        c.sendall(f"worker {n}: ".encode() + c.recv(100))
        c.close()
        job = b.recv(100)
        b.sendall(b"done " + job)
        os._exit(0)
    b.close()
    ends.append(a)
for n, a in enumerate(ends, 1):
    a.sendall(f"job {n}".encode())  # in flight: the workers read it later
print("ready", flush=True)
sys.stdin.readline()
for a in ends:
    print("reply:", a.recv(100).decode(), flush=True)
for _ in ends:
    os.wait()
"#;

/// A pre-forking server: a parent and two workers sharing a listening UNIX
/// socket, and a socketpair each with a request in flight at the
/// checkpoint: after restart the workers accept new clients on the same
/// path, and answer the requests that were waiting.
#[test]
fn preforking_server_serves_after_restart() {
    let Some((tools, work)) = job_test("tree-server") else { return };
    let sock = work.join("server.sock");
    let args = [sock.to_str().unwrap()];
    let (_, image) = checkpointed_python(&tools, &work, "server", SERVER_SCRIPT, &args, |l| l == "ready\n");
    let mut r = restart_piped(&tools, &work, &image);
    // Two clients, one per worker, on the same path as before.
    let mut answers = Vec::new();
    for k in 1..=2 {
        use std::io::{Read, Write};
        let start = Instant::now();
        let mut c = loop {
            match std::os::unix::net::UnixStream::connect(&sock) {
                Ok(c) => break c,
                Err(e) => assert!(start.elapsed() < TIMEOUT, "cannot connect to the restarted server: {e}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        c.write_all(format!("hello {k}").as_bytes()).unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("worker ") && answer.ends_with(&format!(": hello {k}")), "{answer:?}");
        answers.push(answer);
    }
    let mut workers: Vec<&str> = answers.iter().map(|a| &a[..8]).collect();
    workers.sort();
    assert_eq!(workers, ["worker 1", "worker 2"], "each worker served one: {answers:?}");
    r.write_stdin(b"\n");
    let o = r.finish();
    o.expect_code(0);
    assert_eq!(o.stdout_text(), "reply: done job 1\nreply: done job 2\n", "{}", o.describe());
}

const SHARED_FILE_SCRIPT: &str = r#"
import os, sys
mode, path = sys.argv[1], sys.argv[2]
def say(text):
    os.write(1, (text + "\n").encode())
def fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))
def write(who, r, f):
    os.write(f, f"{who} round {r}\n".encode())  # at the shared offset
    say(f"{who} round {r} at {os.lseek(f, 0, os.SEEK_CUR)}")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # not O_APPEND
kids = []
def child(name, go, done):
    f = fd
    if mode == "dup2":
        os.dup2(fd, 9)
        os.close(fd)
        f = 9
    before = fds()
    while True:
        msg = os.read(go, 16)
        if msg == b"end":
            say(f"{name} fds before {before} after {fds()}")
            os.write(done, b"k")
            os._exit(0)
        write(name, int(msg), f)
        os.write(done, b"k")
for name in ("first child", "second child") if mode == "siblings" else ("child",):
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.close(done_r)
        for _, w, r in kids:
            os.close(w)
            os.close(r)
        child(name, go_r, done_w)
    os.close(go_r)
    os.close(done_w)
    kids.append((pid, go_w, done_r))
if mode == "siblings":
    os.close(fd)  # only the children share it now
    writers = [0, 1]
else:
    writers = ["parent", 0]
before = fds()
for r in range(1, 13):
    for w in writers:
        if w == "parent":
            write("parent", r, fd)
        else:
            os.write(kids[w][1], str(r).encode())
            os.read(kids[w][2], 1)
    if r in (4, 8):
        say(f"ready {r}")
        sys.stdin.readline()
for pid, go, done in kids:
    os.write(go, b"end")
    os.read(done, 1)
    os.waitpid(pid, 0)
say(f"parent fds before {before} after {fds()}")
os.write(1, open(path, "rb").read())
"#;

/// Runs python3 `script` (written to NAME.py; `args(run)`: its arguments
/// after it, for run "plain" or "job") uninterrupted with "\n\n" on its
/// stdin, then under `ckpt --tree`, checkpointed (stop mode) at its line
/// `readies[0]`, restarted and checkpointed again at `readies[1]`,
/// restarted again to its end (a "\n" on its stdin after each restart).
/// The three runs' output together must be the uninterrupted run's, and
/// the last exit status its (0); returns that output and the last image.
fn python_job_generations(
    tools: &Tools,
    work: &TempDir,
    name: &str,
    script: &str,
    args: impl Fn(&str) -> Vec<String>,
    readies: [&str; 2],
) -> (Vec<u8>, std::path::PathBuf) {
    let path = work.join(&format!("{name}.py"));
    fs::write(&path, script).unwrap();
    chmod(&path, 0o644);
    let python = Path::new("/usr/bin/python3");
    let argv = |run: &str| [vec![path.display().to_string()], args(run)].concat();
    let plain = argv("plain");
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let plain = run_with_input("the uninterrupted run", &mut tools.cmd(python, &plain, &work.path), b"\n\n");
    plain.expect_code(0);
    let image = work.join(&format!("{name}.dat"));
    let job = argv("job");
    let job: Vec<&str> = job.iter().map(String::as_str).collect();
    let mut cmd = tools.ckpt_with(&["--tree"], Some(&image), python, &job, &work.path);
    cmd.stdin(std::process::Stdio::piped());
    let mut run = spawn(&format!("ckpt --tree python3 {name}"), &mut cmd);
    run.wait_line(Stream::Stdout, |l| l == readies[0], readies[0]);
    run.checkpoint();
    run.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    let mut out = first.stdout();
    let mut r = restart_piped(tools, work, &image);
    r.write_stdin(b"\n");
    r.wait_line(Stream::Stdout, |l| l == readies[1], readies[1]);
    r.checkpoint();
    r.wait_line(Stream::Stderr, is_written, "checkpoint written");
    let second = r.finish();
    second.expect_code(CHECKPOINTED);
    out.extend(second.stdout());
    let mut r = restart_piped(tools, work, &image);
    r.write_stdin(b"\n");
    let last = r.finish();
    last.expect_code(0);
    out.extend(last.stdout());
    assert_same(&format!("{name}: the job across its restarts"), &out, &plain.stdout());
    (out, image)
}

/// One open file description that several processes share after a fork
/// (one offset: `mode` "parent", a parent and its child; "siblings", two
/// children, the parent closed its copy; "dup2", the child holds it at
/// another number), written at the shared offset alternately, is one
/// description again after each restart (two generations: the restarted
/// job is checkpointed again): the file's bytes and the output (each
/// offset after each write; each process's descriptors, the same after
/// the restarts as before) are an uninterrupted run's.
fn shared_file_round_trip(tools: &Tools, work: &TempDir, mode: &str) {
    if !job_namespaces(tools, work) {
        return;
    }
    let log = |run: &str| work.join(&format!("{run}.log"));
    let args = |run: &str| vec![mode.to_string(), log(run).display().to_string()];
    let readies = ["ready 4\n", "ready 8\n"];
    let (out, image) = python_job_generations(tools, work, mode, SHARED_FILE_SCRIPT, args, readies);
    assert_same(&format!("{mode}: the shared file"), &read(&log("job")), &read(&log("plain")));
    // (Each process's descriptors are the same after as before.)
    let text = String::from_utf8_lossy(&out).into_owned();
    for l in text.lines().filter(|l| l.contains(" fds before ")) {
        let (before, after) = l.split_once(" fds before ").unwrap().1.split_once(" after ").unwrap();
        assert_eq!(before, after, "{mode}: a descriptor appeared or went: {l}");
    }
    // The image (the restarted job's) says so: one description, held by
    // two members (not the parent when only the children share it), at 9
    // in the child for dup2.
    let shared: Vec<Link> =
        links(&image).into_iter().map(|(l, _)| l).filter(|l| l.kind == LINK_FILE && l.fd > 2).collect();
    assert_eq!(shared.len(), 2, "{mode}: {shared:?}");
    assert_eq!(shared[0].description, shared[1].description, "{mode}: {shared:?}");
    assert_ne!(shared[0].member, shared[1].member, "{mode}: {shared:?}");
    assert_eq!(shared.iter().any(|l| l.member == 0), mode != "siblings", "{mode}: {shared:?}");
    assert_eq!(shared.iter().any(|l| l.fd == 9), mode == "dup2", "{mode}: {shared:?}");
}

as_caller_and_nobody!(
    file_shared_by_parent_and_child_is_one_description,
    unprivileged_file_shared_by_parent_and_child_is_one_description,
    "tree-shared-file",
    |tools, work| shared_file_round_trip(tools, work, "parent")
);

as_caller_and_nobody!(
    file_shared_by_siblings_is_one_description,
    unprivileged_file_shared_by_siblings_is_one_description,
    "tree-shared-siblings",
    |tools, work| shared_file_round_trip(tools, work, "siblings")
);

as_caller_and_nobody!(
    file_shared_under_another_number_is_one_description,
    unprivileged_file_shared_under_another_number_is_one_description,
    "tree-shared-dup2",
    |tools, work| shared_file_round_trip(tools, work, "dup2")
);

const EVENTFD_SCRIPT: &str = r#"
import os, select, sys
efd = os.eventfd(0)
ep = select.epoll()
ep.register(efd, select.EPOLLIN)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    for n in (5, 7):
        os.read(r, 1)  # the parent's go
        os.eventfd_write(efd, n)  # one counter: the parent's
    os._exit(0)
for k in (1, 2):
    print(f"ready {k}", flush=True)
    sys.stdin.readline()
    os.write(w, b"g")
    events = ep.poll(30)
    print("events", [(fd == efd, e) for fd, e in events], "counter", os.eventfd_read(efd), flush=True)
os.waitpid(pid, 0)
"#;

/// An eventfd that a parent watches with epoll and its child writes to
/// (one description: one counter) comes back as one: after each restart
/// the child's write wakes the parent's epoll, and the parent reads the
/// child's count (two generations).
fn shared_eventfd(tools: &Tools, work: &TempDir) {
    if !job_namespaces(tools, work) {
        return;
    }
    let (out, _) =
        python_job_generations(tools, work, "eventfd", EVENTFD_SCRIPT, |_| Vec::new(), ["ready 1\n", "ready 2\n"]);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with("events [(True, 1)] counter 7\n"), "{text}");
}

as_caller_and_nobody!(
    eventfd_shared_by_parent_and_child_is_one,
    unprivileged_eventfd_shared_by_parent_and_child_is_one,
    "tree-shared-eventfd",
    shared_eventfd
);

const BLOCK_SCRIPT: &str = "echo start; \
    sh -c '{ echo a; ( echo b; sleep 0.5; echo b2; sleep 0.5; echo b3 ); echo c; } > out.log'; cat out.log";

// A shell block redirected to a file, with a subshell in it: the shell and
// its subshell write through one description (one offset), in flight at
// each checkpoint (two generations): the file ends as an uninterrupted
// run's (the subshell's lines, then the shell's), not overwritten. (The
// block runs in a shell of its own: a shell's copy of its launcher's
// stdout, kept while the block's redirection lasts, is a pipe out of the
// job, /dev/null after a restart.)
as_caller_and_nobody!(
    shell_block_redirect_is_one_description,
    unprivileged_shell_block_redirect_is_one_description,
    "tree-block",
    |tools, work| bash_job(tools, work, BLOCK_SCRIPT, 2)
);
