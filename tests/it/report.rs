//! `credtrail-query report` opened in a real browser (headless Chromium,
//! installed by scripts/setup): what the page shows after its script ran,
//! that a hostile capture's text stays text, and the data it embeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use credtrail_query::cli::{Cli, run};

/// Writes the report of `args` (captures and filters) to `out`; returns
/// stderr.
fn report(args: &[&str], out: &Path) -> String {
    let mut argv = vec!["credtrail-query"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["report", "--out", out.to_str().unwrap()]);
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut err = Vec::new();
    let r = run(cli, &mut Vec::new(), &mut err);
    let err = String::from_utf8(err).unwrap();
    assert!(r.is_ok(), "{args:?}: {r:?} {err}");
    err
}

/// Chromium, or None outside CI when it is missing (a failure under CI).
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is missing under CI (scripts/setup installs Debian's chromium)");
        }
        eprintln!("SKIPPED browser test: apt-get install chromium");
    }
    found
}

/// The page's DOM after its scripts ran, as Chromium serializes it.
fn dump_dom(browser: &Path, page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(browser)
        // --no-sandbox: Chromium's sandbox refuses to start as root.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap();
    assert!(dom.contains("</html>"), "no DOM dumped: {dom}");
    dom
}

/// The element with `id="id"`, its markup from its start tag to its end
/// tag (elements of the same name nested in it counted).
fn element<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id}"));
    let start = dom[..at].rfind('<').unwrap();
    let name: String = dom[start + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let mut depth = 0;
    let mut i = start;
    loop {
        let next_open = dom[i + 1..].find(&open).map(|p| p + i + 1);
        let next_close = dom[i..].find(&close).map(|p| p + i).unwrap();
        match next_open {
            Some(o) if o < next_close => {
                depth += 1;
                i = o;
            }
            _ if depth > 0 => {
                depth -= 1;
                i = next_close + 1;
            }
            _ => return &dom[start..next_close + close.len()],
        }
    }
}

/// The value of attribute `name` in the first tag of `markup`.
fn attr<'a>(markup: &'a str, name: &str) -> Option<&'a str> {
    let tag = &markup[..markup.find('>').unwrap()];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"').unwrap()])
}

/// The findings row of `question` whose text holds every one of `needles`.
fn row_with<'a>(dom: &'a str, question: &str, needles: &[&str]) -> &'a str {
    (0..)
        .map(|i| format!("f-{question}-{i}"))
        .take_while(|id| dom.contains(&format!(" id=\"{id}\"")))
        .map(|id| element(dom, &id))
        .find(|row| needles.iter().all(|n| row.contains(n)))
        .unwrap_or_else(|| panic!("no {question} row with {needles:?}"))
}

/// The anchors a row links to: its mark, then its tree if any.
fn links(row: &str) -> Vec<&str> {
    row.split("href=\"#")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect()
}

/// su's privilege raise in the xwing capture (setgroups([0]): it joined
/// group 0) is a findings row, a mark on the timeline (placed by the
/// script) and a process tree with its ancestry.
fn assert_su_raise_shown(dom: &str) {
    // The script ran under the page's Content-Security-Policy.
    assert_eq!(
        attr(element(dom, "timeline-svg"), "data-script"),
        Some("ran")
    );
    assert!(
        element(dom, "ticks").contains("<text"),
        "the script draws the time axis"
    );
    let row = row_with(dom, "groups", &["/bin/su", "setgroups", "+0"]);
    let links = links(row);
    let (mark_id, tree_id) = (links[0], links[1]);
    assert!(
        mark_id.starts_with("m-") && tree_id.starts_with("tree-"),
        "{row}"
    );
    let row_id = attr(row, "id").unwrap();

    let mark = element(dom, mark_id);
    assert_eq!(attr(mark, "class"), Some("mark raise"), "{mark}");
    assert_eq!(attr(mark, "href"), Some(format!("#{row_id}").as_str()));
    assert_eq!(attr(mark, "visibility"), Some("visible"), "{mark}");
    assert!(attr(mark, "transform").unwrap().starts_with("translate("));
    assert!(
        mark.contains("/bin/su") && mark.contains("setgroups") && mark.contains("groups +0"),
        "{mark}"
    );

    let tree = element(dom, tree_id);
    let order: Vec<usize> = [
        "/usr/bin/podman",
        "/usr/bin/conmon",
        "/usr/bin/runc",
        "/bin/bash",
        "/bin/su",
    ]
    .iter()
    .map(|b| {
        tree.find(&format!("<span class=\"bin\">{b}</span>"))
            .unwrap_or_else(|| panic!("{b} is not in the tree: {tree}"))
    })
    .collect();
    assert!(order.is_sorted(), "ancestry root first: {order:?}");
    let target = &tree[tree
        .find("class=\"proc target\"")
        .expect("the raising process")..];
    assert!(target.contains("/bin/su") && target.contains("pod default/xwing"));
    assert!(target.contains("container 61c1cea24bd6"));
    assert!(
        target.contains("credentials before the raise: uid 0 euid 0"),
        "{target}"
    );
    assert!(target.contains("setgroups([0])  groups []→[0]"), "{target}");
    // su then became /bin/sh: a child of its image.
    let child = &tree[tree.find("class=\"proc child\"").expect("su's child")..];
    assert!(
        child.contains("/bin/sh") && child.contains("groups [0]"),
        "{child}"
    );
}

