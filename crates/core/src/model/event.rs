//! The event model: one row per credential-changing call.
//!
//! Field names are the capture's column names and the `--print json` keys, so
//! this struct is the single place where the column set is defined.

use serde::{Deserialize, Serialize};

use super::creds::{Creds, creds_accessors};

/// The credential-changing syscalls credtrail hooks, in ABI order
/// (the discriminants equal `enum ct_syscall` in `credtrail.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Syscall {
    Setuid = 1,
    Setgid = 2,
    Setfsuid = 3,
    Setfsgid = 4,
    Setreuid = 5,
    Setregid = 6,
    Setresuid = 7,
    Setresgid = 8,
    Setgroups = 9,
    Capset = 10,
    /// Credentials changed by exec (setuid/setgid bits, file capabilities).
    Execve = 11,
}

impl Syscall {
    pub const ALL: [Syscall; 11] = [
        Syscall::Setuid,
        Syscall::Setgid,
        Syscall::Setfsuid,
        Syscall::Setfsgid,
        Syscall::Setreuid,
        Syscall::Setregid,
        Syscall::Setresuid,
        Syscall::Setresgid,
        Syscall::Setgroups,
        Syscall::Capset,
        Syscall::Execve,
    ];

    pub fn from_abi(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u32 == v)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Syscall::Setuid => "setuid",
            Syscall::Setgid => "setgid",
            Syscall::Setfsuid => "setfsuid",
            Syscall::Setfsgid => "setfsgid",
            Syscall::Setreuid => "setreuid",
            Syscall::Setregid => "setregid",
            Syscall::Setresuid => "setresuid",
            Syscall::Setresgid => "setresgid",
            Syscall::Setgroups => "setgroups",
            Syscall::Capset => "capset",
            Syscall::Execve => "execve",
        }
    }

    /// How many of `arg0..arg2` carry the request: the ids, or for capset
    /// the three masks, or for setgroups the count (the list is `groups`).
    fn arity(self) -> usize {
        match self {
            Syscall::Setuid
            | Syscall::Setgid
            | Syscall::Setfsuid
            | Syscall::Setfsgid
            | Syscall::Setgroups => 1,
            Syscall::Setreuid | Syscall::Setregid => 2,
            Syscall::Execve => 0,
            Syscall::Setresuid | Syscall::Setresgid | Syscall::Capset => 3,
        }
    }
}

/// Event flags, as they appear in the `event_flags` column.
pub mod flags {
    /// Reading the requested capset masks or setgroups list from user memory failed.
    pub const ARGS_FAULT: &str = "args_fault";
    /// The requested groups list held more than `MAX_GROUPS` entries.
    pub const REQ_GROUPS_TRUNCATED: &str = "groups_truncated";
    pub const OLD_GROUPS_TRUNCATED: &str = "old_groups_truncated";
    pub const NEW_GROUPS_TRUNCATED: &str = "new_groups_truncated";
}

