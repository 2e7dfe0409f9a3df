//! CPUs differ: what an image needs of a CPU, and images that move between
//! CPUs with other register widths and other XSAVE layouts.
//!
//! Nothing here assumes the machine it runs on: feature tests ask the
//! running CPU (`is_x86_feature_detected!`, XCR0, CPUID leaf 0xD), and a
//! case that needs a feature the CPU lacks says so on stdout and runs its
//! fallback.

mod common;

use ckpt_image::xstate::{self, Component, Frame, Layout, Target, MIN_XSAVE, UC_FPSTATE};
use ckpt_image::{bytes_of, checksum, read_at, Extent, Header, Meta, HEADER_SIZE};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHECKPOINTED: i32 = ckpt_image::EXIT_CHECKPOINTED;

fn ckpt(opts: &[&str], image: &Path, program: &Path, args: &[&str], cwd: &Path) -> Command {
    Tools::new().ckpt_with(opts, Some(image), program, args, cwd)
}

fn restart(image: &Path, cwd: &Path) -> Command {
    Tools::new().restart(Some(image), cwd)
}

/// `readckpt --json IMAGE`, parsed just enough: the value of a top-level
/// string member.
fn json_member(image: &Path, key: &str) -> String {
    let o =
        spawn("readckpt --json", &mut command(&exe("readckpt"), &["--json", image.to_str().unwrap()], Path::new("/")))
            .finish();
    o.expect_code(0);
    let text = o.stdout_text();
    let at = text.find(&format!("\n  \"{key}\": ")).unwrap_or_else(|| panic!("no {key} in\n{text}"));
    let rest = &text[at + key.len() + 7..];
    rest[..rest.find(&['\n', ','][..]).unwrap()].trim_matches('"').to_string()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

/// Runs `program args` under ckpt (with `opts`), checkpoints it once it has
/// printed a line starting with `after`, and returns the stopped run.
fn stopped_at(opts: &[&str], image: &Path, program: &Path, args: &[&str], cwd: &Path, after: &str) -> Outcome {
    let mut run = spawn("checkpointed run", &mut ckpt(opts, image, program, args, cwd));
    run.wait_line(Stream::Stdout, |l| l.starts_with(after), after);
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    first
}

/// `vector-NAME 30` started uninterrupted (the reference, still running)
/// and under ckpt (with `opts`), checkpointed inside its compute loop after step 3.
fn vector_stopped(name: &str, opts: &[&str], dir: &TempDir, image: &Path) -> (Run, Outcome) {
    let prog = demo(&format!("vector-{name}"));
    let args = ["30"];
    let reference = spawn("uninterrupted run", &mut command(&prog, &args, &dir.path));
    let mut run = spawn("checkpointed run", &mut ckpt(opts, image, &prog, &args, &dir.path));
    run.wait_line(Stream::Stderr, |l| l.starts_with("vector: progress 3/"), "progress 3");
    run.wait_computing();
    run.checkpoint();
    let first = run.finish();
    first.expect_code(CHECKPOINTED);
    (reference, first)
}

/// The widest vector demo this CPU runs.
fn widest_vector() -> &'static str {
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
        "avx512"
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        "avx2"
    } else {
        "sse"
    }
}

