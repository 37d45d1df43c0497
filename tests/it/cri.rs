//! Root: a real containerd (Debian's 1.6, CRI plugin, runc) started for the
//! test, a pod and container created through the CRI API with labels, and
//! the recorder asking that containerd for pod metadata: the container's
//! setuid is recorded with the pod's labels, uid and image, no `--pods`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use credtrail_capture::model::container::ContainerRow;
use credtrail_cri::CriClient;
use credtrail_cri::testpod::{TestPod, remove_pod, remove_pod_cgroups};
use credtrail_testkit::{Recorder, bpf_available, free_port, http_get, sample, serial};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/containerd")
}

/// A private containerd (own root, state and socket under a temp dir),
/// stopped and cleaned up on drop.
struct Containerd(PathBuf);

impl Containerd {
    fn start() -> Containerd {
        let have = Command::new("containerd").arg("--version").output();
        assert!(
            have.is_ok_and(|o| o.status.success()),
            "containerd is not installed (scripts/setup installs Debian's containerd)"
        );
        let out = Command::new(scripts().join("start-containerd.sh"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start-containerd.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Containerd(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("containerd.sock")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new(scripts().join("stop-containerd.sh"))
            .arg(&self.0)
            .status();
    }
}

#[test]
fn pod_metadata_comes_from_the_runtimes_cri_socket() {
    if !bpf_available() {
        return;
    }
    let _serial = serial();
    let containerd = Containerd::start();
    let sock = containerd.socket();
    let port = free_port();
    let mut rec = Recorder::start(
        false,
        &[
            "--cri-socket",
            sock.to_str().unwrap(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
    );
    // containerd, runc and the pause container make credential calls of
    // their own at start; only the detector's verdict on them matters here.
    rec.expect_unexplained = true;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pod = TestPod::new(
        containerd.0.join("logs/pods"),
        "localhost/credtrail/busybox:1",
    );
    let (cri, sandbox, ctr) = rt.block_on(async {
        let cri = CriClient::connect(&sock, Duration::from_secs(5))
            .await
            .unwrap();
        let (sb, ctr) = pod.run(&cri).await.unwrap();
        (cri, sb, ctr)
    });
    // The container's loop runs su (root -> nobody) every 2 s.
    std::thread::sleep(Duration::from_secs(5));
    let (_, metrics) = http_get(port, "/metrics").unwrap();
    let (_, stderr, cap, _guard) = rec.stop();
    rt.block_on(remove_pod(&cri, &sandbox)).unwrap();
    remove_pod_cgroups(&pod.cgroup_parent);

    assert!(stderr.contains("pod metadata from"), "{stderr}");
    let events = cap.events().unwrap();
    let su = events
        .iter()
        .find(|e| {
            e.container_id.as_deref() == Some(ctr.as_str())
                && e.syscall == "setuid"
                && e.new_euid == 65534
        })
        .unwrap_or_else(|| {
            panic!(
                "no setuid(65534) of container {ctr} in {} events",
                events.len()
            )
        });
    assert_eq!(su.pod_namespace.as_deref(), Some("credtrail-ns"));
    assert_eq!(su.pod_name.as_deref(), Some("cri-pod"));
    assert_eq!(su.pod_uid.as_deref(), Some(pod.uid.as_str()));
    assert_eq!(su.container_name.as_deref(), Some("worker"));
    assert_eq!(su.container_runtime.as_deref(), Some("containerd"));
    assert_eq!(
        su.image_name.as_deref(),
        Some("localhost/credtrail/busybox:1")
    );
    assert!(
        su.image_id
            .as_deref()
            .is_some_and(|i| i.starts_with("localhost/credtrail/busybox@sha256:")),
        "{:?}",
        su.image_id
    );
    assert_eq!(su.pod_labels, vec!["app=credtrail-test".to_owned()]);
    let rows: Vec<ContainerRow> = cap.containers().unwrap();
    let row = rows.iter().find(|r| r.container_id == ctr).unwrap();
    assert!(
        row.pod_annotations
            .contains(&"credtrail.dev/test=yes".to_owned()),
        "{row:?}"
    );
    assert!(row.source.starts_with("cri:"), "{row:?}");
    // Each container's pod came from one lookup, counted and timed.
    let found = sample(&metrics, "credtrail_cri_lookups_total{result=\"found\"}");
    let from_cri = rows.iter().filter(|r| r.source.starts_with("cri:")).count();
    assert!(
        found >= 1.0 && found as usize <= from_cri,
        "{found} lookups found a pod, {from_cri} rows came from the CRI: {metrics}"
    );
    let lookups: f64 = ["found", "not_found", "error"]
        .iter()
        .map(|r| {
            sample(
                &metrics,
                &format!("credtrail_cri_lookups_total{{result=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(
        sample(&metrics, "credtrail_cri_lookup_duration_seconds_count"),
        lookups
    );
}
