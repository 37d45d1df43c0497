//! Root tests of examples/: each example program recorded with
//! `credtrail-record -- COMMAND` twice (the second time under another host
//! name and time zone, with other pids); both `--stable` outputs must be
//! the example's committed golden file, byte for byte, and its
//! expectations must hold, or (the buggy daemon) fail with the row that
//! broke them. `CREDTRAIL_BLESS=1` rewrites the golden files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use credtrail_testkit::{
    IMAGE, bpf_available, podman_ready, podman_run_argv, query_bin, record_bin, replay_bin, serial,
    workspace_root,
};

struct Example {
    name: &'static str,
    /// C source to build into `<tmp>/PROGRAM`, run as the command.
    build: Option<(&'static str, &'static str)>,
    /// Installed setuid root.
    setuid: bool,
    /// `--user`.
    user: &'static str,
    /// The arguments of a test container (`podman run`) when nothing is
    /// built.
    argv: &'static [&'static str],
    /// Lines `expect` must print (it exits 1 when one starts with FAIL).
    expect_lines: &'static [&'static str],
}

const EXAMPLES: [Example; 4] = [
    Example {
        name: "daemon-drops-privileges",
        build: Some(("daemon.c", "daemon")),
        setuid: false,
        user: "root",
        argv: &[],
        expect_lines: &[
            "ok    ends as the service user, in no other group, with no capabilities",
            "ok    never becomes the service user while still in root's group",
            "ok    never gets root back once dropped",
            "ok    every credential call it makes as root succeeds",
            "ok    nothing changes its credentials behind its back",
        ],
    },
    Example {
        name: "daemon-forgets-setgroups",
        build: Some(("daemon.c", "daemon")),
        setuid: false,
        user: "root",
        argv: &[],
        expect_lines: &[
            "FAIL  ends as the service user, in no other group, with no capabilities (1)",
            "      groups [0], expected []",
            "FAIL  never becomes the service user while still in root's group (1)",
            "ok    never gets root back once dropped",
        ],
    },
    Example {
        name: "setuid-helper",
        build: Some(("helper.c", "helper")),
        setuid: true,
        user: "nobody",
        argv: &[],
        expect_lines: &[
            "ok    only its exec makes it root, never a call",
            "ok    it hands back to the user who ran it, with no capabilities",
        ],
    },
    Example {
        name: "container-cap-drop-all",
        build: None,
        setuid: false,
        user: "root",
        argv: &[
            "--cap-drop=ALL",
            IMAGE,
            "sh",
            "-c",
            "grep CapEff /proc/self/status",
        ],
        expect_lines: &[
            "ok    the container's shell holds no capability",
            "ok    nothing in the container gains a capability",
        ],
    },
];

fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Records `argv` into `dir` as `user`: in this host's name, or in a new
/// UTS namespace under another one and another time zone.
fn record(dir: &Path, user: &str, argv: &[String], other_host: bool) {
    let mut rec = vec![record_bin().to_owned(), "--out".into()];
    rec.push(dir.display().to_string());
    rec.extend(["--user".into(), user.into(), "--".into()]);
    rec.extend(argv.iter().cloned());
    let o = if other_host {
        let quoted: Vec<String> = rec.iter().map(|a| format!("'{a}'")).collect();
        Command::new("unshare")
            .args(["--uts", "sh", "-c"])
            .arg(format!(
                "hostname example-other-host && exec {}",
                quoted.join(" ")
            ))
            .env("TZ", "America/St_Johns")
            .output()
            .unwrap()
    } else {
        Command::new(&rec[0]).args(&rec[1..]).output().unwrap()
    };
    assert!(o.status.success(), "{}", out_text(&o));
}

fn stable(dir: &Path) -> String {
    let o = Command::new(replay_bin())
        .arg(dir)
        .args(["--print", "compact", "--stable"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn check(ex: &Example) {
    let here = workspace_root().join("examples").join(ex.name);
    let tmp = tempfile::tempdir().unwrap();
    // Readable by the example's user.
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let argv: Vec<String> = match ex.build {
        Some((source, program)) => {
            let bin = tmp.path().join(program);
            let o = Command::new("cc")
                .args(["-Wall", "-Werror", "-O2", "-o"])
                .arg(&bin)
                .arg(here.join(source))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", out_text(&o));
            if ex.setuid {
                std::fs::set_permissions(
                    &bin,
                    std::os::unix::fs::PermissionsExt::from_mode(0o4755),
                )
                .unwrap();
            }
            vec![bin.display().to_string()]
        }
        None => podman_run_argv(ex.argv)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let runs: Vec<PathBuf> = ["first", "second"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    record(&runs[0], ex.user, &argv, false);
    // Other pids in between.
    for _ in 0..200 {
        Command::new("true").status().unwrap();
    }
    record(&runs[1], ex.user, &argv, true);
    let (a, b) = (stable(&runs[0]), stable(&runs[1]));
    assert_eq!(a, b, "{}: two runs", ex.name);
    let golden = here.join("golden.txt");
    if std::env::var_os("CREDTRAIL_BLESS").is_some() {
        std::fs::write(&golden, &a).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        a, want,
        "{}: the golden file differs (CREDTRAIL_BLESS=1 rewrites it after a review)",
        ex.name
    );
    let o = Command::new(query_bin())
        .arg(&runs[0])
        .arg("expect")
        .arg(here.join("expect.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let failing = ex.expect_lines.iter().any(|l| l.starts_with("FAIL"));
    assert_eq!(o.status.success(), !failing, "{}", out_text(&o));
    for line in ex.expect_lines {
        assert!(text.lines().any(|l| l == *line), "{line:?} in:\n{text}");
    }
}

#[test]
fn examples_match_their_golden_files_and_expectations() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    for ex in &EXAMPLES {
        if ex.build.is_none() && !podman_ready() {
            continue;
        }
        check(ex);
    }
}
