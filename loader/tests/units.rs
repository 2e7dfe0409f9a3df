//! Unit tests of the loader's self-contained pure parts: its command line
//! (on a made-up initial stack) and its memory functions.
//!
//! The `restart` binary keeps `test = false`: the link arguments that make
//! it a static executable at a fixed address (build.rs) apply to every
//! target built from the binary's source, its test harness too, which
//! cannot link that way. The modules below are included here by path and
//! built with std and the test harness instead.

#[path = "../src/args.rs"]
#[allow(dead_code)]
mod args;
#[path = "../src/mem.rs"]
mod mem;

use std::ffi::CString;

/// `args::parse` on the initial stack the kernel would give `restart` run
/// with `argv` and `envp`.
fn parse(argv: &[&str], envp: &[&str]) -> args::Options {
    let strings: Vec<CString> = argv.iter().chain(envp).map(|s| CString::new(*s).unwrap()).collect();
    let mut stack = vec![argv.len() as u64];
    stack.extend(strings[..argv.len()].iter().map(|s| s.as_ptr() as u64));
    stack.push(0);
    stack.extend(strings[argv.len()..].iter().map(|s| s.as_ptr() as u64));
    stack.push(0);
    // SAFETY: argc, argv and envp as the kernel lays them out, the strings alive.
    unsafe { args::parse(stack.as_ptr()) }
}

#[test]
fn command_line() {
    let o = parse(&["restart"], &[]);
    assert_eq!(o.image(), b"myckpt.dat");
    assert_eq!(o.image_cstr(), c"myckpt.dat");
    assert!(!o.keep_stdio && !o.strict && !o.verbose && !o.trust_image);
    let o = parse(&["restart", "--strict", "-v", "--keep-stdio", "--trust-image", "-"], &["CKPT_PROGRESS_AFTER=250"]);
    assert_eq!(o.image(), b"-", "a lone - is a file name");
    assert!(o.keep_stdio && o.strict && o.verbose && o.trust_image);
    assert_eq!(o.progress_after_ms, 250);
    let o = parse(&["restart", "/tmp/a b.dat"], &["X=1", "CKPT_PROGRESS_AFTERX=9"]);
    assert_eq!(o.image_cstr(), c"/tmp/a b.dat");
    assert_eq!(o.progress_after_ms, ckpt_sys::progress::AFTER_MS);
}

#[test]
#[cfg_attr(miri, ignore = "system calls (inline assembly)")]
fn memory_functions() {
    let src: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    for n in [0, 1, 15, 16, 17, 255, 300] {
        let mut dst = vec![0u8; 300];
        // SAFETY: n bytes at both, apart.
        unsafe { mem::memcpy(dst.as_mut_ptr(), src.as_ptr(), n) };
        assert_eq!(&dst[..n], &src[..n]);
        assert!(dst[n..].iter().all(|&b| b == 0), "memcpy wrote past {n}");
        // Overlapping moves, both ways.
        for (from, to) in [(0, 5), (5, 0), (0, 0)] {
            let mut buf = src.clone();
            let n = n.min(300 - from.max(to));
            let mut want = src.clone();
            want.copy_within(from..from + n, to);
            // SAFETY: n bytes at both places, inside buf.
            unsafe { mem::memmove(buf.as_mut_ptr().add(to), buf.as_ptr().add(from), n) };
            assert_eq!(buf, want, "memmove of {n} from {from} to {to}");
        }
        let mut buf = src.clone();
        // SAFETY: n bytes in buf.
        unsafe { mem::memset(buf.as_mut_ptr().add(3), 0x1ab, n.min(297)) };
        assert!(buf[3..3 + n.min(297)].iter().all(|&b| b == 0xab) && buf[..3] == src[..3]);
    }
    let (a, b) = (b"abcd\0", b"abce\0");
    // SAFETY: 5 bytes at both; NUL-terminated.
    unsafe {
        assert_eq!(mem::memcmp(a.as_ptr(), b.as_ptr(), 3), 0);
        assert!(mem::memcmp(a.as_ptr(), b.as_ptr(), 5) < 0 && mem::bcmp(b.as_ptr(), a.as_ptr(), 4) > 0);
        assert_eq!(mem::strlen(a.as_ptr()), 4);
        assert_eq!(mem::strlen([0u8].as_ptr()), 0);
    }
}
