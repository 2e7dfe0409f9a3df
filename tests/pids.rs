//! Exact pids and tids at restart (issue 11, parts 3 and 4): `restart`
//! runs the program in a user + pid + mount namespace of its own, at its
//! own pid, its threads at their own tids, `/proc/self/exe` its own; the
//! outer `restart` forwards signals and ends as the program ends. Where
//! user namespaces are denied, restart falls back to new pids with one
//! line, or refuses with `--exact-pids`.
//!
//! Each case runs as the current user (root in CI) and as `nobody`
//! (setpriv). Where user namespaces are unavailable on the machine, the
//! namespace cases print a skip line with the reason.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;
const SYS_READ: i64 = 0;

fn namespaces_available(tools: &Tools, dir: &Path, test: &str) -> bool {
    let (unshare, args) = UNSHARE_PROBE;
    common::namespaces_available(tools.cmd(Path::new(unshare), &args, dir), test)
}

/// The cases, run by the current user and by nobody: (tools, work dir, the
/// demos as this user may run them).
fn as_each_user(tag: &str, demos: &[&str], case: impl Fn(&Tools, &Path, &[PathBuf])) {
    let me = Tools::new();
    let dir = TempDir::new(tag);
    let mine: Vec<PathBuf> = demos.iter().map(|d| demo(d)).collect();
    if namespaces_available(&me, &dir.path, tag) {
        case(&me, &dir.path, &mine);
    }
    let paths: Vec<PathBuf> = demos.iter().map(|d| demo(d)).collect();
    let extra: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let (bins, nobody, work) = unprivileged(&format!("{tag}-nobody"), &extra);
    let theirs: Vec<PathBuf> = demos.iter().map(|d| bins.join(d)).collect();
    if namespaces_available(&nobody, &work.path, &format!("{tag} (as nobody)")) {
        case(&nobody, &work.path, &theirs);
    }
}

/// The pids demo under ckpt, checkpointed once it is ready: its "ids" and
/// "ppid" lines.
fn checkpointed_pids(tools: &Tools, dir: &Path, prog: &Path, image: &Path) -> (String, String) {
    let mut run = spawn("ckpt pids", tools.ckpt(Some(image), prog, &[], dir).stdin(Stdio::piped()));
    let ids = stdout_line(&mut run, "ids ");
    let ppid = stdout_line(&mut run, "ppid ");
    if !run.lines.iter().any(|l| l.stream == Stream::Stderr && l.text() == "ready\n") {
        run.wait_line(Stream::Stderr, |l| l == "ready\n", "ready");
    }
    run.checkpoint();
    run.finish().expect_code(CHECKPOINTED);
    (ids, ppid)
}

/// The first line on stdout starting with `prefix`, read already or to come.
fn stdout_line(run: &mut Run, prefix: &str) -> String {
    let seen = run.lines.iter().find(|l| l.stream == Stream::Stdout && l.text().starts_with(prefix));
    match seen {
        Some(l) => l.text(),
        None => run.wait_line(Stream::Stdout, |l| l.starts_with(prefix), prefix).text(),
    }
}

/// `restart` (with `options`) of `image`, its stdin piped, once the program
/// waits for its line (main thread in read).
fn restarted(tools: &Tools, dir: &Path, image: &Path, options: &[&str], what: &str) -> Run {
    let mut c = tools.restart(Some(image), dir);
    c.args(options).stdin(Stdio::piped());
    let run = spawn(what, &mut c);
    wait_in_syscall(&run, SYS_READ);
    run
}

/// Lets the restarted pids demo finish: its output.
fn finished(mut run: Run) -> Outcome {
    run.write_stdin(b"go\n");
    run.close_stdin();
    let o = run.finish();
    o.expect_code(0);
    o
}

#[test]
fn pids_tids_exe_and_mutex_owners_survive_two_generations() {
    // getpid, every gettid, /proc/self, /proc/self/task, /proc/self/exe:
    // the same after each restart; mutexes held across both checkpoints
    // (error-checking by main, recursive twice by a thread) are unlocked
    // by their owners without EPERM. getppid is 1: init.
    as_each_user("pids-gen", &["pids"], |tools, dir, demos| {
        let image = dir.join("pids.dat");
        let (ids, ppid) = checkpointed_pids(tools, dir, &demos[0], &image);
        assert!(ids.contains(&format!(" exe {} ", demos[0].display())), "the demo's own exe: {ids}");
        assert_ne!(ppid, "ppid 1\n");
        let gen1 = restarted(tools, dir, &image, &[], "restart (generation 1)");
        gen1.checkpoint();
        let o = gen1.finish();
        o.expect_code(CHECKPOINTED);
        assert!(o.stdout().is_empty(), "{}", o.describe());
        let o = finished(restarted(tools, dir, &image, &[], "restart (generation 2)"));
        let lines = o.text_lines(Stream::Stdout);
        let all = o.describe();
        assert_eq!(lines.len(), 3, "{all}");
        assert_eq!(lines[0], ids, "pid, tids, /proc/self, tasks and exe after two generations\n{all}");
        assert_eq!(lines[1], "ppid 1\n", "{all}");
        assert_eq!(lines[2], "unlock errorcheck 0 recursive 0 0\n", "mutexes unlocked by their owners\n{all}");
        assert!(!o.stderr_text().contains("pid"), "no line about pids\n{all}");
    });
}

