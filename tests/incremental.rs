//! Incremental checkpoints (`ckpt --incremental`): delta images that store
//! only what changed since the previous image and name it as their parent.
//!
//! The subject is demo/incr.c: it holds a state of some MiB, and for each
//! line on its stdin (read() into a page of its own: a write by the kernel
//! alone) rewrites about 2% of the state, maps or unmaps a buffer now and
//! then, and prints the step number and a hash of all of it. Between lines
//! it is blocked in read(), so a checkpoint taken then sees memory that
//! does not move, and a test knows exactly which input the program has
//! seen: the uninterrupted run (ckpt --continue) and a restart fed the same
//! lines must print the same.

mod common;

use ckpt_image::{Header, Meta, HEADER_SIZE};
use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// State of the subject, in MiB: big enough that a delta is clearly smaller
/// than a full image, small enough for a loaded machine.
const STATE_MIB: &str = "32";

/// The input line of step `k` (of a length that grows: stale bytes of an
/// older line would change the hash).
fn line(k: u32) -> String {
    format!("line {k} {}\n", "x".repeat(k as usize))
}

/// The subject running under `ckpt --continue --incremental OPTIONS`.
struct Subject {
    run: Run,
    image: PathBuf,
    /// The state's address and length, and the inbox page's address.
    state: (u64, u64),
    inbox: u64,
    step: u32,
}

impl Subject {
    fn start(tools: &Tools, work: &Path, options: &[&str]) -> Subject {
        Self::start_with(tools, work, options, &[])
    }

    /// As `start`, with more environment for the program.
    fn start_with(tools: &Tools, work: &Path, options: &[&str], env: &[(&str, &str)]) -> Subject {
        let mut opts = vec!["--continue", "--incremental"];
        opts.extend_from_slice(options);
        let image = work.join("myckpt.dat");
        // The demo beside the tools (copied for nobody), or where make puts it.
        let incr = Some(tools.bin("incr")).filter(|p| p.exists()).unwrap_or_else(|| demo("incr"));
        let mut cmd = tools.ckpt_with(&opts, Some(&image), &incr, &[STATE_MIB], work);
        cmd.stdin(Stdio::piped()).envs(env.iter().copied());
        let mut run = spawn("incr under ckpt --incremental", &mut cmd);
        let l = run.wait_line(Stream::Stdout, |l| l.starts_with("state "), "the state line").text();
        let f: Vec<u64> = l.split_whitespace().skip(1).map(|h| u64::from_str_radix(h, 16).unwrap()).collect();
        Subject { run, image, state: (f[0], f[1]), inbox: f[2], step: 0 }
    }

    /// Feeds the next line and waits for its step to be done (the program
    /// is then blocked reading the next one).
    fn step(&mut self) {
        self.step += 1;
        self.run.write_stdin(line(self.step).as_bytes());
        let want = format!("step {} hash ", self.step);
        self.run.wait_line(Stream::Stdout, |l| l.starts_with(&want), &want);
    }

    /// Checkpoints and waits for ckpt's line: Ok if written, Err(the line)
    /// if it failed.
    fn checkpoint(&mut self) -> Result<(), String> {
        self.run.checkpoint();
        let l = self.run.wait_line(Stream::Stderr, |l| l.starts_with("ckpt: checkpoint "), "ckpt's line").text();
        if l.starts_with("ckpt: checkpoint written") {
            Ok(())
        } else {
            Err(l)
        }
    }

    fn checkpoint_ok(&mut self) {
        if let Err(l) = self.checkpoint() {
            panic!("checkpoint failed: {l}");
        }
    }

    /// `n` steps, each followed by a checkpoint: a delta one link longer
    /// than the one before, on the full image `full` (the image now), and
    /// far smaller than it (about 2% of the pages changed).
    fn deltas(&mut self, n: u32, full: &Header) {
        for k in 1..=n {
            self.step();
            self.checkpoint_ok();
            let h = read_meta(&self.image).1;
            assert_eq!(h.chain_depth, k, "image {k} is a delta on {k} images");
            assert!(h.data_len * 2 < full.data_len, "delta {k} stores {} bytes of {}", h.data_len, full.data_len);
        }
    }

