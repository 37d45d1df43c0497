//! User namespaces (`DIR/user_namespaces/`): one row when a namespace is
//! first seen and again once its id maps are written, and the arithmetic
//! that turns host ids into the ids a namespace shows.

use serde::{Deserialize, Serialize};

use super::creds::Creds;
use super::event::Event;

/// One id map extent: ids `first..first+count` inside the namespace are
/// host ids `lower_first..` (the kernel keeps the lower side as host ids,
/// whatever the depth).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extent {
    pub first: u32,
    pub lower_first: u32,
    pub count: u32,
}

/// Extents kept per map (`CT_MAP_EXTENTS`, the kernel's inline maps).
pub const MAP_EXTENTS: usize = 5;

/// A user namespace and its id maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernsRow {
    pub time: i64,
    pub ktime_ns: u64,
    /// Arrival order, shared with the events and lifecycle tables.
    pub seq: u64,
    pub node_name: String,
    /// Inode of the namespace (`/proc/PID/ns/user`).
    pub userns: u32,
    /// Inode of the namespace it was created in (null for the host's).
    pub parent_userns: Option<u32>,
    /// Depth: 0 for the host's.
    pub level: u32,
    /// Host uid and gid of the creator.
    pub owner_uid: u32,
    pub owner_gid: u32,
    /// The maps as written (empty until written), at most [`MAP_EXTENTS`]
    /// extents each; `uid_extents`/`gid_extents` hold the true counts.
    pub uid_map: Vec<Extent>,
    pub gid_map: Vec<Extent>,
    pub uid_extents: u32,
    pub gid_extents: u32,
}

impl UsernsRow {
    /// `id` (a host uid) as this namespace numbers it; None if unmapped.
    pub fn uid(&self, id: u32) -> Option<u32> {
        local(&self.uid_map, id)
    }

    pub fn gid(&self, id: u32) -> Option<u32> {
        local(&self.gid_map, id)
    }

    /// Whether both maps are written (the kernel writes each once).
    pub fn maps_written(&self) -> bool {
        self.uid_extents > 0 && self.gid_extents > 0
    }

    /// The maps as /proc/PID/uid_map shows them from the host, one
    /// `first lower count` per extent, `;`-joined.
    pub fn map_text(map: &[Extent]) -> String {
        map.iter()
            .map(|e| format!("{} {} {}", e.first, e.lower_first, e.count))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn local(map: &[Extent], id: u32) -> Option<u32> {
    map.iter().find_map(|e| {
        let off = id.checked_sub(e.lower_first)?;
        (off < e.count).then(|| e.first + off)
    })
}

/// The eight ids of a credential set as a namespace numbers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsIds {
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    pub suid: Option<u32>,
    pub fsuid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
    pub sgid: Option<u32>,
    pub fsgid: Option<u32>,
}

impl NsIds {
    /// `c`'s ids in `ns`; all None when `ns` is unknown or the host's (the
    /// host ids are the columns themselves).
    pub fn of(c: &Creds, ns: Option<&UsernsRow>) -> NsIds {
        let Some(ns) = ns.filter(|n| n.level > 0) else {
            return NsIds::default();
        };
        NsIds {
            uid: ns.uid(c.uid),
            euid: ns.uid(c.euid),
            suid: ns.uid(c.suid),
            fsuid: ns.uid(c.fsuid),
            gid: ns.gid(c.gid),
            egid: ns.gid(c.egid),
            sgid: ns.gid(c.sgid),
            fsgid: ns.gid(c.fsgid),
        }
    }
}

/// `host root` or `namespace root`, as the `root_scope` column says it.
pub mod scope {
    pub const HOST: &str = "host";
    pub const NAMESPACE: &str = "namespace";
}

/// Whether the call made the euid or fsuid 0, and where: `host` when a host
/// id became 0; `namespace` when an id became 0 only as the task's user
/// namespace numbers it (a setuid(0) in a rootless container, or creating
/// or entering a namespace that maps the caller to 0). `old_ns`/`new_ns`
/// are the namespaces of the two credential sets, with whatever maps are
/// known.
pub fn root_scope(
    old: &Creds,
    new: &Creds,
    old_ns: Option<&UsernsRow>,
    new_ns: Option<&UsernsRow>,
) -> Option<&'static str> {
    let host = (new.euid == 0 && old.euid != 0) || (new.fsuid == 0 && old.fsuid != 0);
    if host {
        return Some(scope::HOST);
    }
    let (o, n) = (NsIds::of(old, old_ns), NsIds::of(new, new_ns));
    // An id in the host's namespace is its host id.
    let local = |ids: Option<u32>, host: u32, ns: Option<&UsernsRow>, c: &Creds| match ns {
        Some(ns) if ns.level > 0 => ids,
        _ if c.userns_level.unwrap_or(0) > 0 => None,
        _ => Some(host),
    };
    let moved = old.userns != new.userns;
    let became =
        |before: Option<u32>, after: Option<u32>| after == Some(0) && (before != Some(0) || moved);
    let euid = became(
        local(o.euid, old.euid, old_ns, old),
        local(n.euid, new.euid, new_ns, new),
    );
    let fsuid = became(
        local(o.fsuid, old.fsuid, old_ns, old),
        local(n.fsuid, new.fsuid, new_ns, new),
    );
    (euid || fsuid).then_some(scope::NAMESPACE)
}

