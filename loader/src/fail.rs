//! Failures: one line on stderr, exit status 1.

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
        l.push(b"restart: ").push(image).push(b": ");
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

/// Maps an errno to a `Fail::Sys` naming what was being done.
pub fn sys(what: &'static str) -> impl FnOnce(Errno) -> Fail {
    move |e| Fail::Sys(what, e)
}