#[test]
fn two_concurrent_restarts_of_one_image_have_the_same_pids() {
    as_each_user("pids-concurrent", &["pids"], |tools, dir, demos| {
        let image = dir.join("pids.dat");
        let (ids, _) = checkpointed_pids(tools, dir, &demos[0], &image);
        let a = restarted(tools, dir, &image, &[], "restart A");
        let b = restarted(tools, dir, &image, &[], "restart B");
        for o in [finished(a), finished(b)] {
            assert_eq!(o.text_lines(Stream::Stdout)[0], ids, "{}", o.describe());
        }
    });
}

#[test]
fn signals_to_the_outer_restart_reach_the_program() {
    // kill -TERM of the restart the shell knows: the same status as the
    // program killed by SIGTERM without ckpt. (kill -USR2 is the
    // generations test's checkpoint.)
    as_each_user("pids-term", &["pids"], |tools, dir, demos| {
        let mut plain = spawn("pids", tools.cmd(&demos[0], &[], dir).stdin(Stdio::piped()));
        stdout_line(&mut plain, "ppid ");
        wait_in_syscall(&plain, SYS_READ);
        plain.signal(libc::SIGTERM);
        let want = describe_status(&plain.finish().status);
        assert_eq!(want, "killed by signal 15 (SIGTERM)");
        let image = dir.join("pids.dat");
        checkpointed_pids(tools, dir, &demos[0], &image);
        let run = restarted(tools, dir, &image, &[], "restart");
        run.signal(libc::SIGTERM);
        let o = run.finish();
        assert_eq!(describe_status(&o.status), want, "{}", o.describe());
    });
}

/// The state letter of process `pid` (R, S, T...), from /proc/PID/stat.
fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').and_then(|i| stat[i + 2..].chars().next()).unwrap_or('?')
}

