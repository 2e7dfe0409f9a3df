//! Helpers for the integration tests: paths of the built programs, temporary
//! directories, children that are killed if a test fails, reading their
//! output line by line with timeouts, and waiting on a process's real
//! progress in /proc.
#![allow(dead_code)]

pub mod json_shape;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Generous bound for every wait: a wait that takes longer fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root, where `make` puts the executables.
pub fn root() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    p.canonicalize().unwrap_or(p)
}

fn built(p: PathBuf) -> PathBuf {
    assert!(p.exists(), "{} does not exist: run `make` (or `make test`) in {} first", p.display(), root().display());
    p
}

/// One of `ckpt`, `restart`, `readckpt`, `libckpt.so`, `hello-test`, `counting-test`.
pub fn exe(name: &str) -> PathBuf {
    built(root().join(name))
}

/// A demo program built from `demo/NAME.c` into `demo/bin/NAME`.
pub fn demo(name: &str) -> PathBuf {
    built(root().join("demo/bin").join(name))
}

/// A fresh directory under the system's temporary directory, removed when
/// dropped unless the test is failing (then it is kept and its path printed).
pub struct TempDir {
    pub path: PathBuf,
}

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir().join(format!(
            "ckpt-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            DIR_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    pub fn chmod(&self, mode: u32) {
        chmod(&self.path, mode);
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test failed: keeping {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, p.display()));
}

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line (with its newline, unless it was the last bytes before EOF) and
/// the wall-clock time the test read it.
#[derive(Clone, Debug)]
pub struct Line {
    pub stream: Stream,
    pub bytes: Vec<u8>,
    pub at: SystemTime,
}

impl Line {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

enum Event {
    Line(Line),
    Eof(Stream),
}

/// What a finished child left: exit status and everything read from its pipes.
pub struct Outcome {
    pub what: String,
    pub status: ExitStatus,
    pub lines: Vec<Line>,
}

impl Outcome {
    pub fn bytes(&self, s: Stream) -> Vec<u8> {
        self.lines.iter().filter(|l| l.stream == s).flat_map(|l| l.bytes.iter().copied()).collect()
    }
    pub fn stdout(&self) -> Vec<u8> {
        self.bytes(Stream::Stdout)
    }
    pub fn stderr(&self) -> Vec<u8> {
        self.bytes(Stream::Stderr)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout()).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr()).into_owned()
    }
    /// The lines of one stream, as text.
    pub fn text_lines(&self, s: Stream) -> Vec<String> {
        self.lines.iter().filter(|l| l.stream == s).map(|l| l.text()).collect()
    }

    /// Everything about this run, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{}: {}\n--- stdout ---\n{}--- stderr ---\n{}--------------",
            self.what,
            describe_status(&self.status),
            self.stdout_text(),
            self.stderr_text()
        )
    }

    /// Asserts the child exited normally with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert!(
            self.status.code() == Some(code),
            "expected exit status {code}, got {}\n{}",
            describe_status(&self.status),
            self.describe()
        );
        self
    }
}

pub fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig} ({}){}",
            signal_name(sig),
            if s.core_dumped() { ", core dumped" } else { "" }
        ),
        _ => format!("{s:?}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => "?",
    }
}

/// A running child. Its piped stdout and stderr are read by threads, line
/// by line; it is killed (SIGKILL) and reaped if dropped before it finished,
/// so a failing test leaves nothing behind.
pub struct Run {
    pub what: String,
    pub pid: i32,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Event>,
    open_pipes: usize,
    pub lines: Vec<Line>,
    status: Option<ExitStatus>,
}

/// Spawns `cmd`. Set its stdio before: whatever is `Stdio::piped()` for
/// stdout/stderr is read by the test; a piped stdin is kept for [`Run::write_stdin`].
pub fn spawn(what: &str, cmd: &mut Command) -> Run {
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let (tx, rx) = channel();
    let mut open_pipes = 0;
    fn reader<R: Read + Send + 'static>(r: R, s: Stream, tx: std::sync::mpsc::Sender<Event>) {
        thread::spawn(move || {
            let mut r = BufReader::new(r);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = Line { stream: s, bytes: buf, at: SystemTime::now() };
                        if tx.send(Event::Line(line)).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Event::Eof(s));
        });
    }
    if let Some(out) = child.stdout.take() {
        reader(out, Stream::Stdout, tx.clone());
        open_pipes += 1;
    }
    if let Some(err) = child.stderr.take() {
        reader(err, Stream::Stderr, tx.clone());
        open_pipes += 1;
    }
    let stdin = child.stdin.take();
    Run { what: what.to_string(), pid, child, stdin, rx, open_pipes, lines: Vec::new(), status: None }
}

