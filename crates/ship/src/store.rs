//! Object storage named by URL (`s3://bucket/prefix`), through the
//! `object_store` crate: S3 and S3-compatible servers (`--endpoint`), with
//! credentials from object_store's AWS chain (the `AWS_*` environment,
//! web identity as on EKS, container and instance metadata).

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{
    ClientOptions, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector,
};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};

use crate::ShipError;

/// The user metadata each uploaded object carries: its sha256, as the
/// manifest records it, so a resumed upload can tell an object already
/// there from one that only has the same name.
const SHA256_META: &str = "credtrail-sha256";

/// Requests in flight at once when fetching many objects.
pub const FETCHES: usize = 16;
/// Objects listed under one prefix at most: a bucket is not trusted to be
/// small, and every listed key is held in memory.
pub const MAX_LISTED: usize = 4_000_000;
/// One listing page (S3 sends at most 1,000 keys, ~300 KB).
const MAX_PAGE_BYTES: usize = 16 << 20;

/// A URL's bucket and key prefix in an object store.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// The same store, for its credentials (the listing is made here).
    s3: Arc<AmazonS3>,
    /// `https://…/BUCKET` (path style) or `https://BUCKET.…` (virtual hosted).
    bucket_url: String,
    region: String,
    allow_http: bool,
    /// Keys start with this (no leading or trailing '/'); may be empty.
    prefix: String,
    /// The URL without a trailing '/', for messages and `capture` names.
    url: String,
    rt: tokio::runtime::Runtime,
}

/// An object as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the remote's prefix, as the store sent it (any
    /// bytes: readers check it against the layout before using it).
    pub rel: String,
    pub size: u64,
    /// The store's ETag (the MD5 of the bytes for a single-part upload).
    pub e_tag: Option<String>,
}

/// An object's metadata as a HEAD request gives it.
#[derive(Debug, Clone)]
pub struct Head {
    pub size: u64,
    pub e_tag: Option<String>,
    pub sha256: Option<String>,
}

/// Whether a capture argument names object storage rather than a folder.
pub fn is_remote(arg: &str) -> bool {
    arg.starts_with("s3://")
}

