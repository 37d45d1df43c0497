use super::decide::{PolicyFilter, Subject};
use super::*;
use crate::sink::PolicySink;
use credtrail_capture::model::Event;

const HOST: HostNamespaces = HostNamespaces {
    pid: 4026531836,
    user: 4026531837,
};

fn rules(yaml: &str) -> Result<Rules, PolicyError> {
    let mut r = Rules::default();
    r.add("p.yaml", yaml, false)?;
    Ok(r)
}

fn policy(name: &str, kprobes: &str) -> String {
    format!(
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\nspec:\n  kprobes:\n{kprobes}"
    )
}

fn ev(syscall: &str, arg0: i64) -> Event {
    Event {
        syscall: syscall.into(),
        abi: "x64".into(),
        arg0,
        pid: 100,
        tid: 100,
        ns_pid: 100,
        pid_ns: HOST.pid,
        old_userns: Some(HOST.user),
        old_userns_level: Some(0),
        ..Event::default()
    }
}

#[test]
fn match_args_equal_keeps_only_the_value() {
    let r = rules(&policy(
        "root",
        "  - call: sys_setuid\n    syscall: true\n    args:\n    - index: 0\n      type: int\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: [\"0\"]\n",
    ))
    .unwrap();
    let mut f = PolicyFilter::new(r, HOST);
    assert_eq!(f.admit(&ev("setuid", 0), None), Some("root"));
    assert_eq!(f.admit(&ev("setuid", 1000), None), None);
    assert_eq!(f.admit(&ev("setgid", 0), None), None);
    assert_eq!(f.counts.filtered, 2);
}

#[test]
fn the_first_matching_selector_decides_and_nopost_posts_nothing() {
    let r = rules(&policy(
        "p",
        "  - call: __x64_sys_setuid\n    selectors:\n    - matchArgs:\n      - {index: 0, operator: Equal, values: [0]}\n      matchActions:\n      - action: NoPost\n    - matchActions:\n      - action: Post\n",
    ))
    .unwrap();
    let mut f = PolicyFilter::new(r, HOST);
    assert_eq!(f.admit(&ev("setuid", 0), None), None);
    assert_eq!(f.admit(&ev("setuid", 5), None), Some("p"));
    let mut ia32 = ev("setuid", 5);
    ia32.abi = "ia32".into();
    assert_eq!(
        f.admit(&ia32, None),
        None,
        "__x64_sys_ is the x86-64 entry only"
    );
}

#[test]
fn host_ns_is_the_recording_hosts_pid_namespace() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/policies/tetragon/process.credentials.changes.at.syscalls.yaml"
    ))
    .unwrap();
    let r = rules(&text).unwrap();
    assert_eq!(r.selectors.len(), 8);
    let mut f = PolicyFilter::new(r, HOST);
    assert_eq!(f.admit(&ev("setuid", 0), None), None);
    let mut inside = ev("setresuid", 0);
    inside.pid_ns = 4026532000;
    assert_eq!(
        f.admit(&inside, None),
        Some("process.credentials.changes.at.syscalls")
    );
    inside.syscall = "capset".into();
    assert_eq!(
        f.admit(&inside, None),
        None,
        "the policy names the set*id calls only"
    );
}

#[test]
fn two_policies_name_the_first_that_keeps() {
    let mut r = rules(&policy("uids", "  - call: sys_setuid\n")).unwrap();
    r.add("q.yaml", &policy("all", "  - call: commit_creds\n"), false)
        .unwrap();
    let mut f = PolicyFilter::new(r, HOST);
    assert_eq!(f.admit(&ev("setuid", 0), None), Some("uids"));
    assert_eq!(f.admit(&ev("capset", 0), None), Some("all"));
    assert_eq!(f.admit(&ev("unexplained", 0), None), Some("all"));
}

#[test]
fn capability_changes_compare_before_and_after() {
    let r = rules(&policy(
        "caps",
        "  - call: commit_creds\n    selectors:\n    - matchCapabilityChanges:\n      - type: Effective\n        operator: In\n        isNamespaceCapability: true\n        values: [CAP_SYS_ADMIN]\n",
    ))
    .unwrap();
    let mut f = PolicyFilter::new(r, HOST);
    let mut e = ev("capset", 0);
    e.old_cap_effective = 1 << 21;
    e.new_cap_effective = 0;
    assert_eq!(f.admit(&e, None), Some("caps"));
    e.new_cap_effective = 1 << 21;
    assert_eq!(f.admit(&e, None), None, "held throughout: no change");
}

