//! ckpt-slurm on a real SLURM (Debian's slurm-wlm and munge, installed by
//! .ci/run): a one-node cluster on localhost, written into a temporary
//! directory and started by the test as root (munged as user munge,
//! slurmctld, slurmd), and stopped at the end, pass or fail.
//!
//! Two jobs run at once, each `exec ckpt-slurm ... cli-count N 500` in an
//! sbatch script with `--requeue --open-mode=append`, submitted with
//! `--time=1 --signal=B:USR1@45`; job A's script is README's recipe as
//! written, but for its program. SLURM checks its jobs' time limits every 30 s, and
//! sends the warning at the first check that finds the job within 45 s (plus
//! that period) of its limit: with a 1-minute limit, at the first check, so
//! every run of a job lasts at most about 30 s. Job A's program needs 36 s:
//! it is signalled, checkpointed and requeued at least once. Job B's needs
//! 66 s, runs as user `nobody` with periodic checkpoints
//! (`-i 2 --keep 2`), and is requeued at least twice. A requeued job waits
//! about 2 minutes on its BeginTime; the test starts it at once with
//! `scontrol update StartTime=now` (ckpt-slurm does not need that). Each
//! job must end COMPLETED with exit code 0, its output equal to that of an
//! uninterrupted run, with one "requeued" line per restart SLURM counted,
//! and its images removed.

mod common;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The most a whole job may take, restarts included.
const JOB_LIMIT: Duration = Duration::from_secs(200);

const DAEMONS: [&str; 3] = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"];
const CLIENTS: [&str; 4] = ["/usr/bin/sbatch", "/usr/bin/scontrol", "/usr/bin/sinfo", "/usr/bin/scancel"];