#[test]
fn a_report_needs_a_file_and_no_format() {
    for (args, says) in [
        (vec!["report"], "add --out FILE"),
        (
            vec!["report", "--out", "x.html", "--format", "csv"],
            "--format does not apply to report",
        ),
    ] {
        let mut argv = vec!["credtrail-query", "../fixtures/su-like"];
        argv.extend(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let e = run(cli, &mut Vec::new(), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    assert!(!Path::new("x.html").exists());
}

#[test]
fn xwing_report_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("incident.html");
    let err = report(&["../fixtures/k8s-xwing-su"], &page);
    assert!(err.contains("report written to"), "{err}");
    let bytes = std::fs::metadata(&page).unwrap().len();
    assert!(bytes < 200_000, "{bytes} bytes");
    let Some(browser) = chromium() else { return };
    let dom = dump_dom(&browser, &page);
    assert_su_raise_shown(&dom);
    // A clean capture: no loss warning.
    assert!(!dom.contains("id=\"warnings\""));
    assert!(dom.contains("id=\"no-warnings\""));
    assert!(element(&dom, "nodes").contains("kind-control-plane"));
    assert!(element(&dom, "events").contains("9 credential events"));
}

/// A capture that lost events, made the way the recorder makes one: its
/// writer told the kernel's drop counters.
fn lossy_capture(dir: &Path) {
    use credtrail_capture::manifest::{Counters, Manifest};
    use credtrail_capture::{Capture, CaptureWriter, Rotation};
    let src = Capture::open(&credtrail_testkit::fixture("setuid-eperm")).unwrap();
    let m = &src.manifest;
    let mut manifest = Manifest::new("lossy-node", m.realtime_offset_ns, m.start.ktime_ns);
    manifest.kernel_release = m.kernel_release.clone();
    let mut w = CaptureWriter::create(dir, manifest, Rotation::default()).unwrap();
    w.write_processes(&src.processes().unwrap()).unwrap();
    let mut lifecycle = src.lifecycle().unwrap().into_iter().peekable();
    for mut e in src.events().unwrap() {
        while let Some(p) = lifecycle.next_if(|p| p.seq < e.seq) {
            w.push_lifecycle(&p).unwrap();
        }
        e.node_name = "lossy-node".into();
        w.push(&e).unwrap();
    }
    for p in lifecycle {
        w.push_lifecycle(&p).unwrap();
    }
    w.set_counters(Counters {
        ringbuf_full: 7,
        lifecycle_ringbuf_full: 2,
        ..Counters::default()
    });
    w.finish(m.end.clone().unwrap()).unwrap();
}

#[test]
fn mixed_fixtures_report_warns_of_the_lossy_capture() {
    let tmp = tempfile::tempdir().unwrap();
    let lossy = tmp.path().join("lossy");
    lossy_capture(&lossy);
    // A manifest edited after the fact: its hash chain no longer holds.
    let tampered = tmp.path().join("tampered");
    credtrail_testkit::copy_fixture_to("ia32-int80", &tampered);
    let manifest = tampered.join("manifest.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    v["counters"]["ringbuf_full"] = 0.into();
    v["counters"]["kernel_events"] = 1000.into();
    std::fs::write(&manifest, serde_json::to_vec(&v).unwrap()).unwrap();
    let page = tmp.path().join("incident.html");
    let captures = [
        "../fixtures",
        lossy.to_str().unwrap(),
        tampered.to_str().unwrap(),
    ];
    let err = report(&captures, &page);
    // The terminal says it too, in the same words.
    assert!(
        err.contains("lost 7 events and 2 lifecycle records"),
        "{err}"
    );
    assert!(err.contains("failed verification"), "{err}");
    let Some(browser) = chromium() else { return };
    let dom = dump_dom(&browser, &page);
    assert_su_raise_shown(&dom);
    let warnings = element(&dom, "warnings");
    assert!(
        warnings.contains("lost 7 events and 2 lifecycle records")
            && warnings.contains(lossy.to_str().unwrap()),
        "{warnings}"
    );
    assert!(
        warnings.contains(tampered.to_str().unwrap())
            && warnings.contains("failed verification: its manifest's hash chain does not hold"),
        "{warnings}"
    );
    assert!(!dom.contains("id=\"no-warnings\""));
    // Every fixture's node is in the header, and the refused setuid(0).
    let nodes = element(&dom, "nodes");
    assert!(
        nodes.contains("fixture-node")
            && nodes.contains("kind-control-plane")
            && nodes.contains("lossy-node")
    );
    let refused = row_with(&dom, "failed", &["setuid", "EPERM", "lossy"]);
    let mark = element(&dom, links(refused)[0]);
    assert_eq!(attr(mark, "class"), Some("mark refused"), "{mark}");
}

/// Text a hostile process puts in its name and arguments: markup that
/// would run if the page inserted it as markup.
const SCRIPT: &str = "<script>document.title='PWNED'</script>";
const IMG: &str = "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">";

/// A capture of one process whose binary, arguments, cwd and node name are
/// markup, which becomes root: enriched as the recorder enriches.
fn hostile_capture(dir: &Path) {
    use credtrail_capture::manifest::{Instant as At, Manifest};
    use credtrail_capture::model::{Creds, Event, ProcEvent};
    use credtrail_capture::{CaptureWriter, Rotation};
    use credtrail_pipeline::enrich::{Enricher, StoredPods};
    use credtrail_pipeline::sink::CaptureSink;
    use credtrail_pipeline::sink::Record;
    let node = "node<img src=x onerror=\"document.title='NODE'\">";
    let offset = 1_700_000_000_000_000_000;
    let creds = |euid| Creds {
        uid: 1000,
        euid,
        suid: 1000,
        fsuid: euid,
        ..Creds::default()
    };
    let mut exec = ProcEvent {
        time: offset + 1_000,
        ktime_ns: 1_000,
        seq: 1,
        node_name: node.into(),
        kind: "exec".into(),
        pid: 77,
        tid: 77,
        ppid: 1,
        comm: "evil".into(),
        filename: format!("/tmp/{SCRIPT}"),
        args: vec!["evil".into(), SCRIPT.into(), IMG.into()],
        cwd: format!("/home/{IMG}"),
        ..ProcEvent::default()
    };
    exec.set_creds(creds(1000));
    let mut ev = Event {
        time: offset + 2_000,
        ktime_ns: 2_000,
        seq: 2,
        node_name: node.into(),
        pid: 77,
        tid: 77,
        comm: "evil".into(),
        syscall: "setuid".into(),
        abi: "x64".into(),
        changed: true,
        ..Event::default()
    };
    ev.set_old_creds(creds(1000));
    ev.set_new_creds(creds(0));
    let mut w =
        CaptureWriter::create(dir, Manifest::new(node, offset, 1), Rotation::default()).unwrap();
    w.write_processes(&[]).unwrap();
    let mut sink = CaptureSink::new(Some(w), None);
    let mut enricher = Enricher::new(node, offset, StoredPods::default());
    enricher.apply(Record::Proc(exec), &mut sink).unwrap();
    enricher.apply(Record::Cred(ev), &mut sink).unwrap();
    assert!(sink.write_error.is_none());
    let w = sink.writer.take().unwrap();
    w.finish(At::at(3_000, offset)).unwrap();
}

#[test]
fn hostile_text_shows_as_text_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("hostile");
    hostile_capture(&cap);
    let page = tmp.path().join("incident.html");
    report(&[cap.to_str().unwrap()], &page);
    let raw = std::fs::read_to_string(&page).unwrap();
    // Not one payload reaches the file as markup: escaped in HTML, and in
    // the embedded JSON written so that no `</script>` can end it.
    for bad in ["<script>document", "<img", "onerror=\"document"] {
        assert!(!raw.contains(bad), "{bad:?} is in the page as markup");
    }
    // The data element ends where it should: what precedes its first
    // `</script>` is the whole JSON, payloads included.
    let data = embedded(&page);
    let row = &data["findings"][0]["rows"][0]["cells"];
    let arguments = data["findings"][0]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "ARGUMENTS")
        .unwrap();
    assert_eq!(
        row[arguments],
        format!("{SCRIPT} {IMG}"),
        "arguments: {data}"
    );
    assert_eq!(
        data["trees"][0]["ancestry"][0]["cwd"],
        format!("/home/{IMG}")
    );
    assert!(raw.contains("&lt;script&gt;document.title="));
    assert!(raw.contains("\\u003cscript\\u003edocument.title="));
    assert_eq!(
        raw.matches("<script").count(),
        2,
        "the data and the page's script"
    );
    let csp = &raw[raw.find("Content-Security-Policy").unwrap()..];
    let csp = &csp[..csp.find('>').unwrap()];
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'sha256-")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let Some(browser) = chromium() else { return };
    let dom = dump_dom(&browser, &page);
    // The page's own script ran; nothing the capture holds did.
    assert_eq!(
        attr(element(&dom, "timeline-svg"), "data-script"),
        Some("ran")
    );
    assert!(
        dom.contains("<title>credtrail report: node&lt;img"),
        "the title is unchanged"
    );
    assert!(!dom.contains("PWNED</title>") && !dom.contains("NODE</title>"));
    assert!(!dom.contains("data-pwned=\"1\""));
    assert!(!dom.contains("<img"));
    assert_eq!(dom.matches("<script").count(), 2);
    // ... and it is all on the page, as text.
    let row = row_with(&dom, "became-root", &["setuid"]);
    assert!(
        row.contains("/tmp/&lt;script&gt;document.title='PWNED'&lt;/script&gt;"),
        "{row}"
    );
    assert!(row.contains("\"&gt;&lt;img src=x onerror="), "{row}");
    let tree = element(&dom, links(row)[1]);
    assert!(
        tree.contains("&lt;script&gt;document.title='PWNED'&lt;/script&gt; \"&gt;&lt;img src=x"),
        "{tree}"
    );
    assert!(element(&dom, "nodes").contains("node&lt;img src=x onerror="));
}

/// The data the page embeds (the JSON of the timeline, findings and
/// trees), as the page's script and other tools read it.
fn embedded(page: &Path) -> serde_json::Value {
    let raw = std::fs::read_to_string(page).unwrap();
    let open = "<script id=\"credtrail-data\" type=\"application/json\">";
    let start = raw.find(open).unwrap() + open.len();
    let end = start + raw[start..].find("</script>").unwrap();
    serde_json::from_str(&raw[start..end]).unwrap()
}

/// Snapshot names of `embedded_data_snapshots`.
pub const SNAPSHOTS: [&str; 2] = ["report_xwing", "report_pod_filter"];

#[test]
fn embedded_data_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("incident.html");
    let cases = [
        ("report_xwing", vec!["../fixtures/k8s-xwing-su"]),
        (
            "report_pod_filter",
            vec!["../fixtures", "--pod", "default/xwing"],
        ),
    ];
    assert_eq!(cases.iter().map(|c| c.0).collect::<Vec<_>>(), SNAPSHOTS);
    for (name, args) in cases {
        report(&args, &page);
        let data = embedded(&page);
        insta::assert_snapshot!(name, serde_json::to_string_pretty(&data).unwrap());
    }
}
