//! `expect FILE`: what a recorded command may and may not do to its
//! credentials, checked against the capture (docs/ci.md). The file is
//! YAML a reviewer can read without knowing credtrail:
//!
//! ```yaml
//! expect:
//!   - name: never gains CAP_SYS_ADMIN
//!     never: { gains_capability: CAP_SYS_ADMIN }
//!   - name: every setgroups succeeds
//!     never: { syscall: setgroups, result: failed }
//!   - name: ends as the service user with no capabilities
//!     at_exit: { uid: 1000, gid: 1000, groups: [], capabilities: none }
//! ```
//!
//! `never`: no row may match all of its conditions. `at_exit`: the
//! credentials of the command's first process (or of the last process
//! running `binary`) when it exited.

use std::io::Write;
use std::path::Path;

use credtrail_capture::model::creds::{Creds, cap_bit};
use credtrail_capture::model::lifecycle::ProcEvent;
use credtrail_capture::model::{Event, Syscall};
use credtrail_capture::{EVENTS, LIFECYCLE};
use credtrail_cli::term::safe;
use credtrail_pipeline::print::compact;
use serde::Deserialize;

use crate::{CaptureInfo, QueryError};

/// Largest expectations file read.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Rows a capture may hold for `expect`: one command's recording.
const MAX_ROWS: u64 = 5_000_000;
/// Rows printed under a broken rule (the rest counted).
const SHOWN: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    expect: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: String,
    #[serde(default)]
    never: Option<Never>,
    #[serde(default)]
    at_exit: Option<AtExit>,
}

/// One name or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Never {
    /// `setuid`, `setgroups`, `execve`, `unexplained`…
    syscall: Option<OneOrMany>,
    /// `ok` or `failed`.
    result: Option<String>,
    /// The process's binary: a full path, or a file name.
    binary: Option<String>,
    /// A capability (or `any`) in the effective, permitted or ambient set
    /// after the row that was in none of them before.
    gains_capability: Option<OneOrMany>,
    /// Ids after the row that differ from before: `{ euid: 0 }`.
    becomes: Option<Ids>,
    /// A supplementary group the task is still in after the row.
    in_group: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ids {
    uid: Option<u32>,
    euid: Option<u32>,
    suid: Option<u32>,
    fsuid: Option<u32>,
    gid: Option<u32>,
    egid: Option<u32>,
    sgid: Option<u32>,
    fsgid: Option<u32>,
}

impl Ids {
    fn pairs(&self, c: &Creds) -> [(&'static str, Option<u32>, u32); 8] {
        [
            ("uid", self.uid, c.uid),
            ("euid", self.euid, c.euid),
            ("suid", self.suid, c.suid),
            ("fsuid", self.fsuid, c.fsuid),
            ("gid", self.gid, c.gid),
            ("egid", self.egid, c.egid),
            ("sgid", self.sgid, c.sgid),
            ("fsgid", self.fsgid, c.fsgid),
        ]
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AtExit {
    /// Which process: the last one running this binary (path or file
    /// name). Default: the command's first process.
    binary: Option<String>,
    uid: Option<u32>,
    euid: Option<u32>,
    suid: Option<u32>,
    fsuid: Option<u32>,
    gid: Option<u32>,
    egid: Option<u32>,
    sgid: Option<u32>,
    fsgid: Option<u32>,
    groups: Option<Vec<u32>>,
    /// `none`, or the exact effective set (`[CAP_NET_BIND_SERVICE]`).
    capabilities: Option<OneOrMany>,
}

/// A `never` rule's conditions, its names resolved (empty or None: any).
#[derive(Debug, Default)]
struct NeverRule {
    syscalls: Vec<String>,
    failed: Option<bool>,
    binary: Option<String>,
    gains: Option<u64>,
    becomes: Option<Ids>,
    in_group: Option<u32>,
}

/// A checked rule, its names resolved.
#[derive(Debug)]
enum Check {
    Never(NeverRule),
    AtExit {
        binary: Option<String>,
        ids: Ids,
        groups: Option<Vec<u32>>,
        /// The effective set expected (permitted and ambient hold no more).
        caps: Option<u64>,
    },
}

fn bad(file: &str, rule: &str, why: String) -> QueryError {
    QueryError::Invalid(format!("{file}: expectation {rule:?}: {why}"))
}

fn caps_of(file: &str, rule: &str, names: &OneOrMany, none_ok: bool) -> Result<u64, QueryError> {
    let mut mask = 0u64;
    for n in names.list() {
        match n {
            "any" if !none_ok => return Ok(u64::MAX),
            "none" if none_ok => return Ok(0),
            _ => {
                let bit = cap_bit(n).ok_or_else(|| {
                    bad(
                        file,
                        rule,
                        format!("unknown capability {n:?} (CAP_SYS_ADMIN, …)"),
                    )
                })?;
                mask |= 1 << bit;
            }
        }
    }
    Ok(mask)
}

fn compile(file: &str, text: &str) -> Result<Vec<(String, Check)>, QueryError> {
    let doc = parse(file, text)?;
    if doc.expect.is_empty() {
        return Err(QueryError::Invalid(format!(
            "{file}: no expectations under `expect:`"
        )));
    }
    // The first bad rule, in file order, is the one reported.
    doc.expect
        .into_iter()
        .map(|r| {
            let check = check_of(file, &r.name, r.never, r.at_exit)?;
            Ok((r.name, check))
        })
        .collect()
}

/// The YAML, its error as `FILE:LINE:COLUMN: first line of the reason`.
fn parse(file: &str, text: &str) -> Result<File, QueryError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map_or_else(String::new, |l| format!(":{}:{}", l.line(), l.column()));
        QueryError::Invalid(format!(
            "{file}{at}: {}",
            e.to_string()
                .lines()
                .next()
                .unwrap_or("not an expectations file")
        ))
    })
}

