//! Continuity: unexplained credential changes found offline, a thread whose credentials,
//! as one record shows them, are not those the previous record of the same
//! thread left it with, and no recorded call in between explains it.
//!
//! The recorder finds such changes live (`unexplained` events); this check
//! runs over any capture, including ones recorded before the live checks
//! existed, from what every record carries: credentials before and after
//! each event, and at each fork, exec and exit.

use std::collections::HashMap;

use credtrail_capture::model::creds::Creds;
use credtrail_capture::model::lifecycle::ProcEvent;
use credtrail_capture::model::{Event, Syscall};

/// One change no record explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The record that showed the changed credentials (wall clock, ns).
    pub time: i64,
    /// The record before it that showed the old ones.
    pub last_seen: i64,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// What showed it: `exec`, `exit`, or the event (`before setuid`).
    pub noticed_by: String,
    pub before: Creds,
    pub after: Creds,
}

/// The credentials a thread was last seen with, and when.
#[derive(Debug, Clone)]
struct Seen {
    creds: Creds,
    time: i64,
    /// The thread's process: its threads are forgotten when it exits or
    /// execs, so a reused thread id starts afresh.
    pid: u32,
}

/// An exec that changed the credentials, until the thread's next record
/// says whether an `execve` event explains it.
#[derive(Debug, Clone)]
struct PendingExec {
    before: Seen,
    exec: ProcEvent,
}

/// Feeds on a capture's records in their order (`seq`), one capture at a
/// time; returns each finding as it is made.
#[derive(Debug, Default)]
pub struct Checker {
    threads: HashMap<u32, Seen>,
    /// The thread ids seen of each process.
    tids: HashMap<u32, Vec<u32>>,
    execs: HashMap<u32, PendingExec>,
}

/// Whether two credential sets differ. no_new_privs is left out: it is
/// not a credential, and seccomp's TSYNC sets it on every thread of a
/// process with no call on those threads. Equal sets (nearly every
/// comparison) are told apart without a copy.
fn differ(a: &Creds, b: &Creds) -> bool {
    a != b
        && (a.no_new_privs == b.no_new_privs
            || *a
                != Creds {
                    no_new_privs: a.no_new_privs,
                    ..b.clone()
                })
}

/// Where a task with subjective credentials (`task->cred`) other than its
/// objective ones (`real_cred`) has no legitimate reason for them: the
/// kernel opens override windows (`override_creds` .. `revert_creds`:
/// faccessat, io_uring personalities, overlayfs, NFS) only inside a
/// syscall or kernel work, and closes them before the syscall returns. At
/// these checks (`enum ct_check`) no window is open: a recorded call's
/// exit (3), entering exec (4), returning to user space (7). A switch-out
/// or a sweep can find a task asleep inside a window (faccessat on a slow
/// file system): there the difference proves nothing. The recorder's
/// kernel side checks at exactly these (decode.rs asserts the numbers).
pub const SUBJECTIVE_SITES: [i64; 3] = [3, 4, 7];

/// What a subjective `unexplained` row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subjective {
    /// Credentials no call gave the task: an override outside any window.
    Override,
    /// Seen where a legitimate override may be open (not one of
    /// [`SUBJECTIVE_SITES`]): not evidence.
    Inconclusive,
    /// Another struct cred with the same credentials: nothing gained.
    Same,
}

