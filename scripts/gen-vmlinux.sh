#!/usr/bin/env bash
# Regenerates the committed vmlinux.h from the running kernel's BTF.
# CO-RE relocations make the compiled program portable; this header only has to
# describe the types, so regenerate it when a newer kernel adds fields we read.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/crates/recorder-bpf/include/$(uname -m)/vmlinux.h"
mkdir -p "$(dirname "$out")"
bpftool btf dump file /sys/kernel/btf/vmlinux format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l < "$out") lines) from kernel $(uname -r)"
