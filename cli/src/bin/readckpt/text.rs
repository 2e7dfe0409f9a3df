//! The text output: a summary, then one section per table, aligned for a
//! terminal.

use crate::describe::*;
use crate::{Report, Verdict};
use ckpt_image::{xstate, FdKind, Header, Meta, ProcessState, Thread, NSIG, REGION_GROWSDOWN};
use ckpt_image::{PROCESS_ITIMERS, PROCESS_PENDING, PROCESS_PRCTL, PROCESS_RLIMITS};
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    write_summary(out, rep)?;
    write_mm(out, &rep.meta.header)?;
    write_process(out, &rep.meta.header.process)?;
    write_posix_timers(out, rep.meta)?;
    write_threads(out, rep.meta)?;
    write_signals(out, rep.meta)?;
    write_files(out, rep.meta)?;
    write_regions(out, rep.meta)?;
    match &rep.verdict {
        None => Ok(()),
        Some(Verdict::Good { extents, bytes }) => match &rep.refused {
            None => writeln!(out, "verify: OK, all {extents} extents ({}) match their checksums", human(*bytes)),
            Some(why) => writeln!(
                out,
                "verify: FAILED: all {extents} extents ({}) match their checksums, but {why}",
                human(*bytes)
            ),
        },
        Some(Verdict::Bad(b)) => write!(
            out,
            "verify: FAILED: extent {} ({:#x}-{:#x}, region {}, file offset {:#x}): ",
            b.index,
            b.extent.addr,
            b.extent.addr + b.extent.len,
            b.region,
            b.extent.file_pos,
        )
        .and_then(|()| match b.computed {
            Some(c) => writeln!(out, "computed {c:#018x}, expected {:#018x}", b.extent.checksum),
            None => writeln!(out, "{}", b.why()),
        }),
    }
}

fn write_summary(out: &mut dyn Write, rep: &Report) -> io::Result<()> {
    let h = &rep.meta.header;
    let argv: Vec<String> = rep.argv().iter().map(|a| shell_quote(a)).collect();
    let none = |s: String| {
        if s.is_empty() {
            "(none)".to_string()
        } else {
            s
        }
    };
    writeln!(out, "image       {}", show(rep.name.as_bytes()))?;
    writeln!(out, "format      version {}, x86-64, page size {}", h.version, h.page_size)?;
    writeln!(out, "created     {}", iso8601(h.created_ns))?;
    writeln!(out, "capture     {}", duration(h.capture_ns))?;
    writeln!(out, "pid         {}", h.pid)?;
    writeln!(out, "command     {}", none(argv.join(" ")))?;
    writeln!(out, "cwd         {}", none(show(rep.string(h.cwd))))?;
    writeln!(out, "exe         {}", none(show(rep.string(h.exe))))?;
    writeln!(out, "comm        {}", none(show(rep.comm())))?;
    writeln!(out, "umask       {:04o}", h.umask)?;
    writeln!(out, "cpu         {} ({})", none(show(until_nul(&h.cpu_brand))), xstate::level_name(h.cpu_level))?;
    writeln!(out, "xfeatures   {}", xfeature_set(h.xfeatures))?;
    writeln!(out, "xsave size  {} bytes", h.xsave_size)?;
    let held = match h.portable_level {
        0 => {
            format!("not portable: the program may use any instruction its {} CPU has", xstate::level_name(h.cpu_level))
        }
        l => format!("held to {} by ckpt --portable", xstate::level_name(l)),
    };
    writeln!(
        out,
        "requires    {}, {}; {held}",
        xfeature_set(h.required_xfeatures),
        xstate::level_name(xstate::required_level(h))
    )?;
    write!(out, "file        {} bytes ({})", h.file_len, human(h.file_len))?;
    if rep.disk_len != h.file_len {
        write!(out, ", {} bytes on disk", rep.disk_len)?;
    }
    writeln!(out)?;
    writeln!(out, "metadata    {} bytes at {:#x}", h.meta_len, h.meta_offset)?;
    writeln!(out, "data        {} bytes ({}) at {:#x}", h.data_len, human(h.data_len), h.data_offset)?;
    let t = rep.meta.data_totals();
    match t.compressed {
        0 => writeln!(out, "compression none")?,
        n => writeln!(
            out,
            "compression lz4: {n} of {} extents; {} of memory in {} (ratio {:.1})",
            h.n_extents,
            human(t.memory),
            human(t.stored),
            t.ratio()
        )?,
    }
    crate::chain::write_text(out, rep.meta)
}

