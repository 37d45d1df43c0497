//! A credential-changing workload with known answers, for root tests, the
//! demo and benchmarks (`credtrail-workload`).
//!
//! Every step issues the raw syscall (no glibc wrapper, so one call is one
//! event) except the broadcast step, which deliberately goes through glibc's
//! `setuid` so it fans out to every thread. Each step records the thread's
//! credentials as /proc shows them before and after, an observation
//! independent of the BPF programs.

pub mod cli;
mod entry;
pub mod paths;
mod run;

use serde::{Deserialize, Serialize};

use credtrail_capture::model::event::abi;
use credtrail_capture::model::{Creds, Syscall};

/// The calling thread's credentials, as /proc shows them, with the
/// securebits /proc does not show (from `PR_GET_SECUREBITS`).
pub fn current_creds() -> std::io::Result<Creds> {
    let mut c = creds_of(std::process::id(), gettid())?;
    // SAFETY: PR_GET_SECUREBITS takes no pointer.
    let bits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    if bits < 0 {
        return Err(std::io::Error::last_os_error());
    }
    c.securebits = bits as u32;
    Ok(c)
}

/// A thread's credentials as /proc/PID/task/TID/status shows them: an
/// observation independent of the BPF programs (securebits are not there:
/// 0; see [`current_creds`]).
pub fn creds_of(pid: u32, tid: u32) -> std::io::Result<Creds> {
    let s = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.task_from_tid(tid as i32))
        .and_then(|t| t.status())
        .map_err(std::io::Error::other)?;
    Ok(host_namespace_facts(Creds {
        uid: s.ruid,
        euid: s.euid,
        suid: s.suid,
        fsuid: s.fuid,
        gid: s.rgid,
        egid: s.egid,
        sgid: s.sgid,
        fsgid: s.fgid,
        cap_effective: s.capeff,
        cap_permitted: s.capprm,
        cap_inheritable: s.capinh,
        cap_bounding: s.capbnd.unwrap_or(0),
        cap_ambient: s.capamb.unwrap_or(0),
        securebits: 0,
        groups: s.groups,
        userns: Some(userns_of(pid, tid)?),
        userns_level: None,
        userns_owner: None,
        no_new_privs: s.nonewprivs.map(|v| v != 0),
    }))
}

/// The inode of a thread's user namespace (`/proc/PID/task/TID/ns/user`).
pub fn userns_of(pid: u32, tid: u32) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(format!("/proc/{pid}/task/{tid}/ns/user"))?.ino() as u32)
}

/// Level and owner are what a process cannot always see of its own user
/// namespace (the ioctls stop at it): known here for the host's only.
fn host_namespace_facts(mut c: Creds) -> Creds {
    if c.userns == Some(credtrail_capture::model::creds::HOST_USERNS) {
        c.userns_level = Some(0);
        c.userns_owner = Some(0);
    }
    c
}

/// One call the workload made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub syscall: String,
    /// The syscall entry: `x64`, or `ia32` for `int $0x80`.
    #[serde(default = "x64")]
    pub abi: String,
    /// Requested values as credtrail records them (-1 = unchanged).
    pub args: Vec<i64>,
    pub groups: Option<Vec<u32>>,
    /// Kernel return value: negative errno on failure.
    pub ret: i64,
    pub pid: u32,
    pub tid: u32,
    pub before: Creds,
    pub after: Creds,
}

fn x64() -> String {
    abi::X64.to_owned()
}

/// Everything the workload did, printed as JSON on stdout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub steps: Vec<Step>,
    /// Facts beyond the steps (a request's result, a count of calls).
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, i64>,
}