    /// Feeds steps up to `last`, closes stdin, and returns all the
    /// program printed (it exits 0).
    fn finish(mut self, last: u32) -> String {
        while self.step < last {
            self.step();
        }
        self.run.close_stdin();
        let o = self.run.finish();
        o.expect_code(0);
        o.stdout_text()
    }
}

/// What a run that saw steps `from..=last` printed, out of the whole
/// output of the uninterrupted run: those steps' lines, then "done".
fn steps(out: &str, from: u32, last: u32) -> Vec<u8> {
    let mut want = String::new();
    for k in from..=last {
        let head = format!("step {k} hash ");
        let l = out.lines().find(|l| l.starts_with(&head)).unwrap_or_else(|| panic!("no step {k} in\n{out}"));
        want.push_str(l);
        want.push('\n');
    }
    want.push_str("done\n");
    want.into_bytes()
}

/// The input of steps `from..=last`.
fn input(from: u32, last: u32) -> Vec<u8> {
    (from..=last).flat_map(|k| line(k).into_bytes()).collect()
}

/// Restarts `image` with the input of steps `from..=last`; its output.
fn restart_with(tools: &Tools, work: &Path, image: &Path, from: u32, last: u32) -> Outcome {
    run_with_input("restart of a delta image", &mut tools.restart(Some(image), work), &input(from, last))
}

/// Restarts the subject's image with the input of steps `from..=last`,
/// runs the subject itself on to `last`, and checks both print the same.
fn restart_matches(tools: &Tools, work: &Path, s: Subject, from: u32, last: u32, what: &str) {
    let o = restart_with(tools, work, &s.image, from, last);
    let out = s.finish(last);
    assert_same(what, &o.stdout(), &steps(&out, from, last));
}

/// The header and tables of an image (as root or its owner: the test reads it).
fn read_meta(image: &Path) -> (Vec<u8>, Header) {
    let bytes = fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    let h = Header::parse(&bytes[..HEADER_SIZE.min(bytes.len())], bytes.len() as u64).expect("a valid image");
    (bytes, h)
}

