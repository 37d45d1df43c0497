//! `credtrail-record -- COMMAND`: the command the recorder starts and whose
//! process tree alone it records.
//!
//! The command's first process is forked before the recorder loads its
//! programs or lowers its own privileges (a bounding set or nice value the
//! command inherited from the recorder would be a change credtrail made to
//! the behaviour it records), switches to `--user` there, and waits. Once
//! the hooks are attached the recorder puts it in the kernel's tree map and
//! lets it exec: everything it and its descendants do is recorded, the
//! switch to `--user` is not (the recorder's doing, not the command's).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use credtrail_capture::model::ProcessRow;

/// What the manifest says about a recorded command (`settings.command`,
/// `settings.user`): the program, not its arguments (they may hold
/// secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub program: String,
    pub user: Option<String>,
    /// The command's first process: of the /proc snapshot, only it and its
    /// ancestors go into the capture.
    pub pid: u32,
}

/// The user a command runs as (`--user NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, as `initgroups` would set them.
    pub groups: Vec<u32>,
}

/// Most groups taken from the group database for `--user`.
const MAX_USER_GROUPS: usize = 65_536;

impl User {
    /// Looks `name` up in the user and group databases.
    pub fn lookup(name: &str) -> anyhow::Result<User> {
        let cname = CString::new(name).context("a user name holds no NUL byte")?;
        let mut buf = vec![0u8; 16 << 10];
        // SAFETY: an all-zero passwd is valid input for getpwnam_r.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; buf outlives pw.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 || found.is_null() {
            bail!("no user {name:?} in the user database: pass an existing user to --user");
        }
        let (uid, gid) = (pw.pw_uid, pw.pw_gid);
        let mut groups = vec![0 as libc::gid_t; 64];
        loop {
            let mut n = groups.len() as libc::c_int;
            // SAFETY: groups has room for n entries; n is updated.
            let rc =
                unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
            if rc >= 0 {
                groups.truncate(n.max(0) as usize);
                break;
            }
            let want = (n.max(0) as usize).max(groups.len() * 2);
            if want > MAX_USER_GROUPS {
                bail!("user {name:?} is in more than {MAX_USER_GROUPS} groups");
            }
            groups.resize(want, 0);
        }
        Ok(User {
            name: name.to_owned(),
            uid,
            gid,
            groups,
        })
    }
}

/// The command's first process: forked, waiting for [`Launcher::start`].
#[derive(Debug)]
pub struct Launcher {
    pid: libc::pid_t,
    /// Write end: one byte lets the process exec.
    go: libc::c_int,
    /// Read end: the exec's errno, or end-of-file once it succeeded.
    exec_status: libc::c_int,
    argv0: String,
    status: Option<ExitCode>,
    started: bool,
}

/// What the child says on its status pipe: ready after the switch to
/// `--user` (or why it failed), then nothing if the exec succeeded (the
/// pipe closes on exec) or why it failed.
const READY: u8 = b'R';
const SWITCH_FAILED: u8 = b'U';
const EXEC_FAILED: u8 = b'X';

/// The initial pid namespace's inode (PROC_PID_INIT_INO): the kernel's
/// tree map is keyed by host pids, which fork() returns only there.
const HOST_PID_NS: u64 = 0xEFFF_FFFC;