/// uid and gid of a user, from the password database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns NULL or a pointer to a static entry, read at once.
    unsafe {
        let pw = libc::getpwnam(c.as_ptr());
        (!pw.is_null()).then(|| ((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// A TCP port free at the moment.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free TCP port")
}

/// The one-node cluster. Dropping it cancels its jobs, stops the daemons
/// and removes its directory, pass or fail (after printing its logs on a
/// failure).
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<Child>,
    jobs: Vec<String>,
}

impl Cluster {
    fn start() -> Cluster {
        // A fresh directory that Cluster removes itself, pass or fail.
        let tmp = TempDir::new("slurm");
        let dir = tmp.path.clone();
        std::mem::forget(tmp);
        chmod(&dir, 0o755);
        let mut c = Cluster { conf: dir.join("slurm.conf"), dir, daemons: Vec::new(), jobs: Vec::new() };
        let (munge_uid, munge_gid) = user_ids("munge").expect("user munge (Debian package munge)");

        // munged: its own key and socket, in a directory only munge writes.
        let m = c.dir.join("munge");
        fs::create_dir(&m).unwrap();
        let key: Vec<u8> = (0..1024).map(|_| rand_byte()).collect();
        fs::write(m.join("munge.key"), key).unwrap();
        chmod(&m.join("munge.key"), 0o400);
        for p in [&m, &m.join("munge.key")] {
            std::os::unix::fs::chown(p, Some(munge_uid), Some(munge_gid)).unwrap();
        }
        let socket = m.join("munge.sock");
        let mut munged = Command::new(DAEMONS[0]);
        munged
            .arg("--foreground")
            .arg(format!("--key-file={}", m.join("munge.key").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", m.join("munged.pid").display()))
            .arg(format!("--log-file={}", m.join("munged.log").display()))
            .arg(format!("--seed-file={}", m.join("munged.seed").display()))
            .uid(munge_uid)
            .gid(munge_gid);
        c.daemon(munged, "munged");
        wait_for(&format!("munged's socket {}", socket.display()), || socket.exists());

        let d = &c.dir;
        let conf = format!(
            "ClusterName=ckpttest\n\
             SlurmctldHost=localhost\n\
             SlurmctldPort={}\n\
             SlurmdPort={}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={}\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             ReturnToService=2\n\
             NodeName=localhost CPUs={}\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port(),
            socket.display(),
            thread::available_parallelism().map_or(1, |n| n.get()),
            d = d.display()
        );
        fs::write(&c.conf, conf).unwrap();
        for sub in ["state", "spool"] {
            fs::create_dir(c.dir.join(sub)).unwrap();
        }
        let f = c.conf.to_str().unwrap().to_string();
        let mut ctld = Command::new(DAEMONS[1]);
        ctld.args(["-D", "-i", "-f", &f]);
        c.daemon(ctld, "slurmctld");
        let mut slurmd = Command::new(DAEMONS[2]);
        slurmd.args(["-D", "-f", &f]);
        c.daemon(slurmd, "slurmd");
        wait_for("the node to be idle", || c.client("sinfo", &["-h", "-o", "%T"]).is_some_and(|s| s.trim() == "idle"));
        c
    }

    fn daemon(&mut self, mut cmd: Command, name: &str) {
        let log = fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).env("SLURM_CONF", &self.conf);
        self.daemons.push(cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}")));
    }

    /// A SLURM client's output, if it succeeded.
    fn client(&self, name: &str, args: &[&str]) -> Option<String> {
        let o = Command::new(format!("/usr/bin/{name}"))
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// Submits `script` with `bin` first in its PATH; its job id.
    fn sbatch(&mut self, script: &Path, bin: &Path, args: &[&str]) -> String {
        let path = format!("--export=ALL,PATH={}:/usr/bin:/bin", bin.display());
        let mut a = vec!["--parsable", path.as_str()];
        a.extend_from_slice(args);
        a.push(script.to_str().unwrap());
        let id = self.client("sbatch", &a).unwrap_or_else(|| panic!("sbatch {a:?} failed"));
        let id = id.trim().to_string();
        self.jobs.push(id.clone());
        id
    }

    /// The fields of `scontrol show job ID` ("JobState" → "COMPLETED").
    fn job(&self, id: &str) -> HashMap<String, String> {
        let text = self.client("scontrol", &["-o", "show", "job", id]).unwrap_or_default();
        text.split_whitespace().filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["slurmctld.log", "slurmd.log", "munge/munged.log"] {
            let text = fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            s += &format!("--- {f} (last lines) ---\n");
            for l in tail.iter().rev() {
                s += l;
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for id in &self.jobs {
            let _ = self.client("scancel", &[id]);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15)
            && self.client("squeue", &["-h"]).is_some_and(|s| !s.trim().is_empty())
        {
            thread::sleep(Duration::from_millis(100));
        }
        // slurmd, slurmctld, then munged.
        for d in self.daemons.iter_mut().rev() {
            // SAFETY: signals our own, unreaped child.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while d.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(10) {
                    let _ = d.kill();
                    let _ = d.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the cluster (a step daemon, a job whose
        // cancellation failed) has our SLURM_CONF in its environment.
        let mark = format!("SLURM_CONF={}", self.conf.display()).into_bytes();
        for pid in fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if pid != std::process::id() as i32 && env.split(|&c| c == 0).any(|v| v == mark.as_slice()) {
                eprintln!("stopping pid {pid}, left over from the test cluster");
                // SAFETY: kill(2); the process is one the test's cluster started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    // SAFETY: getrandom writes one byte into a local buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr() as *mut libc::c_void, 1, 0) };
    assert_eq!(n, 1, "getrandom");
    b[0]
}

/// Polls `done` (every 100 ms) until it holds; fails after TIMEOUT.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "waited {TIMEOUT:?} for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// The sbatch script of README's recipe, its program swapped for `program`.
fn readme_recipe(program: &str) -> String {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("### Batch jobs on SLURM").nth(1).expect("README.md: the SLURM section");
    let recipe = section.split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("README.md: the recipe");
    assert!(recipe.contains("exec ckpt-slurm") && recipe.contains("./sim input.cfg"), "README's recipe:\n{recipe}");
    recipe.replace("./sim input.cfg", program)
}

/// One job of the test: its script, files and expectations.
struct Job {
    name: &'static str,
    id: String,
    steps: u32,
    min_restarts: u32,
    images: Vec<PathBuf>,
    out: PathBuf,
    err: PathBuf,
}

#[test]
fn slurm_job_is_checkpointed_requeued_and_restarted() {
    if !is_root() {
        eprintln!("skipped: the SLURM test starts munged, slurmctld and slurmd, which needs root");
        return;
    }
    if let Some(missing) = DAEMONS.iter().chain(CLIENTS.iter()).find(|p| !Path::new(p).exists()) {
        eprintln!("skipped: {missing} is missing (Debian packages slurm-wlm and munge; .ci/run installs them)");
        return;
    }
    let mut cluster = Cluster::start();

    // The tools and the demo where user nobody can run them; the jobs'
    // working directory writable by nobody.
    let bin = cluster.dir.join("bin");
    let work = cluster.dir.join("work");
    for d in [&bin, &work] {
        fs::create_dir(d).unwrap();
    }
    chmod(&work, 0o777);
    for name in ["ckpt-slurm", "ckpt", "restart", "libckpt.so"] {
        fs::copy(exe(name), bin.join(name)).unwrap();
    }
    fs::copy(demo("cli-count"), work.join("cli-count")).unwrap();

    let mut jobs = Vec::new();
    // Job A is README's recipe as written, but for its program, and for a
    // 1-minute limit given on the command line (which wins over #SBATCH).
    // Job B: periodic checkpoints too, as user nobody.
    let b_script = "#!/bin/bash\n\
                    #SBATCH --time=1 --signal=B:USR1@45 --requeue --open-mode=append\n\
                    exec ckpt-slurm -o b.dat -i 2 --keep 2 ./cli-count 132 500\n"
        .to_string();
    let specs = [
        ("a", readme_recipe("./cli-count 72 500"), 72, 1, vec!["sim.dat", "sim.dat.lock"], false),
        ("b", b_script, 132, 2, vec!["b.dat", "b.1.dat", "b.dat.lock"], true),
    ];
    for (name, text, steps, min_restarts, images, as_nobody) in specs {
        let script = cluster.dir.join(format!("{name}.sh"));
        fs::write(&script, text).unwrap();
        chmod(&script, 0o755);
        let (out, err) = (work.join(format!("{name}.out")), work.join(format!("{name}.err")));
        let mut args = vec![
            "--time=1".to_string(),
            "--signal=B:USR1@45".to_string(),
            format!("--job-name=ckpt-{name}"),
            format!("--chdir={}", work.display()),
            format!("--output={}", out.display()),
            format!("--error={}", err.display()),
        ];
        if as_nobody {
            args.extend(["--uid=65534".to_string(), "--gid=65534".to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = cluster.sbatch(&script, &bin, &args);
        let images = images.iter().map(|i| work.join(i)).collect();
        jobs.push(Job { name, id, steps, min_restarts, images, out, err });
    }

    // Until both end: a requeued job is started at once.
    let start = Instant::now();
    let mut finished: HashMap<String, HashMap<String, String>> = HashMap::new();
    while finished.len() < jobs.len() {
        assert!(start.elapsed() < JOB_LIMIT, "the jobs did not end within {JOB_LIMIT:?}");
        assert!(cluster.conf.exists(), "{} was removed during the test", cluster.conf.display());
        for j in &jobs {
            if finished.contains_key(&j.id) {
                continue;
            }
            let f = cluster.job(&j.id);
            let state = f.get("JobState").map(String::as_str).unwrap_or("");
            match state {
                "PENDING" if f.get("Reason").is_some_and(|r| r == "BeginTime") => {
                    let _ = cluster.client("scontrol", &["update", &format!("JobId={}", j.id), "StartTime=now"]);
                }
                "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL"
                | "DEADLINE" | "OUT_OF_MEMORY" => {
                    finished.insert(j.id.clone(), f);
                }
                _ => {} // pending, running, signaling, requeued...
            }
        }
        thread::sleep(Duration::from_millis(250));
    }

    for j in &jobs {
        let f = &finished[&j.id];
        let err = fs::read_to_string(&j.err).unwrap_or_default();
        let what = format!("job {} ({}), stderr:\n{err}", j.id, j.name);
        assert_eq!(f.get("JobState").map(String::as_str), Some("COMPLETED"), "{what}");
        assert_eq!(f.get("ExitCode").map(String::as_str), Some("0:0"), "{what}");
        let restarts: u32 = f.get("Restarts").and_then(|r| r.parse().ok()).unwrap_or(0);
        assert!(restarts >= j.min_restarts, "{what}\nrestarted {restarts} times, expected at least {}", j.min_restarts);
        let requeued = err.lines().filter(|l| l.starts_with("ckpt-slurm: ") && l.ends_with("; job requeued")).count();
        assert_eq!(requeued as u32, restarts, "{what}\none \"requeued\" line per restart");
        let restarted = err.lines().filter(|l| l.contains(": restarting from ")).count();
        assert_eq!(restarted as u32, restarts, "{what}\none \"restarting\" line per restart");

        let reference = Command::new(work.join("cli-count")).args([&j.steps.to_string(), "0"]).output().unwrap();
        assert!(reference.status.success());
        assert_same(&format!("output of {what}"), &read(&j.out), &reference.stdout);
        for image in &j.images {
            assert!(!image.exists(), "{what}\n{} is left after the program ended", image.display());
        }
    }
}

// What ckpt-slurm does on its own, without a cluster (any user): the
// warning's checkpoint, under --continue and --interval too, the restart
// from the job's image and the removal of the images at the end, a failed
// requeue, a foreign image, and a run outside a job.

/// `ckpt-slurm ARGS` in `dir` as if in job 7, with no scontrol on PATH.
fn ckpt_slurm(args: &[&str], dir: &TempDir) -> Command {
    let mut c = command(&exe("ckpt-slurm"), args, &dir.path);
    c.env("SLURM_JOB_ID", "7").env("PATH", "/nonexistent").env_remove("SLURM_RESTART_COUNT");
    c
}

/// A work directory with the demo in it (a link: a copy just written may
/// be "busy" for exec while another test thread forks).
fn work_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::os::unix::fs::symlink(demo("cli-count"), dir.join("cli-count")).unwrap();
    dir
}

fn reference(steps: &str) -> Vec<u8> {
    let o = Command::new(demo("cli-count")).args([steps, "0"]).output().unwrap();
    assert!(o.status.success());
    o.stdout
}

#[test]
fn warning_checkpoint_then_restart_from_the_job_image() {
    // The warning's checkpoint must stop the program under --continue and
    // --interval as well.
    for options in [&[][..], &["--continue"], &["-i", "300ms", "--keep", "2"]] {
        let dir = work_dir("slurm-alone");
        let mut args: Vec<&str> = vec!["-o", "job.dat"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["./cli-count", "40", "50"]);
        let what = format!("ckpt-slurm {args:?}");

        let mut run = spawn(&what, &mut ckpt_slurm(&args, &dir));
        run.wait_line(Stream::Stdout, |l| l.starts_with("step 8 "), "step 8");
        run.signal(libc::SIGUSR1); // as SLURM's --signal=B:USR1@T does
        let first = run.finish();
        // No scontrol here: the requeue fails, the image is kept.
        first.expect_code(1);
        let err = first.stderr_text();
        assert!(err.contains("USR1 from SLURM: checkpointing ./cli-count"), "{}", first.describe());
        assert!(err.contains("cannot run scontrol") && err.contains("the image is kept"), "{}", first.describe());
        assert!(dir.join("job.dat").is_file(), "{what}: the image is gone\n{}", first.describe());

        let mut again = ckpt_slurm(&args, &dir);
        again.env("SLURM_RESTART_COUNT", "1");
        let second = spawn(&what, &mut again).finish();
        second.expect_code(0);
        assert!(second.stderr_text().contains("(restart 1): restarting from "), "{}", second.describe());
        assert_same(&what, &cat(&[&first.stdout(), &second.stdout()]), &reference("40"));
        for image in ["job.dat", "job.1.dat"] {
            assert!(!dir.join(image).exists(), "{what}: {image} is left after the program ended");
        }
    }
}

#[test]
fn keep_images_keeps_them_and_the_status_is_the_programs() {
    let dir = work_dir("slurm-keep");
    // The program's status comes through: `false` exits 1.
    let o = spawn("ckpt-slurm false", &mut ckpt_slurm(&["-o", "job.dat", "/bin/false"], &dir)).finish();
    o.expect_code(1);
    let o = spawn(
        "ckpt-slurm --continue",
        &mut ckpt_slurm(&["--continue", "-o", "job.dat", "./cli-count", "3", "0"], &dir),
    )
    .finish();
    o.expect_code(0);
    assert_same("output", &o.stdout(), &reference("3"));
    // An image kept with --keep-images, restarted again: it is kept again.
    let mut run = spawn("ckpt-slurm", &mut ckpt_slurm(&["-o", "job.dat", "./cli-count", "20", "50"], &dir));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 2 "), "step 2");
    run.signal(libc::SIGUSR1);
    run.finish().expect_code(1);
    let before = read(&dir.join("job.dat"));
    let o = spawn(
        "ckpt-slurm --keep-images",
        &mut ckpt_slurm(&["--keep-images", "-o", "job.dat", "./cli-count", "20", "50"], &dir),
    )
    .finish();
    o.expect_code(0);
    assert!(read(&dir.join("job.dat")) == before, "--keep-images: the image should be kept as it was");

    // An image restart refuses (its last data byte changed): the job fails,
    // the image stays.
    let mut bad = before;
    *bad.last_mut().unwrap() ^= 0xff;
    fs::write(dir.join("job.dat"), &bad).unwrap();
    let o =
        spawn("ckpt-slurm, a corrupted image", &mut ckpt_slurm(&["-o", "job.dat", "./cli-count", "20", "50"], &dir))
            .finish();
    o.expect_code(1);
    assert!(o.stderr_text().contains("the images are kept"), "{}", o.describe());
    assert!(read(&dir.join("job.dat")) == bad, "a refused image must stay as it was");
}

#[test]
fn a_foreign_image_is_refused_untouched() {
    let dir = work_dir("slurm-foreign");
    // An image of the same program with other arguments.
    let mut run = spawn("ckpt", &mut command(&exe("ckpt"), &["-o", "job.dat", "./cli-count", "20", "50"], &dir.path));
    run.wait_line(Stream::Stdout, |l| l.starts_with("step 1 "), "step 1");
    run.checkpoint();
    run.finish().expect_code(ckpt_image::EXIT_CHECKPOINTED);
    fs::write(dir.join("junk.dat"), b"not an image").unwrap();
    for (image, why) in [("job.dat", "taken from another command"), ("junk.dat", "not a usable image")] {
        let before = read(&dir.join(image));
        let o = spawn("ckpt-slurm", &mut ckpt_slurm(&["-o", image, "./cli-count", "21", "50"], &dir)).finish();
        o.expect_code(1);
        let err = o.stderr_text();
        assert!(err.contains("cannot restart") && err.contains(why), "{}", o.describe());
        assert!(o.stdout().is_empty(), "the program must not have run\n{}", o.describe());
        assert!(read(&dir.join(image)) == before, "{image} was changed");
    }
}

#[test]
fn one_job_at_a_time_per_image() {
    let dir = work_dir("slurm-lock");
    let mut first =
        spawn("ckpt-slurm, first job", &mut ckpt_slurm(&["-o", "job.dat", "./cli-count", "30", "50"], &dir));
    first.wait_line(Stream::Stdout, |l| l.starts_with("step 1 "), "step 1");
    let mut c = ckpt_slurm(&["-o", "job.dat", "./cli-count", "30", "50"], &dir);
    c.env("SLURM_JOB_ID", "8");
    let second = spawn("ckpt-slurm, second job", &mut c).finish();
    second.expect_code(1);
    assert!(second.stderr_text().contains("is in use by job 7"), "{}", second.describe());
    assert!(second.stdout().is_empty(), "the second program must not have run\n{}", second.describe());
    let first = first.finish();
    first.expect_code(0);
    assert_same("the first job's output", &first.stdout(), &reference("30"));
    assert!(!dir.join("job.dat.lock").exists(), "the lock is left after the program ended well");
}

#[test]
fn outside_a_job_is_a_usage_error() {
    let dir = work_dir("slurm-nojob");
    let mut c = command(&exe("ckpt-slurm"), &["./cli-count", "1", "0"], &dir.path);
    c.env_remove("SLURM_JOB_ID");
    let o = spawn("ckpt-slurm outside a job", &mut c).finish();
    o.expect_code(2);
    assert!(o.stderr_text().contains("SLURM_JOB_ID is not set"), "{}", o.describe());
    assert!(o.stdout().is_empty());
}
