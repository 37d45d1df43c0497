//! The node agent as deployed: `deploy/kubernetes/` against Kubernetes'
//! own schemas (offline), and, as root with podman, the image from
//! `scripts/image` running the DaemonSet's container exactly (its command,
//! arguments, mounts, capabilities, seccomp and readiness probe are read
//! from the YAML, so the two cannot drift): a host process's setresuid and
//! a second container's setuid are captured, cut with `kubectl exec`'s
//! command, and verify on the host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use credtrail_capture::Capture;
use credtrail_testkit::{
    IMAGE, bpf_available, podman, podman_container, podman_ready, record_bin, replay_bin, serial,
    ship_bin,
};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn daemonset() -> Value {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes/daemonset.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_deployment_files_pass_kubernetes_schemas_offline() {
    let validate = |files: &[&Path]| {
        Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict", "-k", "1.30.0"])
            .args(files)
            .output()
            .expect("python3")
    };
    let dir = repo().join("deploy/kubernetes");
    let (ns, ds) = (dir.join("namespace.yaml"), dir.join("daemonset.yaml"));
    let out = validate(&[&ns, &ds]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("No module named"),
        "kubernetes-validate is not installed (scripts/setup installs it): {text}"
    );
    assert!(out.status.success(), "{text}");
    // The validator is strict: a misspelled field fails.
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("daemonset.yaml");
    let yaml = std::fs::read_to_string(&ds).unwrap();
    std::fs::write(
        &broken,
        yaml.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .unwrap();
    let out = validate(&[&broken]);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("readOnlyRootFileSystem"), "{text}");
}

#[test]
fn the_systemd_unit_runs_the_daemonsets_flight_recorder() {
    let ds = daemonset();
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let mut want = strs(&c["command"]);
    want.extend(strs(&c["args"]));
    let unit =
        std::fs::read_to_string(repo().join("deploy/systemd/credtrail-record.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let got: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    // Metrics are the DaemonSet's only: the unit has no network (and says
    // how to turn them on).
    let at = want.iter().position(|a| a == "--metrics-addr").unwrap();
    let addr = want.drain(at..at + 2).nth(1).unwrap();
    assert!(!got.contains(&"--metrics-addr".to_owned()));
    assert!(unit.contains("append `--metrics-addr 127.0.0.1:9464`"));
    // The port the recorder serves is the one the pod exposes and names
    // in its scrape annotations.
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].to_string(), port);
    let notes = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/port"].as_str(), Some(port));
    assert_eq!(notes["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(notes["prometheus.io/path"].as_str(), Some("/metrics"));
    // Same program and flags; the node name comes from each side's own source.
    let name = |v: &[String]| {
        v.iter()
            .map(|a| a.rsplit('/').next().unwrap().to_owned())
            .map(|a| {
                if a == "$(NODE_NAME)" || a == "%H" {
                    "NODE".into()
                } else {
                    a
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(name(&got), name(&want));
    let caps: Vec<String> = strs(&c["securityContext"]["capabilities"]["add"])
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    let bounding = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .unwrap();
    assert_eq!(bounding.split_whitespace().collect::<Vec<_>>(), caps);
}

/// The DaemonSet's container as a `podman run`: its privileges, mounts
/// (the captures hostPath at `captures`), environment and memory limit,
/// and the command line. Panics on a field this mapping does not know, so
/// a change to the YAML cannot go untested.
struct Agent {
    podman: Vec<String>,
    command: Vec<String>,
    readiness: Vec<String>,
}

fn agent(captures: &Path, node: &str) -> Agent {
    let ds = daemonset();
    let spec = &ds["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    let mut p = Vec::new();
    if spec["hostPID"] == true {
        p.push("--pid=host".to_owned());
    }
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "the test maps the capability list");
    if strs(&sc["capabilities"]["drop"]).contains(&"ALL".to_owned()) {
        p.push("--cap-drop=ALL".into());
    }
    for cap in strs(&sc["capabilities"]["add"]) {
        p.push(format!("--cap-add=CAP_{cap}"));
    }
    assert_eq!(sc["seccompProfile"]["type"], "Unconfined");
    p.push("--security-opt=seccomp=unconfined".into());
    if sc["allowPrivilegeEscalation"] == false {
        p.push("--security-opt=no-new-privileges".into());
    }
    if sc["readOnlyRootFilesystem"] == true {
        p.push("--read-only".into());
    }
    p.push(format!("--user={}", sc["runAsUser"].as_u64().unwrap()));
    for e in c["env"].as_array().unwrap() {
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("spec.nodeName") => node.to_owned(),
            Some(other) => panic!("env from {other} is not mapped"),
            None => e["value"].as_str().unwrap().to_owned(),
        };
        p.push(format!("--env={}={value}", e["name"].as_str().unwrap()));
    }
    let volumes = spec["volumes"].as_array().unwrap();
    for m in c["volumeMounts"].as_array().unwrap() {
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        let target = m["mountPath"].as_str().unwrap();
        if v["emptyDir"].is_object() {
            p.push(format!("--tmpfs={target}"));
            continue;
        }
        let host = v["hostPath"]["path"].as_str().unwrap();
        let host = if host == "/var/lib/credtrail" {
            captures.to_owned()
        } else {
            PathBuf::from(host)
        };
        match v["hostPath"]["type"].as_str() {
            Some("DirectoryOrCreate") => std::fs::create_dir_all(&host).unwrap(),
            Some("Directory") => assert!(host.is_dir(), "{} is missing", host.display()),
            other => panic!("hostPath type {other:?} is not mapped"),
        }
        let mut opts = vec![];
        if m["readOnly"] == true {
            opts.push("ro");
        }
        match m["mountPropagation"].as_str() {
            Some("HostToContainer") => opts.push("rslave"),
            None => {}
            Some(other) => panic!("mountPropagation {other} is not mapped"),
        }
        let opts = if opts.is_empty() {
            String::new()
        } else {
            format!(":{}", opts.join(","))
        };
        p.push(format!("--volume={}:{target}{opts}", host.display()));
    }
    let mem = c["resources"]["limits"]["memory"].as_str().unwrap();
    p.push(format!("--memory={}m", mem.strip_suffix("Mi").unwrap()));
    let mut command = strs(&c["command"]);
    command.extend(
        strs(&c["args"])
            .into_iter()
            .map(|a| a.replace("$(NODE_NAME)", node)),
    );
    Agent {
        podman: p,
        command,
        readiness: strs(&c["readinessProbe"]["exec"]["command"]),
    }
}

/// The test's image, removed afterwards (each build is a new 150 MB layer).
struct Built;

impl Drop for Built {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args([
                "rmi",
                "-f",
                "localhost/credtrail-agent:test",
                "localhost/credtrail-agent:latest",
            ])
            .output();
    }
}

struct Running(String);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.0])
            .output();
    }
}

fn exec(name: &str, cmd: &[String]) -> std::process::Output {
    Command::new("podman")
        .args(["exec", name])
        .args(cmd)
        .output()
        .unwrap()
}

fn verify(dir: &Path) {
    let out = Command::new(replay_bin())
        .arg("--verify")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_runs_the_daemonsets_recorder_and_its_captures_verify_on_the_host() {
    if !bpf_available() || !podman_ready() {
        return;
    }
    let _serial = serial();
    if !Path::new("/sys/kernel/tracing/events").exists() {
        // As a node's systemd (sys-kernel-tracing.mount) would have it.
        let st = Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    // scripts/image packs these three: each must be built from this checkout.
    let bins = Path::new(record_bin()).parent().unwrap();
    let (_, _) = (replay_bin(), ship_bin());
    let tag = "localhost/credtrail-agent:test";
    let out = Command::new(repo().join("scripts/image"))
        .arg(bins)
        .env("IMAGE", "localhost/credtrail-agent")
        .env("VERSION", "test")
        .output()
        .unwrap();
    let _built = Built;
    let built = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/image: {built}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", built.lines().take(2).collect::<Vec<_>>().join("\n"));

    let tmp = tempfile::tempdir().unwrap();
    let captures = tmp.path().join("credtrail");
    std::fs::create_dir(&captures).unwrap();
    let node = "agent-test-node";
    let a = agent(&captures, node);
    let name = format!("credtrail-agent-{}", std::process::id());
    let mut run = vec!["-d".to_owned(), format!("--name={name}")];
    run.extend(a.podman.iter().cloned());
    run.push(tag.into());
    run.extend(a.command.iter().cloned());
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    podman_container("run", &run);
    let _running = Running(name.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let probe = exec(&name, &a.readiness);
        if probe.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the readiness probe never passed: {}{}",
            String::from_utf8_lossy(&probe.stderr),
            podman(&["logs", &name])
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let host = Command::new("setpriv")
        .args(["--reuid", "1000", "true"])
        .spawn()
        .unwrap();
    let host_pid = host.id();
    assert!(host.wait_with_output().unwrap().status.success());
    let ctr = podman_container("create", &[IMAGE, "sh", "-c", "/bin/su nobody -c true"]);
    podman(&["start", "--attach", &ctr]);
    podman(&["rm", &ctr]);
    std::thread::sleep(Duration::from_millis(500));

    // The README's `kubectl exec` one-liner, through podman.
    let cut = [
        "credtrail-record",
        "cut",
        "/var/lib/credtrail/flight",
        "/var/lib/credtrail/incidents/now",
        "--last",
        "5m",
    ]
    .map(str::to_owned);
    let out = exec(&name, &cut);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    podman(&["stop", "-t", "60", &name]);
    let logs = podman(&["logs", &name]);

    let incident = captures.join("incidents/now");
    verify(&incident);
    let flight_node = captures.join(format!("flight/node={node}"));
    let flight = std::fs::read_dir(&flight_node)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    verify(&flight);
    let events = Capture::open(&incident).unwrap().events().unwrap();
    let setpriv = events
        .iter()
        .find(|e| e.pid == host_pid && e.syscall == "setresuid")
        .unwrap_or_else(|| panic!("no setresuid of host pid {host_pid}: {logs}"));
    assert_eq!(setpriv.new_euid, 1000);
    assert_eq!(setpriv.binary.as_deref(), Some("/usr/bin/setpriv"));
    assert_eq!(setpriv.arguments.as_deref(), Some("--reuid 1000 true"));
    assert_eq!(setpriv.node_name, node);
    assert!(setpriv.container_id.is_none());
    // runc's setup calls come first; su's own change is root -> nobody.
    let su = events
        .iter()
        .find(|e| {
            e.container_id.as_deref() == Some(ctr.as_str())
                && e.syscall == "setuid"
                && e.new_euid == 65534
        })
        .unwrap_or_else(|| panic!("no setuid(65534) in container {ctr}"));
    assert_eq!((su.old_euid, su.binary.as_deref()), (0, Some("/bin/su")));

    // Short of what the DaemonSet grants, one line says what is missing.
    let refused = |drop_arg: &str, add: &[&str]| {
        let mut run: Vec<String> = vec!["--rm".into()];
        run.extend(
            a.podman
                .iter()
                .filter(|p| !p.starts_with(drop_arg))
                .cloned(),
        );
        run.extend(add.iter().map(|s| s.to_string()));
        run.push(tag.into());
        run.extend(["credtrail-record", "--print", "compact", "--duration", "1"].map(String::from));
        let mut cmd = Command::new("podman");
        cmd.args(["--runtime", "runc", "run", "--network", "none"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(&run);
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.lines().last().unwrap_or_default().to_owned()
    };
    let line = refused("--security-opt=seccomp", &[]);
    assert!(line.contains("seccomp Unconfined"), "{line}");
    let line = refused("--cap-add=CAP_SETPCAP", &[]);
    assert!(line.contains("CAP_SETPCAP"), "{line}");
    let line = refused("--cap-add=CAP_SYS_NICE", &[]);
    assert!(
        line.contains("CAP_SYS_NICE") && line.contains("--nice 0"),
        "{line}"
    );
}