impl Launcher {
    /// Forks the command's first process and waits until it has switched
    /// to `user`. Must run while the recorder has one thread: the child
    /// only makes system calls before it execs.
    pub fn fork(argv: &[String], user: Option<&User>) -> anyhow::Result<Launcher> {
        let Some(argv0) = argv.first() else {
            bail!("no command after `--`: give the command to record, e.g. `-- /usr/bin/id`");
        };
        let ns = std::fs::metadata("/proc/self/ns/pid")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .context("cannot read /proc/self/ns/pid")?;
        if ns != HOST_PID_NS {
            bail!(
                "`-- COMMAND` follows the command by host pid, and this recorder is in a pid namespace of its own: run it in the host's (docker --pid=host, Kubernetes hostPID: true)"
            );
        }
        // Everything the child needs, made before the fork.
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(OsStr::new(a).as_bytes()))
            .collect::<Result<_, _>>()
            .context("a command argument holds a NUL byte")?;
        let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let groups: Vec<libc::gid_t> = user.map(|u| u.groups.clone()).unwrap_or_default();
        let ids = user.map(|u| (u.uid, u.gid));
        let mut go_pipe = Pipe::new()?;
        let mut status_pipe = Pipe::new()?;
        // A SIGCHLD its own parent ignored would make waitpid fail: the
        // recorder waits for its command.
        // SAFETY: restoring a default disposition.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
        // SAFETY: the recorder is single-threaded here (documented above);
        // the child calls only async-signal-safe functions, then execs or
        // _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot fork the command");
        }
        if pid == 0 {
            let (go_read, status_write) = (go_pipe.read, status_pipe.write);
            // SAFETY: as above; every pointer was made before the fork.
            unsafe {
                // The recorder's ends: a recorder that fails must leave
                // this read with end of file.
                libc::close(go_pipe.write);
                libc::close(status_pipe.read);
                let say = |what: u8, errno: bool| {
                    let mut msg = [what, 0, 0, 0, 0];
                    let n = if errno {
                        msg[1..].copy_from_slice(&(*libc::__errno_location()).to_ne_bytes());
                        5
                    } else {
                        1
                    };
                    libc::write(status_write, msg.as_ptr().cast(), n);
                };
                // Rust's runtime ignores SIGPIPE; the command must not
                // inherit that.
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                if let Some((uid, gid)) = ids
                    && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setresgid(gid, gid, gid) != 0
                        || libc::setresuid(uid, uid, uid) != 0)
                {
                    say(SWITCH_FAILED, true);
                    libc::_exit(127);
                }
                say(READY, false);
                let mut byte = 0u8;
                // The recorder closes its end without a byte if it fails.
                if libc::read(go_read, (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(127);
                }
                libc::execvp(arg_ptrs[0], arg_ptrs.as_ptr());
                say(EXEC_FAILED, true);
                libc::_exit(127);
            }
        }
        let mut l = Launcher {
            pid,
            go: std::mem::replace(&mut go_pipe.write, -1),
            exec_status: std::mem::replace(&mut status_pipe.read, -1),
            argv0: argv0.clone(),
            status: None,
            started: false,
        };
        // The child's ends close with the pipes here.
        drop((go_pipe, status_pipe));
        match l.message()? {
            Some((READY, _)) => Ok(l),
            Some((SWITCH_FAILED, why)) => {
                l.wait(0)?;
                bail!(
                    "cannot switch the command to user {}: {why}",
                    user.map_or("?", |u| u.name.as_str())
                )
            }
            _ => {
                l.wait(0)?;
                bail!("the command's process ended before it started {argv0}");
            }
        }
    }

    /// The next message on the status pipe: its kind and the error it
    /// carries; None at end of file (the exec closed the pipe).
    fn message(&mut self) -> anyhow::Result<Option<(u8, std::io::Error)>> {
        let mut msg = [0u8; 5];
        let mut got = 0;
        loop {
            // SAFETY: a valid descriptor owned by self; msg has room.
            let n = unsafe {
                libc::read(
                    self.exec_status,
                    msg[got..].as_mut_ptr().cast(),
                    if got == 0 { 1 } else { 5 - got },
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("cannot read the command's status");
            }
            if n == 0 {
                return Ok((got > 0).then(|| (msg[0], std::io::Error::other("cut short"))));
            }
            got += n as usize;
            if msg[0] == READY || got == 5 {
                let errno = i32::from_ne_bytes(msg[1..5].try_into().expect("four bytes"));
                return Ok(Some((msg[0], std::io::Error::from_raw_os_error(errno))));
            }
        }
    }

    /// The command's first process.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the process exec the command (after the caller put it in the
    /// recorded tree); fails with one line if the command cannot start.
    pub fn start(&mut self) -> anyhow::Result<()> {
        // SAFETY: a valid descriptor owned by self. A child that died
        // already makes this EPIPE (SIGPIPE is ignored): its status says why.
        let wrote = unsafe { libc::write(self.go, [1u8].as_ptr().cast(), 1) };
        self.started = wrote == 1;
        match self.message()? {
            None if wrote == 1 => Ok(()),
            Some((EXEC_FAILED, why)) => {
                self.wait(0)?;
                bail!(
                    "cannot start {}: {why}; give a program on the PATH or a path to one",
                    self.argv0
                )
            }
            _ => {
                self.wait(0)?;
                bail!(
                    "the command's process ended before it started {}",
                    self.argv0
                )
            }
        }
    }

    /// Whether the command's first process has exited (reaping it).
    pub fn exited(&mut self) -> anyhow::Result<bool> {
        if self.status.is_none() {
            self.wait(libc::WNOHANG)?;
        }
        Ok(self.status.is_some())
    }

    /// Ends a command the recording stopped before (a signal, --duration,
    /// a write error): SIGTERM, and SIGKILL if it is still there after
    /// `grace`. Its status is then the recorder's.
    pub fn stop(&mut self, grace: std::time::Duration) -> anyhow::Result<()> {
        if self.exited()? {
            return Ok(());
        }
        // SAFETY: our own child, not yet reaped.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let until = std::time::Instant::now() + grace;
        while !self.exited()? {
            if std::time::Instant::now() > until {
                // SAFETY: as above.
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
                return self.wait(0);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// The command's exit status as the recorder's own: its code, or 128 +
    /// the signal that killed it, as a shell reports it.
    pub fn exit_code(&self) -> Option<ExitCode> {
        self.status
    }

    fn wait(&mut self, flags: libc::c_int) -> anyhow::Result<()> {
        let mut st = 0;
        // SAFETY: our own child; st is a valid out-pointer.
        let r = unsafe { libc::waitpid(self.pid, &mut st, flags) };
        if r < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot wait for the command");
        }
        if r == self.pid {
            let code = if libc::WIFEXITED(st) {
                libc::WEXITSTATUS(st)
            } else {
                128 + libc::WTERMSIG(st)
            };
            self.status = Some(ExitCode::from(code as u8));
        }
        Ok(())
    }
}

/// A pipe whose ends close on exec, and when dropped unless taken (an end
/// taken is -1).
struct Pipe {
    read: libc::c_int,
    write: libc::c_int,
}

impl Pipe {
    fn new() -> anyhow::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot make a pipe");
        }
        Ok(Pipe {
            read: fds[0],
            write: fds[1],
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        for fd in [self.read, self.write] {
            if fd >= 0 {
                // SAFETY: a descriptor owned by this pipe.
                unsafe { libc::close(fd) };
            }
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // SAFETY: descriptors owned by self; the pid is our child.
        unsafe {
            libc::close(self.go);
            libc::close(self.exec_status);
            if !self.started && self.status.is_none() {
                // Never let go: it exits on the closed pipe; reap it.
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// `pid` and its ancestors, of a process table.
pub(crate) fn ancestry(procs: Vec<ProcessRow>, pid: u32) -> Vec<ProcessRow> {
    let by_pid: BTreeMap<u32, &ProcessRow> = procs.iter().map(|p| (p.pid, p)).collect();
    let mut keep = BTreeSet::new();
    let mut at = pid;
    // Bounded by the table: a cycle in what /proc said ends here.
    while at != 0 && keep.len() < by_pid.len() && keep.insert(at) {
        at = by_pid.get(&at).map_or(0, |p| p.ppid);
    }
    procs
        .into_iter()
        .filter(|p| keep.contains(&p.pid))
        .collect()
}
