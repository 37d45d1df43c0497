//! Names: of the calls as their entry knows them (`setresuid32`, and the
//! kernel's `__ia32_sys_setresuid` that implements it), and of the options
//! and flags the newer credential paths take (prctl options, namespace flags, io_uring
//! opcodes). One table per fact, read by the decoder (the `option` column)
//! and by the printers.

use super::event::{Event, Syscall, abi, flags};

const PR_SET_KEEPCAPS: i64 = 8;
const PR_CAPBSET_DROP: i64 = 24;
const PR_SET_SECUREBITS: i64 = 28;
const PR_SET_NO_NEW_PRIVS: i64 = 38;
const PR_CAP_AMBIENT: i64 = 47;

/// `PR_CAP_AMBIENT` sub-operations (arg2), from 1.
const AMBIENT_OPS: [&str; 4] = [
    "PR_CAP_AMBIENT_IS_SET",
    "PR_CAP_AMBIENT_RAISE",
    "PR_CAP_AMBIENT_LOWER",
    "PR_CAP_AMBIENT_CLEAR_ALL",
];

/// Namespace flags of clone, unshare and setns, by bit.
const NS_FLAGS: [(i64, &str); 8] = [
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
];

pub const IORING_REGISTER_PERSONALITY: i64 = 9;
pub const IORING_UNREGISTER_PERSONALITY: i64 = 10;

/// `enum io_uring_op` (include/uapi/linux/io_uring.h), as of Linux 6.18.
const IORING_OPS: [&str; 63] = [
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
];

/// Namespace flags in `flags`, `|`-joined (`0` when none).
pub fn ns_flags(flags: i64) -> String {
    let names: Vec<&str> = NS_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".to_owned()
    } else {
        names.join("|")
    }
}

fn prctl_option(option: i64, arg2: i64) -> String {
    match option {
        PR_SET_KEEPCAPS => "PR_SET_KEEPCAPS".into(),
        PR_CAPBSET_DROP => "PR_CAPBSET_DROP".into(),
        PR_SET_SECUREBITS => "PR_SET_SECUREBITS".into(),
        PR_SET_NO_NEW_PRIVS => "PR_SET_NO_NEW_PRIVS".into(),
        PR_CAP_AMBIENT => match usize::try_from(arg2 - 1)
            .ok()
            .and_then(|i| AMBIENT_OPS.get(i))
        {
            Some(op) => (*op).into(),
            None => format!("PR_CAP_AMBIENT({arg2})"),
        },
        other => format!("PR_{other}"),
    }
}

fn io_uring_register_option(opcode: i64) -> String {
    match opcode {
        IORING_REGISTER_PERSONALITY => "IORING_REGISTER_PERSONALITY".into(),
        IORING_UNREGISTER_PERSONALITY => "IORING_UNREGISTER_PERSONALITY".into(),
        other => format!("IORING_REGISTER({other})"),
    }
}

/// An io_uring opcode's name (`IORING_OP_READ`).
pub fn io_uring_op(op: i64) -> String {
    match usize::try_from(op).ok().and_then(|i| IORING_OPS.get(i)) {
        Some(n) => format!("IORING_OP_{n}"),
        None => format!("IORING_OP({op})"),
    }
}

/// The tracepoint an io_uring request run under a personality is hooked
/// at (subsystem, event), and what Tetragon's `process_tracepoint` names.
pub const IO_URING_TRACEPOINT: (&str, &str) = ("io_uring", "io_uring_submit_req");

/// Where an unexplained change was noticed (`enum ct_check`).
pub const CHECKS: [(i64, &str); 7] = [
    (1, "switch-out"),
    (2, "sweep"),
    (3, "credential call"),
    (4, "exec"),
    (5, "fork"),
    (6, "exit"),
    (7, "return to user"),
];

/// The `option` of a subjective `unexplained` row: `subjective at return
/// to user`.
pub fn subjective_option(check: i64) -> String {
    format!("subjective at {}", check_name(check))
}

fn check_name(v: i64) -> String {
    CHECKS
        .iter()
        .find(|(n, _)| *n == v)
        .map_or_else(|| v.to_string(), |(_, name)| (*name).to_owned())
}

/// The `option` column: what a call asked for, by name, where its first
/// arguments are an option or flags rather than ids (None for the
/// set*id, setgroups, capset and execve rows); for an `unexplained`
/// row, the check that noticed it.
pub fn option_name(sys: Syscall, args: [i64; 3]) -> Option<String> {
    Some(match sys {
        Syscall::Prctl => prctl_option(args[0], args[1]),
        Syscall::Unshare | Syscall::Clone | Syscall::Clone3 => ns_flags(args[0]),
        // nstype 0 enters whatever the descriptor names.
        Syscall::Setns if args[1] == 0 => "0".into(),
        Syscall::Setns => ns_flags(args[1]),
        Syscall::IoUringRegister => io_uring_register_option(args[1]),
        Syscall::IoUringSubmit => io_uring_op(args[0]),
        Syscall::Unexplained => check_name(args[0]),
        _ => return None,
    })
}