/// Getter and setter between an event's `{old,new}_ns_*` columns and [`NsIds`].
macro_rules! ns_ids_accessors {
    ($get:ident, $set:ident, $($field:ident => $col:ident),* $(,)?) => {
        pub fn $get(&self) -> NsIds {
            NsIds { $($field: self.$col,)* }
        }
        pub(crate) fn $set(&mut self, ids: NsIds) {
            $(self.$col = ids.$field;)*
        }
    };
}

impl Event {
    ns_ids_accessors!(old_ns_ids, set_old_ns_ids,
        uid => old_ns_uid, euid => old_ns_euid, suid => old_ns_suid, fsuid => old_ns_fsuid,
        gid => old_ns_gid, egid => old_ns_egid, sgid => old_ns_sgid, fsgid => old_ns_fsgid);
    ns_ids_accessors!(new_ns_ids, set_new_ns_ids,
        uid => new_ns_uid, euid => new_ns_euid, suid => new_ns_suid, fsuid => new_ns_fsuid,
        gid => new_ns_gid, egid => new_ns_egid, sgid => new_ns_sgid, fsgid => new_ns_fsgid);

    /// Fills the namespace-local ids and `root_scope` from the namespaces
    /// of the two credential sets.
    pub fn set_ns_ids(&mut self, old_ns: Option<&UsernsRow>, new_ns: Option<&UsernsRow>) {
        let (old, new) = (self.old_creds(), self.new_creds());
        self.set_old_ns_ids(NsIds::of(&old, old_ns));
        self.set_new_ns_ids(NsIds::of(&new, new_ns));
        self.root_scope = root_scope(&old, &new, old_ns, new_ns).map(str::to_owned);
    }

    /// Takes `from`'s namespace columns (ids and `root_scope`): what a
    /// capture older than format 3 cannot have stored.
    pub fn copy_namespace_enrichment(&mut self, from: &Event) {
        self.set_old_ns_ids(from.old_ns_ids());
        self.set_new_ns_ids(from.new_ns_ids());
        self.root_scope.clone_from(&from.root_scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootless(inum: u32) -> UsernsRow {
        UsernsRow {
            userns: inum,
            level: 1,
            uid_map: vec![Extent {
                first: 0,
                lower_first: 100_000,
                count: 65536,
            }],
            gid_map: vec![Extent {
                first: 0,
                lower_first: 100_000,
                count: 65536,
            }],
            uid_extents: 1,
            gid_extents: 1,
            ..Default::default()
        }
    }

    fn creds(euid: u32, ns: &UsernsRow) -> Creds {
        Creds {
            uid: euid,
            euid,
            suid: euid,
            fsuid: euid,
            userns: Some(ns.userns),
            userns_level: Some(ns.level),
            ..Default::default()
        }
    }

    #[test]
    fn maps_host_ids_into_the_namespace() {
        let ns = rootless(7);
        assert_eq!(ns.uid(100_000), Some(0));
        assert_eq!(ns.uid(165_535), Some(65535));
        assert_eq!(ns.uid(165_536), None);
        assert_eq!(ns.uid(0), None);
        assert_eq!(UsernsRow::map_text(&ns.uid_map), "0 100000 65536");
    }

    #[test]
    fn tells_namespace_root_from_host_root() {
        let ns = rootless(7);
        let host = UsernsRow {
            userns: super::super::creds::HOST_USERNS,
            ..Default::default()
        };
        // setuid(0) in a rootless container: host uid 101000 -> 100000.
        let (old, new) = (creds(101_000, &ns), creds(100_000, &ns));
        assert_eq!(
            root_scope(&old, &new, Some(&ns), Some(&ns)),
            Some("namespace")
        );
        // The same without maps: unknown, not claimed.
        assert_eq!(root_scope(&old, &new, None, None), None);
        // A host change to 0 is host root, whatever the namespace.
        let (old, new) = (creds(1000, &host), creds(0, &host));
        assert_eq!(
            root_scope(&old, &new, Some(&host), Some(&host)),
            Some("host")
        );
        // unshare --map-root-user by uid 1000: root in the new namespace.
        let mut mapped = rootless(8);
        mapped.uid_map = vec![Extent {
            first: 0,
            lower_first: 1000,
            count: 1,
        }];
        let (old, new) = (creds(1000, &host), creds(1000, &mapped));
        assert_eq!(
            root_scope(&old, &new, Some(&host), Some(&mapped)),
            Some("namespace")
        );
        // Already root in it: nothing became root.
        assert_eq!(root_scope(&new, &new, Some(&mapped), Some(&mapped)), None);
    }
}
