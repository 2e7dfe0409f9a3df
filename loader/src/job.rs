//! A job image (`ckpt --tree`): restart brings back its root, the process
//! ckpt started; the other processes of the job are named on stderr, one
//! line each, as not restarted (a whole tree restarts only with exact pids:
//! not done yet).

use alloc::vec::Vec;
use core::fmt::Write as _;

use ckpt_image::job::{Job, JobHeader, JOB_HEADER_SIZE, MEMBER_ZOMBIE};
use ckpt_sys::msg::Line;

use crate::fail::Fail;
use crate::image::read_exact;

/// Where the process image to restart lies in the file of `file_len`
/// bytes: (0, file_len) for a process image; for a job image, the root's
/// place, after its table is validated and the other members are named.
pub fn root_of(fd: i32, file_len: u64) -> Result<(u64, u64), Fail> {
    let mut head = [0u8; JOB_HEADER_SIZE];
    let n = (file_len as usize).min(JOB_HEADER_SIZE);
    read_exact(fd, &mut head[..n], 0)?;
    if !ckpt_image::job::is_job(&head[..n]) {
        return Ok((0, file_len));
    }
    let header = JobHeader::parse(&head[..n], file_len).map_err(|e| Fail::Msg(e.message()))?;
    let mut table = Vec::new();
    table.try_reserve_exact(header.table_len() as usize).map_err(|_| Fail::Msg("the job's table is too large"))?;
    table.resize(header.table_len() as usize, 0u8);
    read_exact(fd, &mut table, JOB_HEADER_SIZE as u64)?;
    let job = Job::parse(header, &table).map_err(|e| Fail::Msg(e.message()))?;
    let root = job.member(0);
    for i in 1..job.len() {
        let m = job.member(i);
        let mut l = Line::new();
        let _ = write!(l, "restart: warning: process {} (", m.pid);
        let cmd = job.command(&m);
        let cmd = cmd.strip_suffix(b"\0").unwrap_or(cmd);
        for (k, part) in cmd.split(|&c| c == 0).take(8).enumerate() {
            l.push(if k == 0 { b"" } else { b" " }).push_escaped(part);
        }
        let _ = write!(l, ") of the job ({}) is not restarted: only the process ckpt started is", {
            if m.state == MEMBER_ZOMBIE {
                "exited, not yet waited for"
            } else {
                "running"
            }
        });
        l.emit();
    }
    Ok((root.offset, root.len))
}