/// The `len` bytes of the program's memory at `addr` as `image` (and its
/// chain) hold them: pages no extent covers are zero.
fn memory(image: &Path, addr: u64, len: u64) -> Vec<u8> {
    let (bytes, h) = read_meta(image);
    let m = Meta::parse(&h, &bytes[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    let dir = image.parent().unwrap();
    let mut files = vec![fs::File::open(image).unwrap()];
    for p in m.parents() {
        let name = std::str::from_utf8(m.string(p.name).unwrap()).unwrap();
        files.push(fs::File::open(dir.join(name)).unwrap_or_else(|e| panic!("parent {name}: {e}")));
    }
    let mut out = vec![0u8; len as usize];
    for x in (0..h.n_extents as usize).map(|i| m.extent(i)) {
        let (start, end) = (x.addr.max(addr), (x.addr + x.len).min(addr + len));
        if start < end {
            let dst = &mut out[(start - addr) as usize..(end - addr) as usize];
            files[x.source as usize].read_exact_at(dst, x.file_pos + (start - x.addr)).unwrap();
        }
    }
    out
}

/// `readckpt --json IMAGE`'s chain: the parents' names, nearest first.
fn chain(image: &Path) -> Vec<String> {
    let (bytes, h) = read_meta(image);
    let m = Meta::parse(&h, &bytes[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    m.parents().iter().map(|p| String::from_utf8_lossy(m.string(p.name).unwrap()).into_owned()).collect()
}

fn readckpt(tools: &Tools, work: &Path, args: &[&str]) -> Outcome {
    let mut cmd = tools.cmd(&tools.bin("readckpt"), args, work);
    run_with_input("readckpt", &mut cmd, b"")
}

/// A chain of ten deltas on a full image, taken at steps 0..=10; at the
/// same moment as the last delta, a full image (`--max-chain 10` makes the
/// eleventh image full; `--keep 2` keeps the delta as myckpt.1.dat). Both
/// hold the same memory, byte for byte, and both restart to the output the
/// uninterrupted run goes on to print.
fn chain_of_ten(tools: &Tools, work: &Path) {
    let mut s = Subject::start(tools, work, &["--max-chain", "10", "--keep", "2"]);
    s.checkpoint_ok();
    let full = read_meta(&s.image).1;
    assert_eq!(full.chain_depth, 0, "the first image is a full one");
    s.deltas(10, &full);
    s.checkpoint_ok();
    let delta = work.join("myckpt.1.dat");
    assert_eq!(read_meta(&s.image).1.chain_depth, 0, "--max-chain 10: the eleventh image is full");
    assert_eq!(chain(&delta).len(), 10, "the kept image is the tenth delta");
    for (what, addr, len) in [("state", s.state.0, s.state.1), ("inbox (written by read())", s.inbox, 4096)] {
        let (a, b) = (memory(&delta, addr, len), memory(&s.image, addr, len));
        assert!(a == b, "the chain and the full image differ in the {what}");
    }
    let o = readckpt(tools, work, &["--verify", delta.to_str().unwrap()]);
    o.expect_code(0);
    assert!(o.stdout_text().contains("chain       a delta on 10 images:"), "{}", o.describe());
    let want = steps(&s.finish(13), 11, 13);
    for image in [&delta, &work.join("myckpt.dat")] {
        let o = restart_with(tools, work, image, 11, 13);
        o.expect_code(0);
        assert_same(&format!("restart of {}", image.display()), &o.stdout(), &want);
    }
}

#[test]
fn chain_of_ten_deltas_restarts_byte_for_byte() {
    let work = TempDir::new("incr-chain");
    chain_of_ten(&Tools::new(), &work.path);
}

#[test]
fn chain_of_ten_deltas_as_nobody() {
    let (_bins, tools, work) = unprivileged("incr-nobody", &[&demo("incr")]);
    chain_of_ten(&tools, &work.path);
}

/// The subject with a full image (step 0) and one delta on it (step 1).
fn with_one_delta(tools: &Tools, work: &Path) -> Subject {
    let mut s = Subject::start(tools, work, &[]);
    s.checkpoint_ok();
    s.step();
    s.checkpoint_ok();
    s
}

/// A chain of a full image and two deltas, the program then ended.
fn short_chain(tools: &Tools, work: &Path) -> Vec<u8> {
    let mut s = with_one_delta(tools, work);
    s.step();
    s.checkpoint_ok();
    steps(&s.finish(4), 3, 4)
}

#[test]
fn a_missing_or_changed_parent_is_refused() {
    let tools = Tools::new();
    let work = TempDir::new("incr-links");
    let want = short_chain(&tools, &work.path);
    let image = work.join("myckpt.dat");
    let links = chain(&image);
    assert_eq!(links.len(), 2, "{links:?}");
    let good = restart_with(&tools, &work.path, &image, 3, 4);
    good.expect_code(0);
    assert_same("restart of the chain", &good.stdout(), &want);

    // The nearest parent missing.
    let parent = work.join(&links[0]);
    let aside = work.join("aside");
    fs::rename(&parent, &aside).unwrap();
    let missing = format!("parent 1 of 2 in the chain, {}, is missing", links[0]);
    let refused = |tools: &Tools| run_with_input("restart", &mut tools.restart(Some(&image), &work.path), b"");
    assert_refused(&refused(&tools), 1, &["restart: ", &missing]);
    let o = readckpt(&tools, &work.path, &["--verify", image.to_str().unwrap()]);
    assert_refused(&o, 1, &["readckpt: ", &missing]);
    fs::rename(&aside, &parent).unwrap();

    // The full image at the end of the chain replaced by another image (a
    // valid one: the nearest parent itself).
    let root = work.join(&links[1]);
    fs::rename(&root, &aside).unwrap();
    fs::copy(&parent, &root).unwrap();
    chmod(&root, 0o600);
    let changed = format!("parent 2 of 2 in the chain, {}, has changed", links[1]);
    assert_refused(&refused(&tools), 1, &["restart: ", &changed]);
    fs::rename(&aside, &root).unwrap();
    restart_with(&tools, &work.path, &image, 3, 4).expect_code(0);
}

/// A delta that cannot be written (the program's RLIMIT_FSIZE is too
/// small for it) leaves the chain as it was, which restarts; the next
/// delta, with the limit back, is right too.
#[test]
fn a_failed_delta_leaves_the_previous_chain() {
    let tools = Tools::new();
    let work = TempDir::new("incr-fail");
    let mut s = with_one_delta(&tools, &work.path);
    let files_before = listing(&work.path);
    s.step();
    let pid = s.run.pid;
    let limit = |bytes: u64| {
        let l = libc::rlimit { rlim_cur: bytes, rlim_max: libc::RLIM_INFINITY };
        // SAFETY: prlimit on our own child, with a valid rlimit.
        let r = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &l, std::ptr::null_mut()) };
        assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    };
    limit(64 << 10);
    let failed = s.checkpoint().expect_err("a delta larger than RLIMIT_FSIZE cannot be written");
    assert!(failed.contains("any previous image is unchanged"), "{failed}");
    assert_eq!(listing(&work.path), files_before, "the failed delta changed the image's files");
    limit(libc::RLIM_INFINITY);
    // The chain as it was: it restarts at step 1.
    let o = restart_with(&tools, &work.path, &s.image, 2, 4);
    o.expect_code(0);
    // The next delta (the kernel's record was spent on the failed one: it
    // compares memory instead) is right as well.
    s.step();
    s.checkpoint_ok();
    assert_eq!(read_meta(&s.image).1.chain_depth, 2);
    let later = restart_with(&tools, &work.path, &s.image, 4, 6);
    let out = s.finish(6);
    assert_same("restart of the chain the failed delta left", &o.stdout(), &steps(&out, 2, 4));
    assert_same("restart of the next delta", &later.stdout(), &steps(&out, 4, 6));
}

/// In a job (`--tree`, the default) that is the program alone at each
/// checkpoint, the images are deltas as for one process, and the chain
/// restarts to what the program goes on to print.
#[test]
fn a_job_of_one_process_writes_deltas() {
    let tools = Tools::new();
    let work = TempDir::new("incr-tree");
    let mut s = Subject::start(&tools, &work.path, &["--tree"]);
    s.checkpoint_ok();
    let full = read_meta(&s.image).1;
    assert_eq!(full.chain_depth, 0, "the first image is a full one");
    s.deltas(2, &full);
    let o = restart_with(&tools, &work.path, &s.image, 3, 4);
    o.expect_code(0);
    let out = s.finish(4);
    assert_same("restart of the job's chain", &o.stdout(), &steps(&out, 3, 4));
}

/// The image's directory: names and sizes, sorted.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len())
        })
        .collect();
    v.sort();
    v
}

