//! The event model: one row per credential-changing call.
//!
//! Field names are the capture's column names and the `--print json` keys, so
//! this struct is the single place where the column set is defined.

use serde::{Deserialize, Serialize};

use super::creds::{creds_accessors, with_cred_columns};

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
    /// prctl options that change capabilities, securebits or no_new_privs.
    Prctl = 12,
    /// User namespaces created (unshare, clone, clone3) or entered (setns).
    Unshare = 13,
    Setns = 14,
    Clone = 15,
    Clone3 = 16,
    /// io_uring personalities registered or unregistered, and requests run
    /// under one (the credentials they act with are the personality's).
    IoUringRegister = 17,
    IoUringSubmit = 18,
    /// Credentials that changed with no recorded call to explain it,
    /// found by comparing a task's credentials with the last ones seen:
    /// `option` names the check that noticed it, `last_seen` when the old
    /// credentials were last confirmed.
    Unexplained = 19,
}

impl Syscall {
    pub const ALL: [Syscall; 19] = [
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
        Syscall::Prctl,
        Syscall::Unshare,
        Syscall::Setns,
        Syscall::Clone,
        Syscall::Clone3,
        Syscall::IoUringRegister,
        Syscall::IoUringSubmit,
        Syscall::Unexplained,
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
            Syscall::Prctl => "prctl",
            Syscall::Unshare => "unshare",
            Syscall::Setns => "setns",
            Syscall::Clone => "clone",
            Syscall::Clone3 => "clone3",
            Syscall::IoUringRegister => "io_uring_register",
            Syscall::IoUringSubmit => "io_uring_submit",
            Syscall::Unexplained => "unexplained",
        }
    }

    /// How many of `arg0..arg2` carry the request: the ids, or for capset
    /// the three masks, or for setgroups the count (the list is `groups`);
    /// prctl's option and two arguments; the namespace flags of unshare,
    /// clone and clone3; setns's fd and nstype; io_uring_register's fd,
    /// opcode and personality (unregister); a request's opcode and
    /// user_data.
    fn arity(self) -> usize {
        match self {
            Syscall::Setuid
            | Syscall::Setgid
            | Syscall::Setfsuid
            | Syscall::Setfsgid
            | Syscall::Setgroups
            | Syscall::Unshare
            | Syscall::Clone
            | Syscall::Clone3 => 1,
            Syscall::Setreuid | Syscall::Setregid | Syscall::Setns | Syscall::IoUringSubmit => 2,
            Syscall::Execve | Syscall::Unexplained => 0,
            Syscall::Setresuid
            | Syscall::Setresgid
            | Syscall::Capset
            | Syscall::Prctl
            | Syscall::IoUringRegister => 3,
        }
    }

    /// Whether the arguments are uids/gids (compared with the ids in the
    /// caller's user namespace) rather than options, masks or flags.
    pub fn takes_ids(self) -> bool {
        matches!(
            self,
            Syscall::Setuid
                | Syscall::Setgid
                | Syscall::Setfsuid
                | Syscall::Setfsgid
                | Syscall::Setreuid
                | Syscall::Setregid
                | Syscall::Setresuid
                | Syscall::Setresgid
        )
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
    /// A 16-bit id call of the ia32 entry (setuid16 family): the arguments
    /// were 16 bits wide, 0xffff meaning -1.
    pub const UID16: &str = "uid16";
    /// An `unexplained` row of the subjective credentials (`task->cred`):
    /// its before is the objective set (`real_cred`), its after the
    /// subjective one the task was running with.
    pub const SUBJECTIVE: &str = "subjective";
}

/// The entry a call came through (the `abi` column).
pub mod abi {
    pub const X64: &str = "x64";
    /// `int $0x80`, or sysenter/syscall from a 32-bit task.
    pub const IA32: &str = "ia32";
}

/// Captures older than format 3 hooked the x86-64 entry only.
fn x64() -> String {
    abi::X64.to_owned()
}

