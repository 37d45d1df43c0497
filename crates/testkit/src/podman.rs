//! podman for the container tests: runc, a busybox image built from
//! busybox-static (no registry needed), and the options every test
//! container gets.

use std::path::Path;
use std::process::Command;

pub const IMAGE: &str = "localhost/credtrail-busybox:test";

/// podman with runc and a busybox image built from busybox-static (no
/// registry is needed). Fails under CI when podman cannot run.
pub fn podman_ready() -> bool {
    let fail = |why: String| {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("podman cannot run here, so the container test cannot: {why}");
        }
        eprintln!(
            "SKIPPED container test: {why} (scripts/setup installs podman, runc, busybox-static)"
        );
        false
    };
    match Command::new("podman").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return fail(format!(
                "podman --version: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return fail(format!("podman: {e}")),
    }
    let exists = Command::new("podman")
        .args(["image", "exists", IMAGE])
        .status()
        .unwrap();
    if exists.success() {
        return true;
    }
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return fail("/bin/busybox is missing".into());
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::copy(busybox, r.join("bin/busybox")).unwrap();
    for applet in ["sh", "su", "id", "cat", "ls", "sleep"] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    let tar = root.path().with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(r)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new("podman")
        .arg("import")
        .arg(&tar)
        .arg(IMAGE)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tar);
    if !o.status.success() {
        return fail(format!(
            "podman import: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    true
}

pub fn podman(args: &[&str]) -> String {
    let o = Command::new("podman").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

/// The options every test container gets here: no network, bounded file
/// and process counts.
const CONTAINER_OPTIONS: [&str; 6] = [
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// `podman --runtime runc SUBCOMMAND` with [`CONTAINER_OPTIONS`], then
/// `args`.
pub fn podman_container(subcommand: &str, args: &[&str]) -> String {
    let mut all = vec!["--runtime", "runc", subcommand];
    all.extend_from_slice(&CONTAINER_OPTIONS);
    all.extend_from_slice(args);
    podman(&all)
}

/// The command line `podman --runtime runc run --rm` of a test container
/// ([`CONTAINER_OPTIONS`]) running `args`, for a command to record.
pub fn podman_run_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["podman", "--runtime", "runc", "run", "--rm"];
    all.extend_from_slice(&CONTAINER_OPTIONS);
    all.extend_from_slice(args);
    all
}