impl Event {
    fn uid16(&self) -> bool {
        self.event_flags.iter().any(|f| f == flags::UID16)
    }

    /// An `unexplained` row of the subjective credentials
    /// ([`flags::SUBJECTIVE`]).
    pub fn is_subjective(&self) -> bool {
        self.event_flags.iter().any(|f| f == flags::SUBJECTIVE)
    }

    /// The call as its entry's syscall table names it: `setresuid` on
    /// x86-64; `setresuid32`, or `setresuid` with 16-bit ids
    /// (`event_flags` `uid16`), through the ia32 entry.
    pub fn call_name(&self) -> String {
        format!("{}{}", self.syscall, self.call_suffix())
    }

    /// What [`Event::call_name`] appends to the syscall: `32` for an id
    /// call through the ia32 entry with 32-bit ids.
    fn call_suffix(&self) -> &'static str {
        let id_call = self
            .syscall_kind()
            .is_some_and(|s| s.takes_ids() || s == Syscall::Setgroups);
        if self.abi == abi::IA32 && id_call && !self.uid16() {
            "32"
        } else {
            ""
        }
    }

    /// The kernel function Tetragon would name for this call, as
    /// /proc/kallsyms spells it: `__x64_sys_setuid`; through the ia32
    /// entry `__ia32_sys_setresuid` for `setresuid32` (the 32-bit id calls
    /// are the native functions; there is no `__ia32_sys_setresuid32`) and
    /// `__ia32_sys_setuid16` for the 16-bit one; for a request run under
    /// an io_uring personality, the tracepoint's event name.
    pub fn kernel_function(&self) -> String {
        self.kernel_function_parts().concat()
    }

    /// [`Event::kernel_function`] in three pieces (prefix, syscall,
    /// suffix), for printers that write it without building the string.
    pub fn kernel_function_parts(&self) -> [&str; 3] {
        match self.syscall_kind() {
            Some(Syscall::IoUringSubmit) => [IO_URING_TRACEPOINT.1, "", ""],
            // No function was called: the credentials were found changed.
            Some(Syscall::Unexplained) => ["credtrail_unexplained_change", "", ""],
            _ if self.abi == abi::IA32 && self.uid16() => ["__ia32_sys_", &self.syscall, "16"],
            _ if self.abi == abi::IA32 => ["__ia32_sys_", &self.syscall, ""],
            _ => ["__x64_sys_", &self.syscall, ""],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_each_call_asked_for() {
        assert_eq!(
            option_name(Syscall::Prctl, [47, 2, 12]).as_deref(),
            Some("PR_CAP_AMBIENT_RAISE")
        );
        assert_eq!(
            option_name(Syscall::Prctl, [47, 9, 0]).as_deref(),
            Some("PR_CAP_AMBIENT(9)")
        );
        assert_eq!(
            option_name(Syscall::Unshare, [0x1002_0000, 0, 0]).as_deref(),
            Some("CLONE_NEWNS|CLONE_NEWUSER")
        );
        assert_eq!(option_name(Syscall::Setns, [3, 0, 0]).as_deref(), Some("0"));
        assert_eq!(
            option_name(Syscall::IoUringRegister, [3, 9, 0]).as_deref(),
            Some("IORING_REGISTER_PERSONALITY")
        );
        assert_eq!(io_uring_op(22), "IORING_OP_READ");
        assert_eq!(io_uring_op(62), "IORING_OP_PIPE");
        assert_eq!(io_uring_op(-1), "IORING_OP(-1)");
        assert_eq!(option_name(Syscall::Setuid, [0, 0, 0]), None);
    }

    #[test]
    fn names_calls_as_their_entry_does() {
        let ev = |sys: &str, abi: &str, uid16: bool| Event {
            syscall: sys.into(),
            abi: abi.into(),
            event_flags: if uid16 {
                vec![flags::UID16.into()]
            } else {
                vec![]
            },
            ..Event::default()
        };
        let names = |e: Event| (e.call_name(), e.kernel_function());
        assert_eq!(
            names(ev("setresuid", "x64", false)),
            ("setresuid".into(), "__x64_sys_setresuid".into())
        );
        assert_eq!(
            names(ev("setresuid", "ia32", false)),
            ("setresuid32".into(), "__ia32_sys_setresuid".into())
        );
        assert_eq!(
            names(ev("setuid", "ia32", true)),
            ("setuid".into(), "__ia32_sys_setuid16".into())
        );
        assert_eq!(
            names(ev("prctl", "ia32", false)),
            ("prctl".into(), "__ia32_sys_prctl".into())
        );
        assert_eq!(names(ev("prctl", "x64", false)).1, "__x64_sys_prctl");
    }
}
