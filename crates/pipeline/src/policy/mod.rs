//! Tetragon TracingPolicy files as credtrail's event filter (`--policy`).
//!
//! A policy is read ([`document`]), checked and flattened here into
//! [`Rules`]: one list of selectors, each with the calls it covers, its
//! conditions and its action. The recorder writes that list into a BPF map
//! (the filter runs in the kernel, before an event takes ring buffer
//! space); [`decide`] runs the same list over recorded events, so replay
//! and query keep exactly what the recorder would have kept.
//!
//! Semantics follow Tetragon's: a kprobe's selectors are tried in order
//! and the first that matches decides (its `matchActions`: `Post`, the
//! default, or `NoPost`); a kprobe without selectors posts every call; the
//! conditions of a selector must all hold; the values of one condition are
//! alternatives. An event is kept when any kprobe of any policy posts it;
//! `policy` names the first such policy, in the order given.

// Fields Tetragon defines are read so its policies parse; many are not used.
mod compile;
pub mod decide;
#[allow(dead_code)]
mod document;
mod selector;

use std::collections::BTreeMap;
use std::path::Path;

use compile::{Compiler, one_line};
use document::Document;

/// How much of a policy the kernel holds. The same numbers are in
/// `credtrail.h` (CT_POL_*); the recorder checks they agree.
pub mod limits {
    /// Selectors over all policies (a kprobe without selectors counts one).
    pub const SELECTORS: usize = 32;
    /// Policies given together.
    pub const POLICIES: usize = 32;
    /// Values of one condition.
    pub const VALUES: usize = 8;
    /// `matchArgs` and `matchReturnArgs` entries of one selector, together.
    pub const ARGS: usize = 4;
    /// `matchCapabilities` and `matchCapabilityChanges` entries, together.
    pub const CAPS: usize = 4;
}

/// `matchArgs` index of the return value (`matchReturnArgs` index 0).
pub const RETURN_INDEX: u32 = 3;

/// A policy that cannot be used, with where and why, in one line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{at}: {field}: {message}")]
pub struct PolicyError {
    /// `FILE:LINE:COLUMN`.
    pub at: String,
    /// The field, as a path into the policy (`spec.kprobes[0].call`).
    pub field: String,
    pub message: String,
}

/// A namespace named in `matchNamespaces`: `host_ns`, or an inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsValue {
    Host,
    Inode(u32),
}

/// What `host_ns` names (a fact of the host, defined there).
pub use credtrail_capture::host::HostNamespaces;

impl NsValue {
    pub fn resolve(self, host: u32) -> u32 {
        match self {
            NsValue::Host => host,
            NsValue::Inode(v) => v,
        }
    }
}

