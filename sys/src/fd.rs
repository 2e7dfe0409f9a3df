//! Owned and borrowed file descriptors (after std's and rustix's `OwnedFd`
//! and `BorrowedFd`), for code with no libc and no allocation.
//!
//! Every wrapper of this crate that creates a descriptor (open, pipe2,
//! socket, memfd_create, pidfd_open…) returns an [`OwnedFd`], which closes it
//! when dropped, so no error path can leak one. Dropping only calls
//! `close(2)`: no allocation, no lock, so it is safe in the capture's
//! signal context. A descriptor handed over on purpose (to the program, at
//! the number it had; to a child across a fork or an exec) leaves its owner
//! through [`OwnedFd::into_raw`], which says so at the call site.
//!
//! The wrappers that use a descriptor without taking it accept any
//! [`AsFd`]: an `&OwnedFd`, a [`BorrowedFd`], or a plain number for the
//! descriptors this code never owns: the program's own (listed from
//! `/proc/self/fd`, restored at their numbers), 0 to 2, `AT_FDCWD`.

use core::marker::PhantomData;

/// A descriptor the holder may use for a call: its number.
pub trait AsFd {
    fn raw(&self) -> i32;
}

impl AsFd for i32 {
    fn raw(&self) -> i32 {
        *self
    }
}

impl<T: AsFd + ?Sized> AsFd for &T {
    fn raw(&self) -> i32 {
        (**self).raw()
    }
}

/// A descriptor this value owns: closed when it is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct OwnedFd {
    fd: i32,
}

impl OwnedFd {
    /// Takes ownership of descriptor `fd`.
    ///
    /// # Safety
    /// `fd` must be an open descriptor that nothing else closes (or takes
    /// ownership of): from here on, this value closes it.
    pub unsafe fn from_raw(fd: i32) -> OwnedFd {
        OwnedFd { fd }
    }

    /// The descriptor's number, which stays owned (and is closed on drop).
    pub fn as_raw(&self) -> i32 {
        self.fd
    }

    /// Gives the descriptor up without closing it: the caller (or the
    /// program it is handed to) is its owner from now on.
    #[must_use = "the descriptor is no longer closed by anyone: keep its number or close it"]
    pub fn into_raw(self) -> i32 {
        let fd = self.fd;
        core::mem::forget(self);
        fd
    }

    /// The descriptor lent for calls, for as long as this value lives.
    pub fn borrow(&self) -> BorrowedFd<'_> {
        BorrowedFd { fd: self.fd, owner: PhantomData }
    }
}

impl Drop for OwnedFd {
    fn drop(&mut self) {
        crate::close(self.fd);
    }
}

impl AsFd for OwnedFd {
    fn raw(&self) -> i32 {
        self.fd
    }
}

/// A descriptor borrowed from its owner for `'a`: never closed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BorrowedFd<'a> {
    fd: i32,
    owner: PhantomData<&'a OwnedFd>,
}

impl BorrowedFd<'_> {
    pub fn as_raw(&self) -> i32 {
        self.fd
    }
}

impl AsFd for BorrowedFd<'_> {
    fn raw(&self) -> i32 {
        self.fd
    }
}

/// The descriptor a creating system call returned, owned.
pub(crate) fn created(r: crate::Result<usize>) -> crate::Result<OwnedFd> {
    // SAFETY: a system call that creates a descriptor just returned it: it is open, and nothing else has its number yet.
    r.map(|fd| unsafe { OwnedFd::from_raw(fd as i32) })
}

/// Two descriptors a creating system call wrote into `fds`, owned.
pub(crate) fn created_pair(r: crate::Result<usize>, fds: [i32; 2]) -> crate::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: as for `created`: the kernel just opened both and nothing else has their numbers.
    r.map(|_| unsafe { (OwnedFd::from_raw(fds[0]), OwnedFd::from_raw(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe's write ends are all closed when its read end says so: the
    /// test looks at the pipe, not at descriptor numbers (which other
    /// tests, running at the same time, may reuse).
    fn write_ends_closed(r: &OwnedFd) -> bool {
        crate::pipe_widowed(r)
    }

    /// A descriptor closes when its owner is dropped, never through a
    /// borrow, and stays open when given up with `into_raw`.
    #[test]
    #[cfg_attr(miri, ignore = "system calls (inline assembly)")]
    fn an_owned_descriptor_closes_on_drop_only() {
        let (r, w) = crate::pipe2(0).unwrap();
        let borrowed = w.borrow();
        assert_eq!((borrowed.as_raw(), borrowed.raw(), w.raw()), (w.as_raw(), w.as_raw(), w.as_raw()));
        assert_eq!(crate::write(borrowed, b"x"), Ok(1));
        assert!(!write_ends_closed(&r));
        drop(w);
        assert!(write_ends_closed(&r), "dropping the owner closes it");

        let (r, w) = crate::pipe2(0).unwrap();
        let raw = w.into_raw();
        assert!(!write_ends_closed(&r), "into_raw gives the descriptor up open");
        // SAFETY: `raw` is open and no one else owns it (into_raw above).
        drop(unsafe { OwnedFd::from_raw(raw) });
        assert!(write_ends_closed(&r));
    }

    /// `dup_from` makes an owned copy at `min` or above.
    #[test]
    #[cfg_attr(miri, ignore = "system calls (inline assembly)")]
    fn a_copy_is_owned_and_placed_from_min() {
        let (r, w) = crate::pipe2(0).unwrap();
        let copy = crate::dup_from(&w, 500).unwrap();
        assert!(copy.as_raw() >= 500);
        drop(w);
        assert!(!write_ends_closed(&r), "the copy holds the pipe open");
        drop(copy);
        assert!(write_ends_closed(&r));
    }
}