/// One rule's check: exactly one of `never` and `at_exit`.
fn check_of(
    file: &str,
    rule: &str,
    never: Option<Never>,
    at_exit: Option<AtExit>,
) -> Result<Check, QueryError> {
    match (never, at_exit) {
        (Some(n), None) => Ok(Check::Never(never_rule(file, rule, n)?)),
        (None, Some(i)) => at_exit_check(file, rule, i),
        _ => Err(bad(
            file,
            rule,
            "give exactly one of `never:` and `at_exit:`".into(),
        )),
    }
}

/// A `never` rule's conditions, checked and their names resolved.
fn never_rule(file: &str, rule: &str, n: Never) -> Result<NeverRule, QueryError> {
    let syscalls = syscalls_of(file, rule, n.syscall.as_ref())?;
    let failed = result_of(file, rule, n.result.as_deref())?;
    if failed == Some(true)
        && let Some(s) = syscalls
            .iter()
            .find(|s| matches!(s.as_str(), "execve" | "unexplained"))
    {
        return Err(bad(
            file,
            rule,
            format!("{s} rows are changes that happened: none has a failed result"),
        ));
    }
    check_never_conditions(file, rule, &n, &syscalls, failed)?;
    let gains = n
        .gains_capability
        .as_ref()
        .map(|c| caps_of(file, rule, c, false))
        .transpose()?;
    Ok(NeverRule {
        syscalls,
        failed,
        binary: n.binary,
        gains,
        becomes: n.becomes,
        in_group: n.in_group,
    })
}

