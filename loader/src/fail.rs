//! Failures: one line on stderr, exit status 1.
//!
//! "One line" is per outcome: a restart that fails says exactly one line,
//! its reason, and nothing else. Warnings found before the restart is sure
//! to happen (a file that changed, a ticker that could not start) are held
//! ([`warn`]) and said only once the program's memory is restored and
//! verified ([`commit`]); a failure before that drops them, since the
//! program they are about never runs. After the commit, warnings are said
//! at once, one line each.

use core::cell::UnsafeCell;
use core::fmt::Write;

use ckpt_sys::{self as sys, msg::Line, Errno};

/// Why the restart cannot go on.
pub enum Fail {
    /// The image is malformed.
    Image(ckpt_image::Error),
    /// A system call failed while doing `what`.
    Sys(&'static str, Errno),
    /// Anything else, said in words.
    Msg(&'static str),
    /// A region's data does not match its checksum (or is missing).
    Data(u64, u64, &'static str),
    /// A saved register frame cannot be resumed on this CPU.
    Cpu(ckpt_image::xstate::XError),
}

impl From<ckpt_image::Error> for Fail {
    fn from(e: ckpt_image::Error) -> Self {
        Fail::Image(e)
    }
}

impl Fail {
    /// Says what went wrong, in one line naming the image, and exits 1.
    pub fn exit(&self, image: &[u8]) -> ! {
        let mut l = Line::new();
        l.push(b"restart: ").push_escaped(image).push(b": ");
        let _ = match *self {
            Fail::Image(e) => l.write_str(e.message()),
            Fail::Sys(what, e) => write!(l, "{what}: {} ({})", sys::errno_text(e), sys::errno_name(e)),
            Fail::Msg(m) => l.write_str(m),
            Fail::Data(start, end, why) => write!(l, "data of region {start:x}-{end:x} {why}"),
            Fail::Cpu(e) => write!(l, "{e}"),
        };
        l.emit();
        sys::exit_group(1)
    }
}

/// A failure whose line was composed for the occasion (it names numbers or
/// paths): kept in the loader's static memory, as a `Fail::Msg`. One at a
/// time: the loader stops at its first failure.
pub fn composed(l: &Line) -> Fail {
    struct Text(UnsafeCell<[u8; 1024]>);
    // SAFETY: written once, by the loader's one thread, just before it exits.
    unsafe impl Sync for Text {}
    static TEXT: Text = Text(UnsafeCell::new([0; 1024]));
    // SAFETY: see Text.
    let buf = unsafe { &mut *TEXT.0.get() };
    let msg = l.as_bytes();
    let n = msg.len().min(buf.len());
    buf[..n].copy_from_slice(&msg[..n]);
    let bytes: &'static [u8] = &buf[..n];
    Fail::Msg(match core::str::from_utf8(bytes) {
        Ok(s) => s,
        // Names are escaped into UTF-8; anything else up to where it stops.
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    })
}

/// Room for the warnings held before the commit (65,536 descriptors' worth
/// of the shortest lines; what does not fit is counted and said as a number).
const HELD_SIZE: usize = 1 << 20;

struct Held {
    buf: [u8; HELD_SIZE],
    len: usize,
    /// Warnings that did not fit.
    dropped: usize,
    committed: bool,
}

struct HeldCell(UnsafeCell<Held>);
// SAFETY: warnings are said by the loader's one thread only (the data
// helper thread and the restored threads never warn).
unsafe impl Sync for HeldCell {}
static HELD: HeldCell = HeldCell(UnsafeCell::new(Held { buf: [0; HELD_SIZE], len: 0, dropped: 0, committed: false }));

/// Lends the held warnings to `f`, which never warns itself (the one
/// `&mut` is the only one alive).
fn with_held<R>(f: impl FnOnce(&mut Held) -> R) -> R {
    // SAFETY: see HeldCell: one thread; and no nested borrow (above).
    f(unsafe { &mut *HELD.0.get() })
}

/// Says a warning line, or holds it until [`commit`].
pub fn warn(l: &mut Line) {
    with_held(|h| hold(h, l))
}

fn hold(h: &mut Held, l: &mut Line) {
    if h.committed {
        l.emit();
        return;
    }
    let line = l.as_bytes();
    if h.len + line.len() + 1 > HELD_SIZE {
        h.dropped += 1;
        return;
    }
    h.buf[h.len..h.len + line.len()].copy_from_slice(line);
    h.buf[h.len + line.len()] = b'\n';
    h.len += line.len() + 1;
}

/// The restart will happen: says the held warnings, and every later one at once.
pub fn commit() {
    with_held(commit_held)
}

fn commit_held(h: &mut Held) {
    h.committed = true;
    let _ = sys::write_all(2, &h.buf[..h.len]);
    if h.dropped != 0 {
        let mut l = Line::new();
        let _ = write!(l, "restart: warning: {} more warnings like these are not shown", h.dropped);
        l.emit();
    }
}

/// Maps an errno to a `Fail::Sys` naming what was being done.
pub fn sys(what: &'static str) -> impl FnOnce(Errno) -> Fail {
    move |e| Fail::Sys(what, e)
}