fn write_mm(out: &mut dyn Write, h: &Header) -> io::Result<()> {
    let mm = &h.mm;
    writeln!(out, "\nmm layout")?;
    writeln!(out, "  code      {:#x}-{:#x}", mm.start_code, mm.end_code)?;
    writeln!(out, "  data      {:#x}-{:#x}", mm.start_data, mm.end_data)?;
    writeln!(out, "  brk       {:#x}-{:#x}", mm.start_brk, mm.brk)?;
    writeln!(out, "  stack     {:#x}", mm.start_stack)?;
    writeln!(out, "  args      {:#x}-{:#x}", mm.arg_start, mm.arg_end)?;
    writeln!(out, "  env       {:#x}-{:#x}", mm.env_start, mm.env_end)
}

/// Process-wide kernel state: only what the image says it recorded (its
/// `valid` bits); timers only when armed, limits only when not unlimited.
/// The POSIX timers (`timer_create`), if the image has any.
fn write_posix_timers(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    use ckpt_image::timers::{SIGEV_NONE, SIGEV_THREAD_ID};
    let timers = m.timers();
    if timers.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nposix timers ({})", timers.len())?;
    for t in timers.iter() {
        let notify = match t.notify {
            SIGEV_NONE => "no signal".to_string(),
            SIGEV_THREAD_ID => format!("signal {} to thread {}", t.signal, t.tid),
            _ => format!("signal {}", t.signal),
        };
        let left = match (t.value_ns, t.interval_ns) {
            (0, _) => "disarmed".to_string(),
            (v, 0) => format!("{} s left, once", seconds(v)),
            (v, i) => format!("{} s left, then every {} s", seconds(v), seconds(i)),
        };
        writeln!(out, "  timer {:<4} clock {}, {notify}, value {:#x}, {left}", t.id, t.clock, t.value)?;
    }
    Ok(())
}