/// `Event`, its credential accessors and the split of its columns into the
/// kernel's and the enrichment's, made with the credential columns of
/// [`with_cred_columns`].
macro_rules! event_row {
    (() [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
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
            /// `x64` or `ia32`: the syscall entry the call came through.
            #[serde(default = "x64")]
            pub abi: String,
            /// The option or flags asked for, by name, where the arguments are not
            /// ids: `PR_CAP_AMBIENT_RAISE`, `CLONE_NEWUSER`,
            /// `IORING_REGISTER_PERSONALITY`, `IORING_OP_READ`.
            pub option: Option<String>,
            pub arg0: i64,
            pub arg1: i64,
            pub arg2: i64,
            /// setgroups only: the requested groups.
            pub groups: Option<Vec<u32>>,
            pub ret: i64,
            pub changed: bool,
            $(pub $old: $ty,)*
            $(pub $new: $ty,)*
            pub auid: u32,
            pub sessionid: u32,
            pub cgroup_id: u64,
            pub pid_ns: u32,
            pub ns_pid: u32,
            pub event_flags: Vec<String>,
            /// `unexplained` only: when the credentials before the change were
            /// last confirmed (wall clock, ns); the change happened between this
            /// and `time`.
            pub last_seen: Option<i64>,
            /// A row of folded calls: while the ring buffer filled, this process
            /// was over its share, and the kernel counted its repeats of this exact
            /// transition (the same thread, call, arguments, result and credentials
            /// before and after) instead of sending each one: `repeat_count` calls
            /// from `time` to `last_time`. Null for a row of one call.
            #[serde(default)]
            pub repeat_count: Option<u64>,
            #[serde(default)]
            pub last_time: Option<i64>,

            // Enrichment: the process, its parent and its container as they were at
            // the time of the event (from the process cache). Null when unknown.
            /// Tetragon-style process id: base64 of `node:ktime:pid`.
            pub exec_id: Option<String>,
            pub parent_exec_id: Option<String>,
            /// Path passed to exec (made absolute with the cwd when relative).
            pub binary: Option<String>,
            /// The executed file, relative to the process's root (`/bin/busybox`
            /// for an applet re-exec'd as `/proc/self/exe`; a script's
            /// interpreter), as /proc/PID/exe reads; what `matchBinaries` matches.
            pub exe: Option<String>,
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
            // The ids as the task's own user namespace numbers them, where that is
            // not the host's and its maps are known (`user_namespaces`): before in
            // the old credentials' namespace, after in the new ones'. Null for an
            // id the namespace does not map.
            pub old_ns_uid: Option<u32>,
            pub old_ns_euid: Option<u32>,
            pub old_ns_suid: Option<u32>,
            pub old_ns_fsuid: Option<u32>,
            pub old_ns_gid: Option<u32>,
            pub old_ns_egid: Option<u32>,
            pub old_ns_sgid: Option<u32>,
            pub old_ns_fsgid: Option<u32>,
            pub new_ns_uid: Option<u32>,
            pub new_ns_euid: Option<u32>,
            pub new_ns_suid: Option<u32>,
            pub new_ns_fsuid: Option<u32>,
            pub new_ns_gid: Option<u32>,
            pub new_ns_egid: Option<u32>,
            pub new_ns_sgid: Option<u32>,
            pub new_ns_fsgid: Option<u32>,
            /// The call made the euid or fsuid 0: `host` when the host uid became
            /// 0, `namespace` when only the id inside a user namespace did.
            pub root_scope: Option<String>,
            /// The `--policy` that kept the event (its `metadata.name`); null when
            /// recorded without one (Tetragon output then names credtrail's
            /// built-in policy).
            pub policy: Option<String>,
        }

        impl Event {
            with_cred_columns!(creds_accessors!(old_creds, set_old_creds, old));
            with_cred_columns!(creds_accessors!(new_creds, set_new_creds, new));

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
                    abi: _,
                    option: _,
                    arg0: _,
                    arg1: _,
                    arg2: _,
                    groups: _,
                    ret: _,
                    changed: _,
                    $($old: _,)*
                    $($new: _,)*
                    auid: _,
                    sessionid: _,
                    cgroup_id: _,
                    pid_ns: _,
                    ns_pid: _,
                    event_flags: _,
                    last_seen: _,
                    repeat_count: _,
                    last_time: _,
                    exec_id,
                    parent_exec_id,
                    binary,
                    exe,
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
                    // Cleared below, through their NsIds accessors.
                    old_ns_uid: _,
                    old_ns_euid: _,
                    old_ns_suid: _,
                    old_ns_fsuid: _,
                    old_ns_gid: _,
                    old_ns_egid: _,
                    old_ns_sgid: _,
                    old_ns_fsgid: _,
                    new_ns_uid: _,
                    new_ns_euid: _,
                    new_ns_suid: _,
                    new_ns_fsuid: _,
                    new_ns_gid: _,
                    new_ns_egid: _,
                    new_ns_sgid: _,
                    new_ns_fsgid: _,
                    root_scope,
                    policy: _,
                } = self;
                *exec_id = None;
                *parent_exec_id = None;
                *binary = None;
                *exe = None;
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
                *root_scope = None;
                self.set_old_ns_ids(Default::default());
                self.set_new_ns_ids(Default::default());
            }
        }
    };
}
with_cred_columns!(event_row!());

impl Event {
    /// Calls this row stands for: 1, or a folded row's `repeat_count`.
    pub fn calls(&self) -> u64 {
        self.repeat_count.unwrap_or(1)
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
        // refused request simply leaves the id as it was. The argument is
        // the caller's namespace's id: compared with the id as it shows it.
        let fs = match self.syscall_kind() {
            Some(Syscall::Setfsuid) => Some(self.new_ns_fsuid.unwrap_or(self.new_fsuid)),
            Some(Syscall::Setfsgid) => Some(self.new_ns_fsgid.unwrap_or(self.new_fsgid)),
            _ => None,
        };
        match fs {
            Some(_) if self.arg0 == -1 => Outcome::Query,
            Some(now) if i64::from(now) == self.arg0 => Outcome::Ok,
            Some(_) => Outcome::Refused,
            // clone returns the child's pid, a personality registration its id.
            None if self.ret >= 0 => Outcome::Ok,
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
