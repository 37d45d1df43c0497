//! The report as one HTML page, from [`Report`]. Markup is maud's, checked
//! at compile time, every value escaped: names, arguments and paths come
//! from processes an attacker may control, and must show as text. The data
//! is also embedded as JSON for the script and for other tools, with `<`,
//! `>` and `&` escaped so that nothing in it can end its element. A
//! Content-Security-Policy allows only the page's own style and script (by
//! their hashes), no network and no plugins: a missed escape still runs
//! nothing.

use std::collections::HashMap;

use base64::Engine as _;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use super::data::{
    DROP, Findings, Lane, Mark, RAISE, REFUSED, Report, Timeline, Tree, TreeNode, UNEXPLAINED,
};
use crate::QueryError;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// The SVG's coordinate system: lane labels left of X0, the range over W.
const VIEW_W: f64 = 1200.0;
const X0: f64 = 270.0;
const W: f64 = VIEW_W - X0 - 12.0;
const AXIS_H: f64 = 22.0;
const LANE_H: f64 = 22.0;

/// Columns whose values can be long (paths, arguments, capability lists).
const LONG: [&str; 12] = [
    "binary",
    "arguments",
    "parent_binary",
    "capture",
    "effective",
    "permitted",
    "inheritable",
    "bounding",
    "ambient",
    "change",
    "exec_id",
    "groups",
];

/// The page.
pub fn render(r: &Report) -> Result<String, QueryError> {
    let data = script_json(r)?;
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; img-src 'none'; base-uri 'none'; form-action 'none'",
        hash(CSS),
        hash(JS)
    );
    let kinds: HashMap<&str, &str> = r
        .timeline
        .marks
        .iter()
        .map(|m| (m.id.as_str(), m.kind))
        .collect();
    let title = format!(
        "credtrail report: {}{}",
        r.header.nodes.join(", "),
        r.header
            .start
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default()
    );
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(csp);
                meta name="referrer" content="no-referrer";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (header(r))
                nav {
                    a href="#timeline" { "Timeline" }
                    a href="#findings" { "Findings" }
                    a href="#trees" { "Process trees" }
                }
                (timeline(&r.timeline))
                section #findings {
                    h2 { "Findings" }
                    p.note {
                        "Each table is the answer of the question named, with the same filters; "
                        "a row links to its mark on the timeline and, for a privilege raise, to its process tree."
                    }
                    @for f in &r.findings { (findings(f, &kinds)) }
                }
                section #trees {
                    h2 { "Process trees around privilege raises" }
                    @if r.trees.is_empty() {
                        p.note { "No privilege was raised in these captures (as the filters keep them)." }
                    }
                    @for t in &r.trees { (tree(t)) }
                }
                script type="application/json" #credtrail-data { (PreEscaped(data)) }
                script { (PreEscaped(JS)) }
            }
        }
    };
    Ok(page.into_string())
}