fn write_process(out: &mut dyn Write, p: &ProcessState) -> io::Result<()> {
    writeln!(out, "\nprocess")?;
    let all = PROCESS_ITIMERS | PROCESS_RLIMITS | PROCESS_PENDING | PROCESS_PRCTL;
    if p.valid & all == 0 {
        return writeln!(out, "  (not recorded)");
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    if p.valid & PROCESS_ITIMERS != 0 {
        for (name, t) in ITIMER_NAMES.iter().zip(&p.itimers) {
            if t.value_ns != 0 {
                let every = match t.interval_ns {
                    0 => "once".to_string(),
                    ns => format!("then every {} s", seconds(ns)),
                };
                lines.push((format!("timer {name}"), format!("{} s, {every}", seconds(t.value_ns))));
            }
        }
        if p.itimers.iter().all(|t| t.value_ns == 0) {
            lines.push(("timers".into(), "none armed".into()));
        }
    }
    if p.valid & PROCESS_RLIMITS != 0 {
        for (name, &[soft, hard]) in RLIMIT_NAMES.iter().zip(&p.rlimits) {
            if soft != u64::MAX || hard != u64::MAX {
                lines.push((format!("rlimit {name}"), format!("{} / {}", limit(soft), limit(hard))));
            }
        }
        if p.rlimits.iter().all(|&l| l == [u64::MAX; 2]) {
            lines.push(("rlimits".into(), "all unlimited".into()));
        }
    }
    if p.valid & PROCESS_PENDING != 0 {
        let value = match p.pending {
            0 => "none".to_string(),
            set => format!("{} ({set:#x})", signal_set(set)),
        };
        lines.push(("pending".into(), value));
    }
    if p.valid & PROCESS_PRCTL != 0 {
        let pdeathsig = match p.pdeathsig as usize {
            0 => "none".to_string(),
            sig => format!("{} ({sig})", signal_name(sig)),
        };
        let subreaper = if p.child_subreaper != 0 { "yes" } else { "no" };
        lines.push(("pdeathsig".into(), pdeathsig));
        lines.push(("dumpable".into(), p.dumpable.to_string()));
        lines.push(("child subreaper".into(), subreaper.into()));
    }
    for (label, value) in lines {
        writeln!(out, "  {label:<17} {value}")?;
    }
    Ok(())
}

fn rseq(t: &Thread) -> String {
    match t.rseq_area {
        0 => "none".into(),
        area => format!("{area:#x}+{}", t.rseq_len),
    }
}

fn write_threads(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    writeln!(out, "\nthreads ({}; * wrote the image)", m.n_threads())?;
    let columns = "TID     NAME             RIP            RSP            RFLAGS   FS_BASE        RSEQ               UCONTEXT       SIGMASK            XINUSE PENDING";
    writeln!(out, "   {columns}")?;
    for (i, t) in m.threads().enumerate() {
        let mark = if i == m.header.leader as usize { '*' } else { ' ' };
        let name = match show(until_nul(&t.comm)) {
            name if name.is_empty() => "-".to_string(),
            name => name,
        };
        let pending = match t.pending {
            0 => "-".to_string(),
            set => format!("{set:#x} ({})", signal_set(set)),
        };
        writeln!(
            out,
            "  {mark}{:<8}{name:<16} {:#014x} {:#014x} {:<8} {:#014x} {:<18} {:#014x} {:<18} {:<6} {pending}",
            t.tid,
            t.gregs[REG_RIP],
            t.gregs[REG_RSP],
            format!("{:#x}", t.gregs[REG_EFL]),
            t.fs_base,
            rseq(&t),
            t.ucontext,
            format!("{:#x}", t.sigmask),
            format!("{:#x}", t.xinuse)
        )?;
    }
    Ok(())
}

fn write_signals(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    let set: Vec<_> = (1..NSIG).map(|sig| (sig, m.sigaction(sig))).filter(|(_, a)| a.handler != 0).collect();
    writeln!(out, "\nsignals ({} not SIG_DFL)", set.len())?;
    for (sig, a) in set {
        let handler = if a.handler == 1 { "IGN".to_string() } else { format!("{:#x}", a.handler) };
        let name = format!("{} ({sig})", signal_name(sig));
        writeln!(out, "  {name:<16} handler {handler:<16} flags {:#010x}  mask {:#x}", a.flags, a.mask)?;
    }
    Ok(())
}
/// One line per descriptor, in table order; the ones that cannot be
/// restored say so.
fn write_files(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    let lost = m.fds().filter(|f| f.kind() == Some(FdKind::Lost)).count();
    match lost {
        0 => writeln!(out, "\nfiles ({})", m.n_fds())?,
        n => writeln!(out, "\nfiles ({}, {n} not restored)", m.n_fds())?,
    }
    if m.n_fds() == 0 {
        return Ok(());
    }
    writeln!(out, "  {:>6}  {:<8} {:<30} {:>12}  PATH", "FD", "KIND", "FLAGS", "OFFSET")?;
    for f in m.fds() {
        let kind = f.kind();
        let offset = match kind {
            Some(FdKind::File | FdKind::Dir) => f.offset.to_string(),
            _ => "-".into(),
        };
        let mut tail = show(m.string(f.path).unwrap_or_default());
        match kind {
            Some(FdKind::PipeRead) => {
                let held = f.data.len as u64;
                let unit = if held == 1 { "byte" } else { "bytes" };
                tail = format!("{tail} ({held} {unit} held)");
            }
            Some(FdKind::Lost) => tail = format!("{tail}  NOT RESTORED (becomes /dev/null)"),
            Some(k) => {
                if let Some(state) = event_state(m, &f, k) {
                    tail = format!("{tail} ({state})");
                }
            }
            None => {}
        }
        let line =
            format!("  {:>6}  {:<8} {:<30} {offset:>12}  {}", f.fd, fd_kind_name(&f), fd_flags(&f), tail.trim_start());
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn write_regions(out: &mut dyn Write, m: &Meta) -> io::Result<()> {
    writeln!(out, "\nregions")?;
    writeln!(out, "  {:<25} {:<4} {:<11} {:>8} {:>8}  PATH", "START-END", "PERM", "KIND", "SIZE", "STORED")?;
    let (mut size, mut stored) = (0, 0);
    for r in m.regions() {
        let bytes = m.stored_bytes(&r);
        let mut tail = show(m.string(r.path).unwrap_or_default());
        if r.flags & REGION_GROWSDOWN != 0 {
            tail = format!("{tail} (grows down)").trim_start().to_string();
        }
        let line = format!(
            "  {:012x}-{:012x} {} {:<11} {:>8} {:>8}  {tail}",
            r.start,
            r.end,
            perms(&r),
            kind_name(&r),
            human(r.len()),
            human(bytes),
        );
        writeln!(out, "{}", line.trim_end())?;
        size += r.len();
        stored += bytes;
    }
    writeln!(
        out,
        "  total: {} regions, {} extents, {} stored of {} mapped ({stored} bytes)",
        m.n_regions(),
        m.header.n_extents,
        human(stored),
        human(size)
    )
}
