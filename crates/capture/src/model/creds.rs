//! A task's credential set, and the capability names.

/// A task's full credential set at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Creds {
    pub uid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub gid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub cap_effective: u64,
    pub cap_permitted: u64,
    pub cap_inheritable: u64,
    pub cap_bounding: u64,
    pub cap_ambient: u64,
    pub securebits: u32,
    /// Supplementary groups (at most [`MAX_GROUPS`]; see `event_flags`).
    pub groups: Vec<u32>,
    /// The user namespace the ids and capabilities belong to: its inode
    /// (`/proc/PID/ns/user`), its depth (0 = the host's) and its creator's
    /// host uid. Null in captures older than format 3.
    pub userns: Option<u32>,
    pub userns_level: Option<u32>,
    pub userns_owner: Option<u32>,
    /// The task's no_new_privs flag: exec grants no privilege once set.
    /// Null in captures older than format 3.
    pub no_new_privs: Option<bool>,
}

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

/// Getter and setter between a row's flat credential columns and [`Creds`].
macro_rules! creds_accessors {
    ($get:ident, $set:ident, $($field:ident => $col:ident),* $(,)?) => {
        /// The credential set these columns hold.
        pub fn $get(&self) -> Creds {
            Creds { $($field: self.$col.clone(),)* }
        }
        pub fn $set(&mut self, c: Creds) {
            $(self.$col = c.$field;)*
        }
    };
}
pub(crate) use creds_accessors;
