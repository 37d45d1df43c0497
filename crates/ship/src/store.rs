//! Object storage named by URL (`s3://bucket/prefix`), through the
//! `object_store` crate: S3 and S3-compatible servers (`--endpoint`), with
//! credentials from object_store's AWS chain (the `AWS_*` environment,
//! web identity as on EKS, container and instance metadata).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload,
};

use crate::ShipError;

/// The user metadata each uploaded object carries: its sha256, as the
/// manifest records it, so a resumed upload can tell an object already
/// there from one that only has the same name.
const SHA256_META: &str = "credtrail-sha256";

/// Requests in flight at once when fetching many objects.
pub const FETCHES: usize = 16;

/// A URL's bucket and key prefix in an object store.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// Keys start with this (no leading or trailing '/'); may be empty.
    prefix: String,
    /// The URL without a trailing '/', for messages and `capture` names.
    url: String,
    rt: tokio::runtime::Runtime,
}

/// An object as listed.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the remote's prefix.
    pub rel: String,
    pub size: u64,
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
        if let Some(e) = endpoint.or(env_endpoint.as_deref()) {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        let store = b.build().map_err(|source| ShipError::Store {
            url: url.to_owned(),
            source,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(&format!("cannot start the I/O runtime: {e}")))?;
        Ok(Remote {
            store: Arc::new(store),
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
    pub fn list(&self, rel: &str) -> Result<Vec<Listed>, ShipError> {
        let key = self.key(rel);
        let metas: Vec<ObjectMeta> = self
            .rt
            .block_on(self.store.list(Some(&key)).try_collect())
            .map_err(self.err(rel))?;
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.to_string();
                Some(Listed {
                    rel: full.get(strip..)?.to_owned(),
                    size: m.size,
                })
            })
            .collect())
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

    /// The objects' bytes, in order (None where absent), [`FETCHES`] requests
    /// in flight at a time: object stores answer many requests at once far
    /// better than one after another.
    pub fn get_many(&self, rels: &[String]) -> Result<Vec<Option<Bytes>>, ShipError> {
        use futures_util::StreamExt;
        let gets = futures_util::stream::iter(rels.iter().map(|rel| async move {
            let got = async {
                let r = self.store.get(&self.key(rel)).await?;
                r.bytes().await
            }
            .await;
            match got {
                Ok(b) => Ok(Some(b)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.err(rel)(e)),
            }
        }))
        .buffered(FETCHES)
        .collect::<Vec<_>>();
        self.rt.block_on(gets).into_iter().collect()
    }

    /// Deletes the object (absent is fine).
    pub fn delete(&self, rel: &str) -> Result<(), ShipError> {
        match self.rt.block_on(self.store.delete(&self.key(rel))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(rel)(e)),
        }
    }

    /// The object's bytes; None if absent.
    pub fn get(&self, rel: &str) -> Result<Option<Bytes>, ShipError> {
        let got = self.rt.block_on(async {
            let r = self.store.get(&self.key(rel)).await?;
            r.bytes().await
        });
        match got {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(rel)(e)),
        }
    }
}
