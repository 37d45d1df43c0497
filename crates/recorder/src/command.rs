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

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

/// What the manifest says about a recorded command (`settings.command`,
/// `settings.user`): the program, not its arguments (they may hold
/// secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub program: String,
    pub user: Option<String>,
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

impl Launcher {
    /// Forks the command's first process. Must run while the recorder has
    /// one thread: the child only makes system calls before it execs.
    pub fn fork(argv: &[String], user: Option<&User>) -> anyhow::Result<Launcher> {
        let Some(argv0) = argv.first() else {
            bail!("no command after `--`: give the command to record, e.g. `-- /usr/bin/id`");
        };
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
        let (go_read, go) = pipe()?;
        let (exec_status, status_write) = pipe()?;
        // SAFETY: the recorder is single-threaded here (documented above);
        // the child calls only async-signal-safe functions, then execs or
        // _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot fork the command");
        }
        if pid == 0 {
            // SAFETY: as above; every pointer was made before the fork.
            unsafe {
                libc::close(go);
                libc::close(exec_status);
                let fail = |fd: libc::c_int| {
                    let errno = *libc::__errno_location();
                    libc::write(fd, (&raw const errno).cast(), 4);
                    libc::_exit(127);
                };
                if let Some((uid, gid)) = ids
                    && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setresgid(gid, gid, gid) != 0
                        || libc::setresuid(uid, uid, uid) != 0)
                {
                    fail(status_write);
                }
                let mut byte = 0u8;
                // The recorder closes its end without a byte if it fails.
                if libc::read(go_read, (&raw mut byte).cast(), 1) != 1 {
                    libc::_exit(127);
                }
                libc::close(go_read);
                libc::execvp(arg_ptrs[0], arg_ptrs.as_ptr());
                fail(status_write);
            }
        }
        // SAFETY: closing the child's ends, which this process owns.
        unsafe {
            libc::close(go_read);
            libc::close(status_write);
        }
        Ok(Launcher {
            pid,
            go,
            exec_status,
            argv0: argv0.clone(),
            status: None,
            started: false,
        })
    }

    /// The command's first process.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the process exec the command (after the caller put it in the
    /// recorded tree); fails with one line if the command cannot start.
    pub fn start(&mut self) -> anyhow::Result<()> {
        // SAFETY: valid descriptors owned by self.
        let wrote = unsafe { libc::write(self.go, [1u8].as_ptr().cast(), 1) };
        let mut errno = [0u8; 4];
        // SAFETY: as above; blocks until the exec succeeded (end of file,
        // the write end is close-on-exec) or failed (its errno).
        let n = unsafe { libc::read(self.exec_status, errno.as_mut_ptr().cast(), 4) };
        self.started = wrote == 1;
        if wrote != 1 || n == 4 {
            let why = if n == 4 {
                std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno))
            } else {
                std::io::Error::last_os_error()
            };
            // Reap it now: it has exited.
            self.wait(0)?;
            bail!(
                "cannot start {}: {why}; give a program on the PATH or a path to one",
                self.argv0
            );
        }
        Ok(())
    }

    /// Whether the command's first process has exited (reaping it).
    pub fn exited(&mut self) -> anyhow::Result<bool> {
        if self.status.is_none() {
            self.wait(libc::WNOHANG)?;
        }
        Ok(self.status.is_some())
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

/// A pipe whose ends close on exec.
fn pipe() -> anyhow::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot make a pipe");
    }
    Ok((fds[0], fds[1]))
}
