//! Shipping captures to a real S3 server (moto's, from PyPI, installed by
//! scripts/setup and started here on 127.0.0.1), resuming an interrupted
//! shipment, catching tampering in the bucket, and querying the bucket as
//! the local folder is queried.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use credtrail_capture::manifest::Manifest;
use credtrail_testkit::{MotoS3, fixture, query_bin, replay_bin, ship_bin};

const BUCKET: &str = "evidence";

fn moto_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .status();
    if probe.is_ok_and(|s| s.success()) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("moto[server] is missing under CI (scripts/setup installs it)");
    }
    eprintln!("SKIPPED S3 test: python3 -m pip install 'moto[server]'");
    false
}

fn start_s3() -> MotoS3 {
    MotoS3::start(BUCKET)
}

fn boto(s3: &MotoS3, code: &str) -> String {
    s3.boto(code)
}

fn run(s3: &MotoS3, bin: &str, args: &[&str]) -> Output {
    s3.env(Command::new(bin).args(args)).output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A fixture rewritten in the current format under ROOT/node=<its node>/NAME.
fn local_capture(root: &Path, fx: &str, name: &str) -> (PathBuf, String) {
    let tmp = root.join(format!(".{name}"));
    let o = Command::new(replay_bin())
        .arg(fixture(fx))
        .arg("--out")
        .arg(&tmp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let node = Manifest::read(&tmp).unwrap().node_name;
    let dir = root.join(format!("node={node}")).join(name);
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::rename(&tmp, &dir).unwrap();
    (dir, node)
}

/// Every object under `prefix` as `key size`, sorted.
fn listing(s3: &MotoS3, prefix: &str) -> Vec<(String, u64)> {
    let out = boto(
        s3,
        &format!(
            "p = s3.get_paginator('list_objects_v2')\nfor page in p.paginate(Bucket='{BUCKET}', Prefix='{prefix}'):\n    for o in page.get('Contents', []): print(o['Key'], o['Size'])\n"
        ),
    );
    let mut v: Vec<(String, u64)> = out
        .lines()
        .map(|l| {
            let (k, n) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), n.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn uploaded(line: &str) -> (u64, u64) {
    // "... N objects uploaded (B bytes), M already there; ..."
    let n = line.split(": ").last().unwrap();
    let up = n.split(' ').next().unwrap().parse().unwrap();
    let there = n
        .split("), ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (up, there)
}

#[test]
fn ship_resume_tamper_and_query_an_s3_fleet() {
    if !moto_ready() {
        return;
    }
    let s3 = start_s3();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("fleet");
    let (cap_a, node_a) = local_capture(&local, "k8s-xwing-su", "cap-a");
    let (cap_b, node_b) = local_capture(&local, "podman-rootless-setuid", "cap-b");
    assert_ne!(node_a, node_b);
    let url = format!("s3://{BUCKET}/fleet");
    let prefix_a = format!("fleet/node={node_a}/cap-a/");

    // Shipped: every listed file plus the manifest, each the local size.
    let line = ok(run(&s3, ship_bin(), &[cap_a.to_str().unwrap(), &url]));
    let m = Manifest::read(&cap_a).unwrap();
    let objects = m.segments.len() as u64 + 1;
    assert_eq!(uploaded(&line), (objects, 0), "{line}");
    let remote = listing(&s3, &prefix_a);
    assert_eq!(remote.len() as u64, objects);
    for (key, size) in &remote {
        let rel = key.strip_prefix(&prefix_a).unwrap();
        let len = std::fs::metadata(cap_a.join(rel)).unwrap().len();
        assert_eq!(*size, len, "{key}");
    }
    // Again: nothing to do.
    let line = ok(run(&s3, ship_bin(), &[cap_a.to_str().unwrap(), &url]));
    assert_eq!(uploaded(&line), (0, objects), "{line}");

    // Interrupted: the manifest and one segment never arrived, and another
    // key holds a cut-short copy (as a tool without single-request uploads
    // would leave). The resumed shipment sends exactly those three.
    let events_key = format!("{prefix_a}events/part-00000.parquet");
    let lifecycle_key = format!("{prefix_a}lifecycle/part-00000.parquet");
    boto(
        &s3,
        &format!(
            "s3.delete_object(Bucket='{BUCKET}', Key='{prefix_a}manifest.json')\n\
             s3.delete_object(Bucket='{BUCKET}', Key='{lifecycle_key}')\n\
             b = s3.get_object(Bucket='{BUCKET}', Key='{events_key}')['Body'].read()\n\
             s3.put_object(Bucket='{BUCKET}', Key='{events_key}', Body=b[:len(b)//2])\n"
        ),
    );
    let line = ok(run(&s3, ship_bin(), &[cap_a.to_str().unwrap(), &url]));
    assert_eq!(uploaded(&line), (3, objects - 3), "{line}");
    assert_eq!(listing(&s3, &prefix_a), remote, "whole again");

    ok(run(&s3, ship_bin(), &[cap_b.to_str().unwrap(), &url]));

    // The bucket answers as the local folder does.
    let sql = "SELECT node, node_name, syscall, count(*) AS n, sum(CASE WHEN ret < 0 THEN 1 ELSE 0 END) AS failed, \
               max(new_cap_effective) AS caps, min(time_ns) AS first FROM events \
               GROUP BY node, node_name, syscall ORDER BY node, syscall";
    let here = ok(run(
        &s3,
        query_bin(),
        &[local.to_str().unwrap(), "--sql", sql, "--format", "csv"],
    ));
    let there = ok(run(
        &s3,
        query_bin(),
        &[&url, "--sql", sql, "--format", "csv"],
    ));
    assert_eq!(there, here);
    assert!(here.lines().count() > 3, "{here}");
    let status = "SELECT node, state, events_written, events_lost FROM captures WHERE final_row ORDER BY node";
    assert_eq!(
        ok(run(
            &s3,
            query_bin(),
            &[&url, "--sql", status, "--format", "csv"]
        )),
        ok(run(
            &s3,
            query_bin(),
            &[local.to_str().unwrap(), "--sql", status, "--format", "csv"]
        ))
    );
    // --node leaves the other node's capture in the bucket, unread.
    let o = run(
        &s3,
        query_bin(),
        &[&url, "--node", &node_b, "became-root", "--format", "csv"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let answer = ok(o);
    assert!(
        stderr.contains("read 1 captures") && stderr.contains("1 left out"),
        "{stderr}"
    );
    assert!(
        answer.contains(&format!("{url}/node={node_b}/cap-b")),
        "{answer}"
    );

    // A segment altered in the bucket: --verify in place says which.
    let cap_url = format!("{url}/node={node_a}/cap-a");
    ok(run(&s3, replay_bin(), &["--verify", &cap_url]));
    boto(
        &s3,
        &format!(
            "b = bytearray(s3.get_object(Bucket='{BUCKET}', Key='{events_key}')['Body'].read())\n\
             b[200] ^= 1\n\
             s3.put_object(Bucket='{BUCKET}', Key='{events_key}', Body=bytes(b))\n"
        ),
    );
    let o = run(&s3, replay_bin(), &["--verify", &cap_url]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("{cap_url}/events/part-00000.parquet sha256"))
            && stderr.contains("differs from the manifest"),
        "{stderr}"
    );
    // Shipping again puts the right bytes back.
    let line = ok(run(&s3, ship_bin(), &[cap_a.to_str().unwrap(), &url]));
    assert_eq!(uploaded(&line).0, 1, "{line}");
    ok(run(&s3, replay_bin(), &["--verify", &cap_url]));

    // A capture altered on the node is refused before anything is sent.
    let cap_c = cap_a.with_file_name("cap-c");
    std::fs::create_dir(&cap_c).unwrap();
    for e in walk(&cap_a) {
        let to = cap_c.join(e.strip_prefix(&cap_a).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&e, &to).unwrap();
    }
    let seg = cap_c.join("events/part-00000.parquet");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&seg, bytes).unwrap();
    let o = run(&s3, ship_bin(), &[cap_c.to_str().unwrap(), &url]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("altered or truncated"), "{stderr}");
    assert!(listing(&s3, &format!("fleet/node={node_a}/cap-c/")).is_empty());

    // A bucket that does not exist: one line naming what to check.
    let o = run(
        &s3,
        ship_bin(),
        &[cap_b.to_str().unwrap(), "s3://no-such-bucket/x"],
    );
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("check the bucket"), "{stderr}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `--follow` ships a capture while it is written (here by the capture
/// writer itself, rotating every 300 ms) and stops once it is sealed; the
/// bucket then holds exactly the sealed capture, and reads back whole.
#[test]
fn follow_ships_each_segment_as_it_is_sealed() {
    use credtrail_capture::{CaptureWriter, Rotation};
    use credtrail_testkit::samples;
    if !moto_ready() {
        return;
    }
    let s3 = start_s3();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let rotation = Rotation {
        max_age: Duration::from_millis(300),
        ..Rotation::default()
    };
    let mut w = CaptureWriter::create(&dir, samples::manifest(), rotation).unwrap();
    let url = format!("s3://{BUCKET}/fleet");
    let ship = s3
        .env(Command::new(ship_bin()).args([
            dir.to_str().unwrap(),
            &url,
            "--follow",
            "--interval",
            "0.2",
        ]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let node = samples::manifest().node_name;
    let prefix = format!("fleet/node={node}/live/");
    let mut seen_while_recording = 0;
    for i in 0..8u64 {
        for j in 0..50 {
            w.push(&samples::event(i * 100 + j)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(350));
        if w.tick().unwrap() {
            w.write_processes(&[]).unwrap();
        }
        seen_while_recording = listing(&s3, &prefix).len();
    }
    assert!(
        seen_while_recording > 3,
        "segments shipped while recording: {seen_while_recording}"
    );
    let m = w.finish(samples::end()).unwrap();
    let out = ship.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote: Vec<String> = listing(&s3, &prefix)
        .into_iter()
        .map(|(k, _)| k.strip_prefix(&prefix).unwrap().to_owned())
        .collect();
    let mut want: Vec<String> = m.segments.iter().map(|s| s.file.clone()).collect();
    want.push("manifest.json".into());
    want.sort();
    assert_eq!(remote, want);
    // Read back from the bucket, every segment's sha256 checked.
    let n = ok(run(
        &s3,
        query_bin(),
        &[
            &url,
            "--sql",
            "SELECT count(*) AS n FROM events",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(n, format!("n\n{}\n", m.counters.events_written));
    assert_eq!(m.counters.events_written, 400);
}

/// A hostile bucket: an object replaced with other bytes of the same size
/// and the same metadata is shipped again; keys the layout does not allow
/// are passed over by name instead of failing the fleet (and blame no
/// credentials); an object larger than its manifest lists is never fetched.
#[test]
fn a_hostile_bucket_neither_fools_ship_nor_blinds_or_floods_a_query() {
    if !moto_ready() {
        return;
    }
    let s3 = start_s3();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("fleet");
    let (cap, node) = local_capture(&local, "k8s-xwing-su", "cap-h");
    let url = format!("s3://{BUCKET}/hostile");
    ok(run(&s3, ship_bin(), &[cap.to_str().unwrap(), &url]));
    let events_key = format!("hostile/node={node}/cap-h/events/part-00000.parquet");

    // Same size, same credtrail-sha256 metadata, other bytes.
    boto(
        &s3,
        &format!(
            "o = s3.get_object(Bucket='{BUCKET}', Key='{events_key}')\n\
             b = bytearray(o['Body'].read())\n\
             b[200] ^= 1\n\
             s3.put_object(Bucket='{BUCKET}', Key='{events_key}', Body=bytes(b), Metadata=o['Metadata'])\n"
        ),
    );
    let line = ok(run(&s3, ship_bin(), &[cap.to_str().unwrap(), &url]));
    assert_eq!(uploaded(&line).0, 1, "{line}");
    let cap_url = format!("{url}/node={node}/cap-h");
    ok(run(&s3, replay_bin(), &["--verify", &cap_url]));

    // Keys no capture has, anywhere under the prefix.
    boto(
        &s3,
        &format!(
            "for k in ['hostile/node=x/a//b', 'hostile/node=x/../y', 'hostile/e\\x01vil', 'hostile/node={node}/cap-h/.hidden']:\n    s3.put_object(Bucket='{BUCKET}', Key=k, Body=b'x')\n"
        ),
    );
    let o = run(&s3, query_bin(), &[&url, "summary", "--format", "csv"]);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let answer = ok(o);
    assert!(answer.lines().count() >= 2, "{answer}");
    assert!(stderr.contains("passed over 4 object(s)"), "{stderr}");
    assert!(!stderr.contains("credentials"), "{stderr}");
    assert!(
        !stderr.contains('\u{1}'),
        "the key is shown escaped: {stderr}"
    );

    // 64 MiB where the manifest lists a small segment: refused from the
    // listing, before any byte is read (within 256 MiB, page cache and all).
    boto(
        &s3,
        &format!("s3.put_object(Bucket='{BUCKET}', Key='{events_key}', Body=bytes(64 << 20))\n"),
    );
    let mut cmd = Command::new(query_bin());
    s3.env(cmd.args([&url, "summary"]));
    let (o, _) = credtrail_testkit::output_in_memory_cgroup(&mut cmd, 256 << 20);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("67108864 bytes in the bucket, the manifest says"),
        "{stderr}"
    );
    // --verify names it as a problem of that capture.
    let o = run(&s3, replay_bin(), &["--verify", &cap_url]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("not fetched"), "{stderr}");
}
