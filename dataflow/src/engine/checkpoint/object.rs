//! Checkpoints in an object store (`--checkpoint-url`: `s3://bucket/prefix`, `file:///path`),
//! through the `object_store` crate, so a process moved to another machine resumes from shared
//! storage.
//!
//! The layout is the directory store's: `<prefix>/<job>/epoch-000000000042/` with one object
//! per operator part and `manifest.json`. An object store has no rename, but each put is
//! atomic: the parts go first and the manifest last, so an epoch without a manifest is partial
//! and never loaded. Operations run on a runtime of the backend's own (the writer thread and
//! the start-up call it from outside any runtime).

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::engine::checkpoint::store::StoreError;

/// The cloud credentials and settings taken from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …), as object_store's builders name them.
const ENV_PREFIXES: [&str; 3] = ["AWS_", "GOOGLE_", "AZURE_"];

/// A job's checkpoints under a prefix of an object store.
pub(crate) struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The URL the job's checkpoints are under, for messages.
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBackend")
            .field("url", &self.url)
            .finish()
    }
}

fn failed(url: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Object {
        url: url.to_string(),
        detail: format!("{what}: {e}"),
    }
}

impl ObjectBackend {
    /// The checkpoints of `job` under `url`, with credentials and settings from the
    /// environment.
    pub(crate) fn open(url: &str, job: &str) -> Result<Self, StoreError> {
        let parsed = url::Url::parse(url).map_err(|e| failed(url, "not a URL", e))?;
        let options: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let (store, base) = object_store::parse_url_opts(&parsed, options).map_err(|e| {
            failed(
                url,
                "no object store for it (this build reads s3:// and file:// URLs)",
                e,
            )
        })?;
        let prefix = ObjectPath::from_iter(base.parts().chain(std::iter::once(job.into())));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed(url, "starting its client", e))?;
        Ok(ObjectBackend {
            store: Arc::from(store),
            prefix,
            url: format!("{}/{job}", url.trim_end_matches('/')),
            runtime,
        })
    }

    /// Where the job's checkpoints are.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn epoch_path(&self, epoch_dir: &str) -> ObjectPath {
        self.prefix.clone().join(epoch_dir)
    }

    /// The epoch directories present (complete or not), each with whether it has a manifest.
    pub(crate) fn epochs(&self) -> Result<Vec<(String, bool)>, StoreError> {
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&self.prefix)))
            .map_err(|e| failed(&self.url, "listing", e))?;
        let mut out = Vec::new();
        for dir in listed.common_prefixes {
            let Some(name) = dir.filename().map(str::to_string) else {
                continue;
            };
            let inside = self
                .runtime
                .block_on(self.store.list_with_delimiter(Some(&dir)))
                .map_err(|e| failed(&self.url, "listing", e))?;
            // An emptied one is gone (a file:// store leaves its empty directory).
            if inside.objects.is_empty() {
                continue;
            }
            let complete = inside
                .objects
                .iter()
                .any(|o| o.location.filename() == Some("manifest.json"));
            out.push((name, complete));
        }
        Ok(out)
    }

    /// Puts `files` (name, bytes) into `epoch_dir`, in order: the manifest must come last.
    pub(crate) fn put_all(
        &self,
        epoch_dir: &str,
        files: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        let dir = self.epoch_path(epoch_dir);
        for (name, bytes) in files {
            let at = dir.clone().join(*name);
            let payload = PutPayload::from(bytes.to_vec());
            self.runtime
                .block_on(self.store.put(&at, payload))
                .map_err(|e| failed(&self.url, &format!("writing {at}"), e))?;
        }
        Ok(())
    }

    /// The bytes of `name` in `epoch_dir`.
    pub(crate) fn get(&self, epoch_dir: &str, name: &str) -> Result<Vec<u8>, StoreError> {
        let at = self.epoch_path(epoch_dir).join(name);
        let read = async {
            let got = self.store.get(&at).await?;
            got.bytes().await
        };
        self.runtime
            .block_on(read)
            .map(|b| b.to_vec())
            .map_err(|e| failed(&self.url, &format!("reading {at}"), e))
    }

    /// Removes every object of `epoch_dir`, the manifest first (it is partial from then on).
    pub(crate) fn remove(&self, epoch_dir: &str) -> Result<(), StoreError> {
        let dir = self.epoch_path(epoch_dir);
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&dir)))
            .map_err(|e| failed(&self.url, "listing", e))?;
        let mut objects: Vec<ObjectPath> = listed.objects.into_iter().map(|o| o.location).collect();
        objects.sort_by_key(|o| o.filename() != Some("manifest.json"));
        for o in objects {
            self.runtime
                .block_on(self.store.delete(&o))
                .map_err(|e| failed(&self.url, &format!("removing {o}"), e))?;
        }
        Ok(())
    }
}
