//! A policy document checked and flattened into [`Rules`]: what every
//! `call` spelling covers, each selector's conditions, and one error line
//! (or, under `--policy-warn`, one ignored line) for whatever credtrail
//! cannot honour.

use std::collections::BTreeMap;

use serde_saphyr::Location;

use super::document::{self, Document};
use super::{
    ArgMatch, ArgOp, BinaryMatch, BinaryOp, CapMatch, CapSet, NsValue, PidMatch, PolicyError,
    PolicyInfo, RETURN_INDEX, RateScope, Rules, Selector, Set, limits,
};
use crate::model::Syscall;
use crate::model::creds::cap_bit;

/// The error text without the reader's own position prefix or line breaks.
pub(super) fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s = match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => &s[..i],
        _ => &s,
    };
    s.trim().to_owned()
}

pub(super) struct Compiler<'a> {
    pub file: &'a str,
    pub warn: bool,
    pub rules: &'a mut Rules,
}

/// The calls of every Tetragon spelling credtrail can record.
const SYSCALL_PREFIXES: [(&str, u32); 8] = [
    ("__x64_sys_", ABI_X64),
    ("__ia32_compat_sys_", ABI_IA32),
    ("__ia32_sys_", ABI_IA32),
    ("__se_sys_", ABI_ALL),
    ("__do_sys_", ABI_ALL),
    ("__sys_", ABI_ALL),
    ("ksys_", ABI_ALL),
    ("sys_", ABI_ALL),
];
const ABI_X64: u32 = 1;
const ABI_IA32: u32 = 2;
const ABI_ALL: u32 = ABI_X64 | ABI_IA32;

fn bit(s: Syscall) -> u64 {
    1 << (s as u32)
}

/// Every credential event credtrail records.
fn all_calls() -> u64 {
    Syscall::ALL.iter().fold(0, |m, s| m | bit(*s))
}

/// Kernel functions credtrail cannot hook on these kernels (no kprobes,
/// no fentry), with what it records instead.
const UNSEEN: [(&str, &str); 4] = [
    (
        "override_creds",
        "temporary credential overrides are not visible without kprobes or fentry, which this kernel does not allow; credtrail records the task's own credentials (commit_creds)",
    ),
    (
        "revert_creds",
        "temporary credential overrides are not visible without kprobes or fentry, which this kernel does not allow; credtrail records the task's own credentials (commit_creds)",
    ),
    (
        "cap_capable",
        "capability checks are not visible without kprobes or fentry, which this kernel does not allow; credtrail records capability changes (commit_creds, capset, prctl)",
    ),
    (
        "prepare_creds",
        "credentials being prepared are not changes; use commit_creds",
    ),
];

/// The calls (as a [`Syscall`] bit set) and entries a kprobe's `call` covers.
fn calls_of(call: &str) -> Result<(u64, u32), String> {
    match call {
        "commit_creds" => return Ok((all_calls(), ABI_ALL)),
        "create_user_ns" => {
            return Ok((
                bit(Syscall::Unshare) | bit(Syscall::Clone) | bit(Syscall::Clone3),
                ABI_ALL,
            ));
        }
        _ => {}
    }
    if let Some((_, why)) = UNSEEN.iter().find(|(name, _)| *name == call) {
        return Err(format!("{call}: {why}"));
    }
    let (name, abis) = SYSCALL_PREFIXES
        .iter()
        .find_map(|(p, abis)| call.strip_prefix(p).map(|n| (n, *abis)))
        .unwrap_or((call, ABI_ALL));
    // ia32 spellings: setuid16 (16-bit ids), setuid32 is the syscall's name.
    let base = if abis == ABI_IA32 {
        name.strip_suffix("16").unwrap_or(name)
    } else {
        name
    };
    let calls = match base {
        "execve" | "execveat" => bit(Syscall::Execve),
        "io_uring_enter" => bit(Syscall::IoUringSubmit),
        other => match Syscall::from_name(other) {
            Some(Syscall::Unexplained | Syscall::IoUringSubmit | Syscall::Execve) | None => {
                return Err(format!(
                    "{call} is not a credential call credtrail records; it records {}, commit_creds (every credential change) and create_user_ns",
                    recorded_calls()
                ));
            }
            Some(s) => bit(s),
        },
    };
    Ok((calls, abis))
}

fn recorded_calls() -> String {
    let mut names: Vec<String> = Syscall::ALL
        .iter()
        .filter(|s| !matches!(s, Syscall::Unexplained | Syscall::IoUringSubmit))
        .map(|s| format!("sys_{}", s.name()))
        .collect();
    names.push("sys_io_uring_enter".into());
    names.join(", ")
}

