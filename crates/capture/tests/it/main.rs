//! credtrail-capture's tests, one binary: no root, no kernel.

// The capture format: written, read, sealed, recovered, signed.
mod capture;
// Every saved fuzz input of the capture parsers, replayed.
mod fuzz_regressions;