/// `In` (`negate` false) or `NotIn` a set of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T> {
    pub negate: bool,
    pub values: Vec<T>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidMatch {
    pub negate: bool,
    /// Compare the pid as the process's own pid namespace numbers it.
    pub namespace_pid: bool,
    /// `followForks`: the process or any of its ancestors (decided in
    /// userspace, where the ancestry is).
    pub follow_forks: bool,
    pub values: Vec<u32>,
    /// With `follow_forks`: the lineage mark of a process this matches
    /// (see [`Rules::lineage`]).
    pub lineage_bit: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ArgOp {
    Equal = 1,
    NotEqual = 2,
    GreaterThan = 3,
    LessThan = 4,
    /// Any bit of any value set in the argument.
    Mask = 5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMatch {
    /// 0..=2: the call's arguments as recorded (`arg0`..`arg2`);
    /// [`RETURN_INDEX`]: the return value.
    pub index: u32,
    pub op: ArgOp,
    pub values: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum CapSet {
    Effective = 0,
    Permitted = 1,
    Inheritable = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapMatch {
    pub set: CapSet,
    /// `NotIn`: none of the capabilities.
    pub negate: bool,
    /// `matchCapabilityChanges`: the capabilities that changed between
    /// before and after; otherwise the ones held before the call.
    pub change: bool,
    /// `isNamespaceCapability: false`: capabilities count only when held
    /// in the host's user namespace.
    pub namespace_capability: bool,
    pub mask: u64,
}

/// How `matchBinaries` compares a binary's path with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    In,
    Prefix,
    Postfix,
}

/// `matchBinaries`: the executed file (the `exe` column, as
/// /proc/PID/exe reads) against paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryMatch {
    pub op: BinaryOp,
    /// `NotIn`, `NotPrefix`, `NotPostfix`.
    pub negate: bool,
    /// `followChildren`: the process or any of its ancestors.
    pub follow_children: bool,
    pub values: Vec<String>,
    /// With `follow_children`: the lineage mark of a process this matches
    /// (see [`Rules::lineage`]).
    pub lineage_bit: Option<u8>,
}

impl BinaryMatch {
    /// Whether `exe` (None: unknown, matches no value) is one of the values.
    pub fn hit(&self, exe: Option<&str>) -> bool {
        exe.is_some_and(|b| {
            self.values.iter().any(|v| match self.op {
                BinaryOp::In => b == v,
                BinaryOp::Prefix => b.starts_with(v.as_str()),
                BinaryOp::Postfix => b.ends_with(v.as_str()),
            })
        })
    }
}

/// Tetragon's `rateLimitScope`: whose repeated events are suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u32)]
pub enum RateScope {
    #[default]
    Thread = 0,
    Process = 1,
    Global = 2,
}

/// One selector, flattened: the unit the kernel evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Index into [`Rules::policies`].
    pub policy: u32,
    /// Kprobes numbered over all policies: selectors of one kprobe are
    /// consecutive and the first that matches decides for the kprobe.
    pub kprobe: u32,
    /// Bit `1 << syscall` for each [`Syscall`] the kprobe's call covers.
    pub calls: u64,
    /// Bit 0: the x86-64 entry; bit 1: ia32.
    pub abis: u32,
    pub post: bool,
    /// `rateLimit`: an event whose call and arguments were posted less
    /// than this long ago (per [`RateScope`]) is not posted again.
    pub rate_limit_ns: u64,
    pub rate_scope: RateScope,
    pub pid_ns: Option<Set<NsValue>>,
    pub user_ns: Option<Set<NsValue>>,
    pub pids: Option<PidMatch>,
    pub args: Vec<ArgMatch>,
    pub caps: Vec<CapMatch>,
    /// `matchBinaries`, decided in userspace after enrichment: the kernel
    /// sends what such a selector may post (see decide.rs).
    pub binaries: Vec<BinaryMatch>,
}

impl Selector {
    /// Whether part of the selector is decided only in userspace.
    pub fn needs_userspace(&self) -> bool {
        !self.binaries.is_empty() || self.pids.as_ref().is_some_and(|p| p.follow_forks)
    }
}

/// The largest policy file read (Tetragon's own are a few KiB).
const MAX_POLICY_BYTES: u64 = 4 << 20;

/// One policy file, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// `metadata.name`: the events' `policy`.
    pub name: String,
    /// `TracingPolicy` or `TracingPolicyNamespaced`.
    pub kind: String,
    pub file: String,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// `TracingPolicyNamespaced`: only pods of this Kubernetes namespace.
    pub namespace: Option<String>,
    /// `podSelector.matchLabels`: only pods with all these labels.
    pub pod_labels: BTreeMap<String, String>,
}

impl PolicyInfo {
    /// Whether the policy's pod conditions hold for a pod (none: not in a pod).
    pub fn selects_pod(&self, namespace: Option<&str>, labels: &[String]) -> bool {
        if let Some(want) = &self.namespace
            && namespace != Some(want.as_str())
        {
            return false;
        }
        self.pod_labels.iter().all(|(k, v)| {
            namespace.is_some() && labels.iter().any(|l| l.split_once('=') == Some((k, v)))
        })
    }
}

/// Policies compiled together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub policies: Vec<PolicyInfo>,
    pub selectors: Vec<Selector>,
    /// What `--policy-warn` ignored, one line each (`FILE:LINE:COL: field: why`).
    pub ignored: Vec<String>,
}

