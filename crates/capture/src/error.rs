//! Errors of the capture reader and writer. Each names the file and says
//! what to do, because a responder reads them in the middle of an incident.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{} exists and is not a directory; pass a directory path to --out", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is a symbolic link; refusing to follow it for a capture (pass the real path)", path.display())]
    Symlink { path: PathBuf },
    #[error(
        "{} is not empty and is not a credtrail capture; refusing to write into it (choose a new or empty directory)",
        path.display()
    )]
    ForeignDirectory { path: PathBuf },
    #[error(
        "{} already holds a credtrail capture; refusing to overwrite evidence (choose a new directory)",
        path.display()
    )]
    ExistingCapture { path: PathBuf },
    #[error("{} is not a credtrail capture manifest (no \"format\": \"credtrail-capture\")", path.display())]
    NotACapture { path: PathBuf },
    #[error("{} is not valid manifest JSON: {source}", path.display())]
    Manifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{} has capture format version {found}, but this credtrail reads versions 1 to {supported}; upgrade credtrail",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{}: not a readable Parquet segment: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{}: {message}", path.display())]
    Schema { path: PathBuf, message: String },
    #[error("{} {message}; run credtrail-replay --verify on the capture", path.display())]
    Integrity { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Unsafe { path: PathBuf, message: String },
    #[error("{}: exceeds what credtrail ever writes: {message}; refusing to decode it (crafted or damaged file?)", path.display())]
    Bounds { path: PathBuf, message: String },
    #[error("{} is locked by a running recorder; stop it first (or wait for it to finish)", path.display())]
    Busy { path: PathBuf },
    /// A cut that cannot be made as asked (`capture::cut`).
    #[error("{}: {message}", path.display())]
    Cut { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Recovery { path: PathBuf, message: String },
    /// The fleet layout cannot hold this capture (`capture::layout`).
    #[error("{message}")]
    Layout { message: String },
    #[error("{}: {message}", path.display())]
    Key { path: PathBuf, message: String },
}

impl CaptureError {
    /// `map_err(CaptureError::io(path, "read"))`: an I/O error on `path`,
    /// saying what was being done.
    pub fn io<'a>(
        path: &'a Path,
        op: &'static str,
    ) -> impl FnOnce(std::io::Error) -> CaptureError + 'a {
        move |source| CaptureError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}
