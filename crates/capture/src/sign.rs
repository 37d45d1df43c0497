//! Detached ed25519 signatures of the manifest. Keys are the PEM files
//! OpenSSL makes (`openssl genpkey -algorithm ed25519 -out key.pem`,
//! `openssl pkey -in key.pem -pubout -out pub.pem`), and the signature file
//! is the raw 64 bytes `openssl pkeyutl -verify -rawin` checks.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Verifier};

use crate::error::CaptureError;
use crate::fs::Dir;
use crate::manifest::{
    MANIFEST_FILE, MAX_MANIFEST_BYTES, SIGNATURE_FILE, SigningKey, VerifyingKey,
};

fn read_pem(path: &Path) -> Result<String, CaptureError> {
    // A PEM key is a few hundred bytes.
    let bytes =
        crate::fs::read_bounded(path, 64 << 10).map_err(CaptureError::io(path, "read key"))?;
    String::from_utf8(bytes).map_err(|_| CaptureError::Key {
        path: path.to_owned(),
        message: "is not a PEM text file".into(),
    })
}

/// An ed25519 private key, PKCS#8 PEM.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, CaptureError> {
    SigningKey::from_pkcs8_pem(&read_pem(path)?).map_err(|e| CaptureError::Key {
        path: path.to_owned(),
        message: format!(
            "is not an ed25519 private key in PKCS#8 PEM ({e}); make one with `openssl genpkey -algorithm ed25519 -out key.pem`"
        ),
    })
}

/// An ed25519 public key, SubjectPublicKeyInfo PEM.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, CaptureError> {
    VerifyingKey::from_public_key_pem(&read_pem(path)?).map_err(|e| CaptureError::Key {
        path: path.to_owned(),
        message: format!(
            "is not an ed25519 public key in PEM ({e}); derive it with `openssl pkey -in key.pem -pubout -out pub.pem`"
        ),
    })
}

/// Checks `DIR/manifest.json.sig` against `DIR/manifest.json`.
pub fn verify_manifest_signature(dir: &Dir, key: &VerifyingKey) -> Result<(), String> {
    let manifest = dir
        .read_bounded(MANIFEST_FILE, MAX_MANIFEST_BYTES)
        .map_err(|e| e.to_string())?;
    let sig = dir
        .read_bounded(SIGNATURE_FILE, 64)
        .map_err(|e| format!("{e} (was the capture recorded with --sign-key?)"))?;
    verify_signature_bytes(&dir.child(SIGNATURE_FILE), &manifest, &sig, key)
}

/// Checks a signature (from `sig_path`, for messages) of manifest bytes.
pub fn verify_signature_bytes(
    sig_path: &std::path::Path,
    manifest: &[u8],
    sig: &[u8],
    key: &VerifyingKey,
) -> Result<(), String> {
    let sig = Signature::from_slice(sig)
        .map_err(|_| format!("{}: not a 64-byte ed25519 signature", sig_path.display()))?;
    key.verify(manifest, &sig).map_err(|_| {
        format!(
            "{}: signature does not match manifest.json under this key (the manifest was edited, or signed by another key)",
            sig_path.display()
        )
    })
}
