//! Raw ring-buffer records to [`Event`]s. Pure: no kernel, no root.

use credtrail_recorder_bpf::{
    EVENT_HEAD_SIZE, EVENT_SIZE, PROC_EVENT_SIZE, PROC_SHORT_SIZE, USERNS_EVENT_SIZE, ct_abi,
    ct_check, ct_creds, ct_event, ct_extent, ct_flag, ct_proc_event, ct_proc_flag, ct_proc_kind,
    ct_record, ct_syscall, ct_userns_event,
};

use credtrail_capture::model::creds::{Creds, MAX_GROUPS};
use credtrail_capture::model::event::{Event, Syscall, abi, flags};
use credtrail_capture::model::lifecycle::{self, ProcEvent};
use credtrail_capture::model::options::{CHECKS, option_name, subjective_option};
use credtrail_capture::model::userns::{Extent, MAP_EXTENTS, UsernsRow};
use credtrail_capture::storage::micros;
use credtrail_pipeline::continuity::SUBJECTIVE_SITES;
use credtrail_pipeline::sink::Record;

/// The C enum of each syscall credtrail models: the match is exhaustive,
/// and the block below compares the numbers, so a syscall added to one side
/// and not the other, or renumbered, does not compile.
const fn c_syscall(s: Syscall) -> ct_syscall {
    match s {
        Syscall::Setuid => ct_syscall::CT_SYS_SETUID,
        Syscall::Setgid => ct_syscall::CT_SYS_SETGID,
        Syscall::Setfsuid => ct_syscall::CT_SYS_SETFSUID,
        Syscall::Setfsgid => ct_syscall::CT_SYS_SETFSGID,
        Syscall::Setreuid => ct_syscall::CT_SYS_SETREUID,
        Syscall::Setregid => ct_syscall::CT_SYS_SETREGID,
        Syscall::Setresuid => ct_syscall::CT_SYS_SETRESUID,
        Syscall::Setresgid => ct_syscall::CT_SYS_SETRESGID,
        Syscall::Setgroups => ct_syscall::CT_SYS_SETGROUPS,
        Syscall::Capset => ct_syscall::CT_SYS_CAPSET,
        Syscall::Execve => ct_syscall::CT_SYS_EXECVE,
        Syscall::Prctl => ct_syscall::CT_SYS_PRCTL,
        Syscall::Unshare => ct_syscall::CT_SYS_UNSHARE,
        Syscall::Setns => ct_syscall::CT_SYS_SETNS,
        Syscall::Clone => ct_syscall::CT_SYS_CLONE,
        Syscall::Clone3 => ct_syscall::CT_SYS_CLONE3,
        Syscall::IoUringRegister => ct_syscall::CT_SYS_IO_URING_REGISTER,
        Syscall::IoUringSubmit => ct_syscall::CT_SYS_IO_URING_SUBMIT,
        Syscall::Unexplained => ct_syscall::CT_SYS_UNEXPLAINED,
    }
}

const _: () = {
    let mut i = 0;
    while i < Syscall::ALL.len() {
        assert!(c_syscall(Syscall::ALL[i]).0 == Syscall::ALL[i] as u32);
        i += 1;
    }
    // The check names are numbered as the C enum.
    let checks = [
        ct_check::CT_CHECK_SWITCH,
        ct_check::CT_CHECK_SWEEP,
        ct_check::CT_CHECK_CALL,
        ct_check::CT_CHECK_EXEC,
        ct_check::CT_CHECK_FORK,
        ct_check::CT_CHECK_EXIT,
        ct_check::CT_CHECK_RETURN,
    ];
    assert!(checks.len() == CHECKS.len());
    let mut j = 0;
    while j < checks.len() {
        assert!(CHECKS[j].0 == checks[j].0 as i64);
        j += 1;
    }
    // The subjective checks run where the model's rule says no override
    // window can be open (detect.bpf.h's check_subjective callers).
    let sites = [
        ct_check::CT_CHECK_CALL,
        ct_check::CT_CHECK_EXEC,
        ct_check::CT_CHECK_RETURN,
    ];
    assert!(sites.len() == SUBJECTIVE_SITES.len());
    let mut k = 0;
    while k < sites.len() {
        assert!(SUBJECTIVE_SITES[k] == sites[k].0 as i64);
        k += 1;
    }
    // The kept map extents are the model's.
    assert!(std::mem::size_of::<[ct_extent; MAP_EXTENTS]>() == 12 * MAP_EXTENTS);
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error(
        "record is {0} bytes, expected {EVENT_HEAD_SIZE}..{EVENT_SIZE} (credential, with the groups it counts), {PROC_SHORT_SIZE}/{PROC_EVENT_SIZE} (lifecycle) or {USERNS_EVENT_SIZE} (user namespace)"
    )]
    Size(usize),
    #[error("unknown record type {0}")]
    Type(u32),
    #[error("unknown syscall id {0}")]
    Syscall(u32),
    #[error("unknown lifecycle kind {0}")]
    Kind(u32),
    #[error("unknown syscall entry (abi) {0}")]
    Abi(u32),
}