#[test]
fn rate_limit_holds_back_repeats_within_the_interval() {
    let r = rules(&policy(
        "rl",
        "  - call: sys_setuid\n    selectors:\n    - matchActions:\n      - action: Post\n        rateLimit: \"1m\"\n",
    ))
    .unwrap();
    let mut f = PolicyFilter::new(r, HOST);
    let mut e = ev("setuid", 0);
    e.ktime_ns = 1_000;
    assert!(f.admit(&e, None).is_some());
    e.ktime_ns += 59_000_000_000;
    assert!(f.admit(&e, None).is_none());
    assert_eq!(f.counts.rate_limited, 1);
    e.arg0 = 1;
    assert!(
        f.admit(&e, None).is_some(),
        "other arguments are another key"
    );
    e.arg0 = 0;
    e.ktime_ns = 1_000 + 60_000_000_000;
    assert!(f.admit(&e, None).is_some());
}

#[test]
fn errors_are_one_line_with_file_line_and_field() {
    let cases = [
        (
            policy(
                "x",
                "  - call: sys_setuid\n    selectors:\n    - matchArgz: []\n",
            ),
            "p.yaml:9:7: YAML: unknown field `matchArgz`",
        ),
        (policy("x", "  - call: sys_open\n"), "spec.kprobes[0].call"),
        (
            policy(
                "x",
                "  - call: sys_setuid\n    selectors:\n    - matchArgs:\n      - {index: 0, operator: Prefix, values: [\"a\"]}\n",
            ),
            "spec.kprobes[0].selectors[0].matchArgs[0].operator",
        ),
        ("kind: [\n".to_owned(), "p.yaml:"),
        (
            policy("x", "  - call: sys_setuid\n").replace("TracingPolicy", "Pod"),
            "p.yaml:2:7: kind:",
        ),
    ];
    for (yaml, want) in cases {
        let e = rules(&yaml).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} lacks {want:?}");
        assert!(!e.contains('\n'), "{e:?}");
    }
}

#[test]
fn subject_reads_the_kernel_fields() {
    let mut e = ev("setresuid", 7);
    e.ret = -1;
    let s = Subject::of(&e).unwrap();
    assert_eq!((s.syscall, s.args[0], s.ret), (7, 7, -1));
}

#[test]
fn match_binaries_reads_binary_in_captures_older_than_exe() {
    let r = rules(&policy(
        "bins",
        "  - call: sys_setuid\n    selectors:\n    - matchBinaries:\n      - operator: NotPrefix\n        values: [/usr/]\n      matchActions:\n      - action: NoPost\n    - matchBinaries:\n      - operator: In\n        values: [/usr/bin/su]\n",
    ))
    .unwrap();
    assert!(r.selectors.iter().all(Selector::needs_userspace));
    let mut f = PolicyFilter::new(r, HOST);
    let mut e = ev("setuid", 0);
    e.binary = Some("/usr/bin/su".into());
    assert_eq!(f.admit(&e, None), Some("bins"));
    e.binary = Some("/usr/bin/sudo".into());
    assert_eq!(f.admit(&e, None), None, "not In");
    e.binary = Some("/bin/su".into());
    assert_eq!(
        f.admit(&e, None),
        None,
        "NotPrefix /usr/ decides first: NoPost"
    );
    e.binary = None;
    assert_eq!(f.admit(&e, None), None, "an unknown binary is in no set");
}

/// Keeps the `seq` of each event passed on.
#[derive(Default)]
struct Seqs(Vec<u64>);

