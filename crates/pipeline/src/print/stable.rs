//! `--stable`: the same bytes for the same behaviour on any machine and in
//! any run, for golden files of one command's recording. What changes from
//! run to run is normalized (docs/ci.md lists every rule):
//!
//! - Order: rows grouped by process (processes in order of their start,
//!   then of their first row), then by thread (threads of a process in order of their first
//!   row), each thread's rows in the kernel's order. Threads or processes
//!   running at the same time are in the kernel's order only within
//!   themselves: across them it is a race, and grouping takes it away.
//! - Process and thread ids renumbered 1, 2, 3… in the printed order (the
//!   child pid a clone returns too); ids inside a pid namespace (container
//!   pids) likewise, apart. Namespace inode numbers renumbered, the initial
//!   namespaces' kept.
//! - Left out: times (wall and boot clock, the window of an unexplained
//!   change, process and container start), the arrival sequence, the
//!   cgroup id, the login uid and session (they name who ran the test).
//! - Exec ids `exec-1`…, container ids `container-1`…, the node `node`;
//!   directories under /tmp, /var/tmp and $TMPDIR become `<tmp>`; the
//!   recorder's own command line and directory, as the first process's
//!   parent, are left out (its binary is `credtrail-record`).

use std::collections::HashMap;
use std::io::{self, Write};

use super::{PrintFormat, compact, write_json};
use credtrail_capture::model::{Event, Syscall};

/// Rows `--stable` orders at once: it holds them all, as sorting needs.
pub const MAX_STABLE_EVENTS: usize = 1_000_000;

/// The initial user and pid namespaces' inode numbers, the same on every
/// Linux (PROC_USER_INIT_INO, PROC_PID_INIT_INO): kept as they are.
const INIT_NAMESPACES: [u32; 2] = [0xEFFF_FFFD, 0xEFFF_FFFC];

#[derive(Debug, thiserror::Error)]
pub enum StableError {
    #[error(
        "--stable holds every row to order them, and this capture has more than {MAX_STABLE_EVENTS}: it is for one command's recording (`credtrail-record -- COMMAND`); narrow it with --policy"
    )]
    TooMany,
    #[error("--stable prints json or compact, not {0:?}")]
    Format(PrintFormat),
}

/// Rows gathered, printed normalized at [`Stable::finish`].
#[derive(Debug, Default)]
pub struct Stable {
    events: Vec<Event>,
}

/// Renumbering by first appearance.
#[derive(Default)]
struct Numbers<K> {
    seen: HashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq> Numbers<K> {
    fn of(&mut self, k: K) -> u32 {
        let next = self.seen.len() as u32 + 1;
        *self.seen.entry(k).or_insert(next)
    }
}

impl Stable {
    pub fn check(format: PrintFormat) -> Result<(), StableError> {
        match format {
            PrintFormat::Json | PrintFormat::Compact => Ok(()),
            other => Err(StableError::Format(other)),
        }
    }

    pub fn push(&mut self, ev: &Event) -> Result<(), StableError> {
        if self.events.len() >= MAX_STABLE_EVENTS {
            return Err(StableError::TooMany);
        }
        self.events.push(ev.clone());
        Ok(())
    }

