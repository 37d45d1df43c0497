//! What the process cache holds: each process image's own facts, and a
//! bounded, flat ancestry.
//!
//! No image links to another: a re-exec loop or a fork chain of any length
//! (its length is the node's to choose, not ours) keeps at most
//! [`MAX_ANCESTRY`] ancestors per process, and dropping anything goes two
//! levels deep. What is further up is counted ([`ProcInfo::depth`]) and, for
//! the policy's `followChildren` / `followForks`, summarised in lineage
//! marks that every descendant inherits, so a match never depends on how far
//! up the ancestor is.

use std::ops::Deref;
use std::sync::Arc;

/// Ancestors a process keeps, parent first: more than any tree the tools
/// draw needs; the rest are counted.
pub const MAX_ANCESTRY: usize = 32;

/// One process image (an exec, a clone, or a process found in /proc): its
/// own facts only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    pub exec_id: String,
    pub pid: u32,
    pub ppid: u32,
    /// Boot clock of the exec or clone (or /proc start time).
    pub ktime_ns: u64,
    pub binary: String,
    /// The executed file as /proc/PID/exe reads (None: unknown).
    pub exe: Option<String>,
    pub arguments: String,
    pub cwd: String,
    pub flags: String,
    /// Effective uid when the image started.
    pub uid: u32,
    pub auid: u32,
    pub parent_exec_id: String,
    /// `(runtime, 64-hex id)` when in a container.
    pub container: Option<(String, String)>,
    /// pid inside its pid namespace.
    pub ns_pid: u32,
}

/// Marks an image hands down to all its descendants: bit `i` for the
/// policy's `i`-th follow matcher the image matches (see
/// `Rules::lineage`). Computed once per image.
pub type Lineage = Box<dyn Fn(&Image) -> u64 + Send + Sync>;

/// A process image as the cache holds it.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub image: Arc<Image>,
    /// Parent, grandparent, …: at most [`MAX_ANCESTRY`].
    pub ancestors: Arc<[Arc<Image>]>,
    /// Ancestors in all, kept or not.
    pub depth: u64,
    /// This image's own lineage marks.
    pub marks: u64,
    /// The marks of every ancestor, kept or not.
    pub inherited: u64,
    /// A clone that has not exec'd yet.
    pub fresh_clone: bool,
}

impl Deref for ProcInfo {
    type Target = Image;
    fn deref(&self) -> &Image {
        &self.image
    }
}

/// Where a new image hangs: what it inherits from its parent.
#[derive(Debug, Clone)]
pub(crate) struct Descent {
    pub ancestors: Arc<[Arc<Image>]>,
    pub depth: u64,
    pub inherited: u64,
}

impl Descent {
    /// An image whose parent is unknown.
    pub fn orphan() -> Descent {
        Descent {
            ancestors: Arc::from([]),
            depth: 0,
            inherited: 0,
        }
    }

    /// A child of `parent`.
    pub fn of(parent: Option<&ProcInfo>) -> Descent {
        let Some(p) = parent else {
            return Descent::orphan();
        };
        let ancestors: Arc<[Arc<Image>]> = std::iter::once(Arc::clone(&p.image))
            .chain(p.ancestors.iter().take(MAX_ANCESTRY - 1).cloned())
            .collect();
        Descent {
            ancestors,
            depth: p.depth.saturating_add(1),
            inherited: p.inherited | p.marks,
        }
    }

    /// The descent of the image `p` itself (an exec that replaces a fresh
    /// clone keeps the clone's place in the tree).
    pub fn same_as(p: &ProcInfo) -> Descent {
        Descent {
            ancestors: Arc::clone(&p.ancestors),
            depth: p.depth,
            inherited: p.inherited,
        }
    }
}

impl ProcInfo {
    pub(crate) fn new(image: Image, descent: Descent, marks: u64, fresh_clone: bool) -> ProcInfo {
        ProcInfo {
            image: Arc::new(image),
            ancestors: descent.ancestors,
            depth: descent.depth,
            marks,
            inherited: descent.inherited,
            fresh_clone,
        }
    }

    /// The image this one hangs under, when known.
    pub fn parent(&self) -> Option<&Image> {
        self.ancestors.first().map(|a| &**a)
    }

    /// Ancestors known but not kept (beyond [`MAX_ANCESTRY`]).
    pub fn ancestors_left_out(&self) -> u64 {
        self.depth.saturating_sub(self.ancestors.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pid: u32) -> Image {
        Image {
            pid,
            exec_id: pid.to_string(),
            ..Image::default()
        }
    }

    #[test]
    fn a_chain_of_any_length_keeps_a_bounded_ancestry_and_every_mark() {
        // Marked at the top only: the mark reaches the bottom however far.
        let mut p = ProcInfo::new(image(0), Descent::orphan(), 1, false);
        let top = Arc::downgrade(&p.image);
        for i in 1..1_000_000u32 {
            p = ProcInfo::new(image(i), Descent::of(Some(&p)), 0, false);
        }
        assert_eq!(p.ancestors.len(), MAX_ANCESTRY);
        assert_eq!(p.depth, 999_999);
        assert_eq!(p.ancestors_left_out(), 999_999 - MAX_ANCESTRY as u64);
        assert_eq!(p.inherited, 1);
        assert_eq!(p.parent().map(|a| a.pid), Some(999_998));
        // Images above the kept ancestry are freed, not held by a chain.
        assert!(top.upgrade().is_none());
    }
}
