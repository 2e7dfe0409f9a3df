//! What ties the members of a job together through their descriptors,
//! found by the root once every member is stopped: open file descriptions
//! that descriptors of several members share (a fork's inherited stdout, a
//! file both append to) and pipes between members, with the bytes waiting
//! in them (copied with `tee`, not consumed).
//!
//! Every descriptor of every running member is listed through
//! `/proc/PID/fd`; those of one file (device and inode) that more than one
//! member holds are links. Two of them share one open file description when
//! `kcmp(KCMP_FILE)` says so (or, without `CONFIG_KCMP`, when their offset
//! and flags in `/proc/PID/fdinfo` are equal). Raw system calls only.

use core::ffi::CStr;

use ckpt_image::job::{Link, Member, MEMBER_RUNNING};
use ckpt_image::StrRef;
use ckpt_sys::{self as sys, Errno};

use crate::files::{self, Strings};
use crate::msg;
use crate::procfs;

/// One descriptor of one member.
#[derive(Clone, Copy, Default)]
pub struct Entry {
    dev: u64,
    ino: u64,
    member: u32,
    fd: u32,
    pid: u32,
    pipe: bool,
    readable: bool,
}

/// Fills `links` with the links of the members (`entries`: scratch, one per
/// descriptor of the job); returns how many. Pipe contents go to `strings`.
pub fn capture(
    members: &[Member],
    entries: &mut [Entry],
    links: &mut [Link],
    strings: &mut dyn Strings,
    scratch: &mut [u8],
) -> Result<usize, Errno> {
    let mut n = 0;
    for (i, m) in members.iter().enumerate().filter(|(_, m)| m.state == MEMBER_RUNNING) {
        n = list(i as u32, m.pid, entries, n, scratch)?;
    }
    let entries = &mut entries[..n];
    entries.sort_unstable_by_key(|e| (e.dev, e.ino, e.member, e.fd));
    let (mut count, mut descriptions, mut pipes) = (0, 0, 0);
    let mut start = 0;
    while start < entries.len() {
        let key = (entries[start].dev, entries[start].ino);
        let end = start + entries[start..].iter().take_while(|e| (e.dev, e.ino) == key).count();
        let group = &entries[start..end];
        if group.iter().any(|e| e.member != group[0].member) {
            if count + group.len() > links.len() {
                return Err(Errno::ENOBUFS);
            }
            let pipe = if group[0].pipe {
                pipes += 1;
                pipes
            } else {
                0
            };
            let mut data_saved = false;
            for (k, e) in group.iter().enumerate() {
                let same = group[..k].iter().position(|o| shared(o, e, scratch));
                let description = match same {
                    Some(j) => links[count - k + j].description,
                    None => {
                        descriptions += 1;
                        descriptions
                    }
                };
                let mut data = StrRef::default();
                if pipe != 0 && e.readable && !data_saved {
                    data = pipe_bytes(e, strings, scratch)?;
                    data_saved = true;
                }
                links[count] = Link { member: e.member, fd: e.fd, description, pipe, data };
                count += 1;
            }
        }
        start = end;
    }
    Ok(count)
}

/// Adds the descriptors of member `member` (process `pid`) from entry `n` on.
fn list(member: u32, pid: u32, entries: &mut [Entry], mut n: usize, scratch: &mut [u8]) -> Result<usize, Errno> {
    let mut p = [0u8; 32];
    let dir = msg::c_path(&mut p, format_args!("/proc/{pid}/fd"), c"/proc/0/fd");
    let Ok(mut fds) = procfs::Tasks::dir(dir) else { return Ok(n) };
    let (dents, rest) = scratch.split_at_mut(2048);
    let mut batch = [0u32; 64];
    loop {
        let got = fds.next_batch(dents, &mut batch)?;
        if got == 0 {
            return Ok(n);
        }
        for &fd in &batch[..got] {
            if member == 0 && crate::job::is_own_fd(fd as i32) {
                continue;
            }
            let mut q = [0u8; 48];
            let path = msg::c_path(&mut q, format_args!("/proc/{pid}/fd/{fd}"), c"/proc/0/fd/0");
            let Ok(st) = sys::stat(path) else { continue };
            let link_len = sys::readlink(path, rest).unwrap_or(0);
            let pipe = st.mode & sys::S_IFMT == sys::S_IFIFO && rest[..link_len].starts_with(b"pipe:[");
            let flags = fdinfo_flags(pid, fd, rest).unwrap_or(0);
            if n == entries.len() {
                return Err(Errno::ENOBUFS);
            }
            let readable = flags as i32 & sys::O_ACCMODE != sys::O_WRONLY;
            entries[n] = Entry { dev: st.dev, ino: st.ino, member, fd, pid, pipe, readable };
            n += 1;
        }
    }
}

/// The `flags:` (octal) and `pos:` of /proc/PID/fdinfo/FD.
fn fdinfo(pid: u32, fd: u32, buf: &mut [u8]) -> Option<(u64, u64)> {
    let mut p = [0u8; 48];
    let path = msg::c_path(&mut p, format_args!("/proc/{pid}/fdinfo/{fd}"), c"/proc/0/fdinfo/0");
    let n = procfs::read_file(path, buf).ok()?;
    let text = &buf[..n];
    let octal = sys::status::field(text, b"flags")?
        .iter()
        .try_fold(0u64, |a, &c| c.is_ascii_digit().then(|| a * 8 + (c - b'0') as u64))?;
    Some((octal, sys::status::decimal(text, b"pos")?))
}

fn fdinfo_flags(pid: u32, fd: u32, buf: &mut [u8]) -> Option<u64> {
    fdinfo(pid, fd, buf).map(|(flags, _)| flags)
}

/// Whether two descriptors of one file share one open file description.
fn shared(a: &Entry, b: &Entry, scratch: &mut [u8]) -> bool {
    match sys::kcmp_files(a.pid as i32, a.fd as i32, b.pid as i32, b.fd as i32) {
        Ok(r) => r == 0,
        // No kcmp: the same offset and flags (all a description holds that
        // the program can see).
        Err(_) => {
            let x = fdinfo(a.pid, a.fd, scratch);
            x.is_some() && x == fdinfo(b.pid, b.fd, scratch)
        }
    }
}

/// The bytes waiting in the pipe that `e` reads from, read through a
/// descriptor of its own (opened through /proc), not consumed.
fn pipe_bytes(e: &Entry, strings: &mut dyn Strings, scratch: &mut [u8]) -> Result<StrRef, Errno> {
    let mut p = [0u8; 48];
    let path: &CStr = msg::c_path(&mut p, format_args!("/proc/{}/fd/{}", e.pid, e.fd), c"/proc/0/fd/0");
    let Ok(fd) = sys::open(path, sys::O_RDONLY | sys::O_NONBLOCK) else { return Ok(StrRef::default()) };
    let result = files::peek_pipe(fd, strings, scratch);
    sys::close(fd);
    result.map(|(data, _)| data)
}