/// `rateLimit`: a number of seconds, or with a unit (`s`, `m`, `h`).
fn rate_limit_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mult)?.checked_mul(1_000_000_000)
}

/// An integer argument value: decimal, or hex with `0x`.
fn int_value(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()? as i64,
        None => digits.parse::<u64>().ok()? as i64,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

fn negate_of(op: &str) -> Option<bool> {
    match op {
        "In" => Some(false),
        "NotIn" => Some(true),
        _ => None,
    }
}

impl Compiler<'_> {
    fn at(&self, l: &Location) -> String {
        format!("{}:{}:{}", self.file, l.line(), l.column())
    }

    fn error(&self, l: &Location, field: &str, message: String) -> PolicyError {
        PolicyError {
            at: self.at(l),
            field: field.to_owned(),
            message,
        }
    }

    /// Something credtrail cannot honour: refused, or under `--policy-warn`
    /// noted and ignored (the caller widens the filter).
    fn unsupported(
        &mut self,
        l: &Location,
        field: &str,
        message: String,
    ) -> Result<(), PolicyError> {
        let mut e = self.error(l, field, message);
        if !self.warn {
            e.message
                .push_str(" (remove it, or record anyway with --policy-warn)");
            return Err(e);
        }
        self.rules.ignored.push(format!("{e} (ignored)"));
        Ok(())
    }

    /// Values past the kernel's room: always refused (ignoring some would
    /// change what an `In` or `NotIn` means).
    fn check_len<T>(
        &self,
        l: &Location,
        field: &str,
        values: &[T],
        max: usize,
    ) -> Result<(), PolicyError> {
        if values.len() > max {
            return Err(self.error(
                l,
                field,
                format!("{} values; credtrail holds at most {max} per condition in the kernel (split the selector)", values.len()),
            ));
        }
        Ok(())
    }

    pub(super) fn policy(mut self, doc: Document, text: &str) -> Result<(), PolicyError> {
        use sha2::{Digest, Sha256};

        if doc.api_version.value != "cilium.io/v1alpha1" {
            return Err(self.error(
                &doc.api_version.referenced,
                "apiVersion",
                format!(
                    "{:?} is not a Tetragon policy version (cilium.io/v1alpha1)",
                    doc.api_version.value
                ),
            ));
        }
        let kind = doc.kind.value.clone();
        if kind != "TracingPolicy" && kind != "TracingPolicyNamespaced" {
            return Err(self.error(
                &doc.kind.referenced,
                "kind",
                format!("{kind:?} is not a policy credtrail reads (TracingPolicy or TracingPolicyNamespaced)"),
            ));
        }
        let namespace = match (&doc.metadata.namespace, kind.as_str()) {
            (Some(ns), "TracingPolicyNamespaced") => Some(ns.value.clone()),
            (None, "TracingPolicyNamespaced") => {
                return Err(self.error(
                    &doc.kind.referenced,
                    "metadata.namespace",
                    "a TracingPolicyNamespaced needs metadata.namespace (the pods' Kubernetes namespace)".into(),
                ));
            }
            _ => None,
        };
        let name = doc.metadata.name.value.clone();
        if name.is_empty() {
            return Err(self.error(
                &doc.metadata.name.referenced,
                "metadata.name",
                "empty name".into(),
            ));
        }
        if self.rules.policies.len() >= limits::POLICIES {
            return Err(self.error(
                &doc.metadata.name.referenced,
                "metadata.name",
                format!("more than {} policies given together", limits::POLICIES),
            ));
        }
        let spec = doc.spec;
        for (field, v) in [
            ("spec.tracepoints", &spec.tracepoints),
            ("spec.uprobes", &spec.uprobes),
            ("spec.lsmhooks", &spec.lsmhooks),
            ("spec.usdts", &spec.usdts),
            ("spec.enforcers", &spec.enforcers),
            ("spec.containerSelector", &spec.container_selector),
        ] {
            if let Some(v) = v {
                self.unsupported(
                    &v.referenced,
                    field,
                    "not supported: credtrail hooks credential changes itself and filters them with spec.kprobes".into(),
                )?;
            }
        }
        let mut pod_labels = BTreeMap::new();
        if let Some(sel) = spec.pod_selector {
            if let Some(e) = &sel.value.match_expressions {
                self.unsupported(
                    &e.referenced,
                    "spec.podSelector.matchExpressions",
                    "not supported; use matchLabels".into(),
                )?;
            }
            pod_labels = sel.value.match_labels;
        }
        let policy = self.rules.policies.len() as u32;
        for (k, kp) in spec.kprobes.into_iter().enumerate() {
            self.kprobe(policy, &format!("spec.kprobes[{k}]"), kp)?;
        }
        self.rules.policies.push(PolicyInfo {
            name,
            kind,
            file: self.file.to_owned(),
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            namespace,
            pod_labels,
        });
        Ok(())
    }

    fn kprobe(&mut self, policy: u32, path: &str, kp: document::Kprobe) -> Result<(), PolicyError> {
        let (calls, abis) = match calls_of(&kp.call.value) {
            Ok(c) => c,
            Err(why) => {
                // Nothing to record for it: the kprobe is left out.
                return self.unsupported(&kp.call.referenced, &format!("{path}.call"), why);
            }
        };
        let kprobe = self
            .rules
            .selectors
            .last()
            .map(|s| s.kprobe + 1)
            .unwrap_or(0);
        let base = Selector {
            policy,
            kprobe,
            calls,
            abis,
            post: true,
            rate_limit_ns: 0,
            rate_scope: RateScope::Thread,
            pid_ns: None,
            user_ns: None,
            pids: None,
            args: Vec::new(),
            caps: Vec::new(),
            binaries: Vec::new(),
        };
        let mut added = Vec::new();
        if kp.selectors.is_empty() {
            added.push(base.clone());
        }
        for (i, sel) in kp.selectors.into_iter().enumerate() {
            added.push(self.selector(&format!("{path}.selectors[{i}]"), base.clone(), sel)?);
        }
        if self.rules.selectors.len() + added.len() > limits::SELECTORS {
            return Err(self.error(
                &kp.call.referenced,
                &format!("{path}.selectors"),
                format!("more than {} selectors over all policies; credtrail holds that many in the kernel", limits::SELECTORS),
            ));
        }
        self.rules.selectors.extend(added);
        Ok(())
    }

    fn selector(
        &mut self,
        path: &str,
        mut s: Selector,
        sel: document::Selector,
    ) -> Result<Selector, PolicyError> {
        for (field, v) in [
            ("matchParentBinaries", &sel.match_parent_binaries),
            ("matchNamespaceChanges", &sel.match_namespace_changes),
            ("matchData", &sel.match_data),
            ("matchReturnActions", &sel.match_return_actions),
        ] {
            if let Some(v) = v {
                self.unsupported(
                    &v.referenced,
                    &format!("{path}.{field}"),
                    "not supported by credtrail".into(),
                )?;
            }
        }
        for (i, b) in sel
            .match_binaries
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = format!("{path}.matchBinaries[{i}]");
            let (op, negate) = match b.operator.value.as_str() {
                "In" => (BinaryOp::In, false),
                "NotIn" => (BinaryOp::In, true),
                "Prefix" => (BinaryOp::Prefix, false),
                "NotPrefix" => (BinaryOp::Prefix, true),
                "Postfix" => (BinaryOp::Postfix, false),
                "NotPostfix" => (BinaryOp::Postfix, true),
                other => {
                    let msg = format!(
                        "{other:?}: matchBinaries operators are In, NotIn, Prefix, NotPrefix, Postfix and NotPostfix"
                    );
                    self.unsupported(&b.operator.referenced, &format!("{field}.operator"), msg)?;
                    continue;
                }
            };
            if let Some(fc) = b.follow_children.as_ref().filter(|f| f.value) {
                self.unsupported(
                    &fc.referenced,
                    &format!("{field}.followChildren"),
                    "not supported: credtrail matches each process's own binary".into(),
                )?;
                continue;
            }
            let values: Vec<String> = b.values.iter().map(|v| v.value.text()).collect();
            if values.is_empty() {
                return Err(self.error(
                    &b.operator.referenced,
                    &format!("{field}.values"),
                    "no values".into(),
                ));
            }
            s.binaries.push(BinaryMatch { op, negate, values });
        }
        for (i, p) in sel.match_pids.unwrap_or_default().into_iter().enumerate() {
            let field = format!("{path}.matchPIDs[{i}]");
            let Some(negate) = negate_of(&p.operator.value) else {
                self.unsupported(
                    &p.operator.referenced,
                    &format!("{field}.operator"),
                    format!(
                        "{:?}: matchPIDs operators are In and NotIn",
                        p.operator.value
                    ),
                )?;
                continue;
            };
            if let Some(ff) = p.follow_forks.as_ref().filter(|f| f.value) {
                self.unsupported(
                    &ff.referenced,
                    &format!("{field}.followForks"),
                    "not supported: the kernel side matches the pid itself".into(),
                )?;
                continue;
            }
            if s.pids.is_some() {
                let l = &p.operator.referenced;
                self.unsupported(l, &field, "one matchPIDs entry per selector".into())?;
                continue;
            }
            let mut values = Vec::new();
            for v in &p.values {
                match v.value.text().parse::<u32>() {
                    Ok(n) => values.push(n),
                    Err(_) => {
                        return Err(self.error(
                            &v.referenced,
                            &format!("{field}.values"),
                            format!("{:?} is not a pid", v.value.text()),
                        ));
                    }
                }
            }
            self.check_len(
                &p.operator.referenced,
                &format!("{field}.values"),
                &values,
                limits::VALUES,
            )?;
            s.pids = Some(PidMatch {
                negate,
                namespace_pid: p.is_namespace_pid,
                values,
            });
        }
        for (i, n) in sel
            .match_namespaces
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = format!("{path}.matchNamespaces[{i}]");
            let slot = match n.namespace.value.as_str() {
                "Pid" => &mut s.pid_ns,
                "User" => &mut s.user_ns,
                other => {
                    let msg = format!(
                        "{other}: credtrail records the Pid and User namespaces of each event, not this one"
                    );
                    self.unsupported(&n.namespace.referenced, &format!("{field}.namespace"), msg)?;
                    continue;
                }
            };
            if slot.is_some() {
                let msg = format!("a second {} entry in one selector", n.namespace.value);
                self.unsupported(&n.namespace.referenced, &field, msg)?;
                continue;
            }
            let Some(negate) = negate_of(&n.operator.value) else {
                self.unsupported(
                    &n.operator.referenced,
                    &format!("{field}.operator"),
                    format!(
                        "{:?}: matchNamespaces operators are In and NotIn",
                        n.operator.value
                    ),
                )?;
                continue;
            };
            let mut values = Vec::new();
            for v in &n.values {
                let t = v.value.text();
                values.push(match t.as_str() {
                    "host_ns" => NsValue::Host,
                    _ => match t.parse::<u32>() {
                        Ok(inum) => NsValue::Inode(inum),
                        Err(_) => {
                            return Err(self.error(
                                &v.referenced,
                                &format!("{field}.values"),
                                format!("{t:?} is neither host_ns nor a namespace inode number"),
                            ));
                        }
                    },
                });
            }
            self.check_len(
                &n.operator.referenced,
                &format!("{field}.values"),
                &values,
                limits::VALUES,
            )?;
            *slot = Some(Set { negate, values });
        }
        let arg_lists = [
            ("matchArgs", sel.match_args.unwrap_or_default(), false),
            (
                "matchReturnArgs",
                sel.match_return_args.unwrap_or_default(),
                true,
            ),
        ];
        for (name, list, ret) in arg_lists {
            for (i, a) in list.into_iter().enumerate() {
                let field = format!("{path}.{name}[{i}]");
                let index = if ret {
                    if a.index.value != 0 {
                        return Err(self.error(
                            &a.index.referenced,
                            &format!("{field}.index"),
                            "a call has one return value: index 0".into(),
                        ));
                    }
                    RETURN_INDEX
                } else {
                    if a.index.value >= RETURN_INDEX {
                        let msg = format!(
                            "argument {}: credtrail records a call's first three arguments (arg0..arg2)",
                            a.index.value
                        );
                        self.unsupported(&a.index.referenced, &format!("{field}.index"), msg)?;
                        continue;
                    }
                    a.index.value
                };
                let op = match a.operator.value.as_str() {
                    "Equal" => ArgOp::Equal,
                    "NotEqual" => ArgOp::NotEqual,
                    "GT" | "GreaterThan" => ArgOp::GreaterThan,
                    "LT" | "LessThan" => ArgOp::LessThan,
                    "Mask" => ArgOp::Mask,
                    other => {
                        let msg = format!(
                            "{other}: credtrail's arguments are integers; operators are Equal, NotEqual, GT, LT and Mask"
                        );
                        self.unsupported(
                            &a.operator.referenced,
                            &format!("{field}.operator"),
                            msg,
                        )?;
                        continue;
                    }
                };
                let mut values = Vec::new();
                for v in &a.values {
                    match int_value(&v.value.text()) {
                        Some(n) => values.push(n),
                        None => {
                            return Err(self.error(
                                &v.referenced,
                                &format!("{field}.values"),
                                format!("{:?} is not an integer", v.value.text()),
                            ));
                        }
                    }
                }
                if values.is_empty() {
                    return Err(self.error(
                        &a.operator.referenced,
                        &format!("{field}.values"),
                        "no values".into(),
                    ));
                }
                self.check_len(
                    &a.operator.referenced,
                    &format!("{field}.values"),
                    &values,
                    limits::VALUES,
                )?;
                if s.args.len() == limits::ARGS {
                    return Err(self.error(
                        &a.operator.referenced,
                        &field,
                        format!(
                            "more than {} matchArgs and matchReturnArgs entries in one selector",
                            limits::ARGS
                        ),
                    ));
                }
                s.args.push(ArgMatch { index, op, values });
            }
        }
        let cap_lists = [
            (
                "matchCapabilities",
                sel.match_capabilities.unwrap_or_default(),
                false,
            ),
            (
                "matchCapabilityChanges",
                sel.match_capability_changes.unwrap_or_default(),
                true,
            ),
        ];
        for (name, list, change) in cap_lists {
            for (i, c) in list.into_iter().enumerate() {
                let field = format!("{path}.{name}[{i}]");
                let set = match c.type_.value.as_str() {
                    "Effective" => CapSet::Effective,
                    "Permitted" => CapSet::Permitted,
                    "Inheritable" => CapSet::Inheritable,
                    other => {
                        return Err(self.error(
                            &c.type_.referenced,
                            &format!("{field}.type"),
                            format!("{other:?}: types are Effective, Permitted and Inheritable"),
                        ));
                    }
                };
                let Some(negate) = negate_of(&c.operator.value) else {
                    self.unsupported(
                        &c.operator.referenced,
                        &format!("{field}.operator"),
                        format!(
                            "{:?}: capability operators are In and NotIn",
                            c.operator.value
                        ),
                    )?;
                    continue;
                };
                let mut mask = 0u64;
                for v in &c.values {
                    let t = v.value.text();
                    match cap_bit(&t) {
                        Some(b) => mask |= 1 << b,
                        None => {
                            return Err(self.error(
                                &v.referenced,
                                &format!("{field}.values"),
                                format!("{t:?} is not a capability name (CAP_SYS_ADMIN, ...)"),
                            ));
                        }
                    }
                }
                if s.caps.len() == limits::CAPS {
                    return Err(self.error(
                        &c.operator.referenced,
                        &field,
                        format!(
                            "more than {} capability entries in one selector",
                            limits::CAPS
                        ),
                    ));
                }
                s.caps.push(CapMatch {
                    set,
                    negate,
                    change,
                    namespace_capability: c.is_namespace_capability,
                    mask,
                });
            }
        }
        let actions = sel.match_actions.unwrap_or_default();
        if actions.len() > 1 {
            let l = &actions[1].action.referenced;
            self.unsupported(
                l,
                &format!("{path}.matchActions[1]"),
                "one action per selector (Post or NoPost)".into(),
            )?;
        }
        if let Some(a) = actions.into_iter().next() {
            let field = format!("{path}.matchActions[0]");
            match a.action.value.as_str() {
                "Post" => {}
                "NoPost" => s.post = false,
                other => {
                    let msg = format!(
                        "{other} is not supported: credtrail records, it does not enforce (actions are Post and NoPost)"
                    );
                    // Ignored, the selector posts: record more, never less.
                    self.unsupported(&a.action.referenced, &format!("{field}.action"), msg)?;
                }
            }
            if let Some(r) = &a.rate_limit {
                match rate_limit_ns(&r.value.text()) {
                    Some(ns) => s.rate_limit_ns = ns,
                    None => {
                        return Err(self.error(
                            &r.referenced,
                            &format!("{field}.rateLimit"),
                            format!(
                                "{:?}: a number of seconds, or with a unit: 30s, 1m, 1h",
                                r.value.text()
                            ),
                        ));
                    }
                }
            }
            if let Some(scope) = &a.rate_limit_scope {
                s.rate_scope = match scope.value.as_str() {
                    "thread" => RateScope::Thread,
                    "process" => RateScope::Process,
                    "global" => RateScope::Global,
                    other => {
                        return Err(self.error(
                            &scope.referenced,
                            &format!("{field}.rateLimitScope"),
                            format!("{other:?}: scopes are thread, process and global"),
                        ));
                    }
                };
            }
        }
        Ok(s)
    }
}
