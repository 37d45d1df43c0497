#!/usr/bin/env python3
"""Build a single-layer OCI image archive (oci-layout tar) from a static busybox.

No registry, no docker/podman needed: the result is imported with
`ctr -n k8s.io images import FILE`. Deterministic (fixed mtimes, sorted
entries), so the same busybox binary always gives the same image digest.

usage: mkimage.py OUT.tar NAME [--busybox /bin/busybox] [--entrypoint ARG ...] [--cmd ARG ...]
  NAME is a full reference, e.g. localhost/credtrail/pause:1
"""
import argparse, hashlib, io, json, tarfile

APPLETS = ["sh", "sleep", "cat", "echo", "id", "ls", "ps", "true", "false",
           "env", "su", "chroot", "setuidgid", "grep", "mkdir", "rm", "hostname"]
MTIME = 0


def add(tar, name, *, data=None, mode=0o644, typ=tarfile.REGTYPE, link=None):
    ti = tarfile.TarInfo(name)
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
    ti.mode, ti.type = mode, typ
    if link is not None:
        ti.linkname = link
    if data is not None:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        tar.addfile(ti)


def layer_tar(busybox_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in ["bin", "dev", "etc", "proc", "sys", "tmp", "var", "var/log"]:
            add(t, d, typ=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        with open(busybox_path, "rb") as f:
            add(t, "bin/busybox", data=f.read(), mode=0o755)
        for a in APPLETS:
            add(t, f"bin/{a}", typ=tarfile.SYMTYPE, link="busybox", mode=0o777)
        add(t, "etc/passwd", data=b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
        add(t, "etc/group", data=b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def blob(t, data):
    d = hashlib.sha256(data).hexdigest()
    add(t, f"blobs/sha256/{d}", data=data)
    return f"sha256:{d}", len(data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out"); p.add_argument("name")
    p.add_argument("--busybox", default="/bin/busybox")
    p.add_argument("--entrypoint", nargs="*", default=None)
    p.add_argument("--cmd", nargs="*", default=["sh"])
    a = p.parse_args()

    layer = layer_tar(a.busybox)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = {"architecture": "amd64", "os": "linux",
           "created": "1970-01-01T00:00:00Z",
           "config": {"Env": ["PATH=/bin"], "Cmd": a.cmd, "WorkingDir": "/"},
           "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
           "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mkimage.py"}]}
    if a.entrypoint:
        cfg["config"]["Entrypoint"] = a.entrypoint
    cfg_b = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()

    with tarfile.open(a.out, "w", format=tarfile.PAX_FORMAT) as t:
        add(t, "blobs", typ=tarfile.DIRTYPE, mode=0o755)
        add(t, "blobs/sha256", typ=tarfile.DIRTYPE, mode=0o755)
        ld, ls = blob(t, layer)
        cd, cs = blob(t, cfg_b)
        man = {"schemaVersion": 2,
               "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]}
        man_b = json.dumps(man, sort_keys=True, separators=(",", ":")).encode()
        md, ms = blob(t, man_b)
        index = {"schemaVersion": 2,
                 "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": md, "size": ms,
                                "platform": {"architecture": "amd64", "os": "linux"},
                                "annotations": {"io.containerd.image.name": a.name,
                                                "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1]}}]}
        add(t, "oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}')
        add(t, "index.json", data=json.dumps(index, sort_keys=True).encode())
    print(f"{a.name} manifest={md} config={cd}")


if __name__ == "__main__":
    main()
