//! What only a replay knows, collected in one pass over each capture: the
//! process tree around each privilege raise (its ancestry as the process
//! cache held it at that moment, with the credentials each process had
//! then and what its exec changed, and the children of the raising
//! process), and `unexplained`'s findings (its own collector, fed the same
//! records).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use credtrail_capture::host::rfc3339_ns;
use credtrail_capture::model::{ContainerRow, Creds, Event, ProcEvent, Syscall, UsernsRow};
use credtrail_capture::storage::micros;
use credtrail_cli::progress::Progress;
use credtrail_pipeline::continuity::describe;
use credtrail_pipeline::process::{Image, ProcInfo};
use credtrail_pipeline::sink::{Record, Sink};

use super::data::{MAX_ROWS, TreeNode};
use crate::filters::Filters;
use crate::tree::{ancestry, short_id};
use crate::unexplained::{Collector, Found};
use crate::{CaptureInfo, QueryError, answered, invalid};

/// Children listed per tree; the rest are counted.
pub const MAX_CHILDREN: usize = 20;
/// Characters of a process's arguments shown in a tree: ancestors recur in
/// every tree, and a long command line (an environment passed as JSON) would
/// make the page large; `credtrail-query CAPTURES tree EXEC_ID` gives them all.
pub const MAX_ARGUMENTS: usize = 240;

/// A process image whose tree is wanted, at its first raise.
#[derive(Debug, Clone)]
pub struct Target {
    pub capture: String,
    pub exec_id: String,
    pub syscall: String,
    /// The raise's time (the findings row's: ns, cut to whole µs as stored).
    pub time_ns: i64,
}

/// What the replay found for one target.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub raise: Option<String>,
    pub ancestry: Vec<TreeNode>,
    pub children: Vec<TreeNode>,
    pub children_left_out: usize,
    pub ancestors_left_out: u64,
}

/// Replays every answered capture once: a snapshot per target (empty when
/// the replay never met it) and the unexplained changes.
pub fn collect(
    caps: &[CaptureInfo],
    targets: &[Target],
    f: &Filters,
) -> Result<(Vec<Snapshot>, Found), QueryError> {
    let mut snaps = vec![Snapshot::default(); targets.len()];
    let mut found = Found::default();
    let total: u64 = answered(caps)
        .map(|c| c.manifest.rows_in("events") + c.manifest.rows_in("lifecycle"))
        .sum();
    let progress = Progress::bar("replaying for process trees", total, false);
    for c in answered(caps) {
        let cap = c.capture();
        let mut inputs = credtrail_pipeline::playback::open(&cap).map_err(invalid)?;
        let mut pods = HashMap::new();
        for (id, row) in &inputs.containers {
            pods.insert(id.clone(), pod_name(row));
        }
        let mut enricher = credtrail_pipeline::playback::enricher(&cap, &mut inputs);
        let mut sink = TreeSink {
            unexplained: Collector::bounded(&c.manifest.node_name, f, MAX_ROWS),
            offset_ns: c.manifest.realtime_offset_ns,
            targets: targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.capture == c.name)
                .map(|(i, t)| (t.exec_id.clone(), i))
                .collect(),
            wanted: targets,
            snaps: &mut snaps,
            creds: HashMap::new(),
            exec_changes: HashMap::new(),
            pods,
            children: HashMap::new(),
        };
        for r in &inputs.procs {
            if let Some(p) = enricher.process(r.pid) {
                let creds = Creds {
                    uid: r.uid,
                    euid: r.euid,
                    suid: r.suid,
                    fsuid: r.fsuid,
                    gid: r.gid,
                    egid: r.egid,
                    sgid: r.sgid,
                    fsgid: r.fsgid,
                    cap_effective: r.cap_effective,
                    cap_permitted: r.cap_permitted,
                    cap_inheritable: r.cap_inheritable,
                    cap_bounding: r.cap_bounding,
                    cap_ambient: r.cap_ambient,
                    groups: r.groups.clone(),
                    ..Creds::default()
                };
                sink.creds.insert(r.pid, (p.exec_id.clone(), creds));
            }
        }
        for rec in inputs.records {
            let rec = rec.map_err(invalid)?;
            progress.inc(1);
            // What the cache is told, for after it has been told.
            let proc = match &rec {
                Record::Proc(p) => Some((p.kind.clone(), p.pid, p.creds())),
                _ => None,
            };
            enricher.apply(rec, &mut sink).map_err(invalid)?;
            if let Some((kind, pid, creds)) = proc {
                sink.process(&kind, pid, creds, enricher.process(pid));
            }
        }
        sink.finish();
        found.add(sink.unexplained, &c.name)?;
    }
    Ok((snaps, found))
}

fn pod_name(row: &ContainerRow) -> Option<String> {
    match (&row.pod_namespace, &row.pod_name) {
        (Some(ns), Some(name)) => Some(format!("{ns}/{name}")),
        _ => None,
    }
}

