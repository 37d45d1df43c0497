//! Enrichment: who made each credential change, as it was at that moment.
//!
//! A process cache, seeded from the /proc snapshot and kept current by
//! lifecycle records in kernel order, gives every event its process, parent
//! and container. Pure and deterministic: the live recorder and replay run
//! this same code, fed the same records in the same order; pod metadata
//! comes through a [`PodSource`] (the live node's, in the recorder, or the
//! rows a capture stored).

pub mod containers;

use crate::process::{Descent, Image, Lineage, ProcInfo};
use crate::sink::{Record, Sink};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;

use credtrail_capture::model::container::ContainerRow;
use credtrail_capture::model::event::Event;
use credtrail_capture::model::lifecycle::{self, ProcEvent};
use credtrail_capture::model::micros;
use credtrail_capture::model::process::ProcessRow;
use credtrail_capture::model::userns::UsernsRow;

/// Tetragon's process id: base64 of `node:ktime:pid`.
pub fn exec_id(node: &str, ktime_ns: u64, pid: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{node}:{ktime_ns}:{pid}"))
}

/// Tetragon's process flags, in its fixed order.
const FLAG_ORDER: [&str; 10] = [
    "execve",
    "procFS",
    "truncArgs",
    "miss",
    "errorFilename",
    "errorArgs",
    "nocwd",
    "rootcwd",
    "errorCWD",
    "clone",
];