/// The vector demo, once per register width this CPU has: accumulators in
/// zmm/ymm/xmm registers, opmask registers, x87 and MXCSR, live across the
/// checkpoint. The image records the wide state as required.
#[test]
fn vector_registers_survive() {
    let variants = [
        ("avx512", is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"), xstate::AVX512),
        ("avx2", is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"), xstate::AVX),
        ("sse", true, 0),
    ];
    for (name, supported, wide) in variants {
        if !supported {
            println!("skip: vector-{name}: this CPU lacks {name}; the narrower variants run");
            continue;
        }
        let dir = TempDir::new(&format!("vector-{name}"));
        const STEPS: usize = 30;
        let image = dir.join("vector.dat");
        let (reference, first) = vector_stopped(name, &[], &dir, &image);
        let progress = |o: &Outcome| -> Vec<String> {
            o.text_lines(Stream::Stderr).into_iter().filter(|l| l.starts_with("vector: progress")).collect()
        };
        let done = progress(&first).len();
        assert!(
            (3..STEPS).contains(&done),
            "vector-{name}: the checkpoint should land inside the compute loop, but the first run made {done} of {STEPS} steps\n{}",
            first.describe()
        );
        // The loop's wide registers were live: the image says it needs them.
        let required = hex(&json_member(&image, "required_xfeatures"));
        assert!(
            wide == 0 || required & wide != 0,
            "vector-{name}: required_xfeatures {required:#x} has none of {wide:#x}"
        );

        let second = spawn("restart", &mut restart(&image, &dir.path)).finish();
        second.expect_code(0);
        let reference = reference.finish();
        reference.expect_code(0);
        assert_same(
            &format!("vector-{name} digest (stdout)"),
            &cat(&[&first.stdout(), &second.stdout()]),
            &reference.stdout(),
        );
        let mut both = progress(&first);
        both.extend(progress(&second));
        assert_eq!(both, progress(&reference), "vector-{name}: progress lines");
    }
}

/// `ckpt --portable` holds glibc's dispatch to the level: the program's
/// images require only x87 and SSE state, say so, and restart.
#[test]
fn portable_images_require_only_their_level() {
    let dir = TempDir::new("portable");
    let prog = demo("cpu-dispatch");
    let args = ["12"];
    let reference = spawn("uninterrupted run", &mut command(&prog, &args, &dir.path)).finish();
    reference.expect_code(0);

    let native = dir.join("native.dat");
    stopped_at(&[], &native, &prog, &args, &dir.path, "step 3/");
    let native_required = hex(&json_member(&native, "required_xfeatures"));
    println!("without --portable this CPU's glibc leaves {native_required:#x} in use");

    // Held to x86-64-v2, glibc uses SSE only; to v3, AVX too (its AVX2
    // functions may be running at the checkpoint), never AVX-512.
    for (opt, level, allowed) in [("--portable", "x86-64-v2", 0x3), ("--portable=x86-64-v3", "x86-64-v3", 0x7)] {
        let image = dir.join("portable.dat");
        let first = stopped_at(&[opt], &image, &prog, &args, &dir.path, "step 3/");
        let required = hex(&json_member(&image, "required_xfeatures"));
        assert_eq!(required & !allowed, 0, "{opt}: the image requires {required:#x}, more than {allowed:#x}");
        let cpu_level = ckpt_sys::cpu::level();
        let held = if cpu_level >= xstate::parse_level(level.as_bytes()).unwrap() {
            level.to_string()
        } else {
            xstate::level_name(cpu_level).to_string() // held above its CPU: its CPU's
        };
        assert_eq!(json_member(&image, "portable_level"), held, "{opt}");
        assert_eq!(json_member(&image, "required_level"), held, "{opt}");
        let second = spawn("restart", &mut restart(&image, &dir.path)).finish();
        second.expect_code(0);
        assert_same(opt, &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
    }
}

/// The glibc tunable ckpt sets really takes: under it, the dynamic loader
/// no longer counts the glibc-hwcaps directories above the level as usable.
#[test]
fn portable_environment_holds_glibc_back() {
    let env = spawn("ckpt --portable env", &mut command(&exe("ckpt"), &["--portable", "env"], Path::new("/"))).finish();
    env.expect_code(0);
    let out = env.stdout_text();
    let tunables = out.lines().find_map(|l| l.strip_prefix("GLIBC_TUNABLES=")).expect("GLIBC_TUNABLES set");
    assert!(out.lines().any(|l| l == "CKPT_PORTABLE=x86-64-v2"), "{out}");
    assert!(tunables.contains("-AVX2") && tunables.contains("-AVX512F"), "{tunables}");
    let ldso = Path::new("/lib64/ld-linux-x86-64.so.2");
    let diagnostics = |tunables: Option<&str>| -> Option<u64> {
        let mut c = command(ldso, &["--list-diagnostics"], Path::new("/"));
        c.env_remove("GLIBC_TUNABLES");
        if let Some(t) = tunables {
            c.env("GLIBC_TUNABLES", t);
        }
        let o = spawn("ld.so --list-diagnostics", &mut c).finish();
        let text = o.stdout_text();
        text.lines().find_map(|l| l.strip_prefix("dl_hwcaps_subdirs_active=")).map(hex)
    };
    // Bits of dl_hwcaps_subdirs_active: 1 x86-64-v4, 2 x86-64-v3, 4 x86-64-v2.
    match (diagnostics(None), diagnostics(Some(tunables))) {
        (Some(native), Some(held)) => {
            println!("glibc-hwcaps active: {native:#x} natively, {held:#x} under --portable");
            assert_eq!(held & 0x3, 0, "x86-64-v3/v4 library directories still active under {tunables}");
            assert_eq!(held, native & 0x4);
        }
        _ => println!("skip: this ld.so has no --list-diagnostics (glibc older than 2.33)"),
    }
}

/// An image file, with helpers to read and change the program's memory in
/// it and seal the checksums again.
struct ImageFile {
    bytes: Vec<u8>,
}

impl ImageFile {
    fn header(&self) -> Header {
        Header::parse(&self.bytes, self.bytes.len() as u64).unwrap()
    }
    fn meta(&self) -> Meta<'_> {
        let h = self.header();
        Meta::parse(&h, &self.bytes[h.meta_offset as usize..(h.meta_offset + h.meta_len) as usize]).unwrap()
    }
    /// The file offsets of `len` bytes of memory at `addr`.
    fn spans(&self, mut addr: u64, len: usize) -> Vec<(usize, usize)> {
        let m = self.meta();
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let (pos, avail) = m.file_pos_of(addr).expect("memory stored in the image");
            let n = (avail as usize).min(left);
            out.push((pos as usize, n));
            addr += n as u64;
            left -= n;
        }
        out
    }
    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        self.spans(addr, len).into_iter().flat_map(|(p, n)| self.bytes[p..p + n].to_vec()).collect()
    }
    fn write(&mut self, addr: u64, data: &[u8]) {
        let mut at = 0;
        for (p, n) in self.spans(addr, data.len()) {
            self.bytes[p..p + n].copy_from_slice(&data[at..at + n]);
            at += n;
        }
    }
    /// Every extent checksum, then (with the header changed by `f` first)
    /// the metadata's and the header's.
    fn seal(&mut self, f: impl FnOnce(&mut Header)) {
        let mut h: Header = read_at(&self.bytes, 0).unwrap();
        f(&mut h);
        let ext_at = h.meta_offset as usize + h.n_regions as usize * std::mem::size_of::<ckpt_image::Region>();
        for i in 0..h.n_extents as usize {
            let mut x: Extent = read_at(&self.bytes[ext_at..], i).unwrap();
            x.checksum = checksum(&self.bytes[x.file_pos as usize..(x.file_pos + x.len) as usize]);
            let at = ext_at + i * std::mem::size_of::<Extent>();
            self.bytes[at..at + std::mem::size_of::<Extent>()].copy_from_slice(bytes_of(&x));
        }
        self.bytes[..HEADER_SIZE].copy_from_slice(bytes_of(&h));
        reseal(&mut self.bytes);
    }
    /// Every thread's frame laid out (in place: it must fit) as the kernel
    /// of the CPU `to` writes it, and the image's layout made `to`'s.
    fn lay_frames_out_for(&mut self, to: &Target) {
        let from = self.header().xlayout;
        for (_, fpstate) in self.frames() {
            let head = self.read(fpstate, MIN_XSAVE);
            let len = Frame::parse_head(&head).unwrap().total_len();
            let area = self.read(fpstate, len);
            let f = Frame::parse(&area, &from).unwrap();
            let mut moved = vec![0u8; to.frame_len()];
            xstate::rewrite(&area, &f, &from, to, &mut moved).unwrap();
            assert!(moved.len() <= area.len(), "the frame for the other CPU does not fit in place");
            self.write(fpstate, &moved);
        }
        self.seal(|h| h.xlayout = to.layout);
    }

    /// Each thread's (ucontext, fpstate).
    fn frames(&self) -> Vec<(u64, u64)> {
        let m = self.meta();
        m.threads()
            .map(|t| {
                let word = self.read(t.ucontext + UC_FPSTATE, 8);
                (t.ucontext, u64::from_le_bytes(word.try_into().unwrap()))
            })
            .collect()
    }
}