struct TreeSink<'a> {
    unexplained: Collector,
    offset_ns: i64,
    /// This capture's targets, by exec id.
    targets: HashMap<String, usize>,
    wanted: &'a [Target],
    snaps: &'a mut [Snapshot],
    /// Each live process's last known credentials, with its image.
    creds: HashMap<u32, (String, Creds)>,
    /// What each live process's exec changed, with its image.
    exec_changes: HashMap<u32, (String, String)>,
    /// Pod of each container id.
    pods: HashMap<String, Option<String>>,
    /// Per target: its children by pid (a fork, then that child's exec).
    children: HashMap<usize, BTreeMap<u32, TreeNode>>,
}

impl TreeSink<'_> {
    fn node(&self, p: &Image, creds: Option<&Creds>) -> TreeNode {
        // What is known of the pid, if it is still this image.
        fn own<'m, V>(m: &'m HashMap<u32, (String, V)>, p: &Image) -> Option<&'m V> {
            m.get(&p.pid)
                .filter(|(id, _)| *id == p.exec_id)
                .map(|(_, v)| v)
        }
        let creds = creds.or_else(|| own(&self.creds, p));
        TreeNode {
            pid: p.pid,
            exec_id: p.exec_id.clone(),
            binary: p.binary.clone(),
            arguments: cut(&p.arguments, MAX_ARGUMENTS),
            cwd: p.cwd.clone(),
            start: rfc3339_ns((p.ktime_ns as i64).saturating_add(self.offset_ns)),
            container: p.container.as_ref().map(|(_, id)| short_id(id, 12)),
            pod: p
                .container
                .as_ref()
                .and_then(|(_, id)| self.pods.get(id).cloned().flatten()),
            creds: Some(creds.map_or_else(
                || {
                    format!(
                        "euid {} when it started (no later record: it may have exited)",
                        p.uid
                    )
                },
                summary,
            )),
            exec_change: own(&self.exec_changes, p).cloned(),
        }
    }

    /// After the cache applied a fork, exec or exit of `pid`.
    fn process(&mut self, kind: &str, pid: u32, creds: Creds, info: Option<&Arc<ProcInfo>>) {
        if kind == "exit" {
            self.creds.remove(&pid);
            self.exec_changes.remove(&pid);
            return;
        }
        let Some(info) = info else { return };
        let parent = info.parent().map(|p| p.exec_id.as_str());
        if let Some(&t) = parent.and_then(|id| self.targets.get(id)) {
            let node = self.node(info, Some(&creds));
            let children = self.children.entry(t).or_default();
            if children.contains_key(&pid) || children.len() < MAX_CHILDREN {
                children.insert(pid, node);
            } else {
                self.snaps[t].children_left_out += 1;
            }
        }
        self.creds.insert(pid, (info.exec_id.clone(), creds));
    }

    fn finish(&mut self) {
        for (t, children) in self.children.drain() {
            self.snaps[t].children = children.into_values().collect();
        }
    }
}

impl Sink for TreeSink<'_> {
    fn lifecycle(&mut self, p: &ProcEvent) -> anyhow::Result<()> {
        self.unexplained.lifecycle(p)
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.event_of(e, None)
    }

    fn event_of(&mut self, e: &Event, process: Option<&ProcInfo>) -> anyhow::Result<()> {
        self.unexplained.event_of(e, process)?;
        let Some(p) = process else { return Ok(()) };
        if let Some(&t) = self.targets.get(&p.exec_id) {
            let want = &self.wanted[t];
            if self.snaps[t].raise.is_none()
                && e.syscall == want.syscall
                && micros(e.time) >= want.time_ns
            {
                let old = e.old_creds();
                let (chain, left_out) = ancestry(p);
                let mut chain: Vec<TreeNode> = chain
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.node(a, (i == 0).then_some(&old)))
                    .collect();
                chain.reverse();
                let snap = &mut self.snaps[t];
                snap.raise = Some(credtrail_pipeline::print::compact(e));
                snap.ancestry = chain;
                snap.ancestors_left_out = left_out;
            }
        }
        let new = e.new_creds();
        if e.syscall_kind() == Some(Syscall::Execve) {
            let change = describe(&e.old_creds(), &new);
            if !change.is_empty() {
                self.exec_changes.insert(e.pid, (p.exec_id.clone(), change));
            }
        }
        self.creds.insert(e.pid, (p.exec_id.clone(), new));
        Ok(())
    }

    fn container(&mut self, c: &ContainerRow) -> anyhow::Result<()> {
        self.pods.insert(c.container_id.clone(), pod_name(c));
        self.unexplained.container(c)
    }

    fn user_namespace(&mut self, u: &UsernsRow) -> anyhow::Result<()> {
        self.unexplained.user_namespace(u)
    }
}

/// `s` cut to `max` characters, with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Credentials in one line: ids, then the capability sets that are set.
pub fn summary(c: &Creds) -> String {
    let mut s = format!(
        "uid {} euid {} suid {} fsuid {} · gid {} egid {} sgid {} fsgid {}",
        c.uid, c.euid, c.suid, c.fsuid, c.gid, c.egid, c.sgid, c.fsgid
    );
    for (name, v) in [
        ("capeff", c.cap_effective),
        ("capprm", c.cap_permitted),
        ("capinh", c.cap_inheritable),
        ("capamb", c.cap_ambient),
    ] {
        if v != 0 {
            s.push_str(&format!(" · {name} {v:#x}"));
        }
    }
    if !c.groups.is_empty() {
        s.push_str(&format!(" · groups {:?}", c.groups));
    }
    s
}
