//! A policy document checked and flattened into [`Rules`]: what every
//! `call` spelling covers, each selector's conditions, and one error line
//! (or, under `--policy-warn`, one ignored line) for whatever credtrail
//! cannot honour.

use std::collections::BTreeMap;

use serde_saphyr::Location;

use super::document::{self, Document};
use super::{PolicyError, PolicyInfo, RateScope, Rules, Selector, limits};
use credtrail_capture::model::Syscall;

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
pub(super) fn rate_limit_ns(s: &str) -> Option<u64> {
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
pub(super) fn int_value(s: &str) -> Option<i64> {
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

pub(super) fn negate_of(op: &str) -> Option<bool> {
    match op {
        "In" => Some(false),
        "NotIn" => Some(true),
        _ => None,
    }
}

impl Compiler<'_> {
    pub(super) fn at(&self, l: &Location) -> String {
        format!("{}:{}:{}", self.file, l.line(), l.column())
    }

    pub(super) fn error(&self, l: &Location, field: &str, message: String) -> PolicyError {
        PolicyError {
            at: self.at(l),
            field: field.to_owned(),
            message,
        }
    }

    /// Something credtrail cannot honour: refused, or under `--policy-warn`
    /// noted and ignored (the caller widens the filter).
    pub(super) fn unsupported(
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
    pub(super) fn check_len<T>(
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
}
