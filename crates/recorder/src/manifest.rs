//! What the recorder writes into the manifest besides its rows: the
//! settings that shaped the capture, and the counters (the kernel's, the
//! session's) in the manifest's terms.

use std::collections::BTreeMap;

use credtrail_capture::manifest::Counters;
use credtrail_pipeline::policy::HostNamespaces;
use credtrail_recorder_bpf::KernelCounters;

use crate::options::RecordOptions;

/// The settings that shape the capture, for its manifest.
pub fn settings(
    opts: &RecordOptions,
    host_ns: HostNamespaces,
) -> BTreeMap<String, serde_json::Value> {
    let mut s = BTreeMap::new();
    // What a policy's host_ns means here, for policies applied later.
    s.insert("host_pid_ns".into(), host_ns.pid.into());
    s.insert("host_user_ns".into(), host_ns.user.into());
    if !opts.policy.policies.is_empty() {
        s.insert(
            "policies".into(),
            credtrail_pipeline::policy::manifest_entry(&opts.policy),
        );
    }
    if !opts.policy.ignored.is_empty() {
        s.insert("policy_ignored".into(), opts.policy.ignored.clone().into());
    }
    s.insert(
        "rotate_seconds".into(),
        opts.rotation.max_age.as_secs().into(),
    );
    s.insert("rotate_bytes".into(), opts.rotation.max_bytes.into());
    s.insert("ring_buffer_bytes".into(), opts.ring_buffer_bytes.into());
    s.insert("spool_memory_bytes".into(), opts.spool_memory_bytes.into());
    s.insert("spool_disk_bytes".into(), opts.spool_disk_bytes.into());
    if opts.compat_syscalls {
        s.insert("compat_syscalls".into(), true.into());
    }
    s.insert(
        "sweep_interval_ms".into(),
        (opts.sweep_interval.as_millis() as u64).into(),
    );
    if !opts.switch_check {
        s.insert("switch_check".into(), false.into());
    }
    if let Some(c) = &opts.command {
        s.insert("command".into(), c.program.clone().into());
        if let Some(u) = &c.user {
            s.insert("user".into(), u.clone().into());
        }
    }
    if opts.subjective_check {
        s.insert("subjective_check".into(), true.into());
    }
    if !opts.redactor.is_empty() {
        s.insert("redact".into(), true.into());
    }
    if opts.sign_key.is_some() {
        s.insert("signed".into(), true.into());
    }
    s
}

pub fn counters_from(
    k: KernelCounters,
    decode_errors: u64,
    written: u64,
    lifecycle: u64,
) -> Counters {
    Counters {
        events_written: written,
        kernel_events: k.exits,
        ringbuf_full: k.ringbuf_full,
        enter_store_failures: k.enter_store_failures,
        exit_without_enter: k.exit_without_enter,
        decode_errors,
        lifecycle_written: lifecycle,
        kernel_lifecycle: k.proc_events,
        lifecycle_ringbuf_full: k.proc_ringbuf_full,
        exec_without_stash: k.exec_no_stash,
        kernel_user_namespaces: k.userns_records,
        user_namespaces_ringbuf_full: k.userns_ringbuf_full,
        unexplained: k.unexplained,
        unexplained_ringbuf_full: k.unexplained_ringbuf_full,
        tasks_checked: k.checks,
        cred_swaps_examined: k.cred_swaps,
        sweep_tasks: k.sweep_tasks,
        returns_checked: k.return_checks,
        subjective_overrides: k.subjective,
        outside_scope: k.out_of_scope,
        scope_full: k.scope_full,
        unchecked_tasks: k.known_store_failures,
        fold_full: k.fold_full,
        lost_unattributed: k.lost_unattributed,
        ..Counters::default()
    }
}