/// This CPU's layout with the components in use packed in the reverse
/// order from the XSAVE header on: a layout no CPU has, that fits in the
/// space of this one's. None if there is nothing to reorder.
fn reordered(here: &Layout, xcr0: u64) -> Option<Layout> {
    let present: Vec<usize> = (2..32).filter(|&i| xcr0 & (1 << i) != 0 && here.comps[i].size != 0).collect();
    let mut l = Layout::default();
    let mut at = MIN_XSAVE as u32;
    for &i in present.iter().rev() {
        l.comps[i] = Component { offset: at, size: here.comps[i].size };
        at += here.comps[i].size;
    }
    (l != *here).then_some(l)
}

/// An image whose saved register frames are laid out as on another CPU
/// (components at other offsets): restart lays them out again for this one
/// and the registers come back exact, as the vector digest shows.
#[test]
fn frames_from_another_layout_are_laid_out_again() {
    let xcr0 = ckpt_sys::cpu::xcr0();
    let here = Layout::from_components(ckpt_sys::cpu::xstate_components());
    let Some(other) = reordered(&here, xcr0) else {
        println!("skip: this CPU's XSAVE area has one extended component (XCR0 {xcr0:#x}): nothing to move; the xstate unit tests cover the relayout");
        return;
    };
    let dir = TempDir::new("relayout");
    let image = dir.join("vector.dat");
    let (reference, first) = vector_stopped(widest_vector(), &[], &dir, &image);

    let mut img = ImageFile { bytes: read(&image) };
    img.lay_frames_out_for(&Target { xfeatures: xcr0, layout: other });
    let moved_image = dir.join("moved.dat");
    write_image(&moved_image, &img.bytes);

    let mut c = command(&exe("restart"), &["-v", moved_image.to_str().unwrap()], &dir.path);
    let second = spawn("restart of the relaid image", &mut c).finish();
    second.expect_code(0);
    assert!(second.stderr_text().contains("laid out again for this CPU"), "{}", second.describe());
    let reference = reference.finish();
    assert_same("vector digest after relayout", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
}

/// An image whose frames are as an AVX2 CPU's kernel writes them (AVX
/// only, an 832-byte XSAVE area) restarts on this bigger CPU as it is: the
/// kernel takes a smaller frame and starts the components it lacks afresh;
/// the AVX2 registers come back exact. (On an AVX2-only CPU the frames
/// are that already: the other tests cover it.)
#[test]
fn frames_from_a_smaller_cpu_are_taken_as_they_are() {
    let xcr0 = ckpt_sys::cpu::xcr0();
    if xcr0 & !0x7 == 0 || !is_x86_feature_detected!("avx2") || !is_x86_feature_detected!("fma") {
        println!("skip: this CPU's frames are no bigger than an AVX2 CPU's (XCR0 {xcr0:#x})");
        return;
    }
    let here = Layout::from_components(ckpt_sys::cpu::xstate_components());
    let mut avx2 = Layout::default();
    avx2.comps[2] = here.comps[2];
    let dir = TempDir::new("smaller-cpu");
    let image = dir.join("vector.dat");
    // Held to x86-64-v3, glibc leaves no AVX-512 state in use.
    let (reference, first) = vector_stopped("avx2", &["--portable=x86-64-v3"], &dir, &image);
    let mut img = ImageFile { bytes: read(&image) };
    img.lay_frames_out_for(&Target { xfeatures: 0x7, layout: avx2 });
    let (_, fpstate) = img.frames()[0];
    assert_eq!(Frame::parse_head(&img.read(fpstate, MIN_XSAVE)).unwrap().xstate_size, 832);
    let small = dir.join("avx2.dat");
    write_image(&small, &img.bytes);
    let second = spawn("restart", &mut command(&exe("restart"), &["-v", small.to_str().unwrap()], &dir.path)).finish();
    second.expect_code(0);
    assert!(!second.stderr_text().contains("laid out again"), "{}", second.describe());
    let reference = reference.finish();
    assert_same("vector-avx2 digest from AVX2 frames", &cat(&[&first.stdout(), &second.stdout()]), &reference.stdout());
}

/// Frames that cannot be resumed are refused before the point of no return,
/// in one line: a broken end marker, a component the image's layout does
/// not place, a component in use that this CPU lacks.
#[test]
fn bad_frames_are_refused_in_one_line() {
    let dir = TempDir::new("bad-frames");
    let prog = demo("cpu-dispatch");
    let image = dir.join("good.dat");
    stopped_at(&[], &image, &prog, &["12"], &dir.path, "step 3/");
    let good = ImageFile { bytes: read(&image) };
    let (_, fpstate) = good.frames()[0];
    let head = good.read(fpstate, MIN_XSAVE);
    let f = Frame::parse_head(&head).unwrap();

    let mut cases: Vec<(&str, ImageFile, &str)> = Vec::new();
    let mut b = ImageFile { bytes: good.bytes.clone() };
    b.write(fpstate + f.xstate_size as u64, &[0, 0, 0, 0]);
    b.seal(|_| {});
    cases.push(("end marker gone", b, "a saved register frame is corrupted"));

    // A component the frame holds that the image's layout no longer places
    // (and the header no longer claims: restart reads the frames themselves).
    match (2..32).rev().find(|&i| f.xstate_bv & (1 << i) != 0) {
        Some(i) => {
            let mut b = ImageFile { bytes: good.bytes.clone() };
            b.seal(|h| {
                h.xlayout.comps[i] = Component::default();
                h.required_xfeatures = 0x3;
            });
            cases.push(("component not placed", b, "which the image does not describe"));
        }
        None => println!("skip: the frame holds no extended component (xstate_bv {:#x})", f.xstate_bv),
    }

    if let Some((_, image)) = needing_what_this_cpu_lacks(&good.bytes) {
        cases.push(("needing what this CPU lacks", ImageFile { bytes: image }, "this CPU"));
    }

    for (what, img, want) in cases {
        let p = dir.join("bad.dat");
        write_image(&p, &img.bytes);
        let o = spawn(what, &mut restart(&p, &dir.path)).finish_within(Duration::from_secs(20));
        assert_refused(&o, 1, &[want]);
    }
}

/// The committed fixture: `cpu-dispatch 12` under `ckpt --portable`,
/// stopped after its third step, on the machine named in fixtures/README.md
/// (an AMD EPYC with AVX-512). Restarted on whatever CPU runs the suite, it
/// finishes with the output and status of an uninterrupted run here.
#[test]
fn fixture_from_another_cpu_restarts_here() {
    let fixture = fixture_dir().join("cpu-dispatch.dat");
    let bytes = read(&fixture);
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    assert_eq!(
        version,
        ckpt_image::FORMAT_VERSION,
        "the fixture is format version {version}: regenerate it with `make fixture` on a machine with AVX-512"
    );
    let img = ImageFile { bytes };
    let h = img.header();
    let brand = String::from_utf8_lossy(&h.cpu_brand).trim_end_matches('\0').to_string();
    println!(
        "fixture made on: {brand} ({}, XCR0 {:#x}); requires {:#x}; this CPU: {} (XCR0 {:#x})",
        xstate::level_name(h.cpu_level),
        h.xfeatures,
        h.required_xfeatures,
        xstate::level_name(ckpt_sys::cpu::level()),
        ckpt_sys::cpu::xcr0()
    );
    let dir = TempDir::new("fixture");
    // A private copy: restart takes only the caller's own, unshared images,
    // and a checkout's modes follow the umask.
    let copy = dir.join("cpu-dispatch.dat");
    write_image(&copy, &img.bytes);
    let o = spawn("restart of the fixture", &mut restart(&copy, &dir.path)).finish();
    if o.status.code() == Some(1) && o.stderr_text().contains("vDSO layout differs") {
        println!("skip: this kernel's vDSO differs from the one the fixture was made under: {}", o.stderr_text());
        return;
    }
    o.expect_code(0);
    let before = read(&fixture_dir().join("cpu-dispatch.before"));
    let reference = spawn("uninterrupted run", &mut command(&demo("cpu-dispatch"), &["12"], &dir.path)).finish();
    reference.expect_code(0);
    assert_same("fixture output", &cat(&[&before, &o.stdout()]), &reference.stdout());
}

/// Writes an image as ckpt does: the caller's own, mode 0600.
fn write_image(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(path, 0o600);
}

fn fixture_dir() -> PathBuf {
    root().join("tests/fixtures")
}

/// `make fixture`: writes tests/fixtures/cpu-dispatch.{dat,before}. Run on a
/// machine with AVX-512, so that the test shows an image from a wider CPU
/// restarting on any other.
#[test]
#[ignore]
fn make_fixture() {
    let dir = fixture_dir();
    let image = dir.join("cpu-dispatch.dat");
    let first = stopped_at(&["--portable", "-q"], &image, &demo("cpu-dispatch"), &["12"], Path::new("/"), "step 3/");
    std::fs::write(dir.join("cpu-dispatch.before"), first.stdout()).unwrap();
    let bytes = read(&image);
    let h = Header::parse(&bytes, bytes.len() as u64).unwrap();
    println!(
        "wrote {} on {} ({}, XCR0 {:#x}), requires {:#x}",
        image.display(),
        String::from_utf8_lossy(&h.cpu_brand).trim_end_matches('\0'),
        xstate::level_name(h.cpu_level),
        h.xfeatures,
        h.required_xfeatures
    );
}