fn flags_string(set: &[&str]) -> String {
    FLAG_ORDER
        .iter()
        .filter(|f| set.contains(f))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where container metadata comes from: the live node, or a capture's
/// stored rows (replay), so both produce the same row.
pub trait PodSource {
    fn container_row(&mut self, runtime: &str, id: &str, first_seen_ktime_ns: u64) -> ContainerRow;
}

/// Replay: the rows the recorder stored.
#[derive(Debug, Default)]
pub struct StoredPods(pub BTreeMap<String, ContainerRow>);

impl PodSource for StoredPods {
    fn container_row(&mut self, runtime: &str, id: &str, ktime: u64) -> ContainerRow {
        self.0
            .get(id)
            .cloned()
            .unwrap_or_else(|| ContainerRow::new(ktime, runtime, id, None))
    }
}

/// The process cache and container table.
pub struct Enricher<P> {
    node: String,
    realtime_offset_ns: i64,
    procs: HashMap<u32, Arc<ProcInfo>>,
    containers: BTreeMap<String, ContainerRow>,
    new_containers: Vec<ContainerRow>,
    /// User namespaces by inode, with the latest maps the kernel sent.
    user_namespaces: HashMap<u32, UsernsRow>,
    pods: P,
    /// The policy's lineage marks (none: no policy follows children).
    lineage: Option<Lineage>,
}

impl<P: PodSource> Enricher<P> {
    pub fn new(node: &str, realtime_offset_ns: i64, pods: P) -> Self {
        Enricher {
            node: node.to_owned(),
            realtime_offset_ns,
            procs: HashMap::new(),
            containers: BTreeMap::new(),
            new_containers: Vec::new(),
            user_namespaces: HashMap::new(),
            pods,
            lineage: None,
        }
    }

    /// Marks every new image with `lineage` (the policy's follow matchers);
    /// call before seeding.
    pub fn with_lineage(mut self, lineage: Option<Lineage>) -> Self {
        self.lineage = lineage;
        self
    }

    /// A cache entry for a new image.
    fn entry(&self, image: Image, descent: Descent, fresh_clone: bool) -> Arc<ProcInfo> {
        let marks = self.lineage.as_ref().map_or(0, |f| f(&image));
        Arc::new(ProcInfo::new(image, descent, marks, fresh_clone))
    }

    /// Processes currently alive in the cache.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn process(&self, pid: u32) -> Option<&Arc<ProcInfo>> {
        self.procs.get(&pid)
    }

    /// The live process image with this exec id.
    pub fn find(&self, exec_id: &str) -> Option<Arc<ProcInfo>> {
        self.procs.values().find(|p| p.exec_id == exec_id).cloned()
    }

    /// Containers first seen since the last call, for `DIR/containers/`.
    fn take_new_containers(&mut self) -> Vec<ContainerRow> {
        std::mem::take(&mut self.new_containers)
    }

    /// The parent's exec id; an unknown parent is the kernel (`node:1:0`).
    fn parent_exec_id(&self, parent: Option<&Image>) -> String {
        parent.map_or_else(|| exec_id(&self.node, 1, 0), |p| p.exec_id.clone())
    }

    fn container<S: AsRef<str>>(
        &mut self,
        components: &[S],
        ktime_ns: u64,
    ) -> Option<(String, String)> {
        let (runtime, id) = containers::container_from_components(components)?;
        if !self.containers.contains_key(&id) {
            let row = self.pods.container_row(runtime, &id, ktime_ns);
            self.new_containers.push(row.clone());
            self.containers.insert(id.clone(), row);
        }
        let runtime = self.containers[&id].runtime.clone();
        Some((runtime, id))
    }

    /// Seeds the cache from the /proc snapshot (oldest first, so parents
    /// precede children).
    pub fn seed(&mut self, rows: &[ProcessRow]) {
        let mut rows: Vec<&ProcessRow> = rows.iter().collect();
        rows.sort_by_key(|r| (r.start_ktime_ns, r.pid));
        let (cached, rows): (Vec<&ProcessRow>, Vec<&ProcessRow>) = rows
            .into_iter()
            .partition(|r| r.source == CACHE || r.source == CACHE_PARENT);
        self.seed_cached(&cached);
        for r in rows {
            let parent = self.procs.get(&r.ppid).cloned();
            let container = r.cgroups.iter().find_map(|line| {
                let path = line.splitn(3, ':').nth(2)?;
                let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).rev().collect();
                Some(comps).filter(|c| containers::container_from_components(c).is_some())
            });
            let container = container.and_then(|c| self.container(&c, r.snapshot_ktime_ns));
            let mut flags = vec!["procFS"];
            if r.cwd == "/" {
                flags.push("rootcwd");
            }
            if r.cwd.is_empty() {
                flags.push("nocwd");
            }
            if parent.is_none() && r.ppid != 0 {
                flags.push("miss");
            }
            let image = Image {
                exec_id: exec_id(&self.node, r.start_ktime_ns, r.pid),
                pid: r.pid,
                ppid: r.ppid,
                ktime_ns: r.start_ktime_ns,
                binary: r.exe.clone(),
                exe: Some(r.exe.clone()).filter(|e| !e.is_empty()),
                arguments: join_args(&r.cmdline),
                cwd: r.cwd.clone(),
                flags: flags_string(&flags),
                uid: r.euid,
                auid: r.auid,
                parent_exec_id: self.parent_exec_id(parent.as_ref().map(|p| &*p.image)),
                container,
                ns_pid: 0,
            };
            let entry = self.entry(image, Descent::of(parent.as_deref()), false);
            self.procs.insert(r.pid, entry);
        }
    }

    /// Seeds processes from a cache snapshot (a segment set read alone: a
    /// cut, or what eviction left): each entry as it was, linked to the
    /// parent image it was forked from (by exec id).
    fn seed_cached(&mut self, rows: &[&ProcessRow]) {
        let mut rows = rows.to_vec();
        // A parent image starts before its children.
        rows.sort_by_key(|r| (r.start_ktime_ns, r.pid));
        let mut images: HashMap<String, Arc<ProcInfo>> = HashMap::new();
        for r in rows {
            let parent = r
                .parent_exec_id
                .as_ref()
                .and_then(|id| images.get(id).cloned());
            let container = r.container_id.as_ref().map(|id| {
                if !self.containers.contains_key(id) {
                    let row = self.pods.container_row("", id, r.snapshot_ktime_ns);
                    self.new_containers.push(row.clone());
                    self.containers.insert(id.clone(), row);
                }
                (self.containers[id].runtime.clone(), id.clone())
            });
            let flags = r.flags.clone().unwrap_or_default();
            // Forked and not yet exec'd: its exec hangs under its parent.
            let fresh_clone =
                flags.split(' ').any(|f| f == "clone") && !flags.split(' ').any(|f| f == "execve");
            let image = Image {
                exec_id: r
                    .exec_id
                    .clone()
                    .unwrap_or_else(|| exec_id(&self.node, r.start_ktime_ns, r.pid)),
                pid: r.pid,
                ppid: r.ppid,
                ktime_ns: r.start_ktime_ns,
                binary: r.binary.clone().unwrap_or_else(|| r.exe.clone()),
                exe: Some(r.exe.clone()).filter(|e| !e.is_empty()),
                arguments: r.arguments.clone().unwrap_or_default(),
                cwd: r.cwd.clone(),
                flags,
                uid: r.euid,
                auid: r.auid,
                parent_exec_id: r
                    .parent_exec_id
                    .clone()
                    .unwrap_or_else(|| self.parent_exec_id(parent.as_ref().map(|p| &*p.image))),
                container,
                ns_pid: r.ns_pid.unwrap_or(0),
            };
            let info = self.entry(image, Descent::of(parent.as_deref()), fresh_clone);
            images.insert(info.exec_id.clone(), Arc::clone(&info));
            if r.source == CACHE {
                self.procs.insert(r.pid, info);
            }
        }
    }

    /// Fills the identity columns of /proc snapshot rows from the cache.
    pub fn annotate(&self, rows: &mut [ProcessRow]) {
        for r in rows {
            if let Some(p) = self.procs.get(&r.pid) {
                fill_identity(r, &p.image);
            }
        }
    }

    /// The cache as snapshot rows (sorted by pid), written at the start of
    /// every segment after the first.
    pub fn snapshot(&self, ktime_ns: u64) -> Vec<ProcessRow> {
        let row = |p: &Image, source: &str| {
            let mut r = ProcessRow {
                snapshot_ktime_ns: ktime_ns,
                source: source.into(),
                pid: p.pid,
                ppid: p.ppid,
                exe: p.exe.clone().unwrap_or_default(),
                cwd: p.cwd.clone(),
                start_ktime_ns: p.ktime_ns,
                euid: p.uid,
                auid: p.auid,
                ns_pid: Some(p.ns_pid),
                ..ProcessRow::default()
            };
            fill_identity(&mut r, p);
            r
        };
        let mut rows: Vec<ProcessRow> = self.procs.values().map(|p| row(&p.image, CACHE)).collect();
        // Parents the cache keeps only through their children (exited, or
        // replaced by an exec since the fork): a segment read alone needs
        // them for its events' parent columns.
        let mut gone = BTreeMap::new();
        for p in self.procs.values() {
            if let Some(parent) = p.ancestors.first()
                && !self
                    .procs
                    .get(&parent.pid)
                    .is_some_and(|q| Arc::ptr_eq(&q.image, parent))
            {
                gone.entry(parent.exec_id.clone())
                    .or_insert_with(|| row(parent, CACHE_PARENT));
            }
        }
        rows.extend(gone.into_values());
        rows.sort_by(|a, b| (a.pid, &a.source).cmp(&(b.pid, &b.source)));
        rows
    }

    /// Applies one lifecycle record, and fills in a fork's or an exit's
    /// `exe` (the image the process runs) from the cache.
    fn on_proc(&mut self, ev: &mut ProcEvent) {
        match ev.kind.as_str() {
            "fork" => {
                self.on_fork(ev);
                if ev.exe.is_none() {
                    ev.exe = self.procs.get(&ev.pid).and_then(|p| p.exe.clone());
                }
            }
            "exec" => self.on_exec(ev),
            "exit" => {
                // Children keep their parent's image in their ancestry.
                let gone = self.procs.remove(&ev.pid);
                if ev.exe.is_none() {
                    ev.exe = gone.and_then(|p| p.exe.clone());
                }
            }
            _ => {}
        }
    }

    /// The fields a fork and an exec record fill alike; the caller sets
    /// what the image runs (binary, arguments, cwd, flags).
    fn image(
        &self,
        ev: &ProcEvent,
        parent: Option<&Image>,
        container: Option<(String, String)>,
    ) -> Image {
        Image {
            exec_id: exec_id(&self.node, ev.ktime_ns, ev.pid),
            pid: ev.pid,
            ppid: ev.ppid,
            ktime_ns: ev.ktime_ns,
            binary: String::new(),
            exe: None,
            arguments: String::new(),
            cwd: String::new(),
            flags: String::new(),
            uid: ev.euid,
            auid: ev.auid,
            parent_exec_id: self.parent_exec_id(parent),
            container,
            ns_pid: ev.ns_pid,
        }
    }

    fn on_fork(&mut self, ev: &ProcEvent) {
        let parent = self.procs.get(&ev.ppid).cloned();
        let container = self.container(&ev.cgroup, ev.ktime_ns);
        let (binary, exe, arguments, cwd) = parent
            .as_ref()
            .map(|p| {
                (
                    p.binary.clone(),
                    p.exe.clone(),
                    p.arguments.clone(),
                    p.cwd.clone(),
                )
            })
            .unwrap_or_default();
        let mut flags = vec!["clone"];
        if cwd == "/" {
            flags.push("rootcwd");
        }
        if parent.is_none() {
            flags.push("miss");
        }
        let image = Image {
            binary,
            exe,
            arguments,
            cwd,
            flags: flags_string(&flags),
            ..self.image(ev, parent.as_ref().map(|p| &*p.image), container)
        };
        let entry = self.entry(image, Descent::of(parent.as_deref()), true);
        self.procs.insert(ev.pid, entry);
    }

    fn on_exec(&mut self, ev: &ProcEvent) {
        let prev = self.procs.get(&ev.pid).cloned();
        let mut flags = vec!["execve"];
        // A clone's exec hangs under the process that forked it; an exec
        // without fork hangs under the image it replaced (Tetragon's rule).
        let (parent, descent) = match &prev {
            Some(p) if p.fresh_clone => {
                flags.push("clone");
                (p.ancestors.first().cloned(), Descent::same_as(p))
            }
            Some(p) => (Some(Arc::clone(&p.image)), Descent::of(Some(&**p))),
            None => {
                let parent = self.procs.get(&ev.ppid);
                (
                    parent.map(|p| Arc::clone(&p.image)),
                    Descent::of(parent.map(|p| &**p)),
                )
            }
        };
        if parent.is_none() {
            flags.push("miss");
        }
        let has = |f: &str| ev.has_flag(f);
        if has(lifecycle::flags::ARGS_TRUNCATED) {
            flags.push("truncArgs");
        }
        if has(lifecycle::flags::ARGS_FAULT) {
            flags.push("errorArgs");
        }
        if has(lifecycle::flags::FILENAME_TRUNCATED) {
            flags.push("errorFilename");
        }
        if has(lifecycle::flags::CWD_FAULT) {
            flags.push("errorCWD");
        } else if ev.cwd == "/" {
            flags.push("rootcwd");
        }
        let binary = if ev.filename.starts_with('/') || ev.filename.is_empty() {
            ev.filename.clone()
        } else {
            let rel = ev.filename.trim_start_matches("./");
            format!("{}/{rel}", ev.cwd.trim_end_matches('/'))
        };
        let container = self.container(&ev.cgroup, ev.ktime_ns);
        let image = Image {
            binary,
            exe: ev.exe.clone(),
            arguments: join_args(&ev.args),
            cwd: ev.cwd.clone(),
            flags: flags_string(&flags),
            ..self.image(ev, parent.as_deref(), container)
        };
        let entry = self.entry(image, descent, false);
        self.procs.insert(ev.pid, entry);
    }

    /// Applies one record and hands the results to `sink`: the one code path
    /// of the live recorder and of replay.
    pub fn apply(&mut self, rec: Record, sink: &mut dyn Sink) -> anyhow::Result<()> {
        match rec {
            Record::Proc(mut p) => {
                self.on_proc(&mut p);
                sink.lifecycle(&p)?;
            }
            Record::Cred(mut ev) => {
                let process = self.enrich(&mut ev);
                sink.event_of(&ev, process.as_deref())?;
            }
            Record::Userns(u) => {
                sink.user_namespace(&u)?;
                self.user_namespaces.insert(u.userns, u);
            }
        }
        for c in self.take_new_containers() {
            sink.container(&c)?;
        }
        Ok(())
    }

    /// The wall-clock time of a boot-clock one, in whole microseconds (as
    /// the capture stores it).
    fn wall_us(&self, ktime_ns: u64) -> i64 {
        micros(self.realtime_offset_ns.saturating_add(ktime_ns as i64))
    }

    /// Fills the event's process, parent, container and pod columns, and
    /// returns the cached process (None: not in the cache).
    pub fn enrich(&mut self, ev: &mut Event) -> Option<Arc<ProcInfo>> {
        // The process's strings are written into the buffers of those the
        // event came with (a replayed event holds the stored ones): a fresh
        // string per column per event was most of replay's allocations.
        let mut spare = [
            ev.exec_id.take(),
            ev.parent_exec_id.take(),
            ev.binary.take(),
            ev.exe.take(),
            ev.arguments.take(),
            ev.cwd.take(),
            ev.flags.take(),
            ev.parent_binary.take(),
            ev.parent_arguments.take(),
            ev.parent_flags.take(),
            ev.parent_parent_exec_id.take(),
            ev.parent_cwd.take(),
        ]
        .into_iter();
        let mut text = |v: &str| {
            let mut s = spare.next().flatten().unwrap_or_default();
            s.clear();
            s.push_str(v);
            Some(s)
        };
        ev.clear_enrichment();
        let ns = |inum: Option<u32>| inum.and_then(|i| self.user_namespaces.get(&i));
        ev.set_ns_ids(ns(ev.old_userns), ns(ev.new_userns));
        let Some(p) = self.procs.get(&ev.pid).cloned() else {
            ev.flags = text("miss");
            return None;
        };
        ev.exec_id = text(&p.exec_id);
        ev.parent_exec_id = text(&p.parent_exec_id);
        ev.binary = text(&p.binary);
        ev.exe = p.exe.as_deref().and_then(&mut text);
        ev.arguments = text(&p.arguments);
        ev.cwd = text(&p.cwd);
        ev.flags = text(&p.flags);
        ev.start_time = Some(self.wall_us(p.ktime_ns));
        ev.process_uid = Some(p.uid);
        if let Some(parent) = p.parent() {
            ev.parent_pid = Some(parent.pid);
            ev.parent_binary = text(&parent.binary);
            ev.parent_arguments = text(&parent.arguments);
            ev.parent_start_time = Some(self.wall_us(parent.ktime_ns));
            ev.parent_flags = text(&parent.flags);
            ev.parent_parent_exec_id = text(&parent.parent_exec_id);
            ev.parent_cwd = text(&parent.cwd);
            ev.parent_uid = Some(parent.uid);
            ev.parent_auid = Some(parent.auid);
        }
        if let Some((_, id)) = &p.container {
            let row = &self.containers[id];
            ev.container_id = Some(id.clone());
            ev.container_runtime = Some(row.runtime.clone());
            ev.container_pid = Some(ev.ns_pid);
            ev.pod_namespace = row.pod_namespace.clone();
            ev.pod_name = row.pod_name.clone();
            ev.pod_uid = row.pod_uid.clone();
            ev.container_name = row.container_name.clone();
            ev.image_name = row.image_name.clone();
            ev.image_id = row.image_id.clone();
            ev.pod_labels = row.pod_labels.clone();
            ev.container_start_time = row.container_start_time;
        }
        if let Some(parent) = p.parent()
            && parent.container.is_some()
        {
            ev.parent_container_pid = Some(parent.ns_pid);
        }
        Some(p)
    }
}

/// `processes.source` of a cache snapshot's row, and of a parent image the
/// cache keeps only through its children.
pub const CACHE: &str = "cache";
pub const CACHE_PARENT: &str = "cache-parent";

/// argv[1..] joined by spaces, as Tetragon's `arguments`.
fn join_args(argv: &[String]) -> String {
    argv.get(1..).unwrap_or_default().join(" ")
}

fn fill_identity(r: &mut ProcessRow, p: &Image) {
    r.exec_id = Some(p.exec_id.clone());
    r.parent_exec_id = Some(p.parent_exec_id.clone());
    r.binary = Some(p.binary.clone());
    r.arguments = Some(p.arguments.clone());
    r.flags = Some(p.flags.clone());
    r.container_id = p.container.as_ref().map(|(_, id)| id.clone());
}
