//! TracingPolicy files offline: Tetragon's own credential policies load or
//! fail with one line, bad policies stop the recorder before it records,
//! and replay and query keep the same events of every fixture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use credtrail_pipeline::policy::Rules;
use credtrail_testkit::{fixture, query_bin, record_bin, replay_bin};

fn tetragon_policy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/tetragon")
        .join(name)
}

const GUIDE: &str = "process.credentials.changes.at.syscalls.yaml";

/// What docs/policies.md says of each file of Tetragon's examples: the
/// selectors it compiles to, or the start of its one error line.
#[test]
fn every_reference_policy_loads_or_fails_with_its_one_line() {
    let expect: [(&str, Result<usize, &str>); 7] = [
        (GUIDE, Ok(8)),
        ("sys_setuid.yaml", Ok(1)),
        ("kprobe_commit_creds.yaml", Ok(1)),
        ("process-creds-installed.yaml", Ok(1)),
        (
            "process-creds-changed.yaml",
            Err("process-creds-changed.yaml:53:11: spec.kprobes[1].call: override_creds: "),
        ),
        (
            "creds-capability-usage.yaml",
            Err("creds-capability-usage.yaml:18:11: spec.kprobes[0].call: cap_capable: "),
        ),
        (
            "kill_unprivileged_user_namespace.yaml",
            Err(
                "kill_unprivileged_user_namespace.yaml:39:19: spec.kprobes[0].selectors[0].matchActions[0].action: Sigkill is not supported",
            ),
        ),
    ];
    let listed: Vec<_> = std::fs::read_dir(tetragon_policy(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(
        listed.len(),
        expect.len(),
        "a policy file without an expectation: {listed:?}"
    );
    for (file, want) in expect {
        let got = Rules::load(&[tetragon_policy(file)], false);
        match (got, want) {
            (Ok(r), Ok(n)) => {
                assert_eq!(r.selectors.len(), n, "{file}");
                assert!(r.ignored.is_empty());
            }
            (Err(e), Err(start)) => {
                let line = e.to_string();
                assert!(line.contains(start), "{file}: {line}");
                assert!(!line.contains('\n'));
                // With --policy-warn it loads, listing what it ignored.
                let r = Rules::load(&[tetragon_policy(file)], true).unwrap();
                assert!(
                    r.ignored.iter().any(|l| l.contains(start)),
                    "{file}: {:?}",
                    r.ignored
                );
            }
            (got, want) => panic!("{file}: {got:?}, expected {want:?}"),
        }
    }
    // Rate limits and namespaces as Tetragon reads them.
    let r = Rules::load(&[tetragon_policy("process-creds-installed.yaml")], false).unwrap();
    assert_eq!(r.selectors[0].rate_limit_ns, 60_000_000_000);
    assert!(r.selectors[0].pid_ns.as_ref().unwrap().negate);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_policies_stop_the_recorder_before_it_records() {
    let tmp = tempfile::tempdir().unwrap();
    let head = "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspec:\n  kprobes:\n  - call: sys_setuid\n";
    let cases = [
        (
            write(
                tmp.path(),
                "selector.yaml",
                &format!("{head}    selectors:\n    - matchArgz: []\n"),
            ),
            "selector.yaml:9:7: YAML: unknown field `matchArgz`",
        ),
        (
            write(
                tmp.path(),
                "operator.yaml",
                &format!(
                    "{head}    selectors:\n    - matchArgs:\n      - index: 0\n        operator: Prefix\n        values: [\"1\"]\n"
                ),
            ),
            "operator.yaml:11:19: spec.kprobes[0].selectors[0].matchArgs[0].operator: Prefix:",
        ),
        (
            write(tmp.path(), "malformed.yaml", "apiVersion: [\n"),
            "malformed.yaml:",
        ),
        (
            write(
                tmp.path(),
                "kind.yaml",
                &head.replace("kind: TracingPolicy", "kind: Deployment"),
            ),
            "kind.yaml:2:7: kind: \"Deployment\" is not a policy credtrail reads",
        ),
        (
            tetragon_policy("kill_unprivileged_user_namespace.yaml"),
            "Sigkill is not supported",
        ),
    ];
    for (policy, want) in cases {
        let out = tmp.path().join("capture");
        let o = Command::new(record_bin())
            .arg("--out")
            .arg(&out)
            .arg("--policy")
            .arg(&policy)
            .output()
            .unwrap();
        let stderr = String::from_utf8(o.stderr).unwrap();
        assert!(!o.status.success(), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{stderr:?} lacks {want:?}");
        assert!(!out.exists(), "nothing recorded");
    }
}

fn run(bin: &str, args: &[&str]) -> String {
    let o = Command::new(bin).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `seq` → policy of each event kept.
type Kept = BTreeMap<u64, String>;

fn replay_kept(capture: &str, policies: &[String]) -> Kept {
    let mut args = vec![capture, "--print", "json"];
    for p in policies {
        args.extend(["--policy", p.as_str()]);
    }
    run(replay_bin(), &args)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["seq"].as_u64().unwrap(),
                v["policy"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn query_kept(capture: &str, policies: &[String]) -> Kept {
    let mut args = vec![
        capture,
        "--format",
        "csv",
        "--sql",
        "SELECT seq, policy FROM events ORDER BY seq",
    ];
    for p in policies {
        args.extend(["--policy", p.as_str()]);
    }
    run(query_bin(), &args)
        .lines()
        .skip(1)
        .map(|l| {
            let (seq, policy) = l.split_once(',').unwrap();
            (seq.parse().unwrap(), policy.to_owned())
        })
        .collect()
}

#[test]
fn replay_and_query_keep_the_same_events_of_every_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let nopost = write(
        tmp.path(),
        "nopost.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: not-root\nspec:\n  kprobes:\n  - call: commit_creds\n    selectors:\n    - matchArgs:\n      - {index: 0, operator: Equal, values: [0]}\n      matchActions:\n      - action: NoPost\n    - matchCapabilityChanges:\n      - {type: Effective, operator: In, isNamespaceCapability: true, values: [CAP_SETUID, CAP_NET_RAW]}\n",
    );
    let binaries = write(
        tmp.path(),
        "binaries.yaml",
        "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: binaries\nspec:\n  kprobes:\n  - call: commit_creds\n    selectors:\n    - matchBinaries:\n      - {operator: Postfix, values: [/su]}\n    - matchBinaries:\n      - {operator: NotPrefix, values: [/var/tmp/, /usr/local/]}\n      matchActions:\n      - action: NoPost\n    - matchArgs:\n      - {index: 0, operator: LT, values: [2000]}\n",
    );
    let sets: Vec<Vec<String>> = vec![
        vec![binaries.display().to_string()],
        vec![tetragon_policy(GUIDE).display().to_string()],
        vec![
            tetragon_policy("process-creds-installed.yaml")
                .display()
                .to_string(),
        ],
        vec![
            nopost.display().to_string(),
            tetragon_policy("sys_setuid.yaml").display().to_string(),
        ],
    ];
    let mut kept_somewhere = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("manifest.json").exists() {
            continue;
        }
        let dir = dir.to_str().unwrap();
        let all = run(replay_bin(), &[dir, "--print", "compact"])
            .lines()
            .count();
        for policies in &sets {
            let replayed = replay_kept(dir, policies);
            assert_eq!(replayed, query_kept(dir, policies), "{dir} {policies:?}");
            assert!(replayed.len() <= all);
            kept_somewhere += replayed.len();
        }
    }
    assert!(kept_somewhere > 20, "{kept_somewhere}");
}

#[test]
fn the_guides_policy_keeps_what_su_did_in_the_xwing_pod() {
    let xwing = fixture("k8s-xwing-su");
    let out = run(
        replay_bin(),
        &[
            xwing.to_str().unwrap(),
            "--policy",
            tetragon_policy(GUIDE).to_str().unwrap(),
            "--print",
            "tetragon-compact",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.contains(&"🔑 setuid  default/xwing /bin/su 0"),
        "{out}"
    );
    assert!(lines.iter().all(|l| l.contains("default/xwing")), "{out}");
    let everything = run(
        replay_bin(),
        &[xwing.to_str().unwrap(), "--print", "compact"],
    );
    assert!(
        everything.lines().count() > lines.len(),
        "the host side is left out"
    );
}