    /// Writes every row, ordered and normalized, in `format`.
    pub fn finish(mut self, out: &mut impl Write, format: PrintFormat) -> io::Result<()> {
        // Grouping keys from the kernel's order. Processes in order of
        // their start (siblings a parent forked one after another keep
        // their order even when their first rows race), then of their
        // first row.
        self.events.sort_by_key(|e| e.seq);
        let mut process_rank = Numbers::default();
        let mut thread_rank = Numbers::default();
        let keys: Vec<((i64, u32), u32, u64)> = self
            .events
            .iter()
            .map(|e| {
                (
                    (e.start_time.unwrap_or(i64::MAX), process_rank.of(e.pid)),
                    thread_rank.of((e.pid, e.tid)),
                    e.seq,
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..self.events.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        let mut n = Normalizer::new();
        for i in order {
            let mut ev = std::mem::take(&mut self.events[i]);
            n.normalize(&mut ev);
            match format {
                PrintFormat::Compact => {
                    // The time of day is the line's first field.
                    let line = compact(&ev);
                    let rest = line.split_once(' ').map_or(line.as_str(), |(_, r)| r);
                    writeln!(out, "{rest}")?;
                }
                _ => {
                    let mut buf = Vec::new();
                    write_json(&mut buf, &ev)?;
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&buf).map_err(io::Error::other)?;
                    if let Some(o) = v.as_object_mut() {
                        // In place: the columns keep their order.
                        o.retain(|k, _| !LEFT_OUT.contains(&k.as_str()));
                    }
                    buf.clear();
                    serde_json::to_writer(&mut buf, &v).map_err(io::Error::other)?;
                    buf.push(b'\n');
                    // Written here, so a closed reader is a broken pipe.
                    out.write_all(&buf)?;
                }
            }
        }
        Ok(())
    }
}

/// JSON columns `--stable` leaves out.
const LEFT_OUT: [&str; 13] = [
    "time",
    "ktime_ns",
    "seq",
    "last_seen",
    "last_time",
    "start_time",
    "parent_start_time",
    "container_start_time",
    "cgroup_id",
    "auid",
    "sessionid",
    "parent_auid",
    "pod_uid",
];

#[derive(Default)]
struct Normalizer {
    ids: Numbers<u32>,
    ns_ids: Numbers<u32>,
    namespaces: Numbers<u32>,
    execs: Numbers<String>,
    containers: Numbers<String>,
    tmp: Vec<String>,
}

impl Normalizer {
    /// The temporary directories of this machine, longest first.
    fn new() -> Self {
        let mut tmp = ["/tmp/", "/var/tmp/"].map(str::to_owned).to_vec();
        if let Ok(t) = std::env::var("TMPDIR")
            && t.starts_with('/')
        {
            tmp.push(format!("{}/", t.trim_end_matches('/')));
        }
        tmp.sort_by_key(|t| std::cmp::Reverse(t.len()));
        Normalizer {
            tmp,
            ..Normalizer::default()
        }
    }

    fn normalize(&mut self, ev: &mut Event) {
        ev.pid = self.ids.of(ev.pid);
        ev.tid = self.ids.of(ev.tid);
        if ev.ppid != 0 {
            ev.ppid = self.ids.of(ev.ppid);
        }
        ev.parent_pid = ev.parent_pid.map(|p| self.ids.of(p));
        // A clone's result is the child's pid.
        if matches!(ev.syscall_kind(), Some(Syscall::Clone | Syscall::Clone3)) && ev.ret > 0 {
            ev.ret = i64::from(self.ids.of(ev.ret as u32));
        }
        for p in [
            &mut ev.ns_pid,
            ev.container_pid.get_or_insert(0),
            ev.parent_container_pid.get_or_insert(0),
        ] {
            if *p != 0 {
                *p = self.ns_ids.of(*p);
            }
        }
        ev.container_pid = ev.container_pid.filter(|p| *p != 0);
        ev.parent_container_pid = ev.parent_container_pid.filter(|p| *p != 0);
        ev.pid_ns = self.namespace(ev.pid_ns);
        for ns in [&mut ev.old_userns, &mut ev.new_userns] {
            *ns = ns.map(|n| self.namespace(n));
        }
        for id in [
            &mut ev.exec_id,
            &mut ev.parent_exec_id,
            &mut ev.parent_parent_exec_id,
        ] {
            if let Some(x) = id.take() {
                *id = Some(format!("exec-{}", self.execs.of(x)));
            }
        }
        if let Some(c) = ev.container_id.take() {
            ev.container_id = Some(format!("container-{}", self.containers.of(c)));
        }
        ev.node_name = "node".into();
        // The compact line prints these.
        (ev.time, ev.last_seen, ev.last_time) = (0, None, None);
        // The recorder, parent of the command's first process: its own
        // command line and directory are not the command's behaviour.
        if ev
            .parent_binary
            .as_deref()
            .is_some_and(|b| b.rsplit('/').next() == Some("credtrail-record"))
        {
            ev.parent_binary = Some("credtrail-record".into());
            ev.parent_arguments = None;
            ev.parent_cwd = None;
        }
        for s in [
            &mut ev.binary,
            &mut ev.exe,
            &mut ev.cwd,
            &mut ev.arguments,
            &mut ev.parent_binary,
            &mut ev.parent_cwd,
            &mut ev.parent_arguments,
        ]
        .into_iter()
        .flatten()
        {
            *s = self.untemp(s);
        }
    }

    fn namespace(&mut self, inum: u32) -> u32 {
        if inum == 0 || INIT_NAMESPACES.contains(&inum) {
            inum
        } else {
            self.namespaces.of(inum)
        }
    }

    /// `/tmp/x.Ab12/bin/helper` as `<tmp>/bin/helper` wherever a path
    /// starts (the string's start, or after a space, `=` or `:`).
    fn untemp(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        'scan: while !rest.is_empty() {
            let at_path = out.is_empty() || out.ends_with([' ', '=', ':']);
            if at_path {
                // Longest first: /var/tmp/ before /tmp/.
                for t in &self.tmp {
                    if let Some(after) = rest.strip_prefix(t.as_str()) {
                        let end = after.find(['/', ' ']).unwrap_or(after.len());
                        out.push_str("<tmp>");
                        rest = &after[end..];
                        continue 'scan;
                    }
                }
            }
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, pid: u32, tid: u32, syscall: &str) -> Event {
        Event {
            seq,
            time: 1_700_000_000_000_000_000 + seq as i64,
            pid,
            tid,
            syscall: syscall.into(),
            comm: "t".into(),
            node_name: "host-a".into(),
            binary: Some(format!("/tmp/run.{pid}/bin/t")),
            ..Event::default()
        }
    }

    fn render(events: &[Event], format: PrintFormat) -> String {
        let mut s = Stable::default();
        for e in events {
            s.push(e).unwrap();
        }
        let mut out = Vec::new();
        s.finish(&mut out, format).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn racing_threads_print_the_same_whatever_their_order() {
        // Two runs of one process whose two threads race: other pids,
        // times, temp dir and interleaving.
        let a = [
            ev(1, 100, 100, "setuid"),
            ev(2, 100, 101, "setgid"),
            ev(3, 100, 100, "setgroups"),
        ];
        let b = [
            ev(7, 900, 900, "setuid"),
            ev(8, 900, 900, "setgroups"),
            ev(9, 900, 901, "setgid"),
        ];
        for format in [PrintFormat::Compact, PrintFormat::Json] {
            assert_eq!(render(&a, format), render(&b, format));
        }
        let text = render(&a, PrintFormat::Compact);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("setuid     pid 1 (t) <tmp>/bin/t"),
            "{text}"
        );
        let n = Normalizer {
            tmp: vec!["/var/tmp/".into(), "/tmp/".into()],
            ..Normalizer::default()
        };
        assert_eq!(
            n.untemp("--out /var/tmp/a.1/c -x=/tmp/b/d /usr/tmp/e"),
            "--out <tmp>/c -x=<tmp>/d /usr/tmp/e"
        );
        assert!(lines[1].starts_with("setgroups  pid 1 (t)"), "{text}");
        assert!(lines[2].starts_with("setgid     pid 1/2 (t)"), "{text}");
        let json = render(&a, PrintFormat::Json);
        assert!(!json.contains("\"time\"") && json.contains("\"node_name\":\"node\""));
    }

    #[test]
    fn only_json_and_compact_and_a_bounded_number_of_rows() {
        assert!(Stable::check(PrintFormat::Tetragon).is_err());
        let mut s = Stable {
            events: vec![Event::default(); MAX_STABLE_EVENTS],
        };
        assert!(matches!(
            s.push(&Event::default()),
            Err(StableError::TooMany)
        ));
    }
}
