//! Shipping one capture: check it, upload what is missing, check what was
//! uploaded; the manifest last, so a reader of the prefix sees a manifest
//! only once every segment it lists is there.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use credtrail_capture::CaptureError;
use credtrail_capture::manifest::{
    CaptureState, MANIFEST_FILE, MAX_MANIFEST_BYTES, Manifest, SIGNATURE_FILE, Segment,
    VerifyingKey,
};
use credtrail_capture::{CaptureFiles, layout, sign};
use credtrail_cli::progress::Progress;

use crate::store::Remote;
use crate::{ShipError, digests};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Check `manifest.json.sig` under this key before shipping.
    pub key: Option<&'a VerifyingKey>,
    /// Keep shipping a running capture, checking its manifest this often,
    /// until it ends.
    pub follow: Option<Duration>,
    /// Delete the local capture once all of it is shipped and checked.
    pub remove_local: bool,
}

/// What [`ship`] did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Where the capture is now: `PREFIX/node=<node>/<name>`.
    pub url: String,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Objects already there with the same sha256.
    pub skipped: usize,
    pub state: Option<CaptureState>,
    pub removed_local: bool,
}

/// Ships the capture `dir` under `remote` (see the crate docs).
pub fn ship(dir: &Path, remote: &Remote, opts: Options) -> Result<Report, ShipError> {
    let name = capture_name(dir)?;
    let mut run = Shipment::new(dir, remote, opts, CaptureFiles::open(dir)?);
    loop {
        let (text, signature) = read_pair(&run.files)?;
        let m = Manifest::parse(&run.files.root().child(MANIFEST_FILE), &text)?;
        let rel = run.destination(&m, name)?;
        run.check_manifest(&m, &text, signature.as_deref())?;
        let pending = run.pending(&m);
        if run.check_pending(&pending)? {
            // A file vanished while following: read the manifest again.
            continue;
        }
        run.upload_segments(&rel, pending)?;
        run.publish_manifest(&rel, &m, text, signature)?;
        run.report.state = Some(m.state);
        match opts.follow {
            Some(every) if m.state == CaptureState::Recording => std::thread::sleep(every),
            _ => break,
        }
    }
    if opts.remove_local {
        std::fs::remove_dir_all(dir).map_err(|e| {
            run.refused(format!("shipped, but removing the local copy failed: {e}"))
        })?;
        run.report.removed_local = true;
    }
    Ok(run.report)
}

fn refusal(dir: &Path, message: String) -> ShipError {
    ShipError::Refused {
        path: dir.display().to_string(),
        message,
    }
}

/// The folder's name, which the capture is shipped under.
fn capture_name(dir: &Path) -> Result<&str, ShipError> {
    dir.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
        .ok_or_else(|| {
            refusal(
                dir,
                "the capture folder has no plain name to ship it under".into(),
            )
        })
}

/// One [`ship`]: what it has learned and done across the manifests it
/// reads (one, or each one while following).
struct Shipment<'a> {
    dir: &'a Path,
    remote: &'a Remote,
    opts: Options<'a>,
    files: CaptureFiles,
    /// The capture's folder in the store, once the first manifest names
    /// its node.
    rel: Option<String>,
    /// What the store held under `rel` before this run.
    there: HashMap<String, (u64, Option<String>)>,
    shipped: HashSet<String>,
    last_manifest: Option<Vec<u8>>,
    /// Files found missing once while following (see `check_pending`).
    gone: HashSet<String>,
    report: Report,
}

impl<'a> Shipment<'a> {
    fn new(dir: &'a Path, remote: &'a Remote, opts: Options<'a>, files: CaptureFiles) -> Self {
        Shipment {
            dir,
            remote,
            opts,
            files,
            rel: None,
            there: HashMap::new(),
            shipped: HashSet::new(),
            last_manifest: None,
            gone: HashSet::new(),
            report: Report::default(),
        }
    }

    fn refused(&self, message: String) -> ShipError {
        refusal(self.dir, message)
    }

    /// The capture's folder in the store: fixed by the first manifest,
    /// when what the store already holds there is listed.
    fn destination(&mut self, m: &Manifest, name: &str) -> Result<String, ShipError> {
        if let Some(r) = &self.rel {
            return Ok(r.clone());
        }
        let r = format!("{}/{name}", layout::node_folder(&m.node_name)?);
        self.there = self
            .remote
            .list(&r)?
            .into_iter()
            .map(|o| (o.rel, (o.size, o.e_tag)))
            .collect();
        self.report.url = self.remote.url_of(&r);
        Ok(self.rel.insert(r).clone())
    }

