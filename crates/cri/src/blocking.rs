//! A synchronous wrapper for a recorder that has no async runtime: it owns a
//! current-thread tokio runtime; tonic's connection task runs only while a
//! call is in progress, which is all it needs.

use std::path::Path;
use std::time::Duration;

use crate::{PodMeta, Result};

#[derive(Debug)]
pub struct CriClient {
    rt: tokio::runtime::Runtime,
    inner: crate::CriClient,
}

impl CriClient {
    pub fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio current-thread runtime");
        let inner = rt.block_on(crate::CriClient::connect(path, timeout))?;
        Ok(Self { rt, inner })
    }
    pub fn pod_for_container(&self, id: &str) -> Result<PodMeta> {
        self.rt.block_on(self.inner.pod_for_container(id))
    }
    pub fn list_pods(&self) -> Result<Vec<PodMeta>> {
        self.rt.block_on(self.inner.list_pods())
    }
    pub fn version(&self) -> Result<crate::api::VersionResponse> {
        self.rt.block_on(self.inner.version())
    }
}
