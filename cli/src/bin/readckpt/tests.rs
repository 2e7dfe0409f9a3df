use crate::describe::*;
use crate::*;
use ckpt_image::sample::Sample;
use ckpt_image::{bytes_of, checksum, FileId, ITimer, SigAction, StrRef, HEADER_SPACE, PAGE_SIZE};
use ckpt_image::{Fd, FdKind, Region, RegionKind, Thread, NLIMITS, REGION_GROWSDOWN, REGION_SHARED};
use ckpt_image::{PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use core::mem::offset_of;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[path = "../../../../tests/common/json_shape.rs"]
mod json_shape;

const BASE: u64 = 0x5555_0000_0000;
const STACK: u64 = 0x7ffd_0000_0000;
const P: u64 = PAGE_SIZE;

/// One region of the sample: start, pages, prot, flags, kind, path, and
/// its extents as (first page, pages).
type Spec = (u64, u64, u32, u32, RegionKind, &'static [u8], &'static [(u64, u64)]);

const SPECS: [Spec; 7] = [
    (BASE, 4, 5, 0, RegionKind::File, b"/usr/bin/prog", &[(0, 4)]),
    (BASE + 8 * P, 8, 3, 0, RegionKind::Heap, b"", &[(1, 1), (4, 2)]),
    (0x7f00_0000_0000, 2, 3, REGION_SHARED, RegionKind::File, b"/dev/shm/x y", &[(0, 2)]),
    (0x7f00_0001_0000, 2, 3, 0, RegionKind::Workspace, b"", &[]),
    (STACK - 16 * P, 16, 3, REGION_GROWSDOWN, RegionKind::Stack, b"", &[(12, 4)]),
    (STACK + 0x1000_0000, 4, 1, 0, RegionKind::Vvar, b"", &[]),
    (STACK + 0x1000_4000, 2, 5, 0, RegionKind::Vdso, b"", &[]),
];
const CMDLINE: &[u8] = b"/usr/bin/prog\0two words\0it's\0\0\x1bx\0";

/// What the first region's file was.
const PROG_ID: FileId = FileId { dev: 0x803, ino: 1_234_567, size: 16 * P, mtime_ns: 1_690_000_000_000_000_001 };

/// One descriptor of the sample: fd, kind, F_GETFL, F_GETFD, offset,
/// path, pipe contents.
type FdSpec = (i32, FdKind, i32, i32, u64, &'static [u8], &'static [u8]);

const FDS: [FdSpec; 6] = [
    (0, FdKind::CharDev, libc::O_RDWR, 0, 0, b"/dev/pts/3", b""),
    (1, FdKind::File, libc::O_WRONLY | libc::O_APPEND | 0o100000, libc::FD_CLOEXEC, 1234, b"/tmp/out put.txt", b""),
    (3, FdKind::PipeRead, libc::O_NONBLOCK, 0, 0, b"pipe:[77]", b"hello\n"),
    (4, FdKind::PipeWrite, libc::O_WRONLY, 0, 0, b"pipe:[77]", b""),
    (5, FdKind::Dir, libc::O_DIRECTORY, libc::FD_CLOEXEC, 48, b"/tmp", b""),
    (7, FdKind::Lost, libc::O_RDWR, 0, 0, b"socket:[4242]", b""),
];

/// A small valid image with every kind of thing readckpt shows.
/// The XCR0 the sample records for the CPU it was "taken" on (an Intel
/// with AVX-512 and PKRU): data shown by readckpt, never this machine's.
const SAMPLE_XCR0: u64 = xstate::FPSSE | xstate::AVX | xstate::AVX512 | xstate::PKRU;

fn sample() -> Vec<u8> {
    sample_with(|_| {})
}

/// The sample, with `edit` applied to its header before it is laid out.
fn sample_with(edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut s = sample_builder();
    edit(&mut s.header);
    s.build()
}

/// The sample, a delta on the image `parent` (beside it): its first
/// extent is the parent's first.
fn delta_on(parent: &Temp) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let file = std::fs::read(&parent.0).unwrap();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let meta = Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    let from = meta.extents().next().unwrap();
    let mut s = sample_builder();
    let name = s.string(parent.0.file_name().unwrap().as_bytes());
    s.header.chain_depth = 1;
    s.header.parents[0] = ckpt_image::Parent { id: h.header_checksum, file_len: h.file_len, name };
    let x = &mut s.extents_mut()[0];
    (x.source, x.file_pos, x.checksum) = (1, from.file_pos, from.checksum);
    (x.stored_len, x.encoding) = (from.stored_len, from.encoding);
    s.build()
}

/// A job image (`ckpt --tree`) of three members: the sample as pid 1000
/// and 1001, a zombie 1002 between them; a pipe from 1000 to 1001 with
/// bytes waiting, a file both hold (one open file description: its fd 1),
/// a directory only 1000 holds, and a mapping both share.
fn job_sample() -> Vec<u8> {
    use ckpt_image::job::{JobHeader, Link, Member, SharedMap, LINK_FILE, LINK_PIPE, MEMBER_ZOMBIE};
    let image = sample();
    let mut strings = b"sh\0-c\0x | y\0sleep\x001\0hi\n".to_vec();
    let str_ref = |offset: u32, len: u32| StrRef { offset, len };
    let mut h = JobHeader::new(3, 5, 2, 0);
    let first = h.members_offset();
    let second = first + ckpt_image::page_up(image.len() as u64);
    let member = |pid, offset, command| Member {
        pid,
        ppid: 1,
        pgid: 1000,
        sid: 1000,
        offset,
        len: image.len() as u64,
        command,
        ..Member::default()
    };
    let zombie =
        Member { state: MEMBER_ZOMBIE, wait_status: 0x100, offset: 0, len: 0, ..member(1002, 0, str_ref(12, 8)) };
    let members = [member(1000, first, str_ref(0, 12)), zombie, member(1001, second, str_ref(12, 8))];
    let link = |member, fd, data| Link { member, fd, description: 1, channel: 1, kind: LINK_PIPE, flags: 0, data };
    let file = |member, fd, description| Link { member, fd, description, kind: LINK_FILE, ..Link::default() };
    let links = [link(0, 4, str_ref(0, 0)), link(2, 3, str_ref(20, 3)), file(0, 1, 2), file(2, 1, 2), file(0, 5, 3)];
    let map = |member| SharedMap { member, object: 1, start: BASE, end: BASE + 4 * P, offset: 0 };
    let shared = [map(0), map(2)];
    let mut table = Vec::new();
    members.iter().for_each(|m| table.extend_from_slice(bytes_of(m)));
    links.iter().for_each(|l| table.extend_from_slice(bytes_of(l)));
    shared.iter().for_each(|m| table.extend_from_slice(bytes_of(m)));
    table.append(&mut strings);
    h.strings_len = table.len() as u64 - (h.table_len() - h.strings_len);
    (h.file_len, h.table_checksum) = (second + image.len() as u64, checksum(&table));
    h.header_checksum = h.compute_checksum();
    let mut file = vec![0u8; h.file_len as usize];
    file[..ckpt_image::job::JOB_HEADER_SIZE].copy_from_slice(bytes_of(&h));
    file[ckpt_image::job::JOB_HEADER_SIZE..][..table.len()].copy_from_slice(&table);
    for at in [first, second] {
        file[at as usize..][..image.len()].copy_from_slice(&image);
    }
    file
}

