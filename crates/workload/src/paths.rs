//! The credential paths beyond the x86-64 set*id family: the 32-bit entry
//! (`int $0x80`), prctl, user namespaces (clone, clone3, setns) and io_uring
//! personalities. Each step is one raw call with known values, observed
//! through /proc before and after, as in the crate's other steps.

use std::os::fd::AsRawFd;

use credtrail_capture::model::Syscall;
use credtrail_capture::model::event::abi;

use crate::entry::{
    IA32_SETGROUPS32, IA32_SETRESUID16, IA32_SETRESUID32, IA32_SETUID16, IA32_SETUID32, int80,
    low_page, pin_to_this_cpu,
};
use crate::{
    CAP_V3, CapData, CapHeader, Report, cap_data, creds_of, current_creds, raw, setresuid_step,
    setuid_step, step, step_via,
};

/// `count` euid changes through the 32-bit entry (alternately to `uid` and
/// back to 0: the real and saved uids stay 0), each followed by a recorded
/// setresuid(-1, -1, -1), whose check finds it if no switch-out did:
/// exactly one unexplained change each. `rate` per second (0: unpaced).
/// Returns how many changes were made.
pub fn ia32_toggle(count: u64, rate: u64, uid: u32) -> std::io::Result<u64> {
    let started = std::time::Instant::now();
    for i in 0..count {
        let to = if i % 2 == 0 { uid } else { 0 };
        if int80(IA32_SETRESUID32, u32::MAX, to, u32::MAX) != 0 {
            return Err(std::io::Error::other(format!(
                "setresuid32(-1, {to}, -1) through int $0x80 failed"
            )));
        }
        // SAFETY: setresuid with "unchanged" for every id changes nothing.
        unsafe { libc::syscall(libc::SYS_setresuid, -1i64, -1i64, -1i64) };
        if rate > 0 {
            let due = started + std::time::Duration::from_secs_f64((i + 1) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    if count % 2 == 1 {
        // Ends as it began: euid 0.
        int80(IA32_SETRESUID32, u32::MAX, 0, u32::MAX);
        // SAFETY: as above.
        unsafe { libc::syscall(libc::SYS_setresuid, -1i64, -1i64, -1i64) };
        return Ok(count + 1);
    }
    Ok(count)
}

/// Must run as root: credential calls a 64-bit process makes through the
/// 32-bit entry, which the per-syscall tracepoints never see.
/// [`ia32_steps`], then `then` for `how_long`. The 32-bit entry is what the
/// recorder does not hook without --compat-syscalls: its detector must find
/// these changes at the next switch-out (`Spin`: a busy thread pinned to
/// the same CPU, started before the steps so that no fork follows them)
/// or in a sweep (`Sleep`, with the switch-out check off).
pub fn ia32_then(then: crate::cli::Then, how_long: std::time::Duration) -> std::io::Result<Report> {
    use crate::cli::Then;
    use std::sync::mpsc;
    if then != Then::Spin {
        let r = ia32_steps()?;
        if then == Then::Sleep {
            std::thread::sleep(how_long);
        }
        return Ok(r);
    }
    pin_to_this_cpu()?;
    let (go, wait) = mpsc::channel::<()>();
    let spin = move || {
        let until = std::time::Instant::now() + how_long;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    };
    let busy = std::thread::spawn(move || {
        if wait.recv().is_ok() {
            spin();
        }
    });
    let r = ia32_steps();
    let _ = go.send(());
    if r.is_ok() {
        spin();
    }
    let _ = busy.join();
    r
}

pub fn ia32_steps() -> std::io::Result<Report> {
    let mut r = Report::default();
    let ia32 = |r: &mut Report, sys, args, groups, call: &dyn Fn() -> i64| {
        step_via(r, abi::IA32, sys, args, groups, call)
    };
    let list = low_page()?;
    // SAFETY: the page holds 1024 u32 and is ours.
    unsafe { list.copy_from_nonoverlapping([3001u32, 3002].as_ptr(), 2) };
    ia32(
        &mut r,
        Syscall::Setgroups,
        vec![2],
        Some(vec![3001, 3002]),
        &|| int80(IA32_SETGROUPS32, 2, list as usize as u32, 0),
    )?;
    ia32(
        &mut r,
        Syscall::Setresuid,
        vec![-1, 4101, -1],
        None,
        &|| int80(IA32_SETRESUID32, u32::MAX, 4101, u32::MAX),
    )?;
    // Back to euid 0 without privilege: the real uid is still 0.
    ia32(&mut r, Syscall::Setuid, vec![0], None, &|| {
        int80(IA32_SETUID32, 0, 0, 0)
    })?;
    // The 16-bit calls: 0xffff is "unchanged".
    ia32(
        &mut r,
        Syscall::Setresuid,
        vec![-1, 4103, -1],
        None,
        &|| int80(IA32_SETRESUID16, 0xffff, 4103, 0xffff),
    )?;
    ia32(&mut r, Syscall::Setuid, vec![0], None, &|| {
        int80(IA32_SETUID16, 0, 0, 0)
    })?;
    ia32(&mut r, Syscall::Setuid, vec![4102], None, &|| {
        int80(IA32_SETUID16, 4102, 0, 0)
    })?;
    Ok(r)
}

/// prctl with all five arguments (PR_CAP_AMBIENT wants the unused ones 0).
fn prctl(option: i32, arg2: u64, arg3: u64) -> i64 {
    // SAFETY: the options used take integers only.
    let r = unsafe { libc::prctl(option, arg2, arg3, 0u64, 0u64) };
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        i64::from(r)
    }
}

const PR_CAP_AMBIENT: i32 = 47;
const PR_CAP_AMBIENT_IS_SET: u64 = 1;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const PR_CAP_AMBIENT_LOWER: u64 = 3;
const PR_CAP_AMBIENT_CLEAR_ALL: u64 = 4;
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_MKNOD: u32 = 27;
pub const SECBIT_NOROOT: u64 = 1;
pub const SECBIT_NOROOT_LOCKED: u64 = 2;

fn prctl_step(r: &mut Report, option: i32, arg2: u64, arg3: u64) -> std::io::Result<()> {
    let args = vec![i64::from(option), arg2 as i64, arg3 as i64];
    step(r, Syscall::Prctl, args, None, || prctl(option, arg2, arg3))
}

/// Must run as root: `names` PR_SET_NAME calls (which must cost no row),
/// then every prctl that changes credentials: an ambient capability raised,
/// lowered, raised and cleared, one dropped from the bounding set, keepcaps,
/// SECBIT_NOROOT|SECBIT_NOROOT_LOCKED, no_new_privs. The PR_SET_NAME count
/// is in the report's `extra.set_name_calls`.
pub fn prctl_steps(names: u64) -> std::io::Result<Report> {
    let mut r = Report::default();
    let name = c"credtrail-name";
    for _ in 0..names {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string we own.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    }
    r.extra.insert("set_name_calls".into(), names as i64);
    // An ambient capability must be permitted and inheritable first.
    let c = current_creds()?;
    let inheritable = c.cap_inheritable | 1 << CAP_NET_BIND_SERVICE;
    let hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data: [CapData; 2] = cap_data(c.cap_effective, c.cap_permitted, inheritable);
    step(
        &mut r,
        Syscall::Capset,
        vec![
            c.cap_effective as i64,
            c.cap_permitted as i64,
            inheritable as i64,
        ],
        None,
        || {
            raw(
                libc::SYS_capset,
                &hdr as *const _ as _,
                data.as_ptr() as _,
                0,
            )
        },
    )?;
    let cap = u64::from(CAP_NET_BIND_SERVICE);
    prctl_step(&mut r, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)?;
    // Only asks: filtered in the kernel, no row.
    r.extra.insert(
        "ambient_is_set".into(),
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap),
    );
    prctl_step(&mut r, PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap)?;
    prctl_step(&mut r, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)?;
    prctl_step(&mut r, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0)?;
    prctl_step(&mut r, libc::PR_CAPBSET_DROP, u64::from(CAP_MKNOD), 0)?;
    prctl_step(&mut r, libc::PR_SET_KEEPCAPS, 1, 0)?;
    prctl_step(
        &mut r,
        libc::PR_SET_SECUREBITS,
        SECBIT_NOROOT | SECBIT_NOROOT_LOCKED,
        0,
    )?;
    prctl_step(&mut r, libc::PR_SET_NO_NEW_PRIVS, 1, 0)?;
    Ok(r)
}

/// `setresuid(-1, uid, -1)`, then `setuid(0)`, allowed without privilege
/// because the real uid is still 0: euid 0 regained. In a user namespace
/// that maps 0 to a host uid, that is root in the namespace only.
pub fn regain_root(uid: u32) -> std::io::Result<Report> {
    let mut r = Report::default();
    setresuid_step(&mut r, [-1, i64::from(uid), -1])?;
    setuid_step(&mut r, 0)?;
    Ok(r)
}

/// One raw `setuid(uid)`.
pub fn setuid_only(uid: u32) -> std::io::Result<Report> {
    let mut r = Report::default();
    setuid_step(&mut r, i64::from(uid))?;
    Ok(r)
}

/// A child in a new user namespace, parked on a pipe until released.
struct Child {
    pid: i32,
    release: libc::c_int,
}

impl Child {
    fn finish(self) {
        // SAFETY: a byte on the pipe wakes the child, which exits (closing
        // our end would not: later children hold copies of it); we reap
        // it. Plain calls on values we own.
        unsafe {
            libc::write(self.release, [1u8].as_ptr().cast(), 1);
            libc::close(self.release);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The child's side: wait for the parent's byte, then exit.
/// Only async-signal-safe calls: the child of a raw clone shares nothing
/// safe to use with the parent's runtime.
fn park(wait: libc::c_int) -> ! {
    let mut b = 0u8;
    // SAFETY: read into a local byte, then _exit.
    unsafe {
        libc::read(wait, (&raw mut b).cast(), 1);
        libc::_exit(0)
    }
}

fn pipe() -> std::io::Result<[libc::c_int; 2]> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into our array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fds)
}

const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;

/// `clone(flags)` or `clone3({flags})` with SIGCHLD as exit signal.
fn clone_child(clone3: bool, flags: u64) -> std::io::Result<Child> {
    let [wait, release] = pipe()?;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: fork-like clones (no CLONE_VM, no new stack): the child runs
    // on a copy of our memory and only calls `park`.
    let pid = unsafe {
        if clone3 {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        } else {
            libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0)
        }
    };
    match pid {
        0 => park(wait),
        -1 => Err(std::io::Error::last_os_error()),
        pid => {
            // SAFETY: the child's end of the pipe is not ours to keep.
            unsafe { libc::close(wait) };
            Ok(Child {
                pid: pid as i32,
                release,
            })
        }
    }
}

/// Must run as root: a child in a new user namespace by clone and by
/// clone3 (each row's `after` is the child's credentials, as /proc shows
/// them from here), then setns into the first child's namespace (its
/// `after` is read through /proc from inside that namespace, whose maps
/// are not written: ids read 65534).
pub fn userns_steps() -> std::io::Result<Report> {
    let mut r = Report::default();
    let mut children = Vec::new();
    for (sys, clone3) in [(Syscall::Clone, false), (Syscall::Clone3, true)] {
        let before = current_creds()?;
        let child = clone_child(clone3, CLONE_NEWUSER)?;
        let pid = child.pid as u32;
        r.steps.push(crate::Step {
            syscall: sys.name().into(),
            abi: abi::X64.into(),
            // clone takes the exit signal in its flags; clone3 apart.
            args: vec![(CLONE_NEWUSER | if clone3 { 0 } else { libc::SIGCHLD as u64 }) as i64],
            groups: None,
            ret: i64::from(child.pid),
            pid: std::process::id(),
            tid: crate::gettid(),
            before,
            after: creds_of(pid, pid)?,
        });
        children.push(child);
    }
    let ns = std::fs::File::open(format!("/proc/{}/ns/user", children[0].pid))?;
    let fd = ns.as_raw_fd();
    step(
        &mut r,
        Syscall::Setns,
        vec![i64::from(fd), CLONE_NEWUSER as i64],
        None,
        || raw(libc::SYS_setns, fd as _, CLONE_NEWUSER as _, 0),
    )?;
    for c in children {
        c.finish();
    }
    Ok(r)
}

/// Must run as root: registers an io_uring personality (root's
/// credentials), drops the euid to `uid`, submits an openat of
/// /etc/shadow under the personality (it runs as root: `extra.open_result`
/// is the descriptor, or the negative errno), then unregisters it. The
/// `io_uring_submit` step's `after` is the personality's credentials.
pub fn io_uring_steps(uid: u32) -> std::io::Result<Report> {
    use io_uring::{IoUring, opcode, types};
    let mut r = Report::default();
    let mut ring = IoUring::new(8)?;
    let fd = i64::from(ring.as_raw_fd());
    let mut id = 0u16;
    step(
        &mut r,
        Syscall::IoUringRegister,
        vec![fd, 9, 0],
        None,
        || match ring.submitter().register_personality() {
            Ok(p) => {
                id = p;
                i64::from(p)
            }
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
        },
    )?;
    let saved = current_creds()?;
    setresuid_step(&mut r, [-1, i64::from(uid), -1])?;
    let path = c"/etc/shadow";
    const USER_DATA: u64 = 0x5eed;
    let open = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_RDONLY | libc::O_CLOEXEC)
        .build()
        .personality(id)
        .user_data(USER_DATA);
    let before = current_creds()?;
    // SAFETY: the entry points at `path`, which outlives the submission
    // (we wait for its completion below).
    unsafe { ring.submission().push(&open) }.map_err(std::io::Error::other)?;
    ring.submit_and_wait(1)?;
    let result = ring.completion().next().map_or(-1, |c| c.result());
    if result >= 0 {
        // SAFETY: the descriptor the request opened is ours.
        unsafe { libc::close(result) };
    }
    r.extra.insert("open_result".into(), i64::from(result));
    r.steps.push(crate::Step {
        syscall: Syscall::IoUringSubmit.name().into(),
        abi: abi::X64.into(),
        args: vec![i64::from(opcode::OpenAt::CODE), USER_DATA as i64],
        groups: None,
        ret: 0,
        pid: std::process::id(),
        tid: crate::gettid(),
        before,
        // The personality's credentials: those saved at registration.
        after: saved,
    });
    step(
        &mut r,
        Syscall::IoUringRegister,
        vec![fd, 10, i64::from(id)],
        None,
        || match ring.submitter().unregister_personality(id) {
            Ok(()) => 0,
            Err(e) => -i64::from(e.raw_os_error().unwrap_or(0)),
        },
    )?;
    Ok(r)
}

/// `calls` rounds of access(R_OK) and faccessat(R_OK | W_OK) on
/// /etc/shadow; returns how many checks were allowed. Each runs under the
/// real ids (override_creds) whenever they differ from the effective ones.
pub fn access_checks(calls: u64) -> u64 {
    let path = c"/etc/shadow";
    let mut allowed = 0;
    for _ in 0..calls {
        // SAFETY: a valid NUL-terminated path; no memory is written.
        unsafe {
            allowed += u64::from(libc::access(path.as_ptr(), libc::R_OK) == 0);
            allowed += u64::from(
                libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::R_OK | libc::W_OK, 0) == 0,
            );
        }
    }
    allowed
}