    /// The manifest may be shipped: ended (unless following), its hash
    /// chain whole, and signed under the key when one is given.
    fn check_manifest(
        &self,
        m: &Manifest,
        text: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<(), ShipError> {
        if m.state == CaptureState::Recording && self.opts.follow.is_none() {
            return Err(self.refused(format!(
                "is still recording (or its recorder died): ship it with --follow while it records, or run `credtrail-record recover {}` first",
                self.dir.display()
            )));
        }
        if let Some(p) = m.check_chain().first() {
            return Err(self.refused(format!("hash chain: {p}")));
        }
        if let Some(key) = self.opts.key {
            let sig = signature.ok_or_else(|| {
                self.refused(format!(
                    "{SIGNATURE_FILE} is missing (was the capture recorded with --sign-key?)"
                ))
            })?;
            let path = self.files.root().child(SIGNATURE_FILE);
            sign::verify_signature_bytes(&path, text, sig, key).map_err(|e| self.refused(e))?;
        }
        Ok(())
    }

    /// The listed segments not yet shipped.
    fn pending<'m>(&self, m: &'m Manifest) -> Vec<&'m Segment> {
        m.segments
            .iter()
            .filter(|s| !s.evicted && !self.shipped.contains(&s.file))
            .collect()
    }

    /// Checks every pending file; true when one vanished while following,
    /// so the manifest is to be read again.
    fn check_pending(&mut self, pending: &[&Segment]) -> Result<bool, ShipError> {
        // Every file checked before the first is sent: a capture altered
        // on the node is refused whole, not half shipped.
        let mut vanished = false;
        for seg in pending {
            match self.files.check_segment(seg) {
                Ok(()) => {}
                // Following a recorder with --max-capture-bytes: a segment
                // evicted since the manifest was read is marked so in the
                // next one (once; a file that stays missing is refused).
                Err(CaptureError::Io { source, .. })
                    if self.opts.follow.is_some()
                        && source.kind() == std::io::ErrorKind::NotFound
                        && self.gone.insert(seg.file.clone()) =>
                {
                    vanished = true;
                }
                Err(e) => return Err(self.refused(format!("{e}: altered or truncated"))),
            }
        }
        Ok(vanished)
    }

    fn upload_segments(&mut self, rel: &str, pending: Vec<&Segment>) -> Result<(), ShipError> {
        let progress = Progress::bar(
            &format!("shipping {}", self.dir.display()),
            pending.iter().map(|s| s.bytes).sum(),
            true,
        );
        for seg in pending {
            // Checked again as sent: the bytes uploaded are the bytes hashed.
            let bytes = read_checked(&self.files, seg).map_err(|e| self.refused(e))?;
            let key = format!("{rel}/{}", seg.file);
            send(self.remote, &key, bytes, &self.there, &mut self.report)?;
            self.shipped.insert(seg.file.clone());
            progress.inc(seg.bytes);
        }
        drop(progress);
        Ok(())
    }

    /// Uploads the manifest and its signature unless they are the ones
    /// last uploaded, after deleting the segments it marks evicted.
    fn publish_manifest(
        &mut self,
        rel: &str,
        m: &Manifest,
        text: Vec<u8>,
        signature: Option<Vec<u8>>,
    ) -> Result<(), ShipError> {
        if self.last_manifest.as_deref() == Some(&text[..]) {
            return Ok(());
        }
        // Segments the recorder evicted (--max-capture-bytes) leave the
        // bucket too, as the manifest about to be uploaded says.
        for seg in m
            .segments
            .iter()
            .filter(|s| s.evicted && s.folded.is_none())
        {
            let key = format!("{rel}/{}", seg.file);
            if self.shipped.remove(&seg.file) || self.there.contains_key(&key) {
                self.remote.delete(&key)?;
            }
        }
        let key = format!("{rel}/{MANIFEST_FILE}");
        let manifest = Bytes::from(text.clone());
        send(self.remote, &key, manifest, &self.there, &mut self.report)?;
        if let Some(sig) = signature {
            let key = format!("{rel}/{SIGNATURE_FILE}");
            send(
                self.remote,
                &key,
                Bytes::from(sig),
                &self.there,
                &mut self.report,
            )?;
        }
        self.last_manifest = Some(text);
        Ok(())
    }
}

