//! What `inspect` and `recover` say about a capture: its manifest in a
//! few lines (counters, losses, recovery, chain head) and its segments as
//! a table, then its events as stored, in a print format.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use credtrail_capture::Capture;
use credtrail_capture::manifest::{Counters, Discarded, Manifest, Recovery};
use credtrail_capture::sign::load_signing_key;
use credtrail_cli::term::safe;
use credtrail_cli::term::table::{Column, Layout, Mark, Table, thousands};

use super::{PrintFormat, print_event};

/// Seals a capture whose recorder died (`credtrail-record recover`,
/// `credtrail-replay --recover`), re-signed with the key at `key` if given,
/// and says on `err` what was sealed, set aside and lost.
pub fn recover(
    program: &str,
    dir: &Path,
    key: Option<&Path>,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let key = key.map(load_signing_key).transpose()?;
    let r = credtrail_capture::recover::recover(dir, key.as_ref())?;
    if !r.changed {
        writeln!(
            err,
            "{program}: {} is complete (state {:?}); nothing to recover",
            dir.display(),
            r.manifest.state
        )?;
        return Ok(());
    }
    let rec = r.manifest.recovery.as_ref();
    writeln!(
        err,
        "{program}: recovered {}: {} segment(s) sealed from checkpoints ({} rows), {} set aside; {} events in all, at least {} lost in the crash; chain head {}",
        dir.display(),
        rec.map_or(0, |r| r.segments.len()),
        rec.map_or(0, |r| r.rows),
        rec.map_or(0, |r| r.discarded.len()),
        r.manifest.counters.events_written,
        rec.map_or(0, |r| r.events_lost_at_least),
        r.manifest.chain_head.as_deref().unwrap_or("-")
    )?;
    for d in rec.iter().flat_map(|r| &r.discarded) {
        writeln!(err, "{program}:   {}", safe(&discarded_line(d)))?;
    }
    for p in &r.problems {
        writeln!(err, "{program}: warning: {}", safe(p))?;
    }
    Ok(())
}

/// A capture's manifest summary on `err` and its events, as stored, on
/// `out` (`credtrail-record inspect`, `credtrail-replay --inspect`).
pub fn inspect(
    dir: &Path,
    print: PrintFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let cap = Capture::open(dir)?;
    // Every field here came from a file someone handed us: through safe().
    for line in summary(dir, &cap.manifest) {
        writeln!(err, "{}", safe(&line))?;
    }
    write_segments(err, &cap.manifest)?;
    stream_events(&cap, print, out)
}

/// The manifest in a few lines, not yet escaped: what and when, the
/// counters, then what only some captures have.
fn summary(dir: &Path, m: &Manifest) -> Vec<String> {
    let mut head = vec![
        format!(
            "capture {} (format v{}, {:?}) node {} kernel {}",
            dir.display(),
            m.format_version,
            m.state,
            m.node_name,
            m.kernel_release
        ),
        format!(
            "  {} .. {}",
            m.start.time,
            m.end.as_ref().map_or("(not sealed)", |e| e.time.as_str())
        ),
        counters_line(&m.counters),
    ];
    push_folds_and_losses(&mut head, m);
    if let Some(why) = m.counters.implausible() {
        head.push(format!("  CORRUPT: {why}"));
    }
    if let Some(e) = &m.error {
        head.push(format!("  stopped early: {e}"));
    }
    if let Some(r) = &m.recovery {
        push_recovery(&mut head, r);
    }
    if let Some(h) = &m.chain_head {
        head.push(format!("  chain head {h}"));
    }
    head
}

/// Events written, seen by the kernel and lost, and why lost.
fn counters_line(c: &Counters) -> String {
    format!(
        "  events {} | kernel {} | lost {} (ringbuf_full {}, enter_store_failures {}, decode_errors {}) | exit_without_enter {}",
        c.events_written,
        c.kernel_events,
        c.lost(),
        c.ringbuf_full,
        c.enter_store_failures,
        c.decode_errors,
        c.exit_without_enter,
    )
}

/// Folding's counts, and who was folded and who lost events, if anyone.
fn push_folds_and_losses(head: &mut Vec<String>, m: &Manifest) {
    let c = &m.counters;
    if c.folded_calls + c.fold_full > 0 {
        head.push(format!(
            "  folded {} calls into {} rows (repeat_count) | fold_full {} (lost)",
            c.folded_calls, c.folded_rows, c.fold_full
        ));
    }
    for (what, by_pid) in [("folded", &m.folded_by_pid), ("lost", &m.lost_by_pid)] {
        if !by_pid.is_empty() {
            head.push(format!(
                "  {what} by process ({} processes): {}",
                by_pid.len(),
                Manifest::most_by_pid(by_pid, 10)
            ));
        }
    }
}

/// What `recover` did, then a line per segment it set aside.
fn push_recovery(head: &mut Vec<String>, r: &Recovery) {
    head.push(format!(
        "  recovered {}: {} segment(s), {} rows sealed from checkpoints; {} set aside; at least {} events lost in the crash",
        r.recovered_at,
        r.segments.len(),
        r.rows,
        r.discarded.len(),
        r.events_lost_at_least
    ));
    head.extend(
        r.discarded
            .iter()
            .map(|d| format!("    {}", discarded_line(d))),
    );
}

/// The segments still held (not evicted) as a table on `err`, if any.
fn write_segments(err: &mut dyn Write, m: &Manifest) -> anyhow::Result<()> {
    // The segments as the query tables show things: counts with separators.
    let mut segments = Table::new(vec![
        Column::new("  SEGMENT"),
        Column::new("ROWS").right(),
        Column::new("BYTES").right(),
        Column::new("SHA256"),
    ]);
    for s in m.segments.iter().filter(|s| !s.evicted) {
        segments.push(
            Mark::Plain,
            vec![
                Some(format!("  {}", s.file)),
                Some(thousands(s.rows)),
                Some(thousands(s.bytes)),
                Some(s.sha256.chars().take(16).collect()),
            ],
        );
    }
    if !segments.rows.is_empty() {
        write!(err, "{}", segments.render(Layout::default()))?;
    }
    Ok(())
}

/// The capture's events in `print` on `out`; a reader that stops early
/// (a closed pipe) ends it quietly.
fn stream_events(cap: &Capture, print: PrintFormat, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    // Streamed: an inspected capture may hold millions of events.
    for ev in cap.stream::<credtrail_capture::model::Event>() {
        let ev = ev?;
        match print_event(&mut out, print, &ev) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("cannot write to stdout")?,
        }
    }
    out.flush().or_else(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    Ok(())
}

/// One line on a segment `recover` set aside: what it held, and why.
fn discarded_line(d: &Discarded) -> String {
    match d {
        Discarded::Segment(d) if d.held_data => format!(
            "set aside {} ({} bytes): at least {} {} row(s) lost ({})",
            d.file, d.bytes, d.rows_at_least, d.table, d.reason
        ),
        Discarded::Segment(d) => format!(
            "set aside {}: an empty file (no row had been flushed to it yet)",
            d.file
        ),
        Discarded::Legacy(file) => format!("set aside {file} (rows not recorded)"),
    }
}
