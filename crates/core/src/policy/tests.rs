use super::decide::{PolicyFilter, Subject};
use super::*;
use crate::model::Event;

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
    assert_eq!(f.admit(&ev("setuid", 0)), Some("root"));
    assert_eq!(f.admit(&ev("setuid", 1000)), None);
    assert_eq!(f.admit(&ev("setgid", 0)), None);
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
    assert_eq!(f.admit(&ev("setuid", 0)), None);
    assert_eq!(f.admit(&ev("setuid", 5)), Some("p"));
    let mut ia32 = ev("setuid", 5);
    ia32.abi = "ia32".into();
    assert_eq!(f.admit(&ia32), None, "__x64_sys_ is the x86-64 entry only");
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
    assert_eq!(f.admit(&ev("setuid", 0)), None);
    let mut inside = ev("setresuid", 0);
    inside.pid_ns = 4026532000;
    assert_eq!(
        f.admit(&inside),
        Some("process.credentials.changes.at.syscalls")
    );
    inside.syscall = "capset".into();
    assert_eq!(
        f.admit(&inside),
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
    assert_eq!(f.admit(&ev("setuid", 0)), Some("uids"));
    assert_eq!(f.admit(&ev("capset", 0)), Some("all"));
    assert_eq!(f.admit(&ev("unexplained", 0)), Some("all"));
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
    assert_eq!(f.admit(&e), Some("caps"));
    e.new_cap_effective = 1 << 21;
    assert_eq!(f.admit(&e), None, "held throughout: no change");
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
    assert!(f.admit(&e).is_some());
    e.ktime_ns += 59_000_000_000;
    assert!(f.admit(&e).is_none());
    assert_eq!(f.counts.rate_limited, 1);
    e.arg0 = 1;
    assert!(f.admit(&e).is_some(), "other arguments are another key");
    e.arg0 = 0;
    e.ktime_ns = 1_000 + 60_000_000_000;
    assert!(f.admit(&e).is_some());
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
fn match_binaries_compares_the_binary_column() {
    let r = rules(&policy(
        "bins",
        "  - call: sys_setuid\n    selectors:\n    - matchBinaries:\n      - operator: NotPrefix\n        values: [/usr/]\n      matchActions:\n      - action: NoPost\n    - matchBinaries:\n      - operator: In\n        values: [/usr/bin/su]\n",
    ))
    .unwrap();
    assert!(r.selectors.iter().all(Selector::needs_userspace));
    let mut f = PolicyFilter::new(r, HOST);
    let mut e = ev("setuid", 0);
    e.binary = Some("/usr/bin/su".into());
    assert_eq!(f.admit(&e), Some("bins"));
    e.binary = Some("/usr/bin/sudo".into());
    assert_eq!(f.admit(&e), None, "not In");
    e.binary = Some("/bin/su".into());
    assert_eq!(f.admit(&e), None, "NotPrefix /usr/ decides first: NoPost");
    e.binary = None;
    assert_eq!(f.admit(&e), None, "an unknown binary is in no set");
}