/// `--max-chain 2`: after two deltas a full image, and the files of the
/// old chain are removed (no kept image names them).
#[test]
fn max_chain_bounds_the_chain_and_drops_the_old_one() {
    let tools = Tools::new();
    let work = TempDir::new("incr-max");
    let mut s = Subject::start(&tools, &work.path, &["--max-chain", "2"]);
    let mut depths = Vec::new();
    for _ in 0..5 {
        s.checkpoint_ok();
        depths.push(read_meta(&s.image).1.chain_depth);
        let files = listing(&work.path).len();
        assert_eq!(files, 1 + depths.last().copied().unwrap() as usize, "{:?}", listing(&work.path));
        s.step();
    }
    assert_eq!(depths, [0, 1, 2, 0, 1]);
    restart_matches(&tools, &work.path, s, 5, 6, "restart after --max-chain");
}

/// A program with a userfaultfd of its own is not tracked (its
/// registrations and ckpt's would collide): ckpt says so once, and the
/// deltas compare memory with the previous image instead. They are as
/// small, and as right.
#[test]
fn a_program_using_userfaultfd_gets_compared_deltas() {
    let tools = Tools::new();
    let work = TempDir::new("incr-uffd");
    let mut s = Subject::start_with(&tools, &work.path, &[], &[("INCR_UFFD", "1")]);
    s.checkpoint_ok();
    s.deltas(3, &read_meta(&s.image).1);
    let said: Vec<String> = s.run.lines.iter().filter(|l| l.stream == Stream::Stderr).map(|l| l.text()).collect();
    let named = said.iter().filter(|l| l.contains("--incremental: the program uses userfaultfd itself")).count();
    assert_eq!(named, 1, "one line names the fallback, once: {said:?}");
    restart_matches(&tools, &work.path, s, 4, 5, "restart of compared deltas");
}

