//! credtrail's cross-crate tests, one binary.

// Every fixture capture replayed in every print format, against insta snapshots.
mod golden;
// --print tetragon against the field types of Tetragon's API.
mod tetragon_api;
// Each binary's --help, as users see it.
mod help;
// docs/architecture.md names every crate and module.
mod docs;
// Broken, tampered and foreign captures: one clear error, never a panic.
mod bad_input;
// TracingPolicy files: Tetragon's load or fail in one line; replay = query.
mod policy;
// credtrail-query: built-in questions, errors, and DuckDB agreeing.
mod query;
// Issue 35: caps, unexplained and report of 2 M events in a small cgroup, = DuckDB.
mod bounded;
// credtrail-query's terminal tables: per question, widths, colour, pager.
mod tables;
// credtrail-query report in headless Chromium: what it shows, hostile text, its data.
mod report;
// Spark (local-cluster, default settings) reading a fleet of captures.
mod spark;
// credtrail-ship to a real S3 server (moto), resumed, tampered with, queried.
mod ship;
// Root: the live recorder's output equals the replay of what it wrote.
mod live_replay;
// Root: a storm's folded rows, live, replayed, queried and in DuckDB.
mod fold;
// Root: the flight recorder: cuts of a running capture, SIGUSR1, status.
mod flight;
// Root: --metrics-addr scraped by a real Prometheus, = the manifest; JSON logs.
mod metrics;
// Root: --cut-on cuts (unexplained, a storm of them), shipped by ship --follow.
mod incidents;
// Root: pod metadata from a real containerd's CRI socket.
mod cri;
// Root + podman: the node-agent image running the DaemonSet's recorder.
mod deploy;
// Root: recorders killed with SIGKILL, recovered, read by every reader.
mod recovery;
// An analyst without root: replay --inspect / --recover = record inspect / recover.
mod analyst;
// Hostile captures and processes against the real binaries.
mod hostile;
// A hostile user on the node, hostile captures: issue 33's attacks.
mod hostile_node;
