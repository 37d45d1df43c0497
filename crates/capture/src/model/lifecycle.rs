//! Process lifecycle records (`DIR/lifecycle/`): every exec, fork and exit
//! the kernel reported, always recorded, so the process tree at any moment
//! can be rebuilt offline.

use serde::{Deserialize, Serialize};

use super::creds::{creds_accessors, with_cred_columns};

/// Lifecycle record flags, as stored in `proc_flags`.
pub mod flags {
    pub const FILENAME_TRUNCATED: &str = "filename_truncated";
    pub const ARGS_TRUNCATED: &str = "args_truncated";
    pub const ARGS_FAULT: &str = "args_fault";
    pub const CWD_TRUNCATED: &str = "cwd_truncated";
    pub const CWD_FAULT: &str = "cwd_fault";
    pub const GROUPS_TRUNCATED: &str = "groups_truncated";
    pub const EXE_TRUNCATED: &str = "exe_truncated";
    pub const EXE_FAULT: &str = "exe_fault";
    /// exit: some of the process's calls were folded (rows with a
    /// `repeat_count`), and those rows precede this exit.
    pub const FOLDED: &str = "folded";
}

/// `ProcEvent` with the credential columns of [`with_cred_columns`].
macro_rules! proc_event_row {
    (() [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        /// One exec, fork or exit.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct ProcEvent {
            pub time: i64,
            pub ktime_ns: u64,
            /// Arrival order, shared with the events table.
            pub seq: u64,
            pub node_name: String,
            /// `exec`, `fork` or `exit`.
            pub kind: String,
            /// tgid (fork: the new process).
            pub pid: u32,
            pub tid: u32,
            /// Real parent's tgid (fork: the forking process).
            pub ppid: u32,
            /// exec: the thread id before exec.
            pub old_tid: u32,
            pub comm: String,
            /// exec: the path passed to exec, as given.
            pub filename: String,
            /// exec: argv.
            pub args: Vec<String>,
            /// exec: working directory relative to the process's root.
            pub cwd: String,
            /// The executed file, relative to the process's root, as
            /// /proc/PID/exe reads (a script's interpreter; `/proc/self/exe`
            /// resolved): exec, from the kernel; fork, the parent's; exit, the
            /// process's. Null when unknown, and in captures written before it.
            pub exe: Option<String>,
            pub proc_flags: Vec<String>,
            /// exit: `status << 8 | signal`.
            pub exit_code: i32,
            $($(#[$doc])* pub $field: $ty,)*
            pub auid: u32,
            pub sessionid: u32,
            pub cgroup_id: u64,
            pub pid_ns: u32,
            pub ns_pid: u32,
            /// Cgroup path components, leaf first (at most 4).
            pub cgroup: Vec<String>,
        }
    };
}
with_cred_columns!(proc_event_row!());

impl ProcEvent {
    with_cred_columns!(creds_accessors!(creds, set_creds, plain));

    pub fn has_flag(&self, f: &str) -> bool {
        self.proc_flags.iter().any(|x| x == f)
    }
}