impl Run {
    fn collected(&self) -> String {
        let text = |s: Stream| -> String { self.lines.iter().filter(|l| l.stream == s).map(|l| l.text()).collect() };
        format!(
            "--- stdout so far ---\n{}--- stderr so far ---\n{}---------------------",
            text(Stream::Stdout),
            text(Stream::Stderr)
        )
    }

    /// Waits for the next line on stream `s` for which `pred` holds, reading
    /// (and keeping) every line before it. Fails the test on timeout, or if
    /// the child's pipes close first.
    pub fn wait_line(&mut self, s: Stream, pred: impl Fn(&str) -> bool, what: &str) -> Line {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.open_pipes == 0 {
                let st = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: output ended before {what} (status: {})\n{}",
                    self.what,
                    st.map(|s| describe_status(&s)).unwrap_or_else(|| "still running".into()),
                    self.collected()
                );
            }
            match self.rx.recv_timeout(left) {
                Ok(Event::Line(l)) => {
                    let hit = l.stream == s && pred(&l.text());
                    self.lines.push(l.clone());
                    if hit {
                        return l;
                    }
                }
                Ok(Event::Eof(_)) => self.open_pipes -= 1,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: timed out after {:?} waiting for {what}\n{}", self.what, TIMEOUT, self.collected())
                }
                Err(RecvTimeoutError::Disconnected) => self.open_pipes = 0,
            }
        }
    }

    /// Waits until the process has really made progress: its
    /// `voluntary_ctxt_switches` reached `n` (each `sleep` is one) and it is
    /// sleeping (State S). For programs whose output is fully buffered.
    pub fn wait_switches(&self, n: u64) {
        wait_switches(program_pid(self.pid), n, &self.what);
    }

    /// Waits until the process has run two more clock ticks of its own code
    /// (user CPU time in /proc/PID/stat) and is not in a system call
    /// (`/proc/PID/syscall` says "running"): for a signal that must land in
    /// a compute loop, not in the printf that reported progress.
    pub fn wait_computing(&self) {
        let utime = |pid: i32| -> Option<u64> {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Field 14 (utime); fields after the ")" of the command name.
            stat[stat.rfind(')')? + 2..].split(' ').nth(11)?.parse().ok()
        };
        let start = Instant::now();
        let pid = program_pid(self.pid);
        let from = utime(pid);
        loop {
            let running = fs::read_to_string(format!("/proc/{pid}/syscall")).is_ok_and(|s| s.starts_with("running"));
            match (from, utime(pid)) {
                (Some(a), Some(b)) if b >= a + 2 && running => return,
                (Some(_), Some(_)) if start.elapsed() < TIMEOUT => thread::yield_now(),
                other => panic!("{}: pid {pid} is not computing (utime {other:?})", self.what),
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid we spawned and have not reaped.
        let r = unsafe { libc::kill(self.pid, sig) };
        assert_eq!(r, 0, "{}: kill({}, {sig}): {}", self.what, self.pid, std::io::Error::last_os_error());
    }

    /// Sends the checkpoint signal.
    pub fn checkpoint(&self) {
        self.signal(libc::SIGUSR2);
    }

    pub fn write_stdin(&mut self, data: &[u8]) {
        let w = self.stdin.as_mut().expect("stdin is not piped");
        w.write_all(data).unwrap_or_else(|e| panic!("{}: writing stdin: {e}", self.what));
    }

    /// The piped stdin, to give to another process (as its stdout).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin is not piped")
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most `limit`) for the child to exit and for its pipes to
    /// close, and returns everything it printed. Fails the test on timeout.
    pub fn finish_within(self, limit: Duration) -> Outcome {
        self.try_finish_within(limit).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Run::finish_within`], but a child still running after `limit` is
    /// killed and reported as an error instead of failing the test.
    pub fn try_finish_within(mut self, limit: Duration) -> Result<Outcome, String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) => {}
                Err(e) => panic!("{}: wait: {e}", self.what),
            }
            // Keep the lines flowing while waiting (the readers never block
            // on us: the channel is unbounded).
            while let Ok(ev) = self.rx.try_recv() {
                match ev {
                    Event::Line(l) => self.lines.push(l),
                    Event::Eof(_) => self.open_pipes -= 1,
                }
            }
            if Instant::now() > deadline {
                // Dropping self kills and reaps the child.
                return Err(format!(
                    "{}: still running after {:?} (pid {}, state: {})\n{}",
                    self.what,
                    limit,
                    self.pid,
                    proc_state(self.pid),
                    self.collected()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        };
        self.status = Some(status);
        while self.open_pipes > 0 {
            let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
            match self.rx.recv_timeout(left) {
                Ok(Event::Line(l)) => self.lines.push(l),
                Ok(Event::Eof(_)) => self.open_pipes -= 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: exited ({}) but its output pipes stayed open\n{}",
                        self.what,
                        describe_status(&status),
                        self.collected()
                    ))
                }
            }
        }
        Ok(Outcome { what: self.what.clone(), status, lines: std::mem::take(&mut self.lines) })
    }

    pub fn finish(self) -> Outcome {
        self.finish_within(TIMEOUT)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(None) = self.child.try_wait() {
                // SAFETY: kill(2) on our own unreaped child.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
            let _ = self.child.wait();
        }
    }
}

/// `State:` and `voluntary_ctxt_switches:` of /proc/PID/status, if it exists.
fn proc_status(pid: i32) -> Option<(String, u64)> {
    let s = fs::read(format!("/proc/{pid}/status")).ok()?;
    let state = String::from_utf8_lossy(ckpt_sys::status::field(&s, b"State")?).into_owned();
    Some((state, ckpt_sys::status::decimal(&s, b"voluntary_ctxt_switches")?))
}

fn proc_state(pid: i32) -> String {
    match proc_status(pid) {
        Some((st, vol)) => format!("{st}, {vol} voluntary context switches"),
        None => "gone".into(),
    }
}

/// Whether the user `unshare` runs as (a command made with
/// [`UNSHARE_PROBE`]) can create the namespaces `restart` makes for exact
/// pids; if not, says so in a skip line naming `test` and the reason.
pub fn namespaces_available(mut unshare: Command, test: &str) -> bool {
    let o = spawn("unshare", &mut unshare).finish();
    if o.status.success() {
        return true;
    }
    println!("skip: {test}: user namespaces are unavailable here: {}", o.stderr_text().trim());
    false
}

/// The program and arguments of the probe [`namespaces_available`] runs.
pub const UNSHARE_PROBE: (&str, [&str; 6]) =
    ("/usr/bin/unshare", ["--user", "--map-current-user", "--pid", "--mount", "--fork", "true"]);

/// The children of process `p` (its main thread's).
pub fn children(p: i32) -> Vec<i32> {
    let text = fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|c| c.parse().ok()).collect()
}

/// The process that runs the program started as `pid`, as this test sees
/// it: `pid` itself, or for a `restart` in namespace mode (pid is the outer
/// process: outer → init, pid 1 of the new namespace → the program), the
/// program's process once it is restored (it no longer calls itself
/// `restart`). `pid` itself if it ended, or after the usual timeout.
pub fn program_pid(pid: i32) -> i32 {
    let comm = |p: i32| fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default().trim_end().to_string();
    // Not started yet: still a fork of this test (spawn may return before
    // the exec is through), or `setpriv` (as another user), which execs.
    let me = std::env::current_exe().ok();
    let starting = |p: i32| fs::read_link(format!("/proc/{p}/exe")).ok() == me || comm(p) == "setpriv";
    let start = Instant::now();
    while (starting(pid) || comm(pid) == "restart") && start.elapsed() < TIMEOUT {
        for init in children(pid) {
            let program = children(init)
                .into_iter()
                .find(|&c| !["restart", "ckpt-ticker", "ckpt-locks", ""].contains(&&*comm(c)));
            if let Some(p) = program {
                return p;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    pid
}

/// `pid` and its descendants two levels down (for a `restart` in namespace
/// mode: the outer process, init, and the program's process, which may
/// still be loading the image).
pub fn job_pids(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    for c in children(pid) {
        all.push(c);
        all.extend(children(c));
    }
    all
}

/// Waits until process `pid` made `n` voluntary context switches and is
/// asleep (State S), i.e. it has done `n` sleeps. Fails on timeout or if the
/// process becomes a zombie or disappears first.
pub fn wait_switches(pid: i32, n: u64, what: &str) {
    let start = Instant::now();
    loop {
        match proc_status(pid) {
            Some((state, vol)) => {
                if state.starts_with('Z') || state.starts_with('X') {
                    panic!("{what}: pid {pid} exited before making {n} voluntary context switches ({vol} made)");
                }
                if vol >= n && state.starts_with('S') {
                    return;
                }
                if start.elapsed() > TIMEOUT {
                    panic!(
                        "{what}: pid {pid} made only {vol} of {n} voluntary context switches in {:?} (state {state})",
                        TIMEOUT
                    );
                }
            }
            None => {
                panic!("{what}: pid {pid} disappeared before making {n} voluntary context switches")
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts the run was refused: exit status `code`, exactly one line on
/// stderr containing every one of `needles`, nothing on stdout (nothing of
/// the program ran).
pub fn assert_refused(o: &Outcome, code: i32, needles: &[&str]) {
    o.expect_code(code);
    let err = o.stderr_text();
    assert!(
        err.lines().count() == 1 && needles.iter().all(|n| err.contains(n)),
        "expected a refusal in one line containing {needles:?}\n{}",
        o.describe()
    );
    assert!(o.stdout().is_empty(), "nothing should have run\n{}", o.describe());
}

/// Waits until a thread of `run` is blocked in system call `nr` (first
/// field of /proc/PID/task/TID/syscall), i.e. the program reached its wait.
pub fn wait_in_syscall(run: &Run, nr: i64) {
    let start = Instant::now();
    let tasks = format!("/proc/{}/task", program_pid(run.pid));
    loop {
        let mut seen = Vec::new();
        for task in fs::read_dir(&tasks).into_iter().flatten().flatten() {
            let text = fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
            if text.split_whitespace().next().and_then(|f| f.parse::<i64>().ok()) == Some(nr) {
                return;
            }
            seen.push(text.trim().to_string());
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "{}: no thread blocked in system call {nr} after {TIMEOUT:?} (/proc/{}/task/*/syscall: {seen:?})",
            run.what,
            run.pid,
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// How the executables are run: directly from the workspace, or copied to a
/// directory everyone can read and run as user `nobody`.
pub struct Tools {
    pub dir: PathBuf,
    /// (uid, gid) to run every command as, through setpriv.
    pub user: Option<(u32, u32)>,
}

impl Tools {
    pub fn new() -> Tools {
        // Fail early, with the hint to run make, if something is missing.
        for p in ["ckpt", "restart", "readckpt", "libckpt.so"] {
            exe(p);
        }
        Tools { dir: root(), user: None }
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A command running `program args` in `cwd` (as the chosen user), with
    /// no stdin and piped stdout and stderr.
    pub fn cmd(&self, program: &Path, args: &[&str], cwd: &Path) -> Command {
        match self.user {
            None => command(program, args, cwd),
            Some((uid, gid)) => command_as(uid, gid, program, args, cwd),
        }
    }

    /// `ckpt [-o IMAGE] PROGRAM ARGS...`
    pub fn ckpt(&self, image: Option<&Path>, program: &Path, args: &[&str], cwd: &Path) -> Command {
        self.ckpt_with(&[], image, program, args, cwd)
    }

    /// `ckpt OPTIONS [-o IMAGE] PROGRAM ARGS...`
    pub fn ckpt_with(
        &self,
        options: &[&str],
        image: Option<&Path>,
        program: &Path,
        args: &[&str],
        cwd: &Path,
    ) -> Command {
        let mut a: Vec<&str> = options.to_vec();
        if let Some(i) = image {
            a.push("-o");
            a.push(i.to_str().unwrap());
        }
        a.push(program.to_str().unwrap());
        a.extend_from_slice(args);
        self.cmd(&self.bin("ckpt"), &a, cwd)
    }

    /// `restart [IMAGE]`
    pub fn restart(&self, image: Option<&Path>, cwd: &Path) -> Command {
        let a: Vec<&str> = image.iter().map(|p| p.to_str().unwrap()).collect();
        self.cmd(&self.bin("restart"), &a, cwd)
    }
}

/// Tools copied to a fresh directory that `nobody` can read, a 0777 working
/// directory, and every command run as nobody (through setpriv). When the
/// tests do not run as root they are unprivileged already: the commands run
/// as the current user, from the copies. `extra`: more programs to copy
/// (demos), found in the bin directory by their file name.
pub fn unprivileged(tag: &str, extra: &[&Path]) -> (TempDir, Tools, TempDir) {
    let bins = TempDir::new(&format!("{tag}-bin"));
    bins.chmod(0o755);
    for name in ["ckpt", "restart", "readckpt", "libckpt.so", "counting-test"] {
        let to = bins.join(name);
        fs::copy(exe(name), &to).unwrap();
        chmod(&to, 0o755);
    }
    for p in extra {
        let to = bins.path.join(p.file_name().unwrap());
        fs::copy(p, &to).unwrap();
        chmod(&to, 0o755);
    }
    let work = TempDir::new(tag);
    work.chmod(0o777);
    let user = if is_root() {
        assert!(
            Path::new("/usr/bin/setpriv").exists(),
            "running as root, but /usr/bin/setpriv (util-linux) is missing: cannot switch to nobody"
        );
        Some((65534, 65534))
    } else {
        eprintln!("not root: the unprivileged tests run as the current user");
        None
    };
    let tools = Tools { dir: bins.path.clone(), user };
    (bins, tools, work)
}

/// Spawns `cmd` with a piped stdin and waits for its "started" line (a
/// demo that works until its stdin ends).
pub fn spawn_started(what: &str, cmd: &mut Command) -> Run {
    cmd.stdin(Stdio::piped());
    let mut run = spawn(what, cmd);
    run.wait_line(Stream::Stdout, |l| l == "started\n", "started");
    run
}

/// The uninterrupted run of such a demo: started, then its stdin ended;
/// it must exit 0.
pub fn uninterrupted_until_started(cmd: &mut Command) -> Outcome {
    let mut run = spawn_started("uninterrupted run", cmd);
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    o
}

/// Asserts two outputs are identical, showing both as text if not.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        panic!(
            "{what}: output differs from the uninterrupted run\n--- got ({} bytes) ---\n{}--- expected ({} bytes) ---\n{}-------------",
            got.len(),
            String::from_utf8_lossy(got),
            want.len(),
            String::from_utf8_lossy(want)
        );
    }
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

pub fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

pub fn file(p: &Path) -> fs::File {
    fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()))
}

/// A Command with no stdin, piped stdout and stderr, in directory `cwd`.
/// Descriptors the test process inherited (from a shell, a CI runner) are
/// closed in the child: programs start with exactly 0, 1 and 2, as the
/// tests expect (an inherited pipe would be reported as not restorable).
pub fn command(program: &Path, args: &[&str], cwd: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(program);
    c.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: close_range is async-signal-safe; it runs in the child after
    // fork, before exec, and touches only descriptors 3 and up.
    unsafe {
        c.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    c
}

/// As [`command`], run as user `uid` and group `gid` (no supplementary
/// groups) through setpriv; the caller must be root.
pub fn command_as(uid: u32, gid: u32, program: &Path, args: &[&str], cwd: &Path) -> Command {
    let ids = [format!("--reuid={uid}"), format!("--regid={gid}")];
    let mut full = vec![ids[0].as_str(), ids[1].as_str(), "--clear-groups", "--", program.to_str().unwrap()];
    full.extend_from_slice(args);
    command(Path::new("/usr/bin/setpriv"), &full, cwd)
}

/// Runs `cmd` to its end with `input` on its stdin (then closed).
pub fn run_with_input(what: &str, cmd: &mut Command, input: &[u8]) -> Outcome {
    cmd.stdin(Stdio::piped());
    let mut run = spawn(what, cmd);
    run.write_stdin(input);
    run.close_stdin();
    run.finish()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The image with its header changed by `f` and the header checksum made
/// right again, so that only the change itself can be refused.
pub fn patch_header(good: &[u8], f: impl FnOnce(&mut ckpt_image::Header)) -> Vec<u8> {
    use ckpt_image::{bytes_of, read_at, Header, HEADER_SIZE};
    let mut h: Header = read_at(good, 0).expect("an image starts with a header");
    f(&mut h);
    h.header_checksum = h.compute_checksum();
    let mut out = good.to_vec();
    out[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
    out
}

pub use ckpt_image::exercise::reseal;

/// `good` (an image) re-sealed to need what this CPU lacks: an XSAVE
/// component outside its XCR0 in use (APX, MPX, AMX, PKRU: the first it
/// lacks, placed in the image's layout), else an x86-64 level above its own
/// (`ckpt --portable`). With what was changed; None if this CPU has it all.
pub fn needing_what_this_cpu_lacks(good: &[u8]) -> Option<(String, Vec<u8>)> {
    let have = ckpt_sys::cpu::xcr0();
    let level = ckpt_sys::cpu::level();
    if let Some(bit) = [19u32, 3, 4, 17, 18, 9].into_iter().find(|b| have & (1 << b) == 0) {
        let what = format!("requires XSAVE component {bit}, which this CPU lacks (XCR0 {have:#x})");
        let image = patch_header(good, |h| {
            h.required_xfeatures |= 1 << bit;
            h.xlayout.comps[bit as usize] = ckpt_image::xstate::Component { offset: 8192, size: 64 };
        });
        Some((what, image))
    } else if level < 4 {
        let what = format!("held to x86-64-v{} by --portable, above this CPU's level", level + 1);
        Some((what, patch_header(good, |h| h.portable_level = level + 1)))
    } else {
        println!("skip: this CPU (XCR0 {have:#x}, x86-64-v4) has every candidate XSAVE component");
        None
    }
}

/// The image with the metadata bytes changed by `f` (given the header and
/// the metadata, `header.meta_len` bytes), re-sealed.
pub fn patch_meta(good: &[u8], f: impl FnOnce(&ckpt_image::Header, &mut [u8])) -> Vec<u8> {
    let h: ckpt_image::Header = ckpt_image::read_at(good, 0).expect("an image starts with a header");
    let mut out = good.to_vec();
    f(&h, &mut out[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]);
    reseal(&mut out);
    out
}

/// The image with thread record `i` changed by `f`, re-sealed.
pub fn patch_thread(good: &[u8], i: usize, f: impl FnOnce(&mut ckpt_image::Thread)) -> Vec<u8> {
    use ckpt_image::{bytes_of, read_at, MetaLayout, Thread};
    patch_meta(good, |h, meta| {
        let l = MetaLayout::of(h);
        let at = l.regions + l.extents + i * std::mem::size_of::<Thread>();
        let mut t: Thread = read_at(&meta[at..], 0).expect("thread index out of range");
        f(&mut t);
        meta[at..at + std::mem::size_of::<Thread>()].copy_from_slice(bytes_of(&t));
    })
}

/// What is wrong with a refusal, if anything: a refused image must give
/// exit status 1 (never a signal), exactly one line on stderr starting with
/// `restart: ` (or `prefix`), and nothing on stdout.
pub fn refusal_problem(prefix: &str, o: &Outcome) -> Option<String> {
    let err = o.stderr();
    let one_line =
        err.starts_with(prefix.as_bytes()) && err.ends_with(b"\n") && err.iter().filter(|&&c| c == b'\n').count() == 1;
    if o.status.code() == Some(1) && one_line && o.stdout().is_empty() {
        return None;
    }
    Some(format!(
        "{}: expected exit status 1 and one line \"{prefix}...\" on stderr, nothing on stdout; got {}, stderr {:?}, stdout {:?}",
        o.what,
        describe_status(&o.status),
        o.stderr_text(),
        o.stdout_text()
    ))
}

/// The tables of an image, decoded, to be changed and laid out again by
/// [`rebuild_image`].
pub struct Tables {
    pub header: ckpt_image::Header,
    pub regions: Vec<ckpt_image::Region>,
    /// With their `file_pos` in the original image (the bytes are copied
    /// from there).
    pub extents: Vec<ckpt_image::Extent>,
    pub threads: Vec<ckpt_image::Thread>,
    pub sigactions: Vec<ckpt_image::SigAction>,
    pub fds: Vec<ckpt_image::Fd>,
    pub strings: Vec<u8>,
}

/// A valid image with tables changed by `f`: counts, layout, each region's
/// `first_extent`, each extent's `file_pos` and both checksums are
/// recomputed; the data of each extent is copied from `good`. A region
/// added by `f` must keep the table sorted, and own no extents or own
/// extents that `f` added in the right place.
pub fn rebuild_image(good: &[u8], f: impl FnOnce(&mut Tables)) -> Vec<u8> {
    use ckpt_image::*;
    let h = Header::parse(good, good.len() as u64).expect("the image to rebuild is valid");
    let l = MetaLayout::of(&h);
    let meta = &good[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize];
    fn table<T: Pod>(bytes: &[u8], n: usize) -> Vec<T> {
        (0..n).map(|i| read_at(bytes, i).unwrap()).collect()
    }
    let mut at = 0;
    let mut next = |len: usize| {
        let s = &meta[at..at + len];
        at += len;
        s
    };
    let mut t = Tables {
        header: h,
        regions: table(next(l.regions), h.n_regions as usize),
        extents: table(next(l.extents), h.n_extents as usize),
        threads: table(next(l.threads), h.n_threads as usize),
        sigactions: table(next(l.sigactions), NSIG),
        fds: table(next(l.fds), h.n_fds as usize),
        strings: next(l.strings).to_vec(),
    };
    f(&mut t);
    let mut first = 0;
    for r in &mut t.regions {
        r.first_extent = first;
        first += r.n_extents;
    }
    // Each extent's data, from where it was in `good` (decoded: the
    // rebuilt image stores it raw).
    let data: Vec<Vec<u8>> = t
        .extents
        .iter_mut()
        .map(|x| {
            let stored = &good[x.file_pos as usize..(x.file_pos + x.stored_len) as usize];
            let mut d = vec![0u8; x.len as usize];
            codec::decode(x, stored, &mut d).expect("the image to rebuild has good data");
            *x = Extent { checksum: x.checksum, ..Extent::new(x.addr, x.len) };
            d
        })
        .collect();
    let tables = encode::Tables {
        regions: &t.regions,
        extents: &mut t.extents,
        threads: &t.threads,
        sigactions: &t.sigactions,
        fds: &t.fds,
        strings: &t.strings,
    };
    ckpt_image::sample::write(t.header, tables, |i| &data[i])
}

/// An anonymous region without stored data, for [`rebuild_image`].
pub fn empty_region(start: u64, end: u64, prot: u32) -> ckpt_image::Region {
    let kind = ckpt_image::RegionKind::Anon as u32;
    ckpt_image::Region { start, end, prot, kind, ..Default::default() }
}

/// Inserts `r` into a sorted region table at its place.
pub fn insert_region(regions: &mut Vec<ckpt_image::Region>, r: ckpt_image::Region) {
    let at = regions.partition_point(|x| x.start < r.start);
    regions.insert(at, r);
}

/// Raises this process's hard (not soft) limit on open files to `want` if
/// it may (children inherit it); returns the hard limit now.
pub fn raise_own_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on locals; only the hard limit grows.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_max < want {
            let raised = libc::rlimit { rlim_cur: lim.rlim_cur, rlim_max: want };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_max
}

/// A program (for [`build_static`]) that prints "ready", waits for a byte on
/// its stdin, and exits 4.
pub const STATIC_WAIT: &str =
    "#include <stdio.h>\n#include <unistd.h>\nint main(void) { puts(\"ready\"); fflush(stdout); \
                               read(0, (char[1]){0}, 1); return 4; }\n";

/// Compiles C `source` into the statically linked program `dir/name`
/// (gcc -static: libc6-dev has the static libc).
pub fn build_static(dir: &TempDir, name: &str, source: &str) -> PathBuf {
    let src = dir.join(&format!("{name}.c"));
    fs::write(&src, source).unwrap();
    let prog = dir.join(name);
    let cc = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&prog).arg(&src).output().expect("cannot run gcc");
    assert!(
        cc.status.success(),
        "gcc -static failed (is libc6-dev installed?):\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    prog
}
