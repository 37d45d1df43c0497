//! `--policy` rules in the kernel's layout (`struct ct_selector` and the
//! members of their value sets), with `host_ns` resolved to this host's
//! namespaces.

use credtrail_pipeline::policy::{
    ArgMatch, ArgOp, CapMatch, HostNamespaces, NsValue, Rules, Selector, Set, limits,
};
use credtrail_recorder_bpf::{
    Policy, ct_pol_arg, ct_pol_cap, ct_pol_field, ct_pol_value_key, ct_selector,
};

// The kernel's arrays are the pipeline's policy limits.
const _: () = {
    let s: ct_selector = unsafe { std::mem::zeroed() };
    assert!(std::mem::size_of_val(&s.args) / std::mem::size_of::<ct_pol_arg>() == limits::ARGS);
    assert!(std::mem::size_of_val(&s.caps) / std::mem::size_of::<ct_pol_cap>() == limits::CAPS);
    assert!(credtrail_recorder_bpf::POLICY_SELECTORS == limits::SELECTORS);
};

/// The set's operator, its members added to `values`.
fn set<T: Copy>(
    s: &Option<Set<T>>,
    selector: u32,
    field: u32,
    value: impl Fn(T) -> i64,
    values: &mut Vec<ct_pol_value_key>,
) -> u32 {
    let Some(s) = s else {
        return 0;
    };
    for v in &s.values {
        values.push(ct_pol_value_key {
            selector,
            field,
            value: value(*v),
        });
    }
    if s.negate { 2 } else { 1 }
}

fn selector(
    i: u32,
    s: &Selector,
    host: HostNamespaces,
    values: &mut Vec<ct_pol_value_key>,
) -> ct_selector {
    let pids = kernel_pids(s);
    let mut out = ct_selector {
        calls: s.calls,
        abis: s.abis,
        kprobe: s.kprobe,
        policy: s.policy,
        post: u32::from(s.post),
        rate_ns: s.rate_limit_ns,
        rate_scope: s.rate_scope as u32,
        ns_pid: u32::from(s.pids.as_ref().is_some_and(|p| p.namespace_pid)),
        pidns_op: set(
            &s.pid_ns,
            i,
            ct_pol_field::CT_FIELD_PIDNS.0,
            |v: NsValue| v.resolve(host.pid).into(),
            values,
        ),
        userns_op: set(
            &s.user_ns,
            i,
            ct_pol_field::CT_FIELD_USERNS.0,
            |v: NsValue| v.resolve(host.user).into(),
            values,
        ),
        pids_op: set(
            &pids,
            i,
            ct_pol_field::CT_FIELD_PID.0,
            |v: u32| v.into(),
            values,
        ),
        nargs: s.args.len() as u32,
        ncaps: s.caps.len() as u32,
        maybe: u32::from(s.needs_userspace()),
        ..Default::default()
    };
    for (slot, (k, a)) in out.args.iter_mut().zip(s.args.iter().enumerate()) {
        *slot = arg(i, k as u32, a, values);
    }
    for (slot, c) in out.caps.iter_mut().zip(&s.caps) {
        *slot = cap(c);
    }
    out
}

/// The pids the kernel matches itself.
fn kernel_pids(s: &Selector) -> Option<Set<u32>> {
    // followForks looks at the ancestry: userspace decides the pids then.
    s.pids.as_ref().filter(|p| !p.follow_forks).map(|p| Set {
        negate: p.negate,
        values: p.values.clone(),
    })
}

/// Argument `k` of selector `i`, its values for Equal and NotEqual added
/// to `values`.
fn arg(i: u32, k: u32, a: &ArgMatch, values: &mut Vec<ct_pol_value_key>) -> ct_pol_arg {
    // GT, LT and Mask against any of the values are one comparison.
    let value = match a.op {
        ArgOp::GreaterThan => a.values.iter().copied().min().unwrap_or(i64::MAX),
        ArgOp::LessThan => a.values.iter().copied().max().unwrap_or(i64::MIN),
        ArgOp::Mask => a.values.iter().fold(0, |m, v| m | v),
        ArgOp::Equal | ArgOp::NotEqual => {
            for v in &a.values {
                values.push(ct_pol_value_key {
                    selector: i,
                    field: ct_pol_field::CT_FIELD_ARG.0 + k,
                    value: *v,
                });
            }
            0
        }
    };
    ct_pol_arg {
        index: a.index,
        op: a.op as u32,
        value,
    }
}

/// One capability match in the kernel's layout.
fn cap(c: &CapMatch) -> ct_pol_cap {
    ct_pol_cap {
        set: c.set as u32,
        negate: u32::from(c.negate),
        change: u32::from(c.change),
        ns_cap: u32::from(c.namespace_capability),
        mask: c.mask,
    }
}

/// The policy as the kernel's maps hold it.
pub fn kernel_policy(rules: &Rules, host: HostNamespaces) -> Policy {
    let mut p = Policy::default();
    if rules.selectors.is_empty() && !rules.policies.is_empty() {
        // Policies whose every kprobe was ignored (--policy-warn) post
        // nothing: one selector that covers no call says so to the kernel.
        p.selectors.push(ct_selector::default());
        return p;
    }
    for (i, s) in rules.selectors.iter().enumerate() {
        let sel = selector(i as u32, s, host, &mut p.values);
        p.selectors.push(sel);
    }
    p
}
