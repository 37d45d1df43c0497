//! The policy decision over a recorded event: the same steps, in the same
//! order, as `policy.bpf.h` takes in the kernel, on the same fields, so
//! that a capture replayed with a policy keeps exactly what a recorder
//! with that policy kept. Live, the kernel has already dropped what the
//! policy excludes; this pass decides what only userspace knows (a
//! selector's `matchBinaries`, `followChildren` and `followForks`: the
//! kernel sends whatever such a selector may post, and leaves its rate limit, and those of the selectors after
//! it in its kprobe, to this pass; a policy's pods) and names the policy.

use std::collections::HashMap;

use super::{
    ArgOp, BinaryMatch, CapMatch, HostNamespaces, NsValue, PidMatch, RETURN_INDEX, RateScope,
    Rules, Selector, Set,
};
use crate::process::{Image, Lineage, ProcInfo};
use credtrail_capture::model::{Event, Syscall, event::abi};

/// The fields of an event a policy looks at (`struct ct_event` in the kernel).
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject {
    pub syscall: u32,
    pub abi: u32,
    pub args: [i64; 3],
    pub ret: i64,
    pub pid: u32,
    pub tid: u32,
    pub ns_pid: u32,
    pub pid_ns: u32,
    /// The user namespace of the credentials before the call, and its depth.
    pub user_ns: u32,
    pub user_ns_level: u32,
    /// Effective, permitted, inheritable: before and after.
    pub old_caps: [u64; 3],
    pub new_caps: [u64; 3],
    pub ktime_ns: u64,
}

impl Subject {
    /// None for a call this build does not know (a newer capture).
    pub fn of(ev: &Event) -> Option<Subject> {
        let syscall = Syscall::from_name(&ev.syscall)? as u32;
        Some(Subject {
            syscall,
            abi: u32::from(ev.abi == abi::IA32),
            args: [ev.arg0, ev.arg1, ev.arg2],
            ret: ev.ret,
            pid: ev.pid,
            tid: ev.tid,
            ns_pid: ev.ns_pid,
            pid_ns: ev.pid_ns,
            user_ns: ev.old_userns.unwrap_or(0),
            user_ns_level: ev.old_userns_level.unwrap_or(0),
            old_caps: [
                ev.old_cap_effective,
                ev.old_cap_permitted,
                ev.old_cap_inheritable,
            ],
            new_caps: [
                ev.new_cap_effective,
                ev.new_cap_permitted,
                ev.new_cap_inheritable,
            ],
            ktime_ns: ev.ktime_ns,
        })
    }
}

/// The process an event came from, as the enrichment knows it: what only
/// userspace can match (`matchBinaries`, and the ancestry `followChildren`
/// and `followForks` look at).
#[derive(Debug, Clone, Copy, Default)]
pub struct Who<'a> {
    /// The executed file (`exe`; `binary` in captures written before it).
    pub exe: Option<&'a str>,
    /// The cached process; its lineage marks say which follow matchers an
    /// ancestor matched, however far up.
    pub process: Option<&'a ProcInfo>,
}

impl<'a> Who<'a> {
    pub fn of(ev: &'a Event, process: Option<&'a ProcInfo>) -> Self {
        Who {
            exe: ev.exe.as_deref().or(ev.binary.as_deref()),
            process,
        }
    }

    /// Whether an ancestor, however far up, carries the lineage mark `bit`.
    fn inherits(&self, bit: Option<u8>) -> bool {
        match (self.process, bit) {
            (Some(p), Some(b)) => p.inherited & (1 << b) != 0,
            _ => false,
        }
    }
}

fn exe_of(p: &Image) -> Option<&str> {
    p.exe
        .as_deref()
        .or(Some(p.binary.as_str()))
        .filter(|e| !e.is_empty())
}

impl BinaryMatch {
    fn matches(&self, who: &Who) -> bool {
        let hit = self.hit(who.exe) || (self.follow_children && who.inherits(self.lineage_bit));
        hit != self.negate
    }

    /// Whether `image` hands this matcher's mark down to its descendants.
    fn marks(&self, image: &Image) -> bool {
        self.follow_children && self.hit(exe_of(image))
    }
}