/// One credential-changing syscall as the kernel saw it.
///
/// `time` is the wall clock in ns since the Unix epoch, computed from
/// `ktime_ns` (CLOCK_BOOTTIME) with the capture's recorded clock offset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: i64,
    pub ktime_ns: u64,
    /// Arrival order of kernel records (events and lifecycle share one
    /// sequence): replay applies records in this order, exactly as live.
    pub seq: u64,
    pub node_name: String,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub comm: String,
    pub syscall: String,
    pub arg0: i64,
    pub arg1: i64,
    pub arg2: i64,
    /// setgroups only: the requested groups.
    pub groups: Option<Vec<u32>>,
    pub ret: i64,
    pub changed: bool,
    pub old_uid: u32,
    pub old_euid: u32,
    pub old_suid: u32,
    pub old_fsuid: u32,
    pub old_gid: u32,
    pub old_egid: u32,
    pub old_sgid: u32,
    pub old_fsgid: u32,
    pub old_cap_effective: u64,
    pub old_cap_permitted: u64,
    pub old_cap_inheritable: u64,
    pub old_cap_bounding: u64,
    pub old_cap_ambient: u64,
    pub old_securebits: u32,
    pub old_groups: Vec<u32>,
    pub new_uid: u32,
    pub new_euid: u32,
    pub new_suid: u32,
    pub new_fsuid: u32,
    pub new_gid: u32,
    pub new_egid: u32,
    pub new_sgid: u32,
    pub new_fsgid: u32,
    pub new_cap_effective: u64,
    pub new_cap_permitted: u64,
    pub new_cap_inheritable: u64,
    pub new_cap_bounding: u64,
    pub new_cap_ambient: u64,
    pub new_securebits: u32,
    pub new_groups: Vec<u32>,
    pub auid: u32,
    pub sessionid: u32,
    pub cgroup_id: u64,
    pub pid_ns: u32,
    pub ns_pid: u32,
    pub event_flags: Vec<String>,

    // Enrichment: the process, its parent and its container as they were at
    // the time of the event (from the process cache). Null when unknown.
    /// Tetragon-style process id: base64 of `node:ktime:pid`.
    pub exec_id: Option<String>,
    pub parent_exec_id: Option<String>,
    /// Path passed to exec (made absolute with the cwd when relative).
    pub binary: Option<String>,
    /// argv[1..] joined by spaces.
    pub arguments: Option<String>,
    pub cwd: Option<String>,
    /// Tetragon process flags, e.g. `execve rootcwd clone`.
    pub flags: Option<String>,
    /// When the process image started (exec, clone or /proc start time).
    pub start_time: Option<i64>,
    /// Effective uid when the image started (Tetragon's `process.uid`).
    pub process_uid: Option<u32>,
    pub parent_pid: Option<u32>,
    pub parent_binary: Option<String>,
    pub parent_arguments: Option<String>,
    pub parent_cwd: Option<String>,
    pub parent_flags: Option<String>,
    pub parent_start_time: Option<i64>,
    pub parent_parent_exec_id: Option<String>,
    pub parent_uid: Option<u32>,
    pub parent_auid: Option<u32>,
    /// 64 hex characters.
    pub container_id: Option<String>,
    pub container_runtime: Option<String>,
    /// The pid inside the container's pid namespace.
    pub container_pid: Option<u32>,
    pub parent_container_pid: Option<u32>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    pub container_name: Option<String>,
    pub image_name: Option<String>,
    pub image_id: Option<String>,
    /// `key=value`, sorted.
    pub pod_labels: Vec<String>,
    /// When the container started (from the pods file or runtime annotations).
    pub container_start_time: Option<i64>,
}

impl Event {
    creds_accessors!(old_creds, set_old_creds,
        uid => old_uid, euid => old_euid, suid => old_suid, fsuid => old_fsuid,
        gid => old_gid, egid => old_egid, sgid => old_sgid, fsgid => old_fsgid,
        cap_effective => old_cap_effective, cap_permitted => old_cap_permitted,
        cap_inheritable => old_cap_inheritable, cap_bounding => old_cap_bounding,
        cap_ambient => old_cap_ambient, securebits => old_securebits, groups => old_groups);
    creds_accessors!(new_creds, set_new_creds,
        uid => new_uid, euid => new_euid, suid => new_suid, fsuid => new_fsuid,
        gid => new_gid, egid => new_egid, sgid => new_sgid, fsgid => new_fsgid,
        cap_effective => new_cap_effective, cap_permitted => new_cap_permitted,
        cap_inheritable => new_cap_inheritable, cap_bounding => new_cap_bounding,
        cap_ambient => new_cap_ambient, securebits => new_securebits, groups => new_groups);