/// The syscalls named, each one credtrail records.
fn syscalls_of(
    file: &str,
    rule: &str,
    names: Option<&OneOrMany>,
) -> Result<Vec<String>, QueryError> {
    let syscalls: Vec<String> = names
        .map(|s| s.list().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(s) = syscalls.iter().find(|s| Syscall::from_name(s).is_none()) {
        return Err(bad(file, rule, format!("unknown syscall {s:?}")));
    }
    Ok(syscalls)
}

/// `result:` as whether the row failed (None: either).
fn result_of(file: &str, rule: &str, result: Option<&str>) -> Result<Option<bool>, QueryError> {
    match result {
        None => Ok(None),
        Some("ok") => Ok(Some(false)),
        Some("failed") => Ok(Some(true)),
        Some(o) => Err(bad(
            file,
            rule,
            format!("result is ok or failed, not {o:?}"),
        )),
    }
}

/// Every condition given names something, and at least one is given.
fn check_never_conditions(
    file: &str,
    rule: &str,
    n: &Never,
    syscalls: &[String],
    failed: Option<bool>,
) -> Result<(), QueryError> {
    if n.gains_capability
        .as_ref()
        .is_some_and(|c| c.list().is_empty())
    {
        return Err(bad(file, rule, "gains_capability lists nothing".into()));
    }
    if n.becomes.as_ref().is_some_and(|b| {
        b.pairs(&Creds::default())
            .iter()
            .all(|(_, w, _)| w.is_none())
    }) {
        return Err(bad(file, rule, "becomes names no id".into()));
    }
    if syscalls.is_empty()
        && failed.is_none()
        && n.binary.is_none()
        && n.gains_capability.is_none()
        && n.becomes.is_none()
        && n.in_group.is_none()
    {
        return Err(bad(
            file,
            rule,
            "`never:` has no condition, so every row would break it".into(),
        ));
    }
    Ok(())
}

/// An `at_exit` rule's check, once it checks something.
fn at_exit_check(file: &str, rule: &str, i: AtExit) -> Result<Check, QueryError> {
    if [
        i.uid, i.euid, i.suid, i.fsuid, i.gid, i.egid, i.sgid, i.fsgid,
    ]
    .iter()
    .all(Option::is_none)
        && i.groups.is_none()
        && i.capabilities.is_none()
    {
        return Err(bad(file, rule, "`at_exit:` checks nothing".into()));
    }
    Ok(Check::AtExit {
        binary: i.binary,
        ids: Ids {
            uid: i.uid,
            euid: i.euid,
            suid: i.suid,
            fsuid: i.fsuid,
            gid: i.gid,
            egid: i.egid,
            sgid: i.sgid,
            fsgid: i.fsgid,
        },
        groups: i.groups,
        caps: i
            .capabilities
            .as_ref()
            .map(|c| caps_of(file, rule, c, true))
            .transpose()?,
    })
}

fn binary_is(binary: Option<&str>, want: &str) -> bool {
    binary.is_some_and(|b| b == want || b.rsplit('/').next() == Some(want))
}

/// Rows that break a `never` rule.
fn never_rows<'e>(events: &'e [Event], rule: &NeverRule) -> Vec<&'e Event> {
    events
        .iter()
        .filter(|e| rule.in_group.is_none_or(|g| e.new_groups.contains(&g)))
        .filter(|e| rule.syscalls.is_empty() || rule.syscalls.contains(&e.syscall))
        .filter(|e| rule.failed.is_none_or(|f| f == (e.ret < 0)))
        .filter(|e| {
            rule.binary
                .as_deref()
                .is_none_or(|b| binary_is(e.binary.as_deref(), b))
        })
        .filter(|e| {
            rule.gains.is_none_or(|mask| {
                let held = |c: &Creds| c.cap_effective | c.cap_permitted | c.cap_ambient;
                held(&e.new_creds()) & !held(&e.old_creds()) & mask != 0
            })
        })
        .filter(|e| {
            // Every id named has that value after the row, and the row
            // changed at least one of them.
            rule.becomes.as_ref().is_none_or(|ids| {
                let (old, new) = (e.old_creds(), e.new_creds());
                let pairs: Vec<_> = ids.pairs(&new).into_iter().zip(ids.pairs(&old)).collect();
                pairs
                    .iter()
                    .all(|((_, want, now), _)| want.is_none_or(|w| *now == w))
                    && pairs
                        .iter()
                        .any(|((_, want, now), (_, _, was))| want.is_some() && now != was)
            })
        })
        .collect()
}

/// What differs between the expected exit credentials and `p`'s.
fn exit_differences(
    p: &ProcEvent,
    ids: &Ids,
    groups: Option<&[u32]>,
    caps: Option<u64>,
) -> Vec<String> {
    let c = p.creds();
    let mut out: Vec<String> = ids
        .pairs(&c)
        .iter()
        .filter_map(|(name, want, now)| {
            want.filter(|w| w != now)
                .map(|w| format!("{name} {now}, expected {w}"))
        })
        .collect();
    if let Some(g) = groups
        && c.groups != g
    {
        out.push(format!("groups {:?}, expected {g:?}", c.groups));
    }
    // The effective set is the one expected; permitted and ambient hold
    // nothing beyond it.
    if let Some(mask) = caps {
        for (name, set, expected) in [
            ("effective", c.cap_effective, mask),
            ("permitted", c.cap_permitted, c.cap_permitted & mask),
            ("ambient", c.cap_ambient, c.cap_ambient & mask),
        ] {
            if set != expected {
                out.push(format!(
                    "{name} capabilities {} (against what was expected)",
                    credtrail_capture::model::creds::cap_diff(expected, set)
                ));
            }
        }
    }
    out
}