impl Rules {
    /// Reads and compiles policy files, in order. `warn`: what credtrail
    /// cannot honour is ignored and listed in [`Rules::ignored`] (the
    /// filter becomes wider, never narrower) rather than refused.
    pub fn load(paths: &[impl AsRef<Path>], warn: bool) -> Result<Rules, PolicyError> {
        let mut rules = Rules::default();
        for path in paths {
            let path = path.as_ref();
            let text =
                credtrail_capture::fs::read_bounded(path, MAX_POLICY_BYTES).map_err(|e| {
                    PolicyError {
                        at: path.display().to_string(),
                        field: "file".into(),
                        message: format!("cannot read it: {e}"),
                    }
                })?;
            let text = String::from_utf8(text).map_err(|_| PolicyError {
                at: path.display().to_string(),
                field: "file".into(),
                message: "not UTF-8 text; a TracingPolicy is YAML".into(),
            })?;
            rules.add(&path.display().to_string(), &text, warn)?;
        }
        Ok(rules)
    }

    /// Compiles one policy's text (named `file` in errors) onto these rules.
    pub fn add(&mut self, file: &str, text: &str, warn: bool) -> Result<(), PolicyError> {
        let opts = serde_saphyr::options! { with_snippet: false };
        let doc: Document = serde_saphyr::from_str_with_options(text, opts).map_err(|e| {
            let at = match e.location() {
                Some(l) => format!("{file}:{}:{}", l.line(), l.column()),
                None => file.to_owned(),
            };
            PolicyError {
                at,
                field: "YAML".into(),
                message: one_line(&e.to_string()),
            }
        })?;
        Compiler {
            file,
            warn,
            rules: self,
        }
        .policy(doc, text)?;
        self.number_follows(file)
    }

    /// Gives every `followChildren` and `followForks` matcher its bit of
    /// the lineage marks, in selector order.
    fn number_follows(&mut self, file: &str) -> Result<(), PolicyError> {
        let mut next = 0u32;
        let mut take = |follows: bool| -> Result<Option<u8>, PolicyError> {
            if !follows {
                return Ok(None);
            }
            let bit = u8::try_from(next)
                .ok()
                .filter(|b| *b < 64)
                .ok_or_else(|| PolicyError {
                    at: file.to_owned(),
                    field: "matchBinaries.followChildren / matchPIDs.followForks".into(),
                    message: "more than 64 matchers follow children or forks across all policies"
                        .into(),
                })?;
            next += 1;
            Ok(Some(bit))
        };
        for sel in &mut self.selectors {
            for b in &mut sel.binaries {
                b.lineage_bit = take(b.follow_children)?;
            }
            if let Some(p) = &mut sel.pids {
                p.lineage_bit = take(p.follow_forks)?;
            }
        }
        Ok(())
    }

    /// The policy names, for the manifest.
    pub fn names(&self) -> Vec<String> {
        self.policies.iter().map(|p| p.name.clone()).collect()
    }
}

/// The host namespaces `host_ns` meant where `cap` was recorded: from
/// its manifest, or for captures older than that record, the pid
/// namespace in which processes' own pids are their host pids and the
/// user namespace at level 0, as the events show them.
pub fn capture_host(
    cap: &credtrail_capture::Capture,
) -> Result<HostNamespaces, credtrail_capture::CaptureError> {
    let setting = |k: &str| {
        cap.manifest
            .settings
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .map(|v| v as u32)
    };
    if let (Some(pid), Some(user)) = (setting("host_pid_ns"), setting("host_user_ns")) {
        return Ok(HostNamespaces { pid, user });
    }
    let mut pid_votes: BTreeMap<u32, u64> = BTreeMap::new();
    let mut user = 0;
    for ev in cap.stream::<credtrail_capture::model::Event>() {
        let ev = ev?;
        if ev.ns_pid == ev.pid && ev.pid_ns != 0 {
            *pid_votes.entry(ev.pid_ns).or_default() += 1;
        }
        if ev.old_userns_level == Some(0) {
            user = ev.old_userns.unwrap_or(user);
        }
    }
    let pid = pid_votes
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map_or(0, |(ns, _)| ns);
    Ok(HostNamespaces { pid, user })
}

/// The policies as a manifest lists them (in `settings.policies`).
pub fn manifest_entry(rules: &Rules) -> serde_json::Value {
    rules
        .policies
        .iter()
        .map(|p| {
            serde_json::json!({
                "name": p.name,
                "kind": p.kind,
                "file": p.file,
                "sha256": p.sha256,
                "namespace": p.namespace,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