/// The manifest and its signature as one pair: the recorder replaces the
/// manifest, then the signature, so both are read until the signature read
/// before the manifest is the one read after it.
fn read_pair(files: &CaptureFiles) -> Result<(Vec<u8>, Option<Vec<u8>>), ShipError> {
    let root = files.root();
    let sig = || -> Result<Option<Vec<u8>>, ShipError> {
        Ok(match root.exists(SIGNATURE_FILE) {
            true => Some(root.read_bounded(SIGNATURE_FILE, 4096)?),
            false => None,
        })
    };
    let mut before = sig()?;
    loop {
        let text = root.read_bounded(MANIFEST_FILE, MAX_MANIFEST_BYTES)?;
        let after = sig()?;
        if after == before {
            return Ok((text, after));
        }
        before = after;
    }
}

/// A listed segment's bytes, refused unless they are the size and sha256
/// the manifest records.
fn read_checked(files: &CaptureFiles, seg: &Segment) -> Result<Bytes, String> {
    let (dir, name) = files.locate(seg).map_err(|e| e.to_string())?;
    let f = dir.open_file(name).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(seg.bytes as usize);
    f.take(seg.bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", dir.child(name).display()))?;
    let (sha, _) = digests(&bytes);
    if bytes.len() as u64 != seg.bytes || sha != seg.sha256 {
        return Err(format!(
            "{} is not the file the manifest lists ({} bytes, sha256 {sha}; the manifest says {} bytes, {}): altered or truncated",
            dir.child(name).display(),
            bytes.len(),
            seg.bytes,
            seg.sha256
        ));
    }
    Ok(Bytes::from(bytes))
}

/// Uploads `bytes` as `key` unless the object there holds these bytes,
/// then checks what the store holds. "Holds these bytes" is the store's
/// own word, never metadata we wrote (anyone who can put an object can
/// copy that): its ETag when that is the MD5 of the content (a single-part
/// upload without KMS), else its bytes read back and hashed.
fn send(
    remote: &Remote,
    key: &str,
    bytes: Bytes,
    there: &HashMap<String, (u64, Option<String>)>,
    report: &mut Report,
) -> Result<(), ShipError> {
    let (sha, md5) = digests(&bytes);
    let len = bytes.len() as u64;
    if let Some((size, e_tag)) = there.get(key)
        && *size == len
    {
        let same = match md5_of_etag(e_tag.as_deref()) {
            Some(t) => t.eq_ignore_ascii_case(&md5),
            None => remote.sha256_of(key)?.as_deref() == Some(sha.as_str()),
        };
        if same {
            report.skipped += 1;
            return Ok(());
        }
    }
    let e_tag = remote.put(key, bytes.clone(), &sha)?;
    check_uploaded(remote, key, len, &sha, &md5, e_tag)?;
    report.uploaded += 1;
    report.uploaded_bytes += len;
    Ok(())
}

/// The object as stored is the bytes sent: its size, and its ETag when
/// that is the MD5 (a single-part upload without KMS), else its bytes read
/// back.
fn check_uploaded(
    remote: &Remote,
    key: &str,
    len: u64,
    sha: &str,
    md5: &str,
    e_tag: Option<String>,
) -> Result<(), ShipError> {
    let bad = |message: String| ShipError::Integrity {
        url: remote.url_of(key),
        message,
    };
    let head = remote
        .head(key)?
        .ok_or_else(|| bad("not there right after its upload".into()))?;
    if head.size != len {
        return Err(bad(format!(
            "holds {} bytes after uploading {len}",
            head.size
        )));
    }
    if md5_of_etag(e_tag.as_deref()) == Some(md5) && md5_of_etag(head.e_tag.as_deref()) == Some(md5)
    {
        return Ok(());
    }
    let back = remote
        .sha256_of(key)?
        .ok_or_else(|| bad("not there right after its upload".into()))?;
    if back != sha {
        return Err(bad("reads back different bytes than were uploaded".into()));
    }
    Ok(())
}

/// The MD5 an ETag is, when it is one (32 hex digits: a single-part
/// upload); None for a multipart (`…-N`) or encrypted object's.
fn md5_of_etag(e_tag: Option<&str>) -> Option<&str> {
    let t = e_tag?.trim_matches('"');
    (t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}