impl PidMatch {
    fn matches(&self, s: &Subject, who: &Who) -> bool {
        let own = if self.namespace_pid { s.ns_pid } else { s.pid };
        let hit =
            self.values.contains(&own) || (self.follow_forks && who.inherits(self.lineage_bit));
        hit != self.negate
    }

    fn marks(&self, image: &Image) -> bool {
        // Processes found in /proc at start have no known namespace pid (0).
        let pid = if self.namespace_pid {
            image.ns_pid
        } else {
            image.pid
        };
        self.follow_forks && pid != 0 && self.values.contains(&pid)
    }
}

/// What the selectors decided: bit `1 << policy` for each policy that
/// posts the event, bit `1 << selector` for each selector that did (their
/// rate limits restart once the event is kept).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decision {
    pub policies: u32,
    pub selectors: u32,
    /// Selectors that matched but were inside their rate limit.
    pub rate_limited: u32,
}

fn in_set(set: &Option<Set<NsValue>>, host: u32, v: u32) -> bool {
    match set {
        None => true,
        Some(s) => s.values.iter().any(|x| x.resolve(host) == v) != s.negate,
    }
}

fn arg_matches(op: ArgOp, v: i64, values: &[i64]) -> bool {
    match op {
        ArgOp::Equal => values.contains(&v),
        ArgOp::NotEqual => !values.contains(&v),
        ArgOp::GreaterThan => values.iter().any(|x| v > *x),
        ArgOp::LessThan => values.iter().any(|x| v < *x),
        ArgOp::Mask => values.iter().any(|x| v & x != 0),
    }
}

fn cap_matches(c: &CapMatch, s: &Subject) -> bool {
    let set = c.set as usize;
    // Capabilities held in a user namespace below the host's are no
    // capabilities over the host.
    if !c.namespace_capability && s.user_ns_level > 0 {
        return c.negate;
    }
    let held = if c.change {
        s.old_caps[set] ^ s.new_caps[set]
    } else {
        s.old_caps[set]
    };
    (held & c.mask != 0) != c.negate
}

impl Selector {
    /// Whether every condition holds (the call's bits are checked apart).
    pub fn matches(&self, host: HostNamespaces, s: &Subject, who: &Who) -> bool {
        if !self.binaries.iter().all(|b| b.matches(who)) {
            return false;
        }
        if !in_set(&self.pid_ns, host.pid, s.pid_ns) || !in_set(&self.user_ns, host.user, s.user_ns)
        {
            return false;
        }
        if let Some(p) = &self.pids
            && !p.matches(s, who)
        {
            return false;
        }
        let arg_ok = self.args.iter().all(|a| {
            let v = if a.index == RETURN_INDEX {
                s.ret
            } else {
                s.args[a.index as usize]
            };
            arg_matches(a.op, v, &a.values)
        });
        arg_ok && self.caps.iter().all(|c| cap_matches(c, s))
    }

    fn covers(&self, s: &Subject) -> bool {
        self.calls & (1u64 << s.syscall.min(63)) != 0 && self.abis & (1 << s.abi.min(31)) != 0
    }
}

/// When each selector last posted, per call and arguments (and thread,
/// process or globally, as its scope says). The kernel keeps the same in
/// an LRU map of `CT_POL_RATE_ENTRIES` (credtrail.h, 8,192); past that many live keys it may forget
/// one and post it again early, where this does not.
#[derive(Debug, Default)]
pub struct RateLimiter {
    last: HashMap<RateKey, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RateKey {
    selector: u32,
    scope: u32,
    syscall: u32,
    args: [i64; 3],
}

fn rate_key(i: usize, sel: &Selector, s: &Subject) -> RateKey {
    RateKey {
        selector: i as u32,
        scope: match sel.rate_scope {
            RateScope::Thread => s.tid,
            RateScope::Process => s.pid,
            RateScope::Global => 0,
        },
        syscall: s.syscall,
        args: s.args,
    }
}

impl Rules {
    /// The lineage marks the enrichment gives each new image, for
    /// `followChildren` and `followForks` (None: no selector follows). An
    /// enricher whose events this policy decides needs them.
    pub fn lineage(&self) -> Option<Lineage> {
        let binaries: Vec<BinaryMatch> = self
            .selectors
            .iter()
            .flat_map(|s| &s.binaries)
            .filter(|b| b.follow_children)
            .cloned()
            .collect();
        let pids: Vec<PidMatch> = self
            .selectors
            .iter()
            .filter_map(|s| s.pids.clone())
            .filter(|p| p.follow_forks)
            .collect();
        if binaries.is_empty() && pids.is_empty() {
            return None;
        }
        let bit = |b: Option<u8>| b.map_or(0, |b| 1u64 << b);
        Some(Box::new(move |image: &Image| {
            let b = binaries
                .iter()
                .filter(|m| m.marks(image))
                .fold(0, |acc, m| acc | bit(m.lineage_bit));
            pids.iter()
                .filter(|m| m.marks(image))
                .fold(b, |acc, m| acc | bit(m.lineage_bit))
        }))
    }

