//! The process-tree snapshot taken from /proc when recording starts
//! (`DIR/processes/`), so events of processes that started earlier have
//! their ancestry.

use serde::{Deserialize, Serialize};

/// One process at `snapshot_ktime_ns`: from /proc when recording starts
/// (`source` = `procfs`), or from credtrail's process cache at the start of
/// each later segment (`source` = `cache`, where the identity columns, `uid`/`euid`,
/// `auid`, `cwd` and `ns_pid` are filled: enough to seed replay exactly), so every segment can be read alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRow {
    pub snapshot_ktime_ns: u64,
    /// `procfs` or `cache`.
    pub source: String,
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Target of /proc/PID/exe (empty for kernel threads or when unreadable).
    pub exe: String,
    pub cmdline: Vec<String>,
    pub cwd: String,
    /// Process start, CLOCK_BOOTTIME ns (stat field 22 × 1e9 / CLK_TCK).
    pub start_ktime_ns: u64,
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
    pub groups: Vec<u32>,
    /// Login uid (4294967295 = unset).
    pub auid: u32,
    pub sessionid: u32,
    /// /proc/PID/cgroup lines, `hierarchy:controllers:path`.
    pub cgroups: Vec<String>,
    // Identity as the enrichment knows it (see the events table).
    pub exec_id: Option<String>,
    pub parent_exec_id: Option<String>,
    pub binary: Option<String>,
    pub arguments: Option<String>,
    pub flags: Option<String>,
    pub container_id: Option<String>,
    /// pid inside its pid namespace, as the cache knows it (`cache` rows;
    /// absent before format 7 of this column's addition: read as null).
    #[serde(default)]
    pub ns_pid: Option<u32>,
}

/// Bytes of argv kept, NUL-separated: what the kernel side keeps of an
/// exec's arguments (`CT_ARGS_MAX` in credtrail.h; a test in `decode`
/// holds them equal), so a process found in /proc is stored like one seen
/// starting, and no capture value is longer than readers accept.
pub const ARGS_MAX: usize = 1024;

/// The first [`ARGS_MAX`] bytes of `argv` (arguments and their NULs), the
/// last one cut if need be, as the kernel side keeps them.
pub fn truncate_args(argv: Vec<String>) -> Vec<String> {
    let mut left = ARGS_MAX;
    let mut kept = Vec::new();
    for mut a in argv {
        if left == 0 {
            break;
        }
        if a.len() >= left {
            let mut cut = left;
            while !a.is_char_boundary(cut) {
                cut -= 1;
            }
            a.truncate(cut);
            kept.push(a);
            break;
        }
        left -= a.len() + 1;
        kept.push(a);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::{ARGS_MAX, truncate_args};

    #[test]
    fn args_are_cut_like_the_kernel_side_cuts_them() {
        let short = vec!["su".to_owned(), "-".to_owned()];
        assert_eq!(truncate_args(short.clone()), short);
        let long = vec!["x".repeat(1000), "y".repeat(100), "z".to_owned()];
        let kept = truncate_args(long);
        assert_eq!(kept, vec!["x".repeat(1000), "y".repeat(ARGS_MAX - 1001)]);
        // Never inside a UTF-8 character.
        let kept = truncate_args(vec!["é".repeat(ARGS_MAX)]);
        assert_eq!(kept[0].len(), ARGS_MAX);
        let kept = truncate_args(vec!["a".to_owned() + &"é".repeat(ARGS_MAX)]);
        assert_eq!(kept[0].len(), ARGS_MAX - 1);
    }
}