/// Waits until process `pid` is in state `want`.
fn wait_state(pid: i32, want: char, what: &str) {
    let start = std::time::Instant::now();
    while state(pid) != want {
        assert!(start.elapsed() < TIMEOUT, "{what}: pid {pid} is in state {}, not {want}", state(pid));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_stopped_program_stops_the_outer_restart_and_sigcont_goes_on() {
    // Job control: when the program stops (here SIGSTOP, as Ctrl-Z's
    // SIGTSTP would), the restart the shell waits for stops too; SIGCONT
    // to it (the shell's fg/bg) continues the program.
    with_restarted_pids("pids-stop", |run, program| {
        assert_ne!(program, run.pid, "the program runs in its own process");
        // SAFETY: kill(2) of the program's process, which this test started.
        assert_eq!(unsafe { libc::kill(program, libc::SIGSTOP) }, 0);
        wait_state(run.pid, 'T', "the outer restart after the program stopped");
        run.signal(libc::SIGCONT);
        wait_state(program, 'S', "the program after SIGCONT to the outer restart");
    });
}

/// As each user: the pids demo checkpointed and restarted; `case` gets the
/// restart and the program's pid while the program waits for its input,
/// then the program must end with the ids it had.
fn with_restarted_pids(tag: &str, case: impl Fn(&Run, i32)) {
    as_each_user(tag, &["pids"], |tools, dir, demos| {
        let image = dir.join("pids.dat");
        let (ids, _) = checkpointed_pids(tools, dir, &demos[0], &image);
        let run = restarted(tools, dir, &image, &[], "restart");
        case(&run, program_pid(run.pid));
        let o = finished(run);
        assert_eq!(o.text_lines(Stream::Stdout)[0], ids, "{}", o.describe());
    });
}

#[test]
fn without_user_namespaces_pids_change_with_one_line_or_are_refused() {
    // nouserns denies user namespaces with a seccomp filter (EPERM, and
    // ENOSYS for clone3, as Docker's default profile).
    as_each_user("pids-fallback", &["pids", "nouserns"], |tools, dir, demos| {
        let image = dir.join("pids.dat");
        let (ids, _) = checkpointed_pids(tools, dir, &demos[0], &image);
        let restart = tools.bin("restart");
        let fenced = |options: &[&str]| -> Command {
            let mut args = vec![restart.to_str().unwrap()];
            args.extend_from_slice(options);
            args.push(image.to_str().unwrap());
            let mut c = tools.cmd(&demos[1], &args, dir);
            c.stdin(Stdio::piped());
            c
        };
        let run = spawn("restart without user namespaces", &mut fenced(&[]));
        wait_in_syscall(&run, SYS_READ);
        let o = finished(run);
        let all = o.describe();
        let err = o.stderr_text();
        assert!(
            err.lines().count() == 1 && err.contains("pid and thread ids changed") && err.contains("EPERM"),
            "one line saying the pids changed, and why\n{all}"
        );
        let pid = |l: &str| l.split(' ').nth(2).map(String::from);
        let lines = o.text_lines(Stream::Stdout);
        assert_ne!(pid(&lines[0]), pid(&ids), "a new pid\n{all}");
        assert!(lines[0].contains(&format!(" /proc/self {} ", pid(&lines[0]).unwrap())), "{all}");

        let o = run_with_input("restart --exact-pids", &mut fenced(&["--exact-pids"]), b"go\n");
        assert_refused(&o, 1, &["--exact-pids", "namespace", "EPERM"]);
    });
}

/// python3 with sqlite3, checkpointed inside a query (a function of the
/// query waits for a line on stdin): sqlite's recursive connection mutex
/// is held by the checkpointed thread. With a new tid the query's end
/// cannot release it and the next statement waits forever; with its own
/// tid the program finishes. Two generations.
#[test]
fn python_sqlite_checkpointed_inside_a_query() {
    let python = Path::new("/usr/bin/python3");
    let has_sqlite = Command::new(python).args(["-c", "import sqlite3"]).status().is_ok_and(|s| s.success());
    if !has_sqlite {
        println!("skip: python_sqlite_checkpointed_inside_a_query: python3 with sqlite3 is not installed (Debian package python3)");
        return;
    }
    const SCRIPT: &str = r#"
import sqlite3, sys
db = sqlite3.connect(":memory:")
db.execute("create table t(x)")
db.executemany("insert into t values (?)", [(i,) for i in range(100)])
def pause(x):
    if x == 50:
        print("in query", flush=True)
        sys.stdin.readline()
    return x * 2
db.create_function("pause", 1, pause)
print("sum", db.execute("select sum(pause(x)) from t").fetchone()[0])
db.execute("insert into t values (1000)")
print("count", db.execute("select count(*) from t").fetchone()[0], flush=True)
"#;
    as_each_user("pids-sqlite", &[], |tools, dir, _| {
        let script = dir.join("query.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let args = [script.to_str().unwrap()];
        let reference = run_with_input("python3", &mut tools.cmd(python, &args, dir), b"go\n");
        reference.expect_code(0);
        let image = dir.join("sqlite.dat");
        let mut run = spawn("ckpt python3", tools.ckpt(Some(&image), python, &args, dir).stdin(Stdio::piped()));
        stdout_line(&mut run, "in query");
        wait_in_syscall(&run, SYS_READ);
        run.checkpoint();
        let first = run.finish();
        first.expect_code(CHECKPOINTED);
        let gen1 = restarted(tools, dir, &image, &[], "restart (generation 1)");
        gen1.checkpoint();
        gen1.finish().expect_code(CHECKPOINTED);
        let o = finished(restarted(tools, dir, &image, &[], "restart (generation 2)"));
        assert_same("python3 + sqlite3 over two restarts", &cat(&[&first.stdout(), &o.stdout()]), &reference.stdout());
    });
}

#[test]
fn the_outer_restart_and_init_keep_only_their_own_pipe_ends() {
    // The outer restart reads init's reports and init writes them: once the
    // program runs, each holds that one pipe end and no other (the `go`
    // pipe and the other's ends closed), so that neither keeps the other
    // from seeing its end.
    with_restarted_pids("pids-pipe-ends", |run, program| {
        let init = children(run.pid).into_iter().find(|&c| children(c).contains(&program));
        let init = init.expect("init, the outer restart's child and the program's parent");
        // Pipes at descriptors 3 and up (0 to 2 are this test's).
        let pipes = |pid: i32| {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.flatten().collect()).unwrap_or(vec![]);
            fds.iter()
                .filter(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).is_some_and(|n| n > 2))
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("pipe:")))
                .count()
        };
        let start = std::time::Instant::now();
        while (pipes(run.pid), pipes(init)) != (1, 1) && start.elapsed() < TIMEOUT {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!((pipes(run.pid), pipes(init)), (1, 1), "pipes held by the outer restart and by init");
    });
}