pub(crate) fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Raw syscall returning the kernel's value (negative errno on failure).
pub(crate) fn raw(nr: libc::c_long, a: libc::c_long, b: libc::c_long, c: libc::c_long) -> i64 {
    // SAFETY: only called with the credential syscalls and integer or valid
    // pointer arguments prepared by the callers below.
    let r = unsafe { libc::syscall(nr, a, b, c) };
    if r == -1 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

pub(crate) const CAP_V3: u32 = 0x2008_0522;
pub const CAP_NET_RAW: u32 = 13;

#[repr(C)]
pub(crate) struct CapHeader {
    pub(crate) version: u32,
    pub(crate) pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(crate) struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn split(mask: u64) -> (u32, u32) {
    (mask as u32, (mask >> 32) as u32)
}

/// Runs one raw call and records it.
pub(crate) fn step(
    report: &mut Report,
    syscall: Syscall,
    args: Vec<i64>,
    groups: Option<Vec<u32>>,
    call: impl FnOnce() -> i64,
) -> std::io::Result<()> {
    step_via(report, abi::X64, syscall, args, groups, call)
}

/// [`step`] through the syscall entry `abi`.
pub(crate) fn step_via(
    report: &mut Report,
    abi: &str,
    syscall: Syscall,
    args: Vec<i64>,
    groups: Option<Vec<u32>>,
    call: impl FnOnce() -> i64,
) -> std::io::Result<()> {
    let before = current_creds()?;
    let ret = call();
    let after = current_creds()?;
    report.steps.push(Step {
        syscall: syscall.name().to_owned(),
        abi: abi.to_owned(),
        args,
        groups,
        ret,
        pid: std::process::id(),
        tid: gettid(),
        before,
        after,
    });
    Ok(())
}

/// A raw `setuid(uid)` as a step.
pub(crate) fn setuid_step(r: &mut Report, uid: i64) -> std::io::Result<()> {
    step(r, Syscall::Setuid, vec![uid], None, || {
        raw(libc::SYS_setuid, uid as _, 0, 0)
    })
}

/// A raw `setresuid(ids)` as a step (-1: unchanged).
pub(crate) fn setresuid_step(r: &mut Report, ids: [i64; 3]) -> std::io::Result<()> {
    step(r, Syscall::Setresuid, ids.to_vec(), None, || {
        raw(libc::SYS_setresuid, ids[0] as _, ids[1] as _, ids[2] as _)
    })
}

fn setgroups_step(r: &mut Report, groups: &[u32]) -> std::io::Result<()> {
    step(
        r,
        Syscall::Setgroups,
        vec![groups.len() as i64],
        Some(groups.to_vec()),
        || {
            raw(
                libc::SYS_setgroups,
                groups.len() as _,
                groups.as_ptr() as _,
                0,
            )
        },
    )
}

/// capset dropping one capability from the effective, permitted and
/// inheritable sets.
fn capset_drop_step(r: &mut Report, cap: u32) -> std::io::Result<()> {
    let now = current_creds()?;
    let drop = |m: u64| m & !(1u64 << cap);
    let (e, p, i) = (
        drop(now.cap_effective),
        drop(now.cap_permitted),
        drop(now.cap_inheritable),
    );
    let hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = cap_data(e, p, i);
    step(
        r,
        Syscall::Capset,
        vec![e as i64, p as i64, i as i64],
        None,
        || {
            raw(
                libc::SYS_capset,
                &hdr as *const _ as _,
                data.as_ptr() as _,
                0,
            )
        },
    )
}

/// Must run as root in a single-threaded process: walks through every
/// hooked syscall with distinctive values, ending unprivileged with a
/// refused `setuid(0)`.
pub fn single_thread_steps() -> std::io::Result<Report> {
    let mut r = Report::default();
    setgroups_step(&mut r, &[1001, 1002, 1003])?;
    step(
        &mut r,
        Syscall::Setresgid,
        vec![2001, 2002, 2003],
        None,
        || raw(libc::SYS_setresgid, 2001, 2002, 2003),
    )?;
    step(&mut r, Syscall::Setregid, vec![2011, 2012], None, || {
        raw(libc::SYS_setregid, 2011, 2012, 0)
    })?;
    step(&mut r, Syscall::Setgid, vec![2021], None, || {
        raw(libc::SYS_setgid, 2021, 0, 0)
    })?;
    step(&mut r, Syscall::Setfsgid, vec![2031], None, || {
        raw(libc::SYS_setfsgid, 2031, 0, 0)
    })?;
    capset_drop_step(&mut r, CAP_NET_RAW)?;
    step(&mut r, Syscall::Setfsuid, vec![3001], None, || {
        raw(libc::SYS_setfsuid, 3001, 0, 0)
    })?;
    step(&mut r, Syscall::Setreuid, vec![-1, 4002], None, || {
        raw(libc::SYS_setreuid, -1, 4002, 0)
    })?;
    // Allowed without CAP_SETUID because the real uid is still 0.
    setuid_step(&mut r, 0)?;
    setresuid_step(&mut r, [1001, 1002, 1003])?;
    // Now unprivileged: refused with EPERM.
    setuid_step(&mut r, 0)?;
    Ok(r)
}

/// setgroups with `groups` (as root).
pub fn setgroups_only(groups: &[u32]) -> std::io::Result<Report> {
    let mut r = Report::default();
    setgroups_step(&mut r, groups)?;
    Ok(r)
}

/// capset dropping CAP_NET_RAW (as root).
pub fn capset_drop() -> std::io::Result<Report> {
    let mut r = Report::default();
    capset_drop_step(&mut r, CAP_NET_RAW)?;
    Ok(r)
}

/// Drops to `uid` with setresuid, then asks for root back: EPERM.
pub fn denied_setuid(uid: u32) -> std::io::Result<Report> {
    let mut r = Report::default();
    let u = i64::from(uid);
    setresuid_step(&mut r, [u, u, u])?;
    setuid_step(&mut r, 0)?;
    Ok(r)
}

/// `setresuid(uid, uid, uid)`, as `su` does before exec'ing a shell.
pub fn su_like(uid: u32) -> i64 {
    let u = uid as libc::c_long;
    raw(libc::SYS_setresuid, u, u, u)
}

/// Must run as root: starts `threads - 1` extra threads, then calls glibc's
/// `setuid(uid)`, which makes every thread issue the syscall.
pub fn broadcast_setuid(threads: usize, uid: u32) -> std::io::Result<Report> {
    use std::sync::{Arc, Barrier, mpsc};
    let before = current_creds()?;
    let ready = Arc::new(Barrier::new(threads));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let done_rx = Arc::new(std::sync::Mutex::new(done_rx));
    let mut handles = Vec::new();
    for _ in 1..threads {
        let ready = Arc::clone(&ready);
        let done_rx = Arc::clone(&done_rx);
        handles.push(std::thread::spawn(move || {
            let tid = gettid();
            ready.wait();
            // Park until the main thread has read everyone's credentials.
            let _ = done_rx.lock().map(|rx| rx.recv());
            tid
        }));
    }
    ready.wait();
    // SAFETY: setuid has no memory preconditions; glibc signals every thread.
    let rc = unsafe { libc::setuid(uid) };
    let ret = if rc == 0 {
        0
    } else {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    };
    let pid = std::process::id();
    let mut tids = vec![gettid()];
    // Every thread is parked, so /proc shows its post-broadcast credentials.
    let task_tids: Vec<u32> = procfs::process::Process::myself()
        .and_then(|p| p.tasks())
        .map_err(std::io::Error::other)?
        .flatten()
        .map(|t| t.tid as u32)
        .filter(|t| *t != tids[0])
        .collect();
    tids.extend(task_tids);
    let mut report = Report::default();
    for tid in &tids {
        report.steps.push(Step {
            syscall: Syscall::Setuid.name().into(),
            abi: abi::X64.into(),
            args: vec![uid as i64],
            groups: None,
            ret,
            pid,
            tid: *tid,
            before: before.clone(),
            after: creds_of(pid, *tid)?,
        });
    }
    for _ in 1..threads {
        let _ = done_tx.send(());
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(report)
}

/// The call a storm or a timing loop makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Call {
    /// setresuid(-1, euid, -1), euid toggling 0 ↔ UID: a real change each time.
    Setresuid,
    /// setresuid(-1, euid, -1), euid toggling 0 ↔ UID + n/2: every call a
    /// transition not made before (nothing for the kernel to fold).
    SetresuidVary,
    /// setresgid(-1, egid, -1), egid toggling 0 ↔ UID.
    Setresgid,
    /// capset toggling CAP_NET_RAW in the effective set.
    Capset,
    /// getpid: an unrelated syscall, to measure what tracing costs others.
    Getpid,
    /// getpid through the 32-bit entry (`int $0x80`).
    Getpid32,
    /// prctl(PR_SET_NAME): a prctl option that changes no credential
    /// (filtered in the kernel).
    PrctlName,
    /// An io_uring NOP request without a personality, submitted and waited for.
    IoUringNop,
    /// sched_yield to a second thread on the same CPU that yields back: two
    /// context switches per call, each one a switch-out the detector checks.
    Switch,
}

/// Makes call number `n` of `call`: even calls move away from the start
/// state, odd calls move back, so an even count leaves the thread as it began.
fn make_call(call: Call, n: u64, uid: u32, caps: &[CapData; 2]) -> i64 {
    let away = n.is_multiple_of(2);
    match call {
        Call::Setresuid => raw(
            libc::SYS_setresuid,
            -1,
            if away { uid.into() } else { 0 },
            -1,
        ),
        Call::SetresuidVary => raw(
            libc::SYS_setresuid,
            -1,
            if away {
                (i64::from(uid) + (n / 2 % 1_000_000) as i64) as libc::c_long
            } else {
                0
            },
            -1,
        ),
        Call::Setresgid => raw(
            libc::SYS_setresgid,
            -1,
            if away { uid.into() } else { 0 },
            -1,
        ),
        Call::Capset => {
            let mut data = *caps;
            if away {
                data[0].effective &= !(1 << CAP_NET_RAW);
            }
            let hdr = CapHeader {
                version: CAP_V3,
                pid: 0,
            };
            raw(
                libc::SYS_capset,
                &hdr as *const CapHeader as libc::c_long,
                data.as_ptr() as libc::c_long,
                0,
            )
        }
        // SAFETY: getpid has no preconditions.
        Call::Getpid => unsafe { libc::getpid() }.into(),
        Call::Getpid32 => entry::getpid32(),
        Call::PrctlName => {
            let name = if away { c"credtrail-a" } else { c"credtrail-b" };
            // SAFETY: PR_SET_NAME reads a NUL-terminated string we own.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) }.into()
        }
        Call::IoUringNop => entry::io_uring_nop(),
        // SAFETY: sched_yield has no preconditions.
        Call::Switch => unsafe { libc::sched_yield() }.into(),
    }
}

/// The thread's capability sets now, in capset's layout.
fn current_caps() -> [CapData; 2] {
    let now = current_creds().unwrap_or_default();
    cap_data(now.cap_effective, now.cap_permitted, now.cap_inheritable)
}

/// 64-bit capability masks in capset's two 32-bit halves.
pub(crate) fn cap_data(effective: u64, permitted: u64, inheritable: u64) -> [CapData; 2] {
    let (e0, e1) = split(effective);
    let (p0, p1) = split(permitted);
    let (i0, i1) = split(inheritable);
    [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ]
}

/// Storm mode: `threads` threads each make `call` (toggling their own
/// credentials) until `deadline`, at most `rate` calls/s per thread
/// (0 = flat out). Returns the exact number of calls issued.
pub fn storm(
    call: Call,
    threads: usize,
    uid: u32,
    duration: std::time::Duration,
    rate: u64,
) -> u64 {
    let deadline = std::time::Instant::now() + duration;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let caps = current_caps();
                let start = std::time::Instant::now();
                let mut n = 0u64;
                loop {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    if rate > 0 {
                        let due = (now - start).as_secs_f64() * rate as f64;
                        if (n as f64) >= due {
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            continue;
                        }
                    }
                    make_call(call, n, uid, &caps);
                    n += 1;
                }
                // Leave the thread as it started.
                if n % 2 == 1 {
                    make_call(call, n, uid, &caps);
                    n += 1;
                }
                n
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
}

/// [`Call::Switch`]: this thread and a partner pinned to one CPU, yielding
/// to each other; nanoseconds per yield of this thread (two switches).
fn time_switches(calls: u64) -> f64 {
    use std::sync::atomic::{AtomicBool, Ordering};
    if entry::pin_to_this_cpu().is_err() {
        return f64::NAN;
    }
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let partner = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        })
    };
    let caps = current_caps();
    for n in 0..calls / 10 {
        make_call(Call::Switch, n, 0, &caps);
    }
    let start = std::time::Instant::now();
    for n in 0..calls {
        make_call(Call::Switch, n, 0, &caps);
    }
    let ns = start.elapsed().as_nanos() as f64 / calls.max(1) as f64;
    stop.store(true, Ordering::Relaxed);
    let _ = partner.join();
    ns
}

/// Nanoseconds per call of `call`, over `calls` calls on this thread (after
/// a tenth as many to warm up): the cost a tracer adds shows up here.
pub fn time_calls(call: Call, calls: u64, uid: u32) -> f64 {
    if call == Call::Switch {
        return time_switches(calls);
    }
    let caps = current_caps();
    for n in 0..calls / 10 * 2 {
        make_call(call, n, uid, &caps);
    }
    let calls = calls / 2 * 2;
    let start = std::time::Instant::now();
    for n in 0..calls {
        make_call(call, n, uid, &caps);
    }
    start.elapsed().as_nanos() as f64 / calls.max(1) as f64
}
