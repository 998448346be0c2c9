//! Destinations: the environment's `backup.destinations` as object stores (a local
//! directory, S3 or an S3-compatible store, GCS, Azure) through `object_store`, one
//! type whatever the kind. A set lives under `<root>/<id>/`: its artifacts, its
//! manifest (written last) and its verification record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cp_core::model::{Destination, DestinationKind};
use cp_core::units::SecretRef;
use cp_runtime::secrets::{SecretError, SecretResolver};
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::catalog::{self, Listed};
use crate::id::BackupId;

/// Why a destination cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// No destination of that name.
    #[error("no backup destination `{name}`; the environment has: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
    /// A credential could not be resolved.
    #[error("destination `{name}`: cannot resolve `{setting}`")]
    Secret {
        /// The destination.
        name: String,
        /// The setting.
        setting: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// The local directory cannot be made.
    #[error("destination `{name}`: cannot use the directory {}", path.display())]
    Dir {
        /// The destination.
        name: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store refused or could not be reached.
    #[error("destination `{name}`: {what}")]
    Store {
        /// The destination.
        name: String,
        /// What was being done (`writing 2026.../manifest.json`).
        what: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
}

async fn resolve(
    secrets: &SecretResolver,
    name: &str,
    key: &'static str,
    r: Option<SecretRef>,
) -> Result<Option<String>, DestinationError> {
    let Some(r) = r else { return Ok(None) };
    let setting = format!("backup.destinations.{name}.{key}");
    secrets
        .resolve(&setting, &r)
        .await
        .map(|s| Some(s.expose().to_owned()))
        .map_err(|source| DestinationError::Secret {
            name: name.to_owned(),
            setting,
            source,
        })
}

/// One destination, open.
#[derive(Debug, Clone)]
pub struct Store {
    name: String,
    kind: DestinationKind,
    inner: Arc<dyn ObjectStore>,
    /// The key prefix sets live under (empty for a local directory).
    root: String,
    /// The directory, for a local destination.
    local: Option<PathBuf>,
}

impl Store {
    /// Opens destination `name` of the environment (`None`: the first one, by name).
    /// Credentials are resolved now; nothing is written.
    pub async fn open(
        destinations: &std::collections::BTreeMap<String, Destination>,
        name: Option<&str>,
        project_root: &Path,
        secrets: &SecretResolver,
    ) -> Result<Store, DestinationError> {
        let (name, dest) = match name {
            Some(n) => destinations
                .get_key_value(n)
                .ok_or_else(|| DestinationError::Unknown {
                    name: n.to_owned(),
                    known: destinations.keys().cloned().collect::<Vec<_>>().join(", "),
                })?,
            None => destinations
                .iter()
                .next()
                .ok_or_else(|| DestinationError::Unknown {
                    name: "(default)".into(),
                    known: "none (set backup.destinations)".into(),
                })?,
        };
        Self::build(name, dest, project_root, secrets).await
    }

    /// Opens one destination.
    pub async fn build(
        name: &str,
        dest: &Destination,
        project_root: &Path,
        secrets: &SecretResolver,
    ) -> Result<Store, DestinationError> {
        let secret =
            |key: &'static str, r: &Option<SecretRef>| resolve(secrets, name, key, r.clone());
        let store_err = |source| DestinationError::Store {
            name: name.to_owned(),
            what: "configuring the client".into(),
            source,
        };
        let (inner, root, local): (Arc<dyn ObjectStore>, String, Option<PathBuf>) = match dest {
            Destination::Local { path } => {
                let dir = if Path::new(path).is_absolute() {
                    PathBuf::from(path)
                } else {
                    project_root.join(path)
                };
                // Directories 0700 and files 0600 from their creation.
                let fs = crate::local::PrivateLocal::new(&dir).map_err(|source| {
                    DestinationError::Dir {
                        name: name.to_owned(),
                        path: dir.clone(),
                        source,
                    }
                })?;
                (Arc::new(fs), String::new(), Some(dir))
            }
            Destination::S3 {
                bucket,
                prefix,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region.clone().unwrap_or_else(|| "us-east-1".into()));
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let Some(k) = secret("access_key_id", access_key_id).await? {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = secret("secret_access_key", secret_access_key).await? {
                    b = b.with_secret_access_key(k);
                }
                (
                    Arc::new(b.build().map_err(store_err)?),
                    prefix.clone(),
                    None,
                )
            }
            Destination::Gcs {
                bucket,
                prefix,
                service_account_key,
            } => {
                let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket);
                if let Some(k) = secret("service_account_key", service_account_key).await? {
                    b = b.with_service_account_key(k);
                }
                (
                    Arc::new(b.build().map_err(store_err)?),
                    prefix.clone(),
                    None,
                )
            }
            Destination::Azure {
                account,
                container,
                prefix,
                access_key,
            } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_account(account)
                    .with_container_name(container);
                if let Some(k) = secret("secret_access_key", access_key).await? {
                    b = b.with_access_key(k);
                }
                (
                    Arc::new(b.build().map_err(store_err)?),
                    prefix.clone(),
                    None,
                )
            }
        };
        Ok(Store {
            name: name.to_owned(),
            kind: dest.kind(),
            inner,
            root: root.trim_matches('/').to_owned(),
            local,
        })
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// The local directory, for a local destination.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The object store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The path of `rel` inside set `id`.
    pub fn path(&self, id: &BackupId, rel: &str) -> ObjPath {
        if self.root.is_empty() {
            ObjPath::from(format!("{id}/{rel}"))
        } else {
            ObjPath::from(format!("{}/{id}/{rel}", self.root))
        }
    }

    /// The path of `rel` under the destination's root (objects outside sets:
    /// the PITR archive's WAL).
    pub fn object(&self, rel: &str) -> ObjPath {
        if self.root.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{}/{rel}", self.root))
        }
    }

    /// The destination's root as a listing prefix (`None`: everything).
    pub fn root_path(&self) -> Option<ObjPath> {
        (!self.root.is_empty()).then(|| ObjPath::from(self.root.as_str()))
    }

    pub(crate) fn err(
        &self,
        what: String,
    ) -> impl FnOnce(object_store::Error) -> DestinationError + '_ {
        move |source| DestinationError::Store {
            name: self.name.clone(),
            what,
            source,
        }
    }

    /// Every set the destination holds, with its objects.
    pub async fn list(
        &self,
    ) -> Result<std::collections::BTreeMap<BackupId, Listed>, DestinationError> {
        let prefix = (!self.root.is_empty()).then(|| ObjPath::from(self.root.as_str()));
        let metas: Vec<object_store::ObjectMeta> = self
            .inner
            .list(prefix.as_ref())
            .try_collect()
            .await
            .map_err(self.err("listing sets".into()))?;
        let strip = if self.root.is_empty() {
            String::new()
        } else {
            format!("{}/", self.root)
        };
        Ok(catalog::group(metas.into_iter().filter_map(|m| {
            m.location
                .as_ref()
                .strip_prefix(&strip)
                .map(|rel| (rel.to_owned(), m.size))
        })))
    }

    /// Writes a small object in one request (manifests, verification records).
    pub async fn put(
        &self,
        id: &BackupId,
        rel: &str,
        bytes: Vec<u8>,
    ) -> Result<(), DestinationError> {
        let path = self.path(id, rel);
        self.inner
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(self.err(format!("writing {path}")))?;
        Ok(())
    }

    /// Reads a small object; `None` when absent.
    pub async fn get(&self, id: &BackupId, rel: &str) -> Result<Option<Bytes>, DestinationError> {
        let path = self.path(id, rel);
        match self.inner.get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(self.err(format!("reading {path}")))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(format!("reading {path}"))(e)),
        }
    }

    /// Deletes every object of a set (and, for a local directory, what a killed run
    /// left that the store does not list, such as half-written upload parts).
    pub async fn delete_set(
        &self,
        id: &BackupId,
        objects: &Listed,
    ) -> Result<(), DestinationError> {
        // The manifest first: a set half deleted is then incomplete, never complete.
        let mut names: Vec<&String> = objects.objects.keys().collect();
        names.sort_by_key(|n| {
            (
                n.as_str() != crate::manifest::MANIFEST,
                n.as_str().to_owned(),
            )
        });
        for rel in names {
            let path = self.path(id, rel);
            match self.inner.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("deleting {path}"))(e)),
            }
        }
        if let Some(dir) = &self.local {
            let set = dir.join(id.as_str());
            if set.exists() {
                std::fs::remove_dir_all(&set).map_err(|source| DestinationError::Dir {
                    name: self.name.clone(),
                    path: set,
                    source,
                })?;
            }
        }
        Ok(())
    }
}