/// The decision on a task found running with subjective credentials
/// `subjective` while its objective ones are `objective`, at check `site`.
pub fn judge_subjective(site: i64, objective: &Creds, subjective: &Creds) -> Subjective {
    if !SUBJECTIVE_SITES.contains(&site) {
        Subjective::Inconclusive
    } else if differ(objective, subjective) {
        Subjective::Override
    } else {
        Subjective::Same
    }
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A credential event (an `unexplained` one included: it explains
    /// itself).
    pub fn event(&mut self, ev: &Event) -> Vec<Finding> {
        // The task's objective credentials did not change: its history
        // goes on from the record before (judge_subjective says what the
        // row itself shows).
        if ev.syscall_kind() == Some(Syscall::Unexplained) && ev.is_subjective() {
            return Vec::new();
        }
        let mut found = self.settle_exec(ev.tid, Some(ev));
        let old = ev.old_creds();
        // An execve event's before-credentials were checked against the
        // exec's pending entry; the thread shows the exec's result.
        let is_exec = ev.syscall_kind() == Some(Syscall::Execve);
        if !is_exec
            && let Some(seen) = self.threads.get(&ev.tid)
            && differ(&seen.creds, &old)
        {
            found.push(Finding {
                time: ev.time,
                last_seen: seen.time,
                pid: ev.pid,
                tid: ev.tid,
                comm: ev.comm.clone(),
                noticed_by: format!("before {}", ev.syscall),
                before: seen.creds.clone(),
                after: old.clone(),
            });
        }
        let new = ev.new_creds();
        match ev.syscall_kind() {
            // The caller keeps its credentials; the child starts with `new`.
            Some(Syscall::Clone | Syscall::Clone3) => {
                self.see(ev.pid, ev.tid, old, ev.time);
                if let Ok(child) = u32::try_from(ev.ret) {
                    self.see(child, child, new, ev.time);
                }
            }
            // The request ran under the personality; the task is unchanged.
            Some(Syscall::IoUringSubmit) => self.see(ev.pid, ev.tid, old, ev.time),
            _ => self.see(ev.pid, ev.tid, new, ev.time),
        }
        found
    }

    /// A fork, exec or exit record.
    pub fn lifecycle(&mut self, p: &ProcEvent) -> Vec<Finding> {
        let creds = p.creds();
        match p.kind.as_str() {
            "fork" => {
                self.see(p.pid, p.tid, creds, p.time);
                Vec::new()
            }
            "exec" => {
                // The exec'ing thread may have been another one; it is the
                // leader now.
                let found = self.settle_exec(p.old_tid, None);
                if let Some(before) = self.threads.remove(&p.old_tid)
                    && differ(&before.creds, &creds)
                {
                    // An execve event right after may explain it.
                    self.execs.insert(
                        p.tid,
                        PendingExec {
                            before,
                            exec: p.clone(),
                        },
                    );
                }
                // The other threads are gone.
                self.forget(p.pid);
                self.see(p.pid, p.tid, creds, p.time);
                found
            }
            "exit" => {
                let mut found = self.settle_exec(p.tid, None);
                if let Some(seen) = self.threads.remove(&p.tid)
                    && differ(&seen.creds, &creds)
                {
                    found.push(Finding {
                        time: p.time,
                        last_seen: seen.time,
                        pid: p.pid,
                        tid: p.tid,
                        comm: p.comm.clone(),
                        noticed_by: "exit".into(),
                        before: seen.creds,
                        after: creds,
                    });
                }
                self.forget(p.pid);
                found
            }
            _ => Vec::new(),
        }
    }

    /// Execs whose credential change no `execve` event explained.
    pub fn finish(&mut self) -> Vec<Finding> {
        let tids: Vec<u32> = self.execs.keys().copied().collect();
        tids.into_iter()
            .flat_map(|t| self.settle_exec(t, None))
            .collect()
    }

    fn see(&mut self, pid: u32, tid: u32, creds: Creds, time: i64) {
        let before = self.threads.insert(tid, Seen { creds, time, pid });
        if before.is_none_or(|b| b.pid != pid) {
            self.tids.entry(pid).or_default().push(tid);
        }
    }

    fn forget(&mut self, pid: u32) {
        for tid in self.tids.remove(&pid).unwrap_or_default() {
            if self.threads.get(&tid).is_some_and(|s| s.pid == pid) {
                self.threads.remove(&tid);
            }
        }
    }

    /// The thread's pending exec, settled by its next record: explained by
    /// an `execve` event whose before-credentials are the ones the thread
    /// had (any other difference is reported), unexplained otherwise.
    fn settle_exec(&mut self, tid: u32, next: Option<&Event>) -> Vec<Finding> {
        let Some(pending) = self.execs.remove(&tid) else {
            return Vec::new();
        };
        let PendingExec { before, exec } = pending;
        let finding = |after: Creds| Finding {
            time: exec.time,
            last_seen: before.time,
            pid: exec.pid,
            tid: exec.tid,
            comm: exec.comm.clone(),
            noticed_by: "exec".into(),
            before: before.creds.clone(),
            after,
        };
        match next {
            Some(ev) if ev.syscall_kind() == Some(Syscall::Execve) => {
                let old = ev.old_creds();
                if differ(&before.creds, &old) {
                    vec![finding(old)]
                } else {
                    Vec::new()
                }
            }
            _ => vec![finding(exec.creds())],
        }
    }
}

/// What changed, as a person reads it: `euid 1000→0 capeff 0x0→0x1ffffffffff`.
pub fn describe(before: &Creds, after: &Creds) -> String {
    let mut out = Vec::new();
    for (name, a, b) in [
        ("uid", before.uid, after.uid),
        ("euid", before.euid, after.euid),
        ("suid", before.suid, after.suid),
        ("fsuid", before.fsuid, after.fsuid),
        ("gid", before.gid, after.gid),
        ("egid", before.egid, after.egid),
        ("sgid", before.sgid, after.sgid),
        ("fsgid", before.fsgid, after.fsgid),
        ("securebits", before.securebits, after.securebits),
    ] {
        if a != b {
            out.push(format!("{name} {a}→{b}"));
        }
    }
    for (name, a, b) in [
        ("capeff", before.cap_effective, after.cap_effective),
        ("capprm", before.cap_permitted, after.cap_permitted),
        ("capinh", before.cap_inheritable, after.cap_inheritable),
        ("capbnd", before.cap_bounding, after.cap_bounding),
        ("capamb", before.cap_ambient, after.cap_ambient),
    ] {
        if a != b {
            out.push(format!("{name} {a:#x}→{b:#x}"));
        }
    }
    if before.groups != after.groups {
        out.push(format!("groups {:?}→{:?}", before.groups, after.groups));
    }
    if before.userns != after.userns {
        let ns = |v: Option<u32>| v.map_or_else(|| "?".into(), |v| v.to_string());
        out.push(format!("userns {}→{}", ns(before.userns), ns(after.userns)));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tid: u32, syscall: Syscall, old_euid: u32, new_euid: u32) -> Event {
        let mut ev = Event {
            pid: tid,
            tid,
            syscall: syscall.name().into(),
            ..Event::default()
        };
        ev.set_old_creds(Creds {
            euid: old_euid,
            ..Creds::default()
        });
        ev.set_new_creds(Creds {
            euid: new_euid,
            ..Creds::default()
        });
        ev
    }

    fn proc(kind: &str, tid: u32, euid: u32) -> ProcEvent {
        let mut p = ProcEvent {
            kind: kind.into(),
            pid: tid,
            tid,
            old_tid: tid,
            ..ProcEvent::default()
        };
        p.set_creds(Creds {
            euid,
            ..Creds::default()
        });
        p
    }

    #[test]
    fn an_exit_with_credentials_no_event_gave_is_reported() {
        let mut c = Checker::new();
        assert!(c.lifecycle(&proc("fork", 7, 1000)).is_empty());
        assert!(c.event(&event(7, Syscall::Setuid, 1000, 1001)).is_empty());
        let f = c.lifecycle(&proc("exit", 7, 0));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].before.euid, f[0].after.euid), (1001, 0));
        assert_eq!(f[0].noticed_by, "exit");
    }

    /// A subjective row as the recorder writes it: before the objective
    /// set, after the subjective one.
    fn subjective(tid: u32, site: i64, objective_euid: u32, subjective_euid: u32) -> Event {
        let mut ev = event(tid, Syscall::Unexplained, objective_euid, subjective_euid);
        ev.arg0 = site;
        ev.event_flags = vec![credtrail_capture::model::event::flags::SUBJECTIVE.into()];
        ev
    }

    #[test]
    fn a_subjective_row_leaves_the_objective_history_alone() {
        let mut c = Checker::new();
        assert!(c.event(&event(7, Syscall::Setuid, 0, 1000)).is_empty());
        // Running as root while real_cred says 1000: the next call starts
        // from 1000, which is no objective change.
        assert!(c.event(&subjective(7, 7, 1000, 0)).is_empty());
        assert!(c.event(&event(7, Syscall::Setgid, 1000, 1000)).is_empty());
        assert!(c.lifecycle(&proc("exit", 7, 1000)).is_empty());
        assert!(c.finish().is_empty());
    }

    #[test]
    fn subjective_credentials_are_judged_by_where_they_were_seen() {
        let user = Creds {
            uid: 1000,
            euid: 1000,
            ..Creds::default()
        };
        let root = Creds::default();
        // Call exit, exec, return to user: no override window can be open.
        for site in [3, 4, 7] {
            assert_eq!(judge_subjective(site, &user, &root), Subjective::Override);
            assert_eq!(judge_subjective(site, &user, &user), Subjective::Same);
        }
        // Switch-out, sweep, fork, exit, unknown: a window may be open.
        for site in [1, 2, 5, 6, 0, 99] {
            assert_eq!(
                judge_subjective(site, &user, &root),
                Subjective::Inconclusive
            );
        }
        // no_new_privs is a task flag, not a credential.
        let nnp = Creds {
            no_new_privs: Some(true),
            ..user.clone()
        };
        assert_eq!(judge_subjective(7, &user, &nnp), Subjective::Same);
    }

    #[test]
    fn a_consistent_history_reports_nothing() {
        let mut c = Checker::new();
        let mut all = c.lifecycle(&proc("fork", 7, 1000));
        all.extend(c.event(&event(7, Syscall::Setuid, 1000, 0)));
        // exec of a setuid binary: the exec row, then its execve event.
        all.extend(c.lifecycle(&proc("exec", 7, 5)));
        all.extend(c.event(&event(7, Syscall::Execve, 0, 5)));
        all.extend(c.lifecycle(&proc("exit", 7, 5)));
        all.extend(c.finish());
        assert_eq!(all, vec![]);
    }

    #[test]
    fn an_exec_change_with_no_execve_event_is_reported() {
        let mut c = Checker::new();
        c.lifecycle(&proc("fork", 7, 1000));
        c.lifecycle(&proc("exec", 7, 0));
        let f = c.lifecycle(&proc("exit", 7, 0));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].noticed_by, "exec");
    }

    #[test]
    fn a_reused_thread_id_starts_afresh() {
        let mut c = Checker::new();
        let mut thread = event(8, Syscall::Setuid, 1000, 1001);
        thread.pid = 7;
        c.event(&thread);
        c.lifecycle(&proc("exit", 7, 1001));
        // Thread 8 of process 7 is gone; a new process 8 starts as root.
        assert_eq!(c.event(&event(8, Syscall::Setuid, 0, 0)), vec![]);
    }

    #[test]
    fn an_event_starting_from_other_credentials_is_reported() {
        let mut c = Checker::new();
        c.event(&event(7, Syscall::Setresuid, 1000, 1000));
        let f = c.event(&event(7, Syscall::Setgid, 0, 0));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].noticed_by, "before setgid");
    }
}