/// The type of a ring record: its first field.
pub fn record_type(bytes: &[u8]) -> Result<ct_record, DecodeError> {
    let head = bytes.get(..4).ok_or(DecodeError::Size(bytes.len()))?;
    Ok(ct_record(u32::from_ne_bytes(
        head.try_into().expect("four bytes"),
    )))
}

/// Decodes any record.
pub fn decode_record(bytes: &[u8], ctx: &DecodeContext) -> Result<Record, DecodeError> {
    match record_type(bytes)? {
        ct_record::CT_REC_EVENT => decode(bytes, ctx).map(Record::Cred),
        ct_record::CT_REC_PROC => decode_proc(bytes, ctx).map(Record::Proc),
        ct_record::CT_REC_USERNS => decode_userns(bytes, ctx).map(Record::Userns),
        other => Err(DecodeError::Type(other.0)),
    }
}

fn extents(map: &[ct_extent; MAP_EXTENTS], n: u32) -> Vec<Extent> {
    map[..(n as usize).min(MAP_EXTENTS)]
        .iter()
        .map(|e| Extent {
            first: e.first,
            lower_first: e.lower_first,
            count: e.count,
        })
        .collect()
}

/// Decodes a user namespace record.
fn decode_userns(bytes: &[u8], ctx: &DecodeContext) -> Result<UsernsRow, DecodeError> {
    let mut raw = ct_userns_event::default();
    plain::copy_from_bytes(&mut raw, bytes).map_err(|_| DecodeError::Size(bytes.len()))?;
    Ok(UsernsRow {
        time: ctx.realtime_offset_ns.saturating_add(raw.ktime_ns as i64),
        ktime_ns: raw.ktime_ns,
        seq: 0,
        node_name: ctx.node_name.clone(),
        userns: raw.inum,
        parent_userns: (raw.level > 0).then_some(raw.parent_inum),
        level: raw.level,
        owner_uid: raw.owner,
        owner_gid: raw.group,
        uid_map: extents(&raw.uid_map, raw.uid_extents),
        gid_map: extents(&raw.gid_map, raw.gid_extents),
        uid_extents: raw.uid_extents,
        gid_extents: raw.gid_extents,
    })
}

fn c_str(raw: &[i8]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn bytes_of(raw: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment.
    unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<u8>(), raw.len()) }
}

/// Decodes a lifecycle record (fork/exit records are the short prefix).
fn decode_proc(bytes: &[u8], ctx: &DecodeContext) -> Result<ProcEvent, DecodeError> {
    let raw = copy_proc(bytes)?;
    let kind = proc_kind(raw.kind)?;
    let proc_flags = proc_flag_names(raw.flags);
    let exec = kind == "exec";
    let args = if exec { exec_args(&raw) } else { Vec::new() };
    let fault = |f: &str| proc_flags.iter().any(|x| x == f);
    let cwd = if exec && !fault(lifecycle::flags::CWD_FAULT) {
        right_aligned_path(&raw.cwd, raw.cwd_off)
    } else {
        String::new()
    };
    let exe = (exec && !fault(lifecycle::flags::EXE_FAULT))
        .then(|| right_aligned_path(&raw.exe, raw.exe_off));
    let filename = if exec {
        exec_filename(&raw)
    } else {
        String::new()
    };
    let mut ev = ProcEvent {
        time: ctx.realtime_offset_ns.saturating_add(raw.ktime_ns as i64),
        ktime_ns: raw.ktime_ns,
        node_name: ctx.node_name.clone(),
        kind: kind.to_owned(),
        pid: raw.pid,
        tid: raw.tid,
        ppid: raw.ppid,
        old_tid: raw.old_tid,
        comm: c_str(&raw.comm),
        filename,
        args,
        cwd,
        exe,
        proc_flags,
        exit_code: raw.exit_code,
        auid: raw.auid,
        sessionid: raw.sessionid,
        cgroup_id: raw.cgroup_id,
        pid_ns: raw.pidns_inum,
        ns_pid: raw.ns_pid,
        cgroup: cgroup_path(&raw),
        ..ProcEvent::default()
    };
    ev.set_creds(creds(&raw.creds, &raw.groups[..kept(raw.creds.ngroups)]));
    Ok(ev)
}