/// The sample's builder, everything set.
fn sample_builder() -> Sample {
    let mut s = Sample::new();
    for (i, &(start, pages, prot, flags, kind, path, extents)) in SPECS.iter().enumerate() {
        let r = s.region(start, pages, prot, kind, path, extents);
        r.flags = flags;
        if i == 0 {
            r.file = PROG_ID;
        }
    }
    for &(fd, kind, flags, fd_flags, offset, path, data) in &FDS {
        let f = s.fd(fd, kind, flags as u32, path, data);
        (f.fd_flags, f.offset, f.size, f.dev, f.ino) = (fd_flags as u32, offset, 100, 0x803, 1000 + fd as u64);
        (f.mtime_ns, f.mode) = (1_690_000_000_000_000_000, 0o100644);
        f.pipe = if path.starts_with(b"pipe:") { 77 } else { 0 };
    }
    let thread = |s: &mut Sample, tid, ucontext, comm: &[u8], pending| {
        let t = s.thread(tid, ucontext);
        (t.tid_offset, t.fs_base, t.rseq_area, t.rseq_len, t.rseq_sig) =
            (0x2d0, 0x7f00_0000_0740, 0x7f00_0000_0fe0, 32, 0x5305_3053);
        (t.robust_len, t.sigmask, t.pending, t.fpstate, t.xstate_bv) = (24, 1 << 9, pending, ucontext + 0x140, 0x7);
        t.gregs = core::array::from_fn(|i| 0x1000 + i as u64);
        t.comm[..comm.len()].copy_from_slice(comm);
    };
    thread(&mut s, 1001, BASE + 13 * P, b"worker\x01", 1 << 11);
    thread(&mut s, 1000, STACK - 2 * P, b"prog", 0);
    s.sigaction(2, SigAction { handler: BASE + 0x1234, flags: 0x0400_0004, restorer: BASE + 0x99, mask: 1 << 1 });
    s.sigaction(13, SigAction { handler: 1, ..SigAction::default() });
    s.sigaction(33, SigAction { handler: BASE + 0x2000, flags: 0x0c00_0004, restorer: 0, mask: 1 << 63 });
    let (cmdline, cwd, exe) = (s.string(CMDLINE), s.string(b"/tmp/dir \"q\""), s.string(b"/usr/bin/prog"));
    let h = &mut s.header;
    (h.leader, h.cmdline, h.cwd, h.exe) = (1, cmdline, cwd, exe);
    (h.created_ns, h.capture_ns, h.pid) = (1_700_000_000_123_456_789, 2_345_678, 1000);
    // The CPU it was taken on had AVX-512 (recorded, for display); the
    // program used only x87 and SSE and was held to baseline x86-64, so
    // every x86-64 CPU can take it (--verify checks the running one).
    (h.xfeatures, h.xsave_size, h.umask) = (SAMPLE_XCR0, 2696, 0o22);
    (h.required_xfeatures, h.cpu_level, h.portable_level) = (0x3, 4, 1);
    h.cpu_brand[..8].copy_from_slice(b"Test CPU");
    h.comm[..4].copy_from_slice(b"prog");
    (h.mm.start_code, h.mm.end_code, h.mm.start_brk, h.mm.brk) = (BASE, BASE + 4 * P, BASE + 8 * P, BASE + 16 * P);
    let p = &mut h.process;
    p.valid = PROCESS_ITIMERS | PROCESS_RLIMITS | PROCESS_PENDING | PROCESS_PRCTL;
    p.itimers[0] = ITimer { interval_ns: 250_000_000, value_ns: 1_500_000_000 };
    p.itimers[2] = ITimer { interval_ns: 0, value_ns: 3_000_000_001 };
    p.rlimits = [[u64::MAX; 2]; NLIMITS];
    p.rlimits[3] = [8 << 20, u64::MAX];
    p.rlimits[4] = [0, u64::MAX];
    p.rlimits[7] = [1024, 4096];
    p.pending = 1 << 9 | 1 << 14;
    (p.pdeathsig, p.dumpable, p.child_subreaper) = (15, 1, 0);
    s
}

/// `READCKPT_SAMPLE=/tmp/x.dat cargo test -p ckpt-cli --bin readckpt -- --ignored`
/// writes the sample image, to try readckpt by hand.
#[test]
#[ignore]
fn write_sample() {
    let path = std::env::var_os("READCKPT_SAMPLE").expect("READCKPT_SAMPLE=path");
    std::fs::write(path, sample()).unwrap();
}