    /// Resets the enriched columns: what remains is what the kernel reported.
    pub fn clear_enrichment(&mut self) {
        // Every column is named: one added later must be sorted here as the
        // kernel's (kept) or the enrichment's (cleared), or this does not
        // compile.
        let Event {
            time: _,
            ktime_ns: _,
            seq: _,
            node_name: _,
            pid: _,
            tid: _,
            ppid: _,
            comm: _,
            syscall: _,
            arg0: _,
            arg1: _,
            arg2: _,
            groups: _,
            ret: _,
            changed: _,
            old_uid: _,
            old_euid: _,
            old_suid: _,
            old_fsuid: _,
            old_gid: _,
            old_egid: _,
            old_sgid: _,
            old_fsgid: _,
            old_cap_effective: _,
            old_cap_permitted: _,
            old_cap_inheritable: _,
            old_cap_bounding: _,
            old_cap_ambient: _,
            old_securebits: _,
            old_groups: _,
            new_uid: _,
            new_euid: _,
            new_suid: _,
            new_fsuid: _,
            new_gid: _,
            new_egid: _,
            new_sgid: _,
            new_fsgid: _,
            new_cap_effective: _,
            new_cap_permitted: _,
            new_cap_inheritable: _,
            new_cap_bounding: _,
            new_cap_ambient: _,
            new_securebits: _,
            new_groups: _,
            auid: _,
            sessionid: _,
            cgroup_id: _,
            pid_ns: _,
            ns_pid: _,
            event_flags: _,
            exec_id,
            parent_exec_id,
            binary,
            arguments,
            cwd,
            flags,
            start_time,
            process_uid,
            parent_pid,
            parent_binary,
            parent_arguments,
            parent_cwd,
            parent_flags,
            parent_start_time,
            parent_parent_exec_id,
            parent_uid,
            parent_auid,
            container_id,
            container_runtime,
            container_pid,
            parent_container_pid,
            pod_namespace,
            pod_name,
            pod_uid,
            container_name,
            image_name,
            image_id,
            pod_labels,
            container_start_time,
        } = self;
        *exec_id = None;
        *parent_exec_id = None;
        *binary = None;
        *arguments = None;
        *cwd = None;
        *flags = None;
        *start_time = None;
        *process_uid = None;
        *parent_pid = None;
        *parent_binary = None;
        *parent_arguments = None;
        *parent_cwd = None;
        *parent_flags = None;
        *parent_start_time = None;
        *parent_parent_exec_id = None;
        *parent_uid = None;
        *parent_auid = None;
        *container_id = None;
        *container_runtime = None;
        *container_pid = None;
        *parent_container_pid = None;
        *pod_namespace = None;
        *pod_name = None;
        *pod_uid = None;
        *container_name = None;
        *image_name = None;
        *image_id = None;
        pod_labels.clear();
        *container_start_time = None;
    }

    /// Whether any credential differs between before and after.
    pub fn compute_changed(&self) -> bool {
        self.old_creds() != self.new_creds()
    }

    pub fn syscall_kind(&self) -> Option<Syscall> {
        Syscall::from_name(&self.syscall)
    }

    /// The call's requested arguments, as many as it takes.
    pub fn args(&self) -> impl Iterator<Item = i64> {
        let n = self.syscall_kind().map_or(3, Syscall::arity);
        [self.arg0, self.arg1, self.arg2].into_iter().take(n)
    }

    /// Whether the kernel accepted the call.
    pub fn outcome(&self) -> Outcome {
        // setfsuid/setfsgid never fail: they return the previous id, and a
        // refused request simply leaves the id as it was.
        let fs = match self.syscall_kind() {
            Some(Syscall::Setfsuid) => Some(self.new_fsuid),
            Some(Syscall::Setfsgid) => Some(self.new_fsgid),
            _ => None,
        };
        match fs {
            Some(_) if self.arg0 == -1 => Outcome::Query,
            Some(now) if i64::from(now) == self.arg0 => Outcome::Ok,
            Some(_) => Outcome::Refused,
            None if self.ret == 0 => Outcome::Ok,
            None => Outcome::Failed(self.ret),
        }
    }
}

/// What the kernel did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Failed with this (negative errno) return value.
    Failed(i64),
    /// setfsuid/setfsgid: the id was left unchanged.
    Refused,
    /// setfsuid(-1)/setfsgid(-1): only asks for the current id.
    Query,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Refused => f.write_str("refused"),
            Outcome::Query => f.write_str("query"),
            Outcome::Failed(ret) => match errno_name(*ret) {
                Some(name) => f.write_str(name),
                None => write!(f, "ret={ret}"),
            },
        }
    }
}

/// Names of the errors these calls return.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    // wrapping: a hostile record may carry i64::MIN.
    Some(match ret.wrapping_neg() {
        1 => "EPERM",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        22 => "EINVAL",
        _ => return None,
    })
}