impl crate::sink::Sink for Seqs {
    fn lifecycle(&mut self, _: &credtrail_capture::model::ProcEvent) -> anyhow::Result<()> {
        Ok(())
    }
    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        self.0.push(e.seq);
        Ok(())
    }
    fn container(&mut self, _: &credtrail_capture::model::ContainerRow) -> anyhow::Result<()> {
        Ok(())
    }
    fn user_namespace(&mut self, _: &credtrail_capture::model::UsernsRow) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A process tree built through the enrichment: `sh` (pid 10, found in
/// /proc) forks 11, which execs `exe` by the name `filename`; 11 forks 12,
/// which execs /usr/bin/id. Each of 10, 11 and 12 then calls setuid(0)
/// (seq 10, 11, 12). Returns the seqs `yaml`'s policy keeps.
fn kept_in_tree(yaml: &str, filename: &str, exe: &str) -> Vec<u64> {
    use crate::enrich::{Enricher, StoredPods};
    use crate::sink::Record;
    use credtrail_capture::model::{ProcEvent, ProcessRow};

    let rules = rules(yaml).unwrap();
    let mut en = Enricher::new("n", 0, StoredPods::default()).with_lineage(rules.lineage());
    let mut f = PolicyFilter::new(rules, HOST);
    let mut out = Seqs::default();
    en.seed(&[ProcessRow {
        pid: 10,
        ppid: 1,
        exe: "/usr/bin/sh".into(),
        start_ktime_ns: 1,
        ..ProcessRow::default()
    }]);
    let proc_ev = |kind: &str, pid: u32, ppid: u32, filename: &str, exe: Option<&str>| ProcEvent {
        kind: kind.into(),
        pid,
        tid: pid,
        ppid,
        ns_pid: pid - 9,
        ktime_ns: u64::from(pid) * 100,
        filename: filename.into(),
        exe: exe.map(Into::into),
        ..ProcEvent::default()
    };
    let records = [
        Record::Proc(proc_ev("fork", 11, 10, "", None)),
        Record::Proc(proc_ev("exec", 11, 10, filename, Some(exe))),
        Record::Proc(proc_ev("fork", 12, 11, "", None)),
        Record::Proc(proc_ev("exec", 12, 11, "/usr/bin/id", Some("/usr/bin/id"))),
    ];
    let mut sink = PolicySink::new(&mut f, &mut out);
    for r in records {
        en.apply(r, &mut sink).unwrap();
    }
    for pid in [10, 11, 12] {
        let mut e = ev("setuid", 0);
        e.pid = pid;
        e.tid = pid;
        e.ns_pid = pid - 9;
        e.seq = u64::from(pid);
        en.apply(Record::Cred(e), &mut sink).unwrap();
    }
    out.0
}

fn binaries(op: &str, values: &str, follow: bool) -> String {
    policy(
        "bins",
        &format!(
            "  - call: sys_setuid\n    selectors:\n    - matchBinaries:\n      - operator: {op}\n        followChildren: {follow}\n        values: [{values}]\n"
        ),
    )
}

#[test]
fn match_binaries_matches_the_executed_file_not_the_name_given() {
    // An applet re-exec'd as /proc/self/exe is the file that runs.
    let y = binaries("In", "/bin/busybox", false);
    assert_eq!(kept_in_tree(&y, "/proc/self/exe", "/bin/busybox"), [11]);
    assert_eq!(
        kept_in_tree(&y, "/bin/busybox", "/usr/bin/busybox"),
        [0u64; 0]
    );
    let y = binaries("NotIn", "/bin/busybox", false);
    assert_eq!(kept_in_tree(&y, "/proc/self/exe", "/bin/busybox"), [10, 12]);
}

#[test]
fn follow_children_matches_descendants_of_the_binary() {
    let y = binaries("In", "/bin/busybox", true);
    assert_eq!(kept_in_tree(&y, "/proc/self/exe", "/bin/busybox"), [11, 12]);
    let y = binaries("Postfix", "/sh", true);
    assert_eq!(
        kept_in_tree(&y, "/x", "/x"),
        [10, 11, 12],
        "/proc's processes are ancestors too"
    );
    let y = binaries("NotIn", "/bin/busybox", true);
    assert_eq!(kept_in_tree(&y, "/proc/self/exe", "/bin/busybox"), [10]);
}

#[test]
fn follow_forks_matches_the_pid_and_its_descendants() {
    let pids = |op: &str, ns: bool, follow: bool, v: u32| {
        policy(
            "pids",
            &format!(
                "  - call: sys_setuid\n    selectors:\n    - matchPIDs:\n      - operator: {op}\n        followForks: {follow}\n        isNamespacePID: {ns}\n        values: [{v}]\n"
            ),
        )
    };
    let kept = |y: String| kept_in_tree(&y, "/x", "/x");
    assert_eq!(kept(pids("In", false, false, 11)), [11]);
    assert_eq!(kept(pids("In", false, true, 11)), [11, 12]);
    assert_eq!(kept(pids("In", false, true, 10)), [10, 11, 12]);
    assert_eq!(kept(pids("NotIn", false, true, 11)), [10]);
    // Namespace pids: 11 is 2 in its namespace; /proc's 10 has none known.
    assert_eq!(kept(pids("In", true, true, 2)), [11, 12]);
    assert_eq!(kept(pids("In", true, true, 1)), [10]);
    let r = rules(&pids("In", false, true, 11)).unwrap();
    assert!(
        r.selectors[0].needs_userspace(),
        "the kernel sends, userspace decides"
    );
}