/// A lifecycle record's bytes as the C struct, refused unless they are
/// exactly the short or the full record.
fn copy_proc(bytes: &[u8]) -> Result<ct_proc_event, DecodeError> {
    if bytes.len() != PROC_SHORT_SIZE && bytes.len() != PROC_EVENT_SIZE {
        return Err(DecodeError::Size(bytes.len()));
    }
    // Short (fork/exit) records lack the tail: decode them zero-extended.
    let mut raw = ct_proc_event::default();
    // SAFETY: ct_proc_event is plain data (credtrail-recorder-bpf).
    let dst = unsafe { plain::as_mut_bytes(&mut raw) };
    dst[..bytes.len()].copy_from_slice(bytes);
    Ok(raw)
}

fn proc_kind(kind: u32) -> Result<&'static str, DecodeError> {
    Ok(match ct_proc_kind(kind) {
        ct_proc_kind::CT_PROC_EXEC => "exec",
        ct_proc_kind::CT_PROC_FORK => "fork",
        ct_proc_kind::CT_PROC_EXIT => "exit",
        _ => return Err(DecodeError::Kind(kind)),
    })
}

/// The names of the lifecycle flags set in `flags`, in a fixed order.
fn proc_flag_names(flags: u32) -> Vec<String> {
    let has = |f: ct_proc_flag| flags & f.0 != 0;
    let mut proc_flags = Vec::new();
    for (f, name) in [
        (
            ct_proc_flag::CT_PF_FILENAME_TRUNC,
            lifecycle::flags::FILENAME_TRUNCATED,
        ),
        (
            ct_proc_flag::CT_PF_ARGS_TRUNC,
            lifecycle::flags::ARGS_TRUNCATED,
        ),
        (ct_proc_flag::CT_PF_ARGS_FAULT, lifecycle::flags::ARGS_FAULT),
        (
            ct_proc_flag::CT_PF_CWD_TRUNC,
            lifecycle::flags::CWD_TRUNCATED,
        ),
        (ct_proc_flag::CT_PF_CWD_FAULT, lifecycle::flags::CWD_FAULT),
        (
            ct_proc_flag::CT_PF_GROUPS_TRUNC,
            lifecycle::flags::GROUPS_TRUNCATED,
        ),
        (
            ct_proc_flag::CT_PF_EXE_TRUNC,
            lifecycle::flags::EXE_TRUNCATED,
        ),
        (ct_proc_flag::CT_PF_EXE_FAULT, lifecycle::flags::EXE_FAULT),
        (ct_proc_flag::CT_PF_FOLDED, lifecycle::flags::FOLDED),
    ] {
        if has(f) {
            proc_flags.push(name.to_owned());
        }
    }
    proc_flags
}

