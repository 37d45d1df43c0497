//! credtrail-ship: sealed captures to object storage, and back.
//!
//! [`upload::ship`] checks a capture (every listed file's size and sha256,
//! the hash chain, the signature when a key is given), then uploads its
//! sealed segments, its manifest and signature under the fleet layout
//! (`PREFIX/node=<node>/<capture folder>/…`), checking each object after
//! upload and skipping objects already there with the same sha256; with
//! `--follow` it ships each segment of a running recorder as it is sealed,
//! or ([`follow`]) each capture of a folder of captures as it appears.
//! [`fetch::fetch`] brings captures under a prefix back to a local folder,
//! pruned by node and time range before any segment is read, so that
//! credtrail-query and `credtrail-replay --verify` read them as local ones
//! (every segment's sha256 is checked there, which needs its bytes).

pub mod cli;
pub mod fetch;
pub mod follow;
pub mod localize;
pub mod store;
pub mod upload;

use credtrail_capture::CaptureError;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{url}: {message}")]
    Url { url: String, message: String },
    #[error("{url}: {source}{}", hint(source))]
    Store {
        url: String,
        source: object_store::Error,
    },
    #[error("{url}: {message}")]
    Listing { url: String, message: String },
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("{path}: {message}; nothing more was uploaded")]
    Refused { path: String, message: String },
    #[error("{url}: {message}")]
    Integrity { url: String, message: String },
}

/// What to check, for the errors the bucket, the endpoint or credentials
/// can cause (and only those: a bad object is not a credentials problem).
fn hint(e: &object_store::Error) -> &'static str {
    match e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Generic { .. } => {
            " (check the bucket, --endpoint, and credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE is not read)"
        }
        _ => "",
    }
}

/// sha256 and MD5 of bytes, hex.
pub(crate) fn digests(bytes: &[u8]) -> (String, String) {
    // One trait for both (the RustCrypto `digest` crate).
    use sha2::Digest as _;
    (
        hex::encode(sha2::Sha256::digest(bytes)),
        hex::encode(md5::Md5::digest(bytes)),
    )
}
