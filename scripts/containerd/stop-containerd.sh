#!/bin/bash
# Tear down a private containerd started by start-containerd.sh.
# usage: stop-containerd.sh BASE
# Pods should already be gone (StopPodSandbox + RemovePodSandbox through CRI);
# this also handles a test that died half way.
set -uo pipefail
BASE=${1:?usage: stop-containerd.sh BASE}
SOCK=$BASE/containerd.sock
[ -f "$BASE/config.toml" ] || { echo "not a containerd base: $BASE" >&2; exit 1; }

# 1. Kill every task of this instance (k8s.io namespace), remove tasks+containers.
if [ -S "$SOCK" ]; then
  for c in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" 2>/dev/null
  done
  sleep 0.5
  for c in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
    ctr --address "$SOCK" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1
    ctr --address "$SOCK" -n k8s.io containers delete "$c" >/dev/null 2>&1
  done
fi

# 2. Stop containerd itself (its pid file), then any shim still serving this socket
#    (shims outlive containerd by design). Matched by pid via /proc, by our address only.
if [ -f "$BASE/containerd.pid" ]; then
  pid=$(cat "$BASE/containerd.pid")
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
fi
for p in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$cmd" in
    *containerd-shim-runc-v2*"-address $SOCK "*|*containerd-shim-runc-v2*"-address $SOCK") kill -KILL "${p#/proc/}" 2>/dev/null ;;
  esac
done
sleep 0.3

# 3. Unmount whatever is still mounted under BASE (rootfs overlays, sandbox shm), deepest first.
awk -v b="$BASE/" 'index($2, b) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m"
done

# 4. Empty pod cgroups left by cgroupfs-driver pods (the kubelet removes these on a node).
for h in /sys/fs/cgroup/*/; do
  [ -d "$h/kubepods" ] || continue
  find "$h/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null   # cgroup dirs are never "empty" to find
done
# Shims of containerd 1.6 put sockets in /run/containerd/s regardless of `state`.
# ctr (tasks exec/run) puts FIFOs in /run/containerd/fifo. rmdir only removes empty dirs.
rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null

rm -rf "$BASE"
echo "stopped and removed $BASE"