/// An exec's argv: the NUL-separated bytes kept, at most the buffer.
fn exec_args(raw: &ct_proc_event) -> Vec<String> {
    let n = (raw.args_len as usize).min(raw.args.len());
    let mut parts: Vec<String> = bytes_of(&raw.args[..n])
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    // argv ends with a NUL; a truncated one may not.
    if parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

/// An exec's filename: the bytes kept, at most the buffer.
fn exec_filename(raw: &ct_proc_event) -> String {
    let n = (raw.filename_len as usize).min(raw.filename.len());
    String::from_utf8_lossy(bytes_of(&raw.filename[..n])).into_owned()
}

/// The cgroup path's components, up to the first empty one.
fn cgroup_path(raw: &ct_proc_event) -> Vec<String> {
    raw.cgroup
        .iter()
        .map(|c| c_str(c))
        .take_while(|c| !c.is_empty())
        .collect()
}

/// A path the kernel wrote right to left, ending at `CWD_MAX`, from `off`
/// on (`off == CWD_MAX`: the root).
fn right_aligned_path(buf: &[i8], off: u32) -> String {
    let end = credtrail_recorder_bpf::CWD_MAX;
    let off = (off as usize).min(end);
    if off == end {
        "/".to_owned()
    } else {
        String::from_utf8_lossy(bytes_of(&buf[off..end])).into_owned()
    }
}

/// What the decoder needs beyond the record itself.
#[derive(Debug, Clone)]
pub struct DecodeContext {
    pub node_name: String,
    /// CLOCK_REALTIME − CLOCK_BOOTTIME, ns.
    pub realtime_offset_ns: i64,
}

/// Entries of a group list the kernel keeps for a true count of `n`.
fn kept(n: u32) -> usize {
    (n as usize).min(MAX_GROUPS)
}

/// The kernel's credential set as a [`Creds`]. Both sides are named whole
/// (the C struct destructured, `Creds` built field by field): a member
/// added to `struct ct_creds` or to the credential columns
/// (`with_cred_columns`) without the other does not compile.
fn creds(c: &ct_creds, groups: &[u32]) -> Creds {
    let ct_creds {
        uid,
        euid,
        suid,
        fsuid,
        gid,
        egid,
        sgid,
        fsgid,
        cap_effective,
        cap_permitted,
        cap_inheritable,
        cap_bounding,
        cap_ambient,
        securebits,
        // The true count; `groups` holds the entries kept.
        ngroups: _,
        userns_inum,
        userns_level,
        userns_owner,
        no_new_privs,
    } = *c;
    Creds {
        uid,
        euid,
        suid,
        fsuid,
        gid,
        egid,
        sgid,
        fsgid,
        cap_effective,
        cap_permitted,
        cap_inheritable,
        cap_bounding,
        cap_ambient,
        securebits,
        groups: groups.to_vec(),
        userns: Some(userns_inum),
        userns_level: Some(userns_level),
        userns_owner: Some(userns_owner),
        no_new_privs: Some(no_new_privs != 0),
    }
}

/// Decodes one credential event record: its head and the groups it counts
/// (a record reserved whole may be longer).
pub fn decode(bytes: &[u8], ctx: &DecodeContext) -> Result<Event, DecodeError> {
    let len = bytes.len();
    if !(EVENT_HEAD_SIZE..=EVENT_SIZE).contains(&len) {
        return Err(DecodeError::Size(len));
    }
    let mut raw = ct_event::default();
    // SAFETY: ct_event is plain data (credtrail-recorder-bpf), any bytes are valid.
    let dst = unsafe { plain::as_mut_bytes(&mut raw) };
    dst[..len].copy_from_slice(bytes);
    let counts = [raw.req_kept, raw.old_kept, raw.new_kept].map(|n| n as usize);
    if counts.iter().any(|&n| n > MAX_GROUPS)
        || EVENT_HEAD_SIZE + 4 * counts.iter().sum::<usize>() > len
    {
        return Err(DecodeError::Size(len));
    }
    decode_raw(&raw, ctx)
}

/// Decodes an already-copied record.
fn decode_raw(raw: &ct_event, ctx: &DecodeContext) -> Result<Event, DecodeError> {
    let (req, rest) = raw.groups.split_at(raw.req_kept as usize);
    let (old, rest) = rest.split_at(raw.old_kept as usize);
    let new = if raw.flags & ct_flag::CT_FLAG_NEW_GROUPS_SAME.0 != 0 {
        old
    } else {
        &rest[..raw.new_kept as usize]
    };
    let sys = Syscall::from_abi(raw.syscall).ok_or(DecodeError::Syscall(raw.syscall))?;
    let has = |f: ct_flag| raw.flags & f.0 != 0;
    let subjective = sys == Syscall::Unexplained && has(ct_flag::CT_FLAG_SUBJECTIVE);
    let mut event_flags = Vec::new();
    for (f, name) in [
        (ct_flag::CT_FLAG_ARGS_FAULT, flags::ARGS_FAULT),
        (
            ct_flag::CT_FLAG_REQ_GROUPS_TRUNC,
            flags::REQ_GROUPS_TRUNCATED,
        ),
        (
            ct_flag::CT_FLAG_OLD_GROUPS_TRUNC,
            flags::OLD_GROUPS_TRUNCATED,
        ),
        (
            ct_flag::CT_FLAG_NEW_GROUPS_TRUNC,
            flags::NEW_GROUPS_TRUNCATED,
        ),
        (ct_flag::CT_FLAG_UID16, flags::UID16),
        (ct_flag::CT_FLAG_SUBJECTIVE, flags::SUBJECTIVE),
    ] {
        if has(f) {
            event_flags.push(name.to_owned());
        }
    }
    let mut ev = Event {
        time: ctx.realtime_offset_ns.saturating_add(raw.ktime_ns as i64),
        ktime_ns: raw.ktime_ns,
        node_name: ctx.node_name.clone(),
        pid: raw.pid,
        tid: raw.tid,
        ppid: raw.ppid,
        comm: c_str(&raw.comm),
        syscall: sys.name().to_owned(),
        abi: match ct_abi(raw.abi) {
            ct_abi::CT_ABI_X64 => abi::X64,
            ct_abi::CT_ABI_IA32 => abi::IA32,
            _ => return Err(DecodeError::Abi(raw.abi)),
        }
        .to_owned(),
        option: if subjective {
            Some(subjective_option(raw.args[0]))
        } else {
            option_name(sys, raw.args)
        },
        arg0: raw.args[0],
        arg1: raw.args[1],
        arg2: raw.args[2],
        groups: (sys == Syscall::Setgroups).then(|| req.to_vec()),
        ret: raw.ret,
        auid: raw.auid,
        sessionid: raw.sessionid,
        cgroup_id: raw.cgroup_id,
        pid_ns: raw.pidns_inum,
        ns_pid: raw.ns_pid,
        event_flags,
        // args[1] of an unexplained change: boot-clock ns of the last check
        // that found the old credentials.
        // A subjective override has no such window.
        last_seen: (sys == Syscall::Unexplained && !subjective)
            .then(|| micros(ctx.realtime_offset_ns.saturating_add(raw.args[1]))),
        ..Event::default()
    };
    ev.set_old_creds(creds(&raw.old_creds, old));
    ev.set_new_creds(creds(&raw.new_creds, new));
    ev.changed = ev.compute_changed();
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DecodeContext {
        DecodeContext {
            node_name: "node-a".into(),
            realtime_offset_ns: 1_700_000_000_000_000_000,
        }
    }

    fn as_bytes(raw: &ct_event) -> Vec<u8> {
        // SAFETY: ct_event is plain data without padding (size asserted in
        // credtrail-recorder-bpf), so viewing it as bytes is sound.
        unsafe { plain::as_bytes(raw) }.to_vec()
    }

    fn sample() -> ct_event {
        let mut raw = ct_event {
            r#type: ct_record::CT_REC_EVENT.0,
            ktime_ns: 5_000_000_123,
            pid: 4242,
            tid: 4243,
            ppid: 1,
            syscall: Syscall::Setresuid as u32,
            args: [1001, 1002, 1003],
            ret: 0,
            auid: 1000,
            sessionid: 7,
            cgroup_id: 99,
            pidns_inum: 4026531836,
            ns_pid: 12,
            ..Default::default()
        };
        raw.comm[..2].copy_from_slice(&[b's' as i8, b'u' as i8]);
        raw.old_creds.ngroups = 2;
        raw.old_kept = 2;
        raw.groups[..2].copy_from_slice(&[10, 20]);
        raw.old_creds.cap_effective = 0x1ff_ffff_ffff;
        raw.new_creds = raw.old_creds;
        raw.flags = ct_flag::CT_FLAG_NEW_GROUPS_SAME.0;
        raw.new_creds.uid = 1001;
        raw.new_creds.euid = 1002;
        raw.new_creds.suid = 1003;
        raw.new_creds.fsuid = 1002;
        raw.new_creds.cap_effective = 0;
        raw
    }

    /// The record as the kernel sends it: the head and the groups it counts.
    fn wire(raw: &ct_event) -> Vec<u8> {
        let n = (raw.req_kept + raw.old_kept + raw.new_kept) as usize;
        as_bytes(raw)[..EVENT_HEAD_SIZE + 4 * n].to_vec()
    }

    #[test]
    fn decodes_every_field() {
        let ev = decode(&wire(&sample()), &ctx()).unwrap();
        assert_eq!(decode(&as_bytes(&sample()), &ctx()), Ok(ev.clone()));
        assert_eq!(ev.time, 1_700_000_005_000_000_123);
        assert_eq!(ev.ktime_ns, 5_000_000_123);
        assert_eq!((ev.pid, ev.tid, ev.ppid), (4242, 4243, 1));
        assert_eq!(ev.comm, "su");
        assert_eq!(ev.syscall, "setresuid");
        assert_eq!((ev.arg0, ev.arg1, ev.arg2), (1001, 1002, 1003));
        assert_eq!(ev.groups, None);
        assert_eq!(ev.old_groups, vec![10, 20]);
        assert_eq!(ev.new_groups, vec![10, 20]);
        assert_eq!(ev.old_cap_effective, 0x1ff_ffff_ffff);
        assert_eq!(
            (ev.new_uid, ev.new_euid, ev.new_suid, ev.new_fsuid),
            (1001, 1002, 1003, 1002)
        );
        assert_eq!(ev.new_cap_effective, 0);
        assert_eq!((ev.auid, ev.sessionid, ev.cgroup_id), (1000, 7, 99));
        assert_eq!((ev.pid_ns, ev.ns_pid), (4026531836, 12));
        assert!(ev.changed);
        assert!(ev.event_flags.is_empty());
        assert_eq!(ev.node_name, "node-a");
    }

    #[test]
    fn a_subjective_record_is_marked_and_has_no_window() {
        let mut raw = sample();
        raw.syscall = Syscall::Unexplained as u32;
        raw.flags |= ct_flag::CT_FLAG_SUBJECTIVE.0;
        // Returning from setuid (105), noticed at 5 s boot time.
        raw.args = [ct_check::CT_CHECK_RETURN.0 as i64, 5_000_000_123, 105];
        let ev = decode(&wire(&raw), &ctx()).unwrap();
        assert!(ev.is_subjective());
        assert_eq!(ev.event_flags, vec!["subjective".to_owned()]);
        assert_eq!(ev.option.as_deref(), Some("subjective at return to user"));
        assert_eq!(ev.last_seen, None);
        assert_eq!((ev.old_uid, ev.new_uid), (0, 1001));
        assert!(ev.changed);
        // The same check without the mark is an objective change.
        raw.flags &= !ct_flag::CT_FLAG_SUBJECTIVE.0;
        let ev = decode(&wire(&raw), &ctx()).unwrap();
        assert_eq!(ev.option.as_deref(), Some("return to user"));
        assert!(ev.last_seen.is_some());
    }

    #[test]
    fn unchanged_credentials_are_not_changed() {
        let mut raw = sample();
        raw.new_creds = raw.old_creds;
        raw.ret = -1;
        let ev = decode(&as_bytes(&raw), &ctx()).unwrap();
        assert!(!ev.changed);
        assert_eq!(ev.outcome().to_string(), "EPERM");
    }

    #[test]
    fn setgroups_keeps_requested_list_and_flags_truncation() {
        let mut raw = sample();
        raw.syscall = Syscall::Setgroups as u32;
        raw.args = [40, 0, 0];
        raw.req_ngroups = 40;
        raw.req_kept = MAX_GROUPS as u32;
        for (i, g) in raw.groups[..MAX_GROUPS].iter_mut().enumerate() {
            *g = 100 + i as u32;
        }
        // Before after the requested ones, and a different list after.
        raw.groups[MAX_GROUPS..MAX_GROUPS + 2].copy_from_slice(&[10, 20]);
        raw.groups[MAX_GROUPS + 2] = 100;
        raw.new_kept = 1;
        raw.new_creds.ngroups = 1;
        raw.flags = ct_flag::CT_FLAG_REQ_GROUPS_TRUNC.0;
        let ev = decode(&wire(&raw), &ctx()).unwrap();
        assert_eq!(
            (ev.old_groups.clone(), ev.new_groups.clone()),
            (vec![10, 20], vec![100])
        );
        let groups = ev.groups.unwrap();
        assert_eq!(groups.len(), MAX_GROUPS);
        assert_eq!(groups[0], 100);
        assert_eq!(ev.event_flags, vec!["groups_truncated".to_owned()]);
    }

    #[test]
    fn argv_bytes_kept_match_the_proc_snapshot() {
        assert_eq!(
            ct_proc_event::default().args.len(),
            credtrail_capture::model::process::ARGS_MAX
        );
    }

    #[test]
    fn rejects_wrong_sizes_and_unknown_syscalls() {
        let bytes = wire(&sample());
        assert_eq!(decode(&bytes[..100], &ctx()), Err(DecodeError::Size(100)));
        assert_eq!(decode(&[], &ctx()), Err(DecodeError::Size(0)));
        // Counting more groups than it carries.
        let n = bytes.len() - 4;
        assert_eq!(decode(&bytes[..n], &ctx()), Err(DecodeError::Size(n)));
        let mut raw = sample();
        raw.old_kept = 33;
        assert!(decode(&as_bytes(&raw), &ctx()).is_err());
        assert_eq!(
            decode_record(&[9, 0, 0, 0], &ctx()).map(|_| ()),
            Err(DecodeError::Type(9))
        );
        let mut raw = sample();
        raw.syscall = 77;
        assert_eq!(
            decode(&as_bytes(&raw), &ctx()),
            Err(DecodeError::Syscall(77))
        );
    }
}