/// Checks `file` against each capture; writes a line per expectation (and
/// the rows that broke it). Fails with one line naming how many broke.
pub fn expect(caps: &[CaptureInfo], file: &Path, out: &mut dyn Write) -> Result<(), QueryError> {
    let name = file.display().to_string();
    let text = read_text(file, &name)?;
    let checks = compile(&name, &text)?;
    let mut broken = 0;
    for info in caps {
        broken += check_capture(info, &checks, out)?;
    }
    if broken > 0 {
        return Err(QueryError::Invalid(format!(
            "{broken} of {} expectation(s) broken ({name}); the rows that broke each are listed above",
            checks.len() * caps.len()
        )));
    }
    Ok(())
}

/// The expectations file's text; `name` is how messages name it.
fn read_text(file: &Path, name: &str) -> Result<String, QueryError> {
    let text = credtrail_capture::fs::read_bounded(file, MAX_FILE_BYTES)
        .map_err(|e| QueryError::Invalid(format!("cannot read {name}: {e}")))?;
    String::from_utf8(text)
        .map_err(|_| QueryError::Invalid(format!("{name}: not UTF-8 text (YAML)")))
}

/// Checks one capture, writing its lines; returns how many expectations
/// it broke.
fn check_capture(
    info: &CaptureInfo,
    checks: &[(String, Check)],
    out: &mut dyn Write,
) -> Result<usize, QueryError> {
    let rows = info.manifest.rows_in(EVENTS) + info.manifest.rows_in(LIFECYCLE);
    if rows > MAX_ROWS {
        return Err(QueryError::Invalid(format!(
            "{}: {rows} rows; expect checks one command's recording (`credtrail-record -- COMMAND`), at most {MAX_ROWS}",
            info.name
        )));
    }
    let cap = info.capture();
    let events = cap.events()?;
    let life = cap.lifecycle()?;
    let mut broken = 0;
    // A row that was never recorded cannot break a rule: an incomplete
    // recording fails on its own.
    let c = &info.manifest.counters;
    if c.lost() > 0 || c.scope_full > 0 {
        broken += 1;
        writeln!(
            out,
            "FAIL  the recording is complete ({} events lost, {} processes of the command's tree not followed)",
            c.lost(),
            c.scope_full
        )
        .map_err(io_err)?;
    }
    for (rule, check) in checks {
        let failures = failures(check, &events, &life);
        if !failures.is_empty() {
            broken += 1;
        }
        report(out, rule, &failures)?;
    }
    Ok(broken)
}

/// What broke `check` in a capture's events and lifecycle (none: it held).
fn failures(check: &Check, events: &[Event], life: &[ProcEvent]) -> Vec<String> {
    match check {
        Check::Never(rule) => never_rows(events, rule).into_iter().map(compact).collect(),
        Check::AtExit {
            binary,
            ids,
            groups,
            caps,
        } => at_exit_failures(life, binary.as_deref(), ids, groups.as_deref(), *caps),
    }
}

/// What differs at the exit of `binary` (None: the command's first
/// process) from the credentials expected.
fn at_exit_failures(
    life: &[ProcEvent],
    binary: Option<&str>,
    ids: &Ids,
    groups: Option<&[u32]>,
    caps: Option<u64>,
) -> Vec<String> {
    // The command's first process: the first exec'd one.
    let pid = match binary {
        Some(b) => life
            .iter()
            .rev()
            .find(|p| p.kind == "exec" && binary_is(Some(&p.filename), b))
            .map(|p| p.pid),
        None => life.iter().find(|p| p.kind == "exec").map(|p| p.pid),
    };
    match pid.and_then(|pid| life.iter().rev().find(|p| p.kind == "exit" && p.pid == pid)) {
        None => vec![format!(
            "no exit of {} in the capture",
            binary.unwrap_or("the command's first process")
        )],
        Some(p) => exit_differences(p, ids, groups, caps),
    }
}

