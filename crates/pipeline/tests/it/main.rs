//! credtrail-pipeline's tests, one binary: no root, no kernel.

// How rows print: JSON and compact lines.
mod print;
// `--print tetragon` against Tetragon's own guide.
mod tetragon;
