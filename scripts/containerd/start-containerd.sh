#!/bin/bash
# Start a private containerd 1.6 (Debian package) with the CRI plugin, as root,
# fully separate from any system containerd. Prints the base dir on stdout.
# usage: start-containerd.sh [BASE]   (default: mktemp -d /tmp/ctrd.XXXXXX)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BASE=${1:-$(mktemp -d /tmp/ctrd.XXXXXX)}
mkdir -p "$BASE"/{root,state,runc,opt,cni/net.d,cni/bin,images,logs}
SOCK=$BASE/containerd.sock            # keep $BASE short: unix socket paths are <108 bytes
SNAP=${SNAPSHOTTER:-overlayfs}        # overlayfs works on ext4 here; "native" is the fallback

cat > "$BASE/config.toml" <<TOML
version = 2                            # containerd 1.6 reads v2 (v3 is 2.x only)
root  = "$BASE/root"
state = "$BASE/state"
oom_score = 0
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$BASE/opt"                 # default /opt/containerd would touch the host
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "localhost/credtrail/pause:1"
    disable_apparmor = true            # no AppArmor on this kernel; harmless if present
    restrict_oom_score_adj = true      # we lack CAP_SYS_RESOURCE: pause wants oom_score_adj -998
    enable_unprivileged_ports = false
    enable_unprivileged_icmp = false   # both need a pod netns sysctl; host-network pods have none
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    systemd_cgroup = false
    disable_cgroup = false
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "$SNAP"
      default_runtime_name = "runc"
      discard_unpacked_layers = false
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "$BASE/runc"          # default /run/containerd/runc
          SystemdCgroup = false        # cgroupfs driver: PID 1 is not systemd here
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir  = "$BASE/cni/bin"       # empty: host-network pods only
      conf_dir = "$BASE/cni/net.d"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = ""
TOML

containerd --config "$BASE/config.toml" >"$BASE/containerd.log" 2>&1 &
echo $! > "$BASE/containerd.pid"
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { cat "$BASE/containerd.log" >&2; exit 1; }

# Offline images: build OCI archives from busybox-static, import into the CRI namespace.
python3 "$here/mkimage.py" "$BASE/images/pause.tar" localhost/credtrail/pause:1 \
    --entrypoint /bin/sleep 2147483647 --cmd >&2
python3 "$here/mkimage.py" "$BASE/images/busybox.tar" localhost/credtrail/busybox:1 --cmd sh >&2
for img in pause busybox; do
  # --base-name: names come out as localhost/credtrail/IMG:1 and, with --digests,
  # localhost/credtrail/IMG@sha256:<manifest> (CRI repo_digests / image_ref).
  ctr --address "$SOCK" -n k8s.io images import --base-name "localhost/credtrail/$img" --digests \
      --snapshotter "$SNAP" "$BASE/images/$img.tar" >&2
done
echo "$BASE"
