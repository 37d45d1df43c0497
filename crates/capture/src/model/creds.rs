//! A task's credential set, and the capability names.

/// The credential columns, once: each member of a credential set, its
/// type, its column kind (how `columnar.rs` reads and writes it) and the
/// columns that hold it before and after a call. [`Creds`], the lifecycle
/// row's credentials, `Event`'s `old_*` and `new_*` columns with their
/// accessors, and columnar.rs's event columns are all made from this list:
/// `with_cred_columns!(then!(ARGS))` calls `then! { (ARGS) [LIST] }`. The
/// recorder's decoder destructures the C `struct ct_creds` into a
/// [`Creds`] field by field, so neither side can gain a member unnoticed.
macro_rules! with_cred_columns {
    ($then:ident ! ( $($args:tt)* )) => {
        $then! { ($($args)*) [
            uid: u32, U32, old_uid, new_uid;
            euid: u32, U32, old_euid, new_euid;
            suid: u32, U32, old_suid, new_suid;
            fsuid: u32, U32, old_fsuid, new_fsuid;
            gid: u32, U32, old_gid, new_gid;
            egid: u32, U32, old_egid, new_egid;
            sgid: u32, U32, old_sgid, new_sgid;
            fsgid: u32, U32, old_fsgid, new_fsgid;
            cap_effective: u64, U64, old_cap_effective, new_cap_effective;
            cap_permitted: u64, U64, old_cap_permitted, new_cap_permitted;
            cap_inheritable: u64, U64, old_cap_inheritable, new_cap_inheritable;
            cap_bounding: u64, U64, old_cap_bounding, new_cap_bounding;
            cap_ambient: u64, U64, old_cap_ambient, new_cap_ambient;
            securebits: u32, U32, old_securebits, new_securebits;
            /// Supplementary groups (at most [`MAX_GROUPS`]; see `event_flags`).
            groups: Vec<u32>, ListU32, old_groups, new_groups;
            /// The user namespace the ids and capabilities belong to: its inode
            /// (`/proc/PID/ns/user`), its depth (0 = the host's) and its creator's
            /// host uid. Null in captures older than format 3.
            userns: Option<u32>, OptU32, old_userns, new_userns;
            userns_level: Option<u32>, OptU32, old_userns_level, new_userns_level;
            userns_owner: Option<u32>, OptU32, old_userns_owner, new_userns_owner;
            /// The task's no_new_privs flag: exec grants no privilege once set.
            /// Null in captures older than format 3.
            no_new_privs: Option<bool>, OptBool, old_no_new_privs, new_no_new_privs;
        ] }
    };
}
pub(crate) use with_cred_columns;

macro_rules! creds_struct {
    (() [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        /// A task's full credential set at one instant.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct Creds {
            $($(#[$doc])* pub $field: $ty,)*
        }
    };
}
with_cred_columns!(creds_struct!());

/// Inode of the host's (initial) user namespace (`PROC_USER_INIT_INO`).
pub const HOST_USERNS: u32 = 0xEFFF_FFFD;

/// Capability names by bit number (linux/capability.h).
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The name of capability `bit` (`CAP_41` for bits newer than this table).
pub fn cap_name(bit: u32) -> std::borrow::Cow<'static, str> {
    match CAP_NAMES.get(bit as usize) {
        Some(n) => (*n).into(),
        None => format!("CAP_{bit}").into(),
    }
}

/// The bit of a capability name (`CAP_SYS_ADMIN`, or `CAP_41`).
pub fn cap_bit(name: &str) -> Option<u32> {
    if let Some(i) = CAP_NAMES.iter().position(|n| *n == name) {
        return Some(i as u32);
    }
    name.strip_prefix("CAP_")?.parse().ok().filter(|b| *b < 64)
}

/// `+CAP_X -CAP_Y` for the bits that differ between two masks.
pub fn cap_diff(old: u64, new: u64) -> String {
    let mut out = Vec::new();
    for bit in 0..64 {
        let m = 1u64 << bit;
        match (old & m != 0, new & m != 0) {
            (false, true) => out.push(format!("+{}", cap_name(bit))),
            (true, false) => out.push(format!("-{}", cap_name(bit))),
            _ => {}
        }
    }
    out.join(" ")
}

/// Groups kept per list; equals `CT_MAX_GROUPS` in `credtrail.h`.
pub const MAX_GROUPS: usize = 32;

/// Getters and setters between a row's flat credential columns and
/// [`Creds`], made from [`with_cred_columns`]: `old` and `new` pick
/// `Event`'s columns, `plain` the members' own names (the lifecycle row).
macro_rules! creds_accessors {
    (($get:ident, $set:ident, old) [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        $crate::model::creds::creds_accessors!(@of $get, $set; $($field => $old),*);
    };
    (($get:ident, $set:ident, new) [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        $crate::model::creds::creds_accessors!(@of $get, $set; $($field => $new),*);
    };
    (($get:ident, $set:ident, plain) [$($(#[$doc:meta])* $field:ident: $ty:ty, $kind:ident, $old:ident, $new:ident;)*]) => {
        $crate::model::creds::creds_accessors!(@of $get, $set; $($field => $field),*);
    };
    (@of $get:ident, $set:ident; $($field:ident => $col:ident),*) => {
        /// The credential set these columns hold.
        pub fn $get(&self) -> $crate::model::creds::Creds {
            $crate::model::creds::Creds { $($field: self.$col.clone(),)* }
        }
        pub fn $set(&mut self, c: $crate::model::creds::Creds) {
            $(self.$col = c.$field;)*
        }
    };
}
pub(crate) use creds_accessors;