/// Writes a rule's line: ok, or FAIL with the first [`SHOWN`] failures.
fn report(out: &mut dyn Write, rule: &str, failures: &[String]) -> Result<(), QueryError> {
    if failures.is_empty() {
        writeln!(out, "ok    {}", safe(rule)).map_err(io_err)?;
        return Ok(());
    }
    writeln!(out, "FAIL  {} ({})", safe(rule), failures.len()).map_err(io_err)?;
    for f in failures.iter().take(SHOWN) {
        writeln!(out, "      {}", safe(f)).map_err(io_err)?;
    }
    if failures.len() > SHOWN {
        writeln!(out, "      … and {} more", failures.len() - SHOWN).map_err(io_err)?;
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> QueryError {
    QueryError::Invalid(format!("cannot write the result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(syscall: &str, ret: i64, old_euid: u32, new_euid: u32, new_caps: u64) -> Event {
        let mut e = Event {
            syscall: syscall.into(),
            ret,
            binary: Some("/usr/sbin/daemon".into()),
            ..Event::default()
        };
        e.set_old_creds(Creds {
            euid: old_euid,
            ..Creds::default()
        });
        e.set_new_creds(Creds {
            euid: new_euid,
            cap_effective: new_caps,
            ..Creds::default()
        });
        e
    }

    #[test]
    fn never_rules_match_every_condition_given() {
        let events = [
            ev("setuid", 0, 1000, 0, 0),
            ev("setgroups", -1, 0, 0, 0),
            ev("capset", 0, 0, 0, 1 << 21),
        ];
        let rows = |syscalls: &[&str], failed, gains, becomes: Option<&Ids>| {
            let rule = NeverRule {
                syscalls: syscalls.iter().map(|s| (*s).to_owned()).collect(),
                failed,
                gains,
                becomes: becomes.copied(),
                ..NeverRule::default()
            };
            never_rows(&events, &rule).len()
        };
        assert_eq!(rows(&["setgroups"], Some(true), None, None), 1);
        assert_eq!(rows(&["setgroups"], Some(false), None, None), 0);
        assert_eq!(rows(&[], None, Some(1 << 21), None), 1);
        assert_eq!(rows(&[], None, Some(1 << 12), None), 0);
        let root = Ids {
            euid: Some(0),
            ..Ids::default()
        };
        // Only the row that made euid 0 from something else.
        assert_eq!(rows(&[], None, None, Some(&root)), 1);
        // Every id named as given after the row, one of them changed by it
        // (uid was 0 already).
        let all_root = Ids {
            uid: Some(0),
            euid: Some(0),
            ..Ids::default()
        };
        assert_eq!(rows(&["setuid"], None, None, Some(&all_root)), 1);
        let by = |binary: &str| NeverRule {
            binary: Some(binary.into()),
            ..NeverRule::default()
        };
        assert_eq!(never_rows(&events, &by("daemon")).len(), 3);
        assert_eq!(never_rows(&events, &by("other")).len(), 0);
        let mut in_root_group = events[0].clone();
        in_root_group.new_groups = vec![0];
        let in_group = NeverRule {
            in_group: Some(0),
            ..NeverRule::default()
        };
        assert_eq!(never_rows(&[in_root_group], &in_group).len(), 1);
        assert_eq!(never_rows(&events, &in_group).len(), 0);
    }

    #[test]
    fn bad_files_name_the_rule_and_the_fix() {
        let e = |t: &str| match compile("x.yaml", t) {
            Err(QueryError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(
            e("expect:\n- name: a\n  never: { syscall: setfoo }\n")
                .contains("unknown syscall \"setfoo\"")
        );
        assert!(
            e("expect:\n- name: a\n  never: { gains_capability: CAP_NOPE }\n")
                .contains("unknown capability")
        );
        assert!(e("expect:\n- name: a\n").contains("exactly one of"));
        assert!(e("expect:\n- name: a\n  sometimes: {}\n").starts_with("x.yaml:"));
        assert!(e("expect: []\n").contains("no expectations"));
        assert!(e("expect:\n- name: a\n  never: {}\n").contains("no condition"));
        assert!(e("expect:\n- name: a\n  never: { becomes: {} }\n").contains("names no id"));
        assert!(e("expect:\n- name: a\n  at_exit: {}\n").contains("checks nothing"));
        assert!(
            e("expect:\n- name: a\n  never: { syscall: execve, result: failed }\n")
                .contains("none has a failed result")
        );
        assert!(
            compile(
                "x.yaml",
                "expect:\n- name: a\n  at_exit: { uid: 1000, capabilities: none }\n"
            )
            .is_ok()
        );
    }
}