/// The data as JSON that can sit inside a `<script>` element: `<`, `>`
/// and `&` (only ever inside strings) written as `\u003c`, `\u003e`,
/// `\u0026`, so that no `</script>` or `<!--` can appear.
pub fn script_json(r: &Report) -> Result<String, QueryError> {
    let json =
        serde_json::to_string(r).map_err(|e| QueryError::Invalid(format!("report data: {e}")))?;
    Ok(json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// A CSP hash source for an inline element's exact text.
fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn header(r: &Report) -> Markup {
    let h = &r.header;
    html! {
        header {
            h1 { "credtrail incident report" }
            @if h.warnings.is_empty() {
                p #no-warnings .ok {
                    "Every capture is sealed, lost no event, and verified "
                    "(see each capture's checks below)."
                }
            } @else {
                section #warnings .warnings role="alert" {
                    h2 { "Warning: these captures are incomplete or unverified" }
                    ul {
                        @for w in &h.warnings {
                            li class=(w.kind) { (w.text) }
                        }
                    }
                }
            }
            dl.facts {
                dt { "nodes" }
                dd #nodes { (h.nodes.join(", ")) }
                dt { "time range" }
                dd #range {
                    @match (&h.start, &h.end) {
                        (Some(s), Some(e)) => { (s) " – " (e) " (UTC)" },
                        _ => { "no events" },
                    }
                }
                dt { "events" }
                dd #events { (thousands(h.events)) " credential events" }
                dt { "filters" }
                dd {
                    @if h.filters.is_empty() { "none" } @else { code { (h.filters.join(" ")) } }
                }
            }
            h3 { "Captures" }
            div.scroll {
                table #captures {
                    thead { tr {
                        th { "capture" } th { "node" } th { "state" } th { "format" }
                        th { "events written" } th { "events lost" } th { "lifecycle lost" } th { "checked" }
                    } }
                    tbody {
                        @for c in &h.captures {
                            tr {
                                td.long { (c.name) } td { (c.node) } td { (c.state) }
                                td { (c.format_version) } td { (thousands(c.events_written)) }
                                td { (thousands(c.events_lost)) } td { (thousands(c.lifecycle_lost)) }
                                td { (c.verification) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// The mark's shape, centred on (0, 0).
fn shape(kind: &str) -> &'static str {
    match kind {
        RAISE => "M0,-7L6,5L-6,5Z",
        REFUSED => "M-5,-3L-3,-5L0,-2L3,-5L5,-3L2,0L5,3L3,5L0,2L-3,5L-5,3L-2,0Z",
        UNEXPLAINED => "M-5,-5h10v10h-10Z",
        _ => "M0,-6L6,0L0,6L-6,0Z",
    }
}

fn timeline(t: &Timeline) -> Markup {
    let h = AXIS_H + LANE_H * t.lanes.len() as f64 + 4.0;
    let x = |us: i64| X0 + us as f64 / t.span_us as f64 * W;
    let max_n = t
        .lanes
        .iter()
        .flat_map(|l| l.cells.iter().map(|c| c.1))
        .max()
        .unwrap_or(1);
    let slice = t.span_us as f64 / f64::from(t.buckets);
    html! {
        section #timeline {
            h2 { "Timeline" }
            p.note {
                span.kind.raise {} "privilege raised (root, a capability, a group) "
                span.kind.drop {} "privilege given up "
                span.kind.refused {} "refused attempt "
                span.kind.unexplained {} "unexplained change. "
                "Grey bars count credential events per slice of time on a log scale, "
                "the blue part the refused ones. Each mark links to its findings row."
            }
            @if t.lanes.is_empty() {
                p.note { "No event to draw." }
            } @else {
                div.zoom {
                    label for="zoom-from" { "from" }
                    input #zoom-from type="text" value=(t.start.clone().unwrap_or_default());
                    label for="zoom-to" { "to" }
                    input #zoom-to type="text";
                    button #zoom-apply type="button" { "Zoom" }
                    button #zoom-reset type="button" { "Whole range" }
                    span #zoom-shown .note { "whole range" }
                    span.note { "(or drag across the timeline; double-click for the whole range)" }
                }
                svg #timeline-svg xmlns="http://www.w3.org/2000/svg"
                    viewBox=(format!("0 0 {VIEW_W} {h}")) data-x0=(X0) data-w=(W) data-h=(h)
                    data-axis-h=(AXIS_H) data-lane-h=(LANE_H) {
                    @for (i, lane) in t.lanes.iter().enumerate() {
                        (lane_row(i, lane, max_n, slice, &x))
                    }
                    defs {
                        @for kind in [RAISE, DROP, REFUSED, UNEXPLAINED] {
                            path id=(format!("shape-{kind}")) d=(shape(kind)) {}
                        }
                    }
                    g #ticks {}
                    rect #zoom-sel x="0" y=(AXIS_H) width="0" height=(h - AXIS_H) visibility="hidden" {}
                    @for m in &t.marks { (mark(m, &x)) }
                }
            }
            @if !t.notes.is_empty() {
                ul.note { @for n in &t.notes { li { (n) } } }
            }
        }
    }
}

fn lane_row(i: usize, lane: &Lane, max_n: u64, slice: f64, x: &dyn Fn(i64) -> f64) -> Markup {
    let top = AXIS_H + LANE_H * i as f64;
    html! {
        g.lane data-lane=(i) {
            @if i.is_multiple_of(2) {
                rect.lane-bg x="0" y=(top) width=(VIEW_W) height=(LANE_H) {}
            }
            text x="4" y=(top + 15.0) {
                (shorten(&lane.label, 40))
                title { (lane.label) " (" (thousands(lane.events)) " events)" }
            }
            path.bar id=(format!("bars-{i}")) d=(bars(lane, top, max_n, slice, x, false)) {
                title { (lane.label) ": " (thousands(lane.events)) " events" }
            }
            path.bar.refused id=(format!("refused-{i}")) d=(bars(lane, top, max_n, slice, x, true)) {}
        }
    }
}

/// A lane's bars as one path (a rectangle per time slice with events; the
/// refused part of each when `refused`): one element per lane keeps the
/// page small with many slices. The script draws the same when zooming.
fn bars(
    lane: &Lane,
    top: f64,
    max_n: u64,
    slice: f64,
    x: &dyn Fn(i64) -> f64,
    refused: bool,
) -> String {
    let full = (LANE_H - 6.0) / ((max_n as f64) + 1.0).ln();
    let bottom = top + LANE_H - 3.0;
    let mut d = String::new();
    for (b, n, r) in &lane.cells {
        let height = (((*n as f64) + 1.0).ln() * full).max(2.0);
        let height = match refused {
            false => height,
            true if *r == 0 => continue,
            true => (height * *r as f64 / *n as f64).max(1.0),
        };
        let left = x((f64::from(*b) * slice) as i64);
        let width = (x((f64::from(*b + 1) * slice) as i64) - left).max(0.6);
        d.push_str(&format!(
            "M{:.1} {:.1}h{:.1}v{:.1}h{:.1}Z",
            left,
            bottom - height,
            width,
            height,
            -width
        ));
    }
    d
}

fn fmt(v: f64) -> String {
    format!("{v:.2}")
}

fn mark(m: &Mark, x: &dyn Fn(i64) -> f64) -> Markup {
    let y = AXIS_H + LANE_H * m.lane as f64 + LANE_H / 2.0;
    html! {
        a id=(m.id) class=(format!("mark {}", m.kind)) href=(format!("#{}", m.finding))
            data-t=(m.t_us) data-y=(y) transform=(format!("translate({} {})", fmt(x(m.t_us)), y)) {
            use href=(format!("#shape-{}", m.kind)) {}
            title { (m.label) }
        }
    }
}

fn findings(f: &Findings, kinds: &HashMap<&str, &str>) -> Markup {
    html! {
        section id=(format!("findings-{}", f.question)) {
            h3 {
                (f.title) " "
                span.note { "(" code { "credtrail-query CAPTURES " (f.question) } ": " (f.total) " rows)" }
            }
            @if f.rows.is_empty() {
                p.note { "None." }
            } @else {
                @if f.total > f.rows.len() {
                    p.note { "The first " (f.rows.len()) " rows; the question lists all " (f.total) "." }
                }
                div.scroll {
                    table {
                        thead { tr {
                            th { "" } th { "see" }
                            @for c in &f.columns { th { (c) } }
                        } }
                        tbody {
                            @for row in &f.rows {
                                tr id=(row.id) {
                                    td { span class=(format!("kind {}", kinds.get(row.mark.as_str()).unwrap_or(&""))) {} }
                                    td {
                                        a href=(format!("#{}", row.mark)) { "timeline" }
                                        @if let Some(t) = &row.tree {
                                            " " a href=(format!("#{t}")) { "tree" }
                                        }
                                    }
                                    @for (c, v) in f.columns.iter().zip(&row.cells) {
                                        @if LONG.contains(&c.as_str()) {
                                            td.long { (v.as_deref().unwrap_or("–")) }
                                        } @else {
                                            td { (v.as_deref().unwrap_or("–")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn tree(t: &Tree) -> Markup {
    html! {
        article.tree-card id=(t.id) {
            h3 {
                @match t.ancestry.last() {
                    Some(n) => { "pid " (n.pid) " " (n.binary) },
                    None => { "exec_id " (t.exec_id) },
                }
                " " a href=(format!("#{}", t.finding)) { "(findings row)" }
            }
            @if t.ancestry.is_empty() {
                p.note { "The replay of " (t.capture) " did not meet this process image; its tree is unknown." }
            } @else {
                ul.tree {
                    @if t.ancestors_left_out > 0 {
                        li.note { "… " (t.ancestors_left_out) " more ancestors above, counted but not kept" }
                    }
                    (chain(&t.ancestry, t))
                }
            }
        }
    }
}

/// `nodes` (root first) as nested lists, the raising process last with its
/// children under it. A loop, not a recursion: nothing a capture holds sets
/// how deep this code goes.
fn chain(nodes: &[TreeNode], t: &Tree) -> Markup {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        out.push_str("<li>");
        if i + 1 < nodes.len() {
            out.push_str(&process(n, "", "credentials then").into_string());
            out.push_str("<ul>");
            continue;
        }
        let target = html! {
            (process(n, "target", "credentials before the raise"))
            @if let Some(r) = &t.raise {
                div.change.mono { "the raise: " (r) }
            }
            @if !t.children.is_empty() || t.children_left_out > 0 {
                ul {
                    @for c in &t.children {
                        li { (process(c, "child", "credentials when it started")) }
                    }
                    @if t.children_left_out > 0 {
                        li.note { "… and " (t.children_left_out) " more children" }
                    }
                }
            }
        };
        out.push_str(&target.into_string());
    }
    for i in (0..nodes.len()).rev() {
        if i + 1 < nodes.len() {
            out.push_str("</ul>");
        }
        out.push_str("</li>");
    }
    PreEscaped(out)
}

fn process(n: &TreeNode, role: &str, creds_label: &str) -> Markup {
    html! {
        div class=(format!("proc {role}")) data-pid=(n.pid) {
            span.pid { "pid " (n.pid) } " "
            span.bin { (n.binary) } " "
            span.args.mono { (n.arguments) }
            div.meta {
                "started " (n.start)
                @if let Some(p) = &n.pod { " · pod " (p) }
                @if let Some(c) = &n.container { " · container " (c) }
                " · cwd " (n.cwd)
                " · exec_id " code { (n.exec_id) }
            }
            @if let Some(c) = &n.creds {
                div.creds { (creds_label) ": " (c) }
            }
            @if let Some(x) = &n.exec_change {
                div.change { "its exec changed " (x) }
            }
        }
    }
}