/// A restarted program goes on writing deltas on the image it came from:
/// the first one compares memory (the kernel's tracking belonged to the
/// process that ended), the next ones are tracked again; the chain
/// restarts to what an uninterrupted run prints.
#[test]
fn deltas_go_on_after_a_restart() {
    let tools = Tools::new();
    let work = TempDir::new("incr-again");
    let s = with_one_delta(&tools, &work.path);
    let image = s.image.clone();
    drop(s); // killed: only its images remain

    let mut cmd = tools.restart(Some(&image), &work.path);
    cmd.stdin(Stdio::piped());
    let mut again =
        Subject { run: spawn("restarted incr", &mut cmd), image: image.clone(), state: (0, 0), inbox: 0, step: 1 };
    for depth in 2..=3 {
        again.step();
        again.checkpoint_ok();
        assert_eq!(read_meta(&image).1.chain_depth, depth);
    }
    let said: Vec<String> = again.run.lines.iter().map(|l| l.text()).collect();
    assert!(!said.iter().any(|l| l.contains("userfaultfd")), "the tracker's descriptor is never named: {said:?}");
    drop(again);

    let o = restart_with(&tools, &work.path, &image, 4, 5);
    let reference =
        run_with_input("incr uninterrupted", &mut command(&demo("incr"), &[STATE_MIB], &work.path), &input(1, 5));
    reference.expect_code(0);
    assert_same("restart of deltas written after a restart", &o.stdout(), &steps(&reference.stdout_text(), 4, 5));
}

/// The kernel mechanism --incremental builds on, as an ordinary user
/// (demo/wp-probe.c): registering for asynchronous write protection needs
/// no privilege, a scan reports exactly the pages written since the last
/// one — by the program, or by the kernel in a read() — and protects them
/// again; a page dropped and read back (the zero page) is reported too.
/// Where the kernel cannot, ckpt falls back to comparing (tested above by
/// a program that holds a userfaultfd): here a skip line.
#[test]
fn the_kernel_tracks_writes_for_an_ordinary_user() {
    let (_bins, tools, work) = unprivileged("incr-probe", &[&demo("wp-probe")]);
    let o = run_with_input("wp-probe", &mut tools.cmd(&tools.bin("wp-probe"), &[], &work.path), b"");
    let out = o.stdout_text();
    if o.status.code() == Some(2) && out.starts_with("unsupported: ") {
        eprintln!("skipped: this kernel has no asynchronous write protection: {out}");
        return;
    }
    o.expect_code(0);
    assert!(
        out.contains("anon private: first 64, clean 0, written 3, again 0, dropped 1\n"),
        "private anonymous memory, which ckpt tracks:\n{out}"
    );
}