/// A file in the temporary directory, removed when dropped.
struct Temp(PathBuf);
impl Temp {
    fn new(contents: &[u8]) -> Temp {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("readckpt-test-{}-{n}.dat", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Temp(path)
    }
    fn arg(&self) -> OsString {
        self.0.clone().into_os_string()
    }
}
impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs readckpt: (status, stdout, stderr).
fn readckpt(args: &[OsString]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(args, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

fn on(opts: &[&str], image: &Temp) -> (i32, String, String) {
    let mut args: Vec<OsString> = opts.iter().map(OsString::from).collect();
    args.push(image.arg());
    readckpt(&args)
}

/// Runs on a broken image: status 1, nothing on stdout, one stderr line.
fn refused(contents: &[u8]) -> String {
    let t = Temp::new(contents);
    let (code, out, err) = on(&[], &t);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    let prefix = format!("readckpt: {}: ", t.0.display());
    assert!(err.starts_with(&prefix) && err.ends_with('\n') && err.lines().count() == 1, "{err:?}");
    err[prefix.len()..err.len() - 1].to_string()
}

#[test]
fn text_output() {
    let t = Temp::new(&sample());
    let (code, out, err) = on(&[], &t);
    assert_eq!((code, err.as_str()), (0, ""));
    for want in [
        "format      version 3, x86-64, page size 4096\n",
        "compression none\n",
        "created     2023-11-14T22:13:20.123Z\n",
        "capture     2.346 ms\n",
        "pid         1000\n",
        "command     /usr/bin/prog 'two words' 'it'\\''s' '' $'\\x1bx'\n",
        "cwd         /tmp/dir \"q\"\n",
        "comm        prog\n",
        "umask       0022\n",
        &format!("cpu         Test CPU (x86-64-v4)\nxfeatures   {SAMPLE_XCR0:#x} (x87 SSE AVX AVX-512 PKRU)\n"),
        "requires    0x3 (x87 SSE), x86-64; held to x86-64 by ckpt --portable\n",
        "  brk       0x555500008000-0x555500010000\n",
        "threads (2; * wrote the image)\n",
        "   TID     NAME             RIP            RSP            RFLAGS   FS_BASE        RSEQ               UCONTEXT       SIGMASK            XINUSE PENDING\n",
        "  *1000    prog             0x000000001010 0x00000000100f 0x1011   0x7f0000000740 0x7f0000000fe0+32  0x7ffcffffe000 0x200              0x3    -\n",
        "   1001    worker\\x01       0x000000001010 ",
        " 0x55550000d000 0x200              0x3    0x800 (SIGUSR2)\n",
        "file        65536 bytes (64.0K)\n",
        "\nprocess\n  timer real        1.5 s, then every 0.25 s\n  timer prof        3.000000001 s, once\n",
        "  rlimit STACK      8388608 / unlimited\n  rlimit CORE       0 / unlimited\n  rlimit NOFILE     1024 / 4096\n",
        "  pending           SIGUSR1 SIGTERM (0x4200)\n",
        "  pdeathsig         SIGTERM (15)\n  dumpable          1\n  child subreaper   no\n\nthreads",
        "\nfiles (6, 1 not restored)\n",
        "      FD  KIND     FLAGS                                OFFSET  PATH\n",
        "       0  chardev  rdwr                                      -  /dev/pts/3\n",
        "       1  file     wronly,append,cloexec                  1234  /tmp/out put.txt\n",
        "       3  pipe-r   rdonly,nonblock                           -  pipe:[77] (6 bytes held)\n",
        "       4  pipe-w   wronly                                    -  pipe:[77]\n",
        "       5  dir      rdonly,cloexec                           48  /tmp\n",
        "       7  lost     rdwr                                      -  socket:[4242]  NOT RESTORED (becomes /dev/null)\n",
        "  SIGINT (2)       handler 0x555500001234   flags 0x04000004  mask 0x2\n",
        "  SIGPIPE (13)     handler IGN",
        "  signal 33 (33)  ",
        "  555500000000-555500004000 r-xp file           16.0K    16.0K  /usr/bin/prog\n",
        "  555500008000-555500010000 rw-p heap           32.0K    12.0K\n",
        "  7f0000000000-7f0000002000 rw-s file            8.0K     8.0K  /dev/shm/x y\n",
        " rw-p ckpt            8.0K       0B\n",
        " rw-p stack          64.0K    16.0K  (grows down)\n",
        " r--p vvar ",
        " r-xp vdso ",
        "  total: 7 regions, 5 extents, 52.0K stored of 152.0K mapped (53248 bytes)\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("SIGQUIT") && !out.contains("verify"));
    // No timer "virtual" (disarmed), no limit that is unlimited/unlimited.
    assert!(!out.contains("virtual") && !out.contains("rlimit CPU"), "{out}");
}

/// Only the process fields whose `valid` bit is set are shown.
#[test]
fn process_state_only_when_recorded() {
    let t = Temp::new(&sample_with(|h| h.process.valid = 0));
    let (code, out, _) = on(&[], &t);
    assert_eq!(code, 0);
    assert!(out.contains("\nprocess\n  (not recorded)\n\nthreads"), "{out}");
    let v = parse(&on(&["--json"], &t).1);
    assert_eq!(v["process"], json!({"valid": "0x0"}));

    let t = Temp::new(&sample_with(|h| {
        h.process.valid = PROCESS_PENDING;
        h.process.pending = 0;
    }));
    let out = on(&[], &t).1;
    assert!(out.contains("\nprocess\n  pending           none\n\nthreads"), "{out}");
    let v = parse(&on(&["--json"], &t).1);
    let keys: Vec<&str> = v["process"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["valid", "pending"]);

    let t = Temp::new(&sample_with(|h| {
        h.process.valid = PROCESS_ITIMERS | PROCESS_RLIMITS;
        h.process.itimers = Default::default();
        h.process.rlimits = [[u64::MAX; 2]; NLIMITS];
    }));
    let out = on(&[], &t).1;
    assert!(
        out.contains("\nprocess\n  timers            none armed\n  rlimits           all unlimited\n\nthreads"),
        "{out}"
    );
}

/// Recomputes the metadata and header checksums of an edited image.
fn reseal(file: &mut [u8]) {
    let mut h: Header = ckpt_image::read_at(file, 0).unwrap();
    let meta = HEADER_SPACE as usize..(HEADER_SPACE + h.meta_len) as usize;
    h.meta_checksum = checksum(&file[meta]);
    h.header_checksum = h.compute_checksum();
    file[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
}

/// Offset in the sample file of field `at` of its fd table entry `i`.
fn fd_field(file: &[u8], i: usize, at: usize) -> usize {
    let h = Header::parse(file, file.len() as u64).unwrap();
    let l = ckpt_image::MetaLayout::of(&h);
    let table = HEADER_SPACE as usize + l.regions + l.extents + l.threads + l.sigactions;
    table + i * core::mem::size_of::<Fd>() + at
}

#[test]
fn bad_fd_records_are_refused() {
    let file = sample();
    let mut resealed = file.clone();
    reseal(&mut resealed);
    assert_eq!(resealed, file);
    let cases = [
        (offset_of!(Fd, kind), 7u32.to_le_bytes()),
        (offset_of!(Fd, fd), (-1i32).to_le_bytes()),
        (offset_of!(Fd, path), 1_000_000u32.to_le_bytes()),
    ];
    let messages = [
        "the image has an invalid file descriptor record",
        "the image has an invalid file descriptor record",
        "the image has an invalid string reference",
    ];
    for ((at, bytes), want) in cases.into_iter().zip(messages) {
        let mut bad = file.clone();
        let i = fd_field(&file, 2, at);
        bad[i..i + 4].copy_from_slice(&bytes);
        reseal(&mut bad);
        assert_eq!(refused(&bad), want);
    }
}

/// --verify says whether restart would take the image on this CPU: it
/// refuses one that uses a register component this CPU lacks, or was held
/// to a higher x86-64 level than this CPU's, naming it.
#[test]
fn verify_checks_this_cpu() {
    let have = ckpt_sys::cpu::xcr0();
    // A component this CPU lacks, given room in the recorded layout.
    let missing = [17u32, 18, 9, 7, 6, 5, 2].into_iter().find(|&b| have & (1 << b) == 0);
    match missing {
        Some(bit) => {
            let t = Temp::new(&sample_with(|h| {
                h.required_xfeatures |= 1 << bit;
                h.xlayout.comps[bit as usize] = xstate::Component { offset: 4096, size: 64 };
            }));
            let (code, _, err) = on(&["--verify"], &t);
            let name = xstate::names(1 << bit).next().unwrap();
            assert_eq!(code, 1, "{err}");
            assert!(err.contains("this CPU lacks register state the program uses") && err.contains(name), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        None => println!("skip: this CPU has every XSAVE component (XCR0 {have:#x})"),
    }
    let level = ckpt_sys::cpu::level();
    if level < 4 {
        let t = Temp::new(&sample_with(|h| h.portable_level = level + 1));
        let (code, _, err) = on(&["--verify"], &t);
        assert_eq!(code, 1, "{err}");
        let want = format!(
            "ckpt --portable={} but this CPU is only {}",
            xstate::level_name(level + 1),
            xstate::level_name(level)
        );
        assert!(err.contains(&want), "{err}");
    } else {
        println!("skip: this CPU is x86-64-v4, no image can be held above it");
    }
}

#[test]
fn verify_good_and_bad() {
    let file = sample();
    let t = Temp::new(&file);
    let (code, out, err) = on(&["--verify"], &t);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.ends_with("verify: OK, all 5 extents (52.0K) match their checksums\n"), "{out}");
    // Corrupt the first byte of the stack's extent (the fifth, region 4).
    let mut bad = file.clone();
    let data_offset = Header::parse(&file, file.len() as u64).unwrap().data_offset as usize;
    bad[data_offset + (4 + 1 + 2 + 2) as usize * P as usize] ^= 1;
    let t = Temp::new(&bad);
    let (code, out, err) = on(&["--verify"], &t);
    assert_eq!(code, 1);
    assert!(out.contains("verify: FAILED: extent 4 (0x7ffcffffc000-0x7ffd00000000, region 4"), "{out}");
    assert!(err.ends_with(": extent 4 at 0x7ffcffffc000 (region 4) is corrupted (checksum mismatch)\n"), "{err}");
    // Without --verify the data is not read.
    assert_eq!(on(&[], &t).0, 0);
    let (code, out, _) = on(&["--json", "--verify"], &t);
    assert_eq!(code, 1);
    let v = parse(&out);
    assert_eq!(v["verify"]["ok"], json!(false));
    assert_eq!(v["verify"]["extent"], json!(4));
}

#[test]
fn json_output() {
    let t = Temp::new(&sample());
    let (code, out, err) = on(&["--json", "--verify"], &t);
    assert_eq!((code, err.as_str()), (0, ""));
    let v = parse(&out);
    let num = |n: u64| json!(n);
    let s = |s: &str| json!(s);
    assert_eq!(v["schema"], num(1));
    assert_eq!(v["file"], s(t.0.to_str().unwrap()));
    assert_eq!(v["created_ns"], num(1_700_000_000_123_456_789));
    assert_eq!(v["created"], s("2023-11-14T22:13:20.123Z"));
    let argv = ["/usr/bin/prog", "two words", "it's", "", "\x1bx"];
    assert_eq!(v["argv"], json!(argv));
    assert_eq!(v["cwd"], s("/tmp/dir \"q\""));
    assert_eq!(v["xfeatures"], s(&format!("{SAMPLE_XCR0:#x}")));
    assert_eq!(v["required_xfeatures"], s("0x3"));
    assert_eq!(v["required_names"], json!(["x87", "SSE"]));
    assert_eq!(v["required_level"], s("x86-64"));
    assert_eq!(v["portable_level"], s("x86-64"));
    assert_eq!((&v["cpu"], &v["cpu_level"]), (&s("Test CPU"), &s("x86-64-v4")));
    assert_eq!(v["mm"]["brk"], num(BASE + 16 * P));
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[1]["tid"], num(1000));
    assert_eq!(threads[1]["sigmask"], s("0x200"));
    assert_eq!((&threads[1]["xstate_bv"], &threads[1]["xinuse"]), (&s("0x7"), &s("0x3")));
    assert_eq!(threads[1]["gregs"].as_array().unwrap().len(), 23);
    let signals = v["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 3);
    assert_eq!(signals[1]["action"], s("ignore"));
    assert_eq!(signals[2]["mask"], s("0x8000000000000000"));
    let regions = v["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 7);
    assert_eq!(regions[2]["perms"], s("rw-s"));
    assert_eq!(regions[2]["shared"], json!(true));
    assert_eq!(regions[4]["growsdown"], json!(true));
    assert_eq!(regions[3]["kind"], s("ckpt"));
    assert_eq!(regions[1]["range"], s("555500008000-555500010000"));
    assert_eq!(regions[1]["extents"].as_array().unwrap().len(), 2);
    assert_eq!(v["totals"]["stored"], num(13 * P));
    assert_eq!(v["verify"]["ok"], json!(true));
    // What the format gained since schema 1 was first written: new
    // members, appended; "verify" stays last.
    assert_eq!(threads[0]["comm"], s("worker\u{1}"));
    assert_eq!(threads[0]["pending"], s("0x800"));
    assert_eq!(threads[1]["pending"], s("0x0"));
    let id = &regions[0]["file_id"];
    assert_eq!(id["ino"], num(1_234_567));
    assert_eq!(id["mtime_ns"], num(1_690_000_000_000_000_001));
    assert_eq!(regions[1]["file_id"]["dev"], num(0));
    assert_eq!(v["totals"]["fds"], num(6));
    let p = &v["process"];
    assert_eq!(p["valid"], s("0xf"));
    assert_eq!(p["itimers"]["real"]["value_ns"], num(1_500_000_000));
    assert_eq!(p["itimers"]["real"]["interval_ns"], num(250_000_000));
    assert_eq!(p["itimers"]["virtual"]["value_ns"], num(0));
    let rlimits = &p["rlimits"];
    assert_eq!(rlimits.as_object().unwrap().len(), NLIMITS);
    assert_eq!(rlimits["NOFILE"]["soft"], num(1024));
    assert_eq!(rlimits["STACK"]["hard"], Value::Null);
    assert_eq!(rlimits["RTTIME"]["soft"], Value::Null);
    assert_eq!(p["pending"], s("0x4200"));
    assert_eq!(p["pdeathsig"], num(15));
    assert_eq!(p["dumpable"], num(1));
    assert_eq!(p["child_subreaper"], num(0));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 6);
    let f = &files[1];
    assert_eq!(f["fd"], num(1));
    assert_eq!(f["kind"], s("file"));
    assert_eq!(f["access"], s("wronly"));
    assert_eq!(f["append"], json!(true));
    assert_eq!(f["nonblock"], json!(false));
    assert_eq!(f["cloexec"], json!(true));
    assert_eq!(f["flags"], s("0x8401"));
    assert_eq!(f["fd_flags"], s("0x1"));
    assert_eq!(f["offset"], num(1234));
    assert_eq!(f["path"], s("/tmp/out put.txt"));
    assert_eq!(f["restored"], json!(true));
    assert_eq!(f["mode"], num(0o100644));
    assert_eq!(files[2]["kind"], s("pipe-r"));
    assert_eq!(files[2]["data_len"], num(6));
    assert_eq!(files[2]["pipe"], num(77));
    assert_eq!(files[2]["nonblock"], json!(true));
    assert_eq!(files[5]["kind"], s("lost"));
    assert_eq!(files[5]["restored"], json!(false));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys[keys.len() - 6..], ["totals", "process", "files", "chain", "compression", "verify"]);
    // Without --verify there is no verify member.
    let v = parse(&on(&["--json"], &t).1);
    assert!(v.get("verify").is_none());
}

/// `readckpt --json --verify` of a full image, a delta on it and a job
/// image, each checked (status 0, nothing on stderr).
fn shape_samples() -> [String; 3] {
    let full = Temp::new(&sample());
    let delta = Temp::new(&delta_on(&full));
    let job = Temp::new(&job_sample());
    [&full, &delta, &job].map(|t| {
        let (code, out, err) = on(&["--json", "--verify"], t);
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        out
    })
}

/// `--json` keeps schema 1: the members, their order, types and nesting
/// that the hand-written writer printed, and those added since
/// (tests/fixtures/readckpt-json.shape), on a full image and a delta (its
/// chain); a job image's report (tests/fixtures/readckpt-job-json.shape).
#[test]
fn json_shape_is_pinned() {
    let [full, delta, job] = shape_samples();
    for out in [&full, &delta] {
        let problems = json_shape::shape_mismatches(out, json_shape::READCKPT_SHAPE);
        assert!(problems.is_empty(), "{problems:#?}\n{out}");
    }
    let problems = json_shape::job_shape_mismatches(&job);
    assert!(problems.is_empty(), "{problems:#?}\n{job}");
    // The pin holds: a member more, or one less, is found.
    let mut v = parse(&full);
    v.as_object_mut().unwrap().insert("new".into(), json!(1));
    assert_eq!(json_shape::shape_mismatches(&v.to_string(), json_shape::READCKPT_SHAPE), ["added: new"]);
    v.as_object_mut().unwrap().remove("compression");
    assert!(json_shape::shape_mismatches(&v.to_string(), json_shape::READCKPT_SHAPE)
        .contains(&"missing: compression".into()));
}

/// Writes tests/fixtures/readckpt-json.shape and readckpt-job-json.shape
/// from the output of the samples, after a deliberate schema change:
/// `cargo test --release --bin readckpt -- --ignored write_json_shapes`
/// (then review the diff, and say what changed in docs/FORMAT.md).
#[test]
#[ignore]
fn write_json_shapes() {
    let [full, delta, job] = shape_samples();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let comment = |head: &str| {
        format!(
            "{head}\nevery member path in output order (\"a.b\" a member of an object, \"a[]\" the items of an array)\n\
             and the JSON types it may have (\"absent\": it may be missing). tests/common/json_shape.rs checks\n\
             readckpt's output against it: a member renamed, added, moved, removed or changed in type fails\n\
             (readckpt's unit test json_shape_is_pinned on sample images, tests/events.rs\n\
             readckpt_json_shape_of_a_real_image on a real one). Written by readckpt's ignored unit test\n\
             write_json_shapes (keeping the types the file allowed before):\n\
             cargo test --release --bin readckpt -- --ignored write_json_shapes"
        )
    };
    let (job_shape, processes) = json_shape::job_shapes(&parse(&job));
    let shapes = [json_shape::shape(&parse(&full)), json_shape::shape(&parse(&delta)), processes];
    let head = "The shape of `readckpt --json --verify` on a valid image (schema 1):";
    let text = json_shape::shape_text(&comment(head), json_shape::READCKPT_SHAPE, &shapes);
    std::fs::write(fixtures.join("readckpt-json.shape"), text).unwrap();
    let head = "The shape of `readckpt --json --verify` on a valid job image (ckpt --tree), each item of\n\
                `processes` having the shape of readckpt-json.shape:";
    std::fs::write(
        fixtures.join("readckpt-job-json.shape"),
        json_shape::shape_text(&comment(head), json_shape::READCKPT_JOB_SHAPE, &[job_shape]),
    )
    .unwrap();
}

/// A job image: its members, what they share, then each running member's
/// process image; --verify checks each.
#[test]
fn job_image() {
    let t = Temp::new(&job_sample());
    let (code, out, err) = on(&["--verify"], &t);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    for want in [
        "job:          3 processes (the first is the one ckpt started)\n",
        "     1000       1    1000    1000  running    sh -c 'x | y'\n",
        "     1002       1    1000    1000  zombie     sleep 1\n",
        "  1    1000:4 1001:3  (pipe 1, 3 bytes waiting)\n",
        "  2    1000:1 1001:1  ('/tmp/out put.txt', one offset for 2 processes)\n",
        "  3    1000:5  (/tmp, this process's own)\n",
        "memory shared by the processes:\n  1    1000:0x555500000000-0x555500004000+0x0 1001:",
        "\nprocess 1002: exited (wait status 0x100), not yet waited for\n\nprocess 1001: running\nimage ",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert_eq!(out.matches("verify: OK, all 5 extents").count(), 2, "{out}");
    let v = parse(&on(&["--json"], &t).1);
    assert_eq!(v["job"][1]["state"], json!("zombie"));
    assert_eq!(v["links"][1]["waiting"], json!("hi\n"));
    assert_eq!((&v["links"][3]["path"], &v["links"][3]["processes"]), (&json!("/tmp/out put.txt"), &json!(2)));
    assert_eq!((&v["links"][4]["path"], &v["links"][4]["processes"]), (&json!("/tmp"), &json!(1)));
    assert_eq!(v["processes"].as_array().unwrap().len(), 2);
    assert_eq!(v["processes"][1]["pid"], json!(1000));
    // A bad extent in the second process image is that process's.
    let mut bad = job_sample();
    let at = bad.len() - 1;
    bad[at] ^= 1;
    let (code, out, err) = on(&["--verify"], &Temp::new(&bad));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(": process 1001: extent 4 at 0x7ffcffffc000 (region 4) is corrupted"), "{err}");
}

/// A delta names its chain and reads inherited extents from its parent;
/// --verify refuses a delta whose parent is missing.
#[test]
fn delta_chain() {
    let parent = Temp::new(&sample());
    let t = Temp::new(&delta_on(&parent));
    let (code, out, err) = on(&["--verify"], &t);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let name = parent.0.file_name().unwrap().to_str().unwrap().to_string();
    assert!(out.contains(&format!("chain       a delta on 1 image:\n  1 {name} (id ")), "{out}");
    assert!(out.contains("; holds 16384 bytes of this image)\n"), "{out}");
    assert!(out.contains("verify: OK, all 5 extents"), "{out}");
    let v = parse(&on(&["--json"], &t).1);
    assert_eq!(v["chain"][0]["name"], json!(name));
    assert_eq!(v["regions"][0]["extents"][0]["source"], json!(1));
    drop(parent);
    let (code, _, err) = on(&["--verify"], &t);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("parent 1 of 1 in the chain, {name}, is missing")), "{err}");
}

/// A compressed image: its compression line and members, and --verify
/// decodes each compressed extent (a corrupted one fails).
#[test]
fn compressed_image() {
    let file = sample_builder().build_compressed();
    let h = Header::parse(&file, file.len() as u64).unwrap();
    let meta = Meta::parse(&h, &file[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap();
    let totals = meta.data_totals();
    assert!(totals.compressed > 0, "the sample's patterns compress");
    let t = Temp::new(&file);
    let (code, out, err) = on(&["--verify"], &t);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let want = format!("compression lz4: {} of 5 extents; 52.0K of memory in ", totals.compressed);
    assert!(out.contains(&want) && out.contains("verify: OK, all 5 extents (52.0K)"), "{out}");
    let v = parse(&on(&["--json"], &t).1);
    assert_eq!(v["compression"]["compressed_extents"], json!(totals.compressed));
    assert_eq!(v["compression"]["stored"], json!(totals.stored));
    let x = meta.extents().find(|x| x.compressed()).unwrap();
    let encoding = v["regions"].as_array().unwrap().iter().flat_map(|r| r["extents"].as_array().unwrap());
    assert!(encoding.clone().any(|e| e["encoding"] == json!("lz4") && e["stored_len"] == json!(x.stored_len)));
    assert!(encoding.clone().all(|e| e["source"] == json!(0)));
    // Its stored bytes garbled: not what was checksummed, or not LZ4 at all.
    let mut bad = file.clone();
    bad[x.file_pos as usize..][..x.stored_len as usize].fill(0xff);
    let (code, out, err) = on(&["--verify"], &Temp::new(&bad));
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("is corrupted (its compressed data cannot be decoded)") || err.contains("(checksum mismatch)"),
        "{err}"
    );
}

#[test]
fn broken_images_are_refused_in_one_line() {
    let file = sample();
    assert_eq!(refused(b""), "the image file is empty");
    assert_eq!(refused(b"hello"), "not a ckpt image (bad magic number)");
    assert_eq!(refused(&file[..100]), "the image is truncated (shorter than its header says)");
    assert_eq!(refused(&file[..file.len() - 1]), "the image is truncated (shorter than its header says)");
    let mut newer = file.clone();
    newer[8] += 1;
    assert_eq!(refused(&newer), "the image was written by a newer ckpt (format version too new)");
    let mut bad = file.clone();
    bad[40] ^= 1;
    assert_eq!(refused(&bad), "the image header is corrupted (checksum mismatch)");
    let mut bad = file.clone();
    bad[HEADER_SPACE as usize + 3] ^= 1;
    assert!(refused(&bad).contains("checksum mismatch"));
    // Every truncation and every flipped header/metadata byte is refused.
    let meta_end = HEADER_SPACE as usize + Header::parse(&file, file.len() as u64).unwrap().meta_len as usize;
    for len in (0..file.len()).step_by(509) {
        refused(&file[..len]);
    }
    for i in (0..HEADER_SIZE).chain(HEADER_SPACE as usize..meta_end).step_by(7) {
        let mut bad = file.clone();
        bad[i] ^= 0x10;
        refused(&bad);
    }
}

#[test]
fn missing_files_and_directories() {
    let dir = std::env::temp_dir();
    let (code, out, err) = readckpt(&[dir.clone().into_os_string()]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, format!("readckpt: {}: Is a directory\n", dir.display()));
    let (code, _, err) = readckpt(&["/nonexistent/x.dat".into()]);
    assert_eq!((code, err.as_str()), (1, "readckpt: /nonexistent/x.dat: No such file or directory\n"));
    let (code, _, err) = readckpt(&["/dev/null".into()]);
    assert_eq!((code, err.as_str()), (1, "readckpt: /dev/null: not a regular file\n"));
}

#[test]
fn usage() {
    for args in [&[][..], &["--bogus", "x"], &["a", "b"], &["--json"]] {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (code, out, err) = readckpt(&args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}");
        assert!(err.starts_with("readckpt: ") && err.lines().count() == 1, "{err}");
    }
    let (code, out, _) = readckpt(&["--help".into()]);
    assert!(code == 0 && out.contains("Example:\n  readckpt --verify"));
    let (code, out, _) = readckpt(&["--json".into(), "--version".into()]);
    assert_eq!((code, out.as_str()), (0, "readckpt 0.1.0\n"));
    // After "--", an option-like name is a file name.
    let (code, _, err) = readckpt(&["--".into(), "--json".into()]);
    assert_eq!((code, err.as_str()), (1, "readckpt: --json: No such file or directory\n"));
}

/// Name, offset and size of each field of a struct, in declaration order.
macro_rules! fields {
    ($t:ty: $($f:ident),+ $(,)?) => {
        vec![$((stringify!($f), offset_of!($t, $f), field_size(|s: &$t| &s.$f))),+]
    };
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// The rows (field, offset, size) of the first table after `heading`.
fn doc_table(doc: &str, heading: &str) -> Vec<(String, usize, usize)> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("docs/FORMAT.md has no {heading:?}"));
    let rows = doc[start..].lines().skip_while(|l| !l.starts_with("| off ")).skip(2).take_while(|l| l.starts_with('|'));
    rows.map(|row| {
        let c: Vec<&str> = row.split('|').map(str::trim).collect();
        let n = |s: &str| s.parse().unwrap_or_else(|_| panic!("bad number in {row}"));
        (c[3].trim_matches('`').to_string(), n(c[1]), n(c[2]))
    })
    .collect()
}

/// The field names of the sentence that starts with `start`: what is
/// in backquotes after its last colon ("… two `u64`: `a`, `b`.").
fn doc_prose(doc: &str, start: &str) -> Vec<String> {
    let at = doc.find(start).unwrap_or_else(|| panic!("docs/FORMAT.md has no {start:?}"));
    let text = &doc[at + start.len()..];
    let end = ["\n\n", ". ", ".\n"].iter().filter_map(|e| text.find(e)).min().unwrap_or(text.len());
    let text = &text[..end];
    let list = &text[text.rfind(':').map_or(0, |i| i + 1)..];
    list.split('`').skip(1).step_by(2).map(String::from).collect()
}

/// docs/FORMAT.md states every struct's size and every field's offset
/// and size as the compiler lays them out. `cargo test format_doc_sizes
/// -- --nocapture` prints the tables.
#[test]
fn format_doc_sizes() {
    use ckpt_image::{MmLayout, ProcessState};
    use core::mem::size_of;
    let doc = include_str!("../../../../docs/FORMAT.md");
    let header = fields!(Header: magic, version, arch, page_size, header_size, created_ns,
        capture_ns, pid, n_threads, n_regions, n_extents, meta_offset, meta_len,
        meta_checksum, strings_len, data_offset, data_len, file_len, xfeatures, xsave_size,
        leader, n_fds, _pad, mm, process, auxv, auxv_words, umask, comm, cmdline, cwd, exe,
        required_xfeatures, cpu_level, portable_level, cpu_brand, xlayout, chain_depth, _pad2, parents,
        header_checksum);
    let process = fields!(ProcessState: itimers, rlimits, pending, pdeathsig, dumpable,
        child_subreaper, valid, interval_ms, interval_signal, _pad, timers, reserved);
    let posix_timer = fields!(ckpt_image::timers::PosixTimer: id, clock, notify, signal, tid, _pad, value,
        value_ns, interval_ns);
    let region = fields!(Region: start, end, prot, flags, kind, n_extents, first_extent, _pad,
        file_offset, file, path);
    let extent = fields!(Extent: addr, len, file_pos, checksum, stored_len, encoding, source);
    let parent = fields!(ckpt_image::Parent: id, file_len, name);
    let thread = fields!(Thread: tid, tid_offset, ucontext, fs_base, gs_base, rseq_area,
        rseq_len, rseq_sig, clear_child_tid, robust_list, robust_len, gregs, sigmask, comm,
        pending, fpstate, xstate_bv, xinuse);
    let sigaction = fields!(SigAction: handler, flags, restorer, mask);
    let fd = fields!(Fd: fd, kind, flags, fd_flags, offset, size, dev, ino, mtime_ns, mode,
        shared, pipe, path, data);
    let mm = fields!(MmLayout: start_code, end_code, start_data, end_data, start_brk, brk,
        start_stack, arg_start, arg_end, env_start, env_end);
    let file_id = fields!(FileId: dev, ino, size, mtime_ns);
    let itimer = fields!(ITimer: interval_ns, value_ns);
    let strref = fields!(StrRef: offset, len);
    use ckpt_image::events::{
        EpollTarget, EventFdState, FileLock, InotifyWatch, MemfdState, SignalFdState, SocketState, TimerFdState,
    };
    let eventfd = fields!(EventFdState: count, semaphore, _pad);
    let timerfd = fields!(TimerFdState: clockid, settime_flags, ticks, value_ns, interval_ns, realtime_ns);
    let signalfd = fields!(SignalFdState: mask);
    let epoll = fields!(EpollTarget: tfd, fd, events, _pad, data);
    let socket = fields!(SocketState: sock_type, n_msgs);
    let inotify = fields!(InotifyWatch: wd, mask, path);
    let lock = fields!(FileLock: kind, write, start, len);
    let memfd = fields!(MemfdState: seals, _pad, size);
    use ckpt_image::job::{JobHeader, Link, Member, SharedMap};
    let job_header = fields!(JobHeader: magic, version, n_members, n_links, n_shared, created_ns, strings_len,
        file_len, table_checksum, header_checksum);
    let member = fields!(Member: pid, ppid, pgid, sid, state, wait_status, offset, len, command);
    let link = fields!(Link: member, fd, description, channel, kind, flags, data);
    let shared = fields!(SharedMap: member, object, start, end, offset);
    // (name, size, fields, heading of its table in FORMAT.md, or None: prose)
    let structs = [
        ("Header", HEADER_SIZE, header, Some("## Header (")),
        ("ProcessState", size_of::<ProcessState>(), process, Some("### ProcessState (")),
        ("Region", size_of::<Region>(), region, Some("### Region (")),
        ("Extent", size_of::<Extent>(), extent, Some("### Extent (")),
        ("Thread", size_of::<Thread>(), thread, Some("### Thread (")),
        ("SigAction", size_of::<SigAction>(), sigaction, Some("### SigAction (")),
        ("Fd", size_of::<Fd>(), fd, Some("### Fd (")),
        ("MmLayout", size_of::<MmLayout>(), mm, None),
        ("FileId", size_of::<FileId>(), file_id, None),
        ("ITimer", size_of::<ITimer>(), itimer, None),
        ("PosixTimer", size_of::<ckpt_image::timers::PosixTimer>(), posix_timer, Some("#### PosixTimer (")),
        ("StrRef", size_of::<StrRef>(), strref, None),
        ("Parent", size_of::<ckpt_image::Parent>(), parent, None),
        ("EventFdState", size_of::<EventFdState>(), eventfd, Some("#### EventFdState (")),
        ("TimerFdState", size_of::<TimerFdState>(), timerfd, Some("#### TimerFdState (")),
        ("SignalFdState", size_of::<SignalFdState>(), signalfd, Some("#### SignalFdState (")),
        ("EpollTarget", size_of::<EpollTarget>(), epoll, Some("#### EpollTarget (")),
        ("SocketState", size_of::<SocketState>(), socket, Some("#### SocketState (")),
        ("InotifyWatch", size_of::<InotifyWatch>(), inotify, Some("#### InotifyWatch (")),
        ("FileLock", size_of::<FileLock>(), lock, Some("#### FileLock (")),
        ("MemfdState", size_of::<MemfdState>(), memfd, Some("#### MemfdState (")),
        ("JobHeader", size_of::<JobHeader>(), job_header, Some("### JobHeader (")),
        ("Member", size_of::<Member>(), member, Some("### Member (")),
        ("Link", size_of::<Link>(), link, Some("### Link (")),
        ("SharedMap", size_of::<SharedMap>(), shared, Some("### SharedMap (")),
    ];
    for (name, size, fields, heading) in &structs {
        println!("{name} ({size} bytes)");
        let mut end = 0;
        for &(field, off, len) in fields {
            println!("| {off:>4} | {len:>3} | `{field}` |");
            // Contiguous and complete: no padding, no field left out.
            assert_eq!(off, end, "{name}.{field}: a gap before it, or a field missing here");
            end = off + len;
        }
        assert_eq!(end, *size, "{name}: fields missing at the end");
        let want: Vec<(String, usize, usize)> = fields.iter().map(|&(f, o, l)| (f.to_string(), o, l)).collect();
        match heading {
            Some(heading) => {
                let heading = format!("{heading}{size} bytes");
                assert_eq!(doc_table(doc, &heading), want, "table after {heading:?}");
            }
            None => {
                let start = format!("`{name}` ({size} bytes");
                let names: Vec<String> = fields.iter().map(|f| f.0.to_string()).collect();
                assert_eq!(doc_prose(doc, &start), names, "paragraph {start:?}");
            }
        }
    }
    // The file layout and the checksum table.
    assert!(doc.contains(&format!("HEADER_SIZE = {HEADER_SIZE} bytes")));
    assert!(doc.contains(&format!("| the {HEADER_SIZE} header bytes, with")));
    for (table, size) in [
        ("Region    [n_regions]", size_of::<Region>()),
        ("Extent    [n_extents]", size_of::<Extent>()),
        ("Thread    [n_threads]", size_of::<Thread>()),
        ("SigAction [NSIG = 65]", size_of::<SigAction>()),
        ("Fd        [n_fds]", size_of::<Fd>()),
    ] {
        let line = doc.lines().find(|l| l.contains(table)).expect(table);
        assert!(line.contains(&format!(" {size} bytes each")), "{line}");
    }
    assert_eq!((HEADER_SIZE, size_of::<Region>(), size_of::<Thread>(), size_of::<Fd>()), (1880, 88, 312, 88));
}

/// A writer whose reader has gone away.
struct ClosedPipe;
impl Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn closed_pipe_is_quiet() {
    let t = Temp::new(&sample());
    for opts in [&[][..], &["--json"], &["--help"]] {
        let mut args: Vec<OsString> = opts.iter().map(OsString::from).collect();
        args.push(t.arg());
        let mut err = Vec::new();
        assert_eq!(run(&args, &mut io::BufWriter::new(ClosedPipe), &mut err), 0);
        assert!(err.is_empty());
    }
    let mut full = io::BufWriter::new(std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap());
    let mut err = Vec::new();
    assert_eq!(run(&[t.arg()], &mut full, &mut err), 1);
    assert_eq!(String::from_utf8(err).unwrap(), "readckpt: write error: No space left on device\n");
}

#[test]
fn helpers() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso8601(4_107_542_399_999_000_000), "2100-02-28T23:59:59.999Z");
    assert_eq!(iso8601(u64::MAX), "2554-07-21T23:34:33.709Z");
    assert_eq!(human(0), "0B");
    assert_eq!(human(12 * 1024), "12.0K");
    assert_eq!(human(1536 * 1024), "1.5M");
    assert_eq!(human(u64::MAX), "16777216.0T");
    assert_eq!(duration(1_500), "1.5 µs");
    assert_eq!(duration(2_500_000_000), "2.500 s");
    assert_eq!(shell_quote(b"a-b/c.d"), "a-b/c.d");
    assert_eq!(shell_quote(b"*"), "'*'");
    assert_eq!(shell_quote(b"\xff'\\"), "$'\\xff\\'\\\\'");
    assert_eq!(xfeature_names(0x60003), ["x87", "SSE", "AMX"]);
    assert_eq!(signal_name(31), "SIGSYS");
    assert_eq!(signal_name(64), "SIGRTMIN+30");
}

/// `readckpt --json` output, parsed.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e} in\n{text}"))
}
