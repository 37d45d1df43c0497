//! How rows print: the JSON line (the capture's columns, in order) and
//! the compact line.

use credtrail_capture::Table as _;
use credtrail_capture::model::Event;
use credtrail_pipeline::print::{self as output, PrintFormat};
use credtrail_testkit::samples::event;

#[test]
fn json_keys_are_the_event_columns_in_order() {
    // The capture's columns are `Event::fields()` with `time_ns` after
    // `time` (checked in credtrail-capture's tests): a JSON line's keys are
    // the same names in the same order.
    let names: Vec<String> = Event::fields().iter().map(|f| f.name().clone()).collect();
    let json: serde_json::Value =
        serde_json::from_str(&String::from_utf8(json_line(&event(0))).unwrap()).unwrap();
    let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, names);
}

fn json_line(ev: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    output::print_event(&mut out, PrintFormat::Json, ev).unwrap();
    out
}

#[test]
fn json_line_is_flat_with_rfc3339_time() {
    let line = String::from_utf8(json_line(&event(0))).unwrap();
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["time"], "2023-11-14T22:13:20.000000000Z");
    assert_eq!(v["syscall"], "setresuid");
    assert_eq!(v["arg1"], -1);
    assert_eq!(v["old_cap_effective"], u64::MAX);
    assert_eq!(v["groups"], serde_json::Value::Null);
    assert!(
        v.as_object().unwrap().values().all(|v| !v.is_object()),
        "flat"
    );
}

#[test]
fn compact_line_shows_what_changed_and_the_outcome() {
    let mut e = event(0);
    e.set_new_creds(e.old_creds());
    e.new_uid = 0;
    e.new_euid = 0;
    e.ret = 0;
    e.event_flags.clear();
    e.set_ns_ids(None, None);
    let line = output::compact(&e);
    assert_eq!(
        line,
        "22:13:20.000000000 setresuid  pid 4242/4243 (su) /bin/su pod default/xwing/spaceship  setresuid(1001, -1, 9223372036854775807)  uid 1000→0 euid 1001→0  ok root:host"
    );
    e.set_new_creds(e.old_creds());
    e.ret = -1;
    e.set_ns_ids(None, None);
    assert!(output::compact(&e).ends_with("(no change)  EPERM"));
}

#[test]
fn compact_line_shows_namespace_ids_beside_host_ids() {
    use credtrail_capture::model::userns::{Extent, UsernsRow};
    // setuid(0) through the ia32 entry in a rootless container.
    let ns = UsernsRow {
        userns: 4026532999,
        level: 1,
        uid_map: vec![Extent {
            first: 0,
            lower_first: 100_000,
            count: 65536,
        }],
        uid_extents: 1,
        ..Default::default()
    };
    let mut e = event(0);
    e.syscall = "setuid".into();
    e.abi = "ia32".into();
    e.arg0 = 0;
    e.event_flags.clear();
    e.ret = 0;
    let mut c = e.old_creds();
    (c.uid, c.euid, c.suid, c.fsuid) = (101_000, 101_000, 100_000, 101_000);
    c.userns = Some(ns.userns);
    c.userns_level = Some(1);
    e.set_old_creds(c.clone());
    (c.euid, c.fsuid) = (100_000, 100_000);
    e.set_new_creds(c);
    e.set_ns_ids(Some(&ns), Some(&ns));
    let line = output::compact(&e);
    assert!(
        line.ends_with(
            "setuid32(0)  euid 1000→0 (101000→100000 on the host) fsuid 1000→0 (101000→100000 on the host)  ok root:namespace ia32"
        ),
        "{line}"
    );
}