impl Remote {
    /// Opens `url` (`s3://bucket[/prefix]`); `endpoint` for an
    /// S3-compatible server (plain http allowed only when asked for so).
    pub fn open(url: &str, endpoint: Option<&str>) -> Result<Remote, ShipError> {
        let bad = |why: &str| ShipError::Url {
            url: url.to_owned(),
            message: why.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("only s3:// URLs are supported (s3://bucket/prefix)"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket: write s3://bucket/prefix"));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
            return Err(bad("the prefix has an empty, '.' or '..' component"));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
        let endpoint = endpoint.or(env_endpoint.as_deref());
        if let Some(e) = endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let region = b
            .get_config_value(&AmazonS3ConfigKey::Region)
            .unwrap_or_else(|| "us-east-1".into());
        let virtual_hosted = b
            .get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v == "true");
        let bucket_url = match (endpoint, virtual_hosted) {
            (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
            (Some(e), true) => e.trim_end_matches('/').to_owned(),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let s3 = Arc::new(b.build().map_err(|source| ShipError::Store {
            url: url.to_owned(),
            source,
        })?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(&format!("cannot start the I/O runtime: {e}")))?;
        Ok(Remote {
            store: Arc::clone(&s3) as Arc<dyn ObjectStore>,
            s3,
            bucket_url,
            region,
            allow_http: endpoint.is_some_and(|e| e.starts_with("http://")),
            url: format!(
                "s3://{bucket}{}{prefix}",
                if prefix.is_empty() { "" } else { "/" }
            ),
            prefix,
            rt,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of `rel` under the prefix.
    pub fn url_of(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{rel}", self.url)
        }
    }

    fn key(&self, rel: &str) -> Key {
        let full = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        // As listed, not percent-encoded again: a key with `~` or `#`
        // that a listing returned must name the same object when asked for.
        Key::parse(&full).unwrap_or_else(|_| Key::from(full))
    }

    fn err(&self, rel: &str) -> impl Fn(object_store::Error) -> ShipError + '_ {
        let url = self.url_of(rel);
        move |source| ShipError::Store {
            url: url.clone(),
            source,
        }
    }

    /// Every object under `rel`, keys relative to the remote's prefix.
    ///
    /// Listed with S3's own ListObjectsV2 (keys URL-encoded, so that any
    /// byte survives the XML), not object_store's, which fails a whole
    /// listing on one key it cannot represent (`a//b`, `..`, a control
    /// byte): a key planted in a shared bucket must not blind a fleet
    /// query, so readers get every key as it is and skip, by name, those
    /// the layout does not allow.
    pub fn list(&self, rel: &str) -> Result<Vec<Listed>, ShipError> {
        let full = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_owned(),
            (false, true) => format!("{}/", self.prefix),
            (false, false) => format!("{}/{rel}/", self.prefix),
        };
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let listed = self.rt.block_on(self.list_raw(&full))?;
        Ok(listed
            .into_iter()
            .filter_map(|mut l| {
                l.rel = l.rel.get(strip..)?.to_owned();
                Some(l)
            })
            .collect())
    }

    async fn list_raw(&self, prefix: &str) -> Result<Vec<Listed>, ShipError> {
        let fail = |message: String| ShipError::Listing {
            url: self.url.clone(),
            message,
        };
        let client = ReqwestConnector {}
            .connect(&ClientOptions::new().with_allow_http(self.allow_http))
            .map_err(self.err(""))?;
        let cred = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(self.err(""))?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut uri = format!(
                "{}?list-type=2&encoding-type=url&prefix={}",
                self.bucket_url,
                query_escape(prefix)
            );
            if let Some(t) = &token {
                uri.push_str("&continuation-token=");
                uri.push_str(&query_escape(t));
            }
            let mut req: HttpRequest = http::Request::builder()
                .method("GET")
                .uri(&uri)
                .body(HttpRequestBody::empty())
                .map_err(|e| fail(format!("cannot make the listing request: {e}")))?;
            AwsAuthorizer::new(&cred, "s3", &self.region).authorize(&mut req, None);
            let resp = client
                .execute(req)
                .await
                .map_err(|e| fail(format!("listing failed: {e}")))?;
            let status = resp.status();
            let mut body = Vec::new();
            let mut stream = resp.into_body().bytes_stream();
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| fail(format!("listing failed: {e}")))?
            {
                if body.len() + chunk.len() > MAX_PAGE_BYTES {
                    return Err(fail(format!(
                        "a listing page larger than {MAX_PAGE_BYTES} bytes: not an S3 listing"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body);
                let code = xml_field(&text, "Code").unwrap_or_default();
                return Err(fail(format!(
                    "listing refused ({status}{}{code}): check the bucket, --endpoint and credentials",
                    if code.is_empty() { "" } else { ", " }
                )));
            }
            let page: ListPage = quick_xml::de::from_reader(&body[..])
                .map_err(|e| fail(format!("an unreadable listing page: {e}")))?;
            for c in page.contents {
                if out.len() >= MAX_LISTED {
                    return Err(fail(format!(
                        "more than {MAX_LISTED} objects under the prefix: name a narrower one (s3://bucket/prefix/node=NODE)"
                    )));
                }
                out.push(Listed {
                    rel: url_decode(&c.key),
                    size: c.size,
                    e_tag: c.e_tag,
                });
            }
            match (page.is_truncated, page.next_continuation_token) {
                (true, Some(t)) => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Uploads `bytes` as `rel` in one request: S3 shows the object whole
    /// or not at all, so an interrupted upload leaves nothing under the
    /// name. Returns the ETag.
    pub fn put(&self, rel: &str, bytes: Bytes, sha256: &str) -> Result<Option<String>, ShipError> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(SHA256_META.into()),
            sha256.to_owned().into(),
        );
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let r = self
            .rt
            .block_on(
                self.store
                    .put_opts(&self.key(rel), PutPayload::from_bytes(bytes), opts),
            )
            .map_err(self.err(rel))?;
        Ok(r.e_tag)
    }

    /// The object's size, ETag and recorded sha256; None if absent.
    pub fn head(&self, rel: &str) -> Result<Option<Head>, ShipError> {
        let opts = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.rt.block_on(self.store.get_opts(&self.key(rel), opts)) {
            Ok(r) => Ok(Some(Head {
                size: r.meta.size,
                e_tag: r.meta.e_tag.clone(),
                sha256: r
                    .attributes
                    .get(&Attribute::Metadata(SHA256_META.into()))
                    .map(|v| v.as_ref().to_owned()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// Fetches each `(key, new file, limit)` into its file (0600, created
    /// new), streamed, [`FETCHES`] requests in flight at a time: memory
    /// holds the chunks in flight, not the objects. An object larger than
    /// its limit is refused as soon as it says so or its bytes pass it, its
    /// file removed. Returns each object's size (None where absent).
    pub fn get_to_files(
        &self,
        jobs: &[(String, std::path::PathBuf, u64)],
    ) -> Result<Vec<Option<u64>>, ShipError> {
        use futures_util::StreamExt;
        let gets = futures_util::stream::iter(jobs.iter().map(|(rel, path, limit)| async move {
            let too_big = |n: u64| ShipError::Integrity {
                url: self.url_of(rel),
                message: format!(
                    "{n} bytes or more; at most {limit} were expected: altered, or not a capture's file; not fetched"
                ),
            };
            let r = match self.store.get(&self.key(rel)).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.err(rel)(e)),
            };
            if r.meta.size > *limit {
                return Err(too_big(r.meta.size));
            }
            let mut f = create_private(path).map_err(|message| ShipError::Url {
                url: self.url_of(rel),
                message,
            })?;
            let mut n = 0u64;
            let mut stream = r.into_stream();
            while let Some(chunk) = stream.try_next().await.map_err(self.err(rel))? {
                n += chunk.len() as u64;
                if n > *limit {
                    drop(f);
                    let _ = std::fs::remove_file(path);
                    return Err(too_big(n));
                }
                f.write_all(&chunk).map_err(|e| ShipError::Url {
                    url: self.url_of(rel),
                    message: format!("cannot write {}: {e}", path.display()),
                })?;
            }
            Ok(Some(n))
        }))
        .buffered(FETCHES)
        .collect::<Vec<_>>();
        self.rt.block_on(gets).into_iter().collect()
    }

    /// The sha256 of the object's bytes, read back streamed (None if
    /// absent): what an object holds, whatever its metadata says.
    pub fn sha256_of(&self, rel: &str) -> Result<Option<String>, ShipError> {
        use sha2::{Digest, Sha256};
        self.rt.block_on(async {
            let r = match self.store.get(&self.key(rel)).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.err(rel)(e)),
            };
            let mut h = Sha256::new();
            let mut stream = r.into_stream();
            while let Some(chunk) = stream.try_next().await.map_err(self.err(rel))? {
                h.update(&chunk);
            }
            Ok(Some(hex::encode(h.finalize())))
        })
    }

    /// Deletes the object (absent is fine).
    pub fn delete(&self, rel: &str) -> Result<(), ShipError> {
        match self.rt.block_on(self.store.delete(&self.key(rel))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(rel)(e)),
        }
    }
}

/// One ListObjectsV2 page, the fields read.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    contents: Vec<ListEntry>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEntry {
    key: String,
    size: u64,
    #[serde(rename = "ETag")]
    e_tag: Option<String>,
}

/// A key as `encoding-type=url` sends it, decoded; bytes that are not
/// UTF-8 stay escaped (`%FF`), so the key is still shown, and refused.
fn url_decode(s: &str) -> String {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    match String::from_utf8(decoded) {
        Ok(t) => t,
        Err(_) => s.to_owned(),
    }
}

/// A query parameter's value, escaped.
fn query_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The text of `<name>…</name>` in an error body.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].chars().take(80).collect())
}

/// A new file (0600), never over an existing one.
fn create_private(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