    /// The decision for one event (rate limits as `rate` has them): the
    /// kernel's, completed with what only userspace knows (`who`).
    pub fn decide(
        &self,
        host: HostNamespaces,
        s: &Subject,
        who: &Who,
        rate: &RateLimiter,
    ) -> Decision {
        let mut d = Decision::default();
        let mut decided: Option<u32> = None;
        for (i, sel) in self.selectors.iter().enumerate() {
            if decided == Some(sel.kprobe) || !sel.covers(s) || !sel.matches(host, s, who) {
                continue;
            }
            decided = Some(sel.kprobe);
            if !sel.post {
                continue;
            }
            if sel.rate_limit_ns > 0
                && let Some(last) = rate.last.get(&rate_key(i, sel, s))
                && s.ktime_ns.wrapping_sub(*last) < sel.rate_limit_ns
            {
                d.rate_limited |= 1 << i;
                continue;
            }
            d.policies |= 1 << sel.policy;
            d.selectors |= 1 << i;
        }
        d
    }

    /// The event was kept: its selectors' rate limits start again.
    pub fn posted(&self, d: Decision, s: &Subject, rate: &mut RateLimiter) {
        for (i, sel) in self.selectors.iter().enumerate() {
            if d.selectors & (1 << i) != 0 && sel.rate_limit_ns > 0 {
                rate.last.insert(rate_key(i, sel, s), s.ktime_ns);
            }
        }
    }
}

/// Events a policy left out, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounts {
    /// No policy posted it (in the kernel: it never reached the ring buffer).
    pub filtered: u64,
    /// Of those, the ones a rate limit held back.
    pub rate_limited: u64,
    /// Posted in the kernel, then left out for its pod (namespace or labels).
    pub pod_filtered: u64,
}

/// Rules applied to events one after the other.
#[derive(Debug)]
pub struct PolicyFilter {
    pub rules: Rules,
    pub host: HostNamespaces,
    rate: RateLimiter,
    pub counts: FilterCounts,
}

impl PolicyFilter {
    pub fn new(rules: Rules, host: HostNamespaces) -> Self {
        PolicyFilter {
            rules,
            host,
            rate: RateLimiter::default(),
            counts: FilterCounts::default(),
        }
    }

    /// The name of the policy that keeps `ev` (made by `process`, as the
    /// enrichment's cache has it), or None when none does.
    pub fn admit(&mut self, ev: &Event, process: Option<&ProcInfo>) -> Option<&str> {
        let s = Subject::of(ev)?;
        let who = Who::of(ev, process);
        let d = self.rules.decide(self.host, &s, &who, &self.rate);
        if d.policies == 0 {
            self.counts.filtered += 1;
            if d.rate_limited != 0 {
                self.counts.rate_limited += 1;
            }
            return None;
        }
        self.rules.posted(d, &s, &mut self.rate);
        let pick = self.rules.policies.iter().enumerate().find(|(i, p)| {
            d.policies & (1 << i) != 0 && p.selects_pod(ev.pod_namespace.as_deref(), &ev.pod_labels)
        });
        match pick {
            Some((_, p)) => Some(&p.name),
            None => {
                self.counts.pod_filtered += 1;
                None
            }
        }
    }
}
