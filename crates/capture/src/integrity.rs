//! Checksums of segment files.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::CaptureError;
use crate::fs::Dir;

/// Size and sha256 of the file `name` in `dir`.
pub fn hash_file(dir: &Dir, name: &str) -> Result<(u64, String), CaptureError> {
    hash_open_file(&dir.child(name), dir.open_file(name)?)
}

/// Size and sha256 of an open file (`path` names it in errors).
pub fn hash_open_file(path: &Path, f: File) -> Result<(u64, String), CaptureError> {
    let mut r = BufReader::new(f);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(CaptureError::io(path, "read"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// The sha256 of bytes about to be written, as [`hash_file`] reports it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
