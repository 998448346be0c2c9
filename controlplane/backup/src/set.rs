//! One set being written or read: the destination, the set's id and the encoding,
//! handed to each service's backup and restore so none of them knows where or how
//! its bytes are stored.

use cp_core::names::CoreKind;

use crate::dest::Store;
use crate::error::ServiceError;
use crate::id::{ArtifactName, BackupId};
use crate::manifest::{Artifact, Detail};
use crate::pipeline::{self, ArtifactWriter, Codec, Identity, Meter};

/// Writes the artifacts of one set.
#[derive(Debug, Clone)]
pub struct SetWriter {
    /// Where.
    pub store: Store,
    /// The set.
    pub id: BackupId,
    /// How.
    pub codec: Codec,
    /// Bytes read from the services so far (for progress).
    pub meter: Meter,
}

impl SetWriter {
    /// Starts artifact `service/<rel>` (the encoding's suffix is added).
    pub fn artifact(&self, service: CoreKind, rel: &str) -> ArtifactWriter {
        let name = ArtifactName::new(format!("{service}/{rel}{}", pipeline::suffix(&self.codec)))
            .expect("artifact names are made from safe parts");
        ArtifactWriter::start(&self.store, &self.id, name, &self.codec, self.meter.clone())
    }
}

/// What one service's backup produced.
#[derive(Debug, Clone)]
pub struct Part {
    /// The server's version.
    pub server_version: Option<String>,
    /// Its artifacts, in restore order.
    pub artifacts: Vec<Artifact>,
    /// What a restore must find again.
    pub detail: Detail,
}

/// Reads the artifacts of one set.
#[derive(Debug, Clone)]
pub struct SetReader {
    /// Where.
    pub store: Store,
    /// The set.
    pub id: BackupId,
    /// The key, for encrypted sets.
    pub identity: Option<Identity>,
}

impl SetReader {
    /// The plain bytes of an artifact, checked as they are read.
    pub async fn open(
        &self,
        artifact: &Artifact,
    ) -> Result<impl tokio::io::AsyncRead + Send + Unpin + 'static, ServiceError> {
        Ok(pipeline::open(&self.store, &self.id, artifact, self.identity.as_ref()).await?)
    }

    /// The whole (small) artifact in memory: for metadata such as a stream's config.
    pub async fn read_small(&self, artifact: &Artifact) -> Result<Vec<u8>, ServiceError> {
        use tokio::io::AsyncReadExt;
        let mut r = self.open(artifact).await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .await
            .map_err(|source| pipeline::PipelineError::Io {
                artifact: artifact.name.clone(),
                what: "reading",
                source,
            })?;
        Ok(out)
    }
}

/// The artifact of `artifacts` whose name starts with `service/<rel>`.
pub fn find<'a>(artifacts: &'a [Artifact], service: CoreKind, rel: &str) -> Option<&'a Artifact> {
    let prefix = format!("{service}/{rel}.");
    artifacts
        .iter()
        .find(|a| a.name.as_str().starts_with(&prefix))
}
