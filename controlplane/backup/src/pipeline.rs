//! The streaming pipeline every artifact goes through, in both directions:
//!
//! ```text
//! write: bytes ─► SHA-256 (plain) ─► zstd (multi-threaded) ─► age ─► SHA-256 (stored) ─► multipart upload
//! read:  download ─► SHA-256 (stored) ─► age ─► zstd ─► SHA-256 (plain) ─► bytes
//! ```
//!
//! Nothing is staged whole: chunks of [`CHUNK`] bytes travel through bounded channels
//! between the async side (the producer, the upload) and one blocking thread that
//! compresses and encrypts (zstd and age are synchronous `Write`rs), so memory stays
//! flat whatever the size. An upload is completed only when the encoder finished
//! cleanly: a failure anywhere aborts it, so a dead run never leaves an object that
//! looks whole. A read checks both digests and the sizes at the end and fails the
//! stream, naming the artifact, when one differs.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::dest::Store;
use crate::id::{ArtifactName, BackupId};
use crate::manifest::Artifact;

/// Bytes per chunk between the stages.
pub const CHUNK: usize = 1 << 20;

/// Size of one upload part: S3 wants at least 5 MiB.
const PART: usize = 8 << 20;

/// How an artifact is encoded.
#[derive(Clone)]
pub struct Codec {
    /// zstd level.
    pub level: i32,
    /// zstd worker threads (0: compress on the encoding thread itself).
    pub workers: u32,
    /// age recipients; empty: not encrypted.
    pub recipients: Arc<Vec<age::x25519::Recipient>>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("level", &self.level)
            .field("workers", &self.workers)
            .field("recipients", &self.recipients.len())
            .finish()
    }
}

/// An age identity that decrypts artifacts (never printed).
#[derive(Clone)]
pub struct Identity(pub Arc<age::x25519::Identity>);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(<redacted>)")
    }
}

/// Why an artifact could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Compressing, encrypting or producing the bytes failed.
    #[error("artifact {artifact}: {what}")]
    Io {
        /// The artifact.
        artifact: ArtifactName,
        /// What was being done.
        what: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The destination refused a write (full, unreachable, denied).
    #[error("artifact {artifact}: writing to destination `{destination}` failed")]
    Upload {
        /// The artifact.
        artifact: ArtifactName,
        /// The destination.
        destination: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The destination could not be read.
    #[error("artifact {artifact}: reading from destination `{destination}` failed")]
    Download {
        /// The artifact.
        artifact: ArtifactName,
        /// The destination.
        destination: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
}

/// Counts bytes for progress displays.
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<AtomicU64>);

impl Meter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

enum Msg {
    Data(Bytes),
    End,
}

/// Hashes and counts what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Sends what is written, in chunks, to the upload.
struct ToUpload {
    tx: mpsc::Sender<Msg>,
    buf: Vec<u8>,
}

impl ToUpload {
    fn send(&mut self, m: Msg) -> io::Result<()> {
        self.tx
            .blocking_send(m)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
    fn flush_chunk(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let b = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
            self.send(Msg::Data(b))?;
        }
        Ok(())
    }
}

impl Write for ToUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Sink {
    Plain(Hashing<ToUpload>),
    Age(age::stream::StreamWriter<Hashing<ToUpload>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> io::Result<Hashing<ToUpload>> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Age(w) => w.finish(),
        }
    }
}

struct Sums {
    size: u64,
    plain_sha: String,
    stored: u64,
    sha: String,
}

/// One artifact being written. Feed it with [`ArtifactWriter::write`] or
/// [`ArtifactWriter::copy_from`], then [`ArtifactWriter::finish`]; dropping it
/// unfinished aborts the upload.
pub struct ArtifactWriter {
    name: ArtifactName,
    destination: String,
    tx: Option<mpsc::Sender<Bytes>>,
    encoder: tokio::task::JoinHandle<io::Result<Sums>>,
    upload: tokio::task::JoinHandle<io::Result<()>>,
    meter: Meter,
}

impl std::fmt::Debug for ArtifactWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactWriter")
            .field("name", &self.name)
            .finish()
    }
}

impl ArtifactWriter {
    /// Starts writing `name` into set `id` of `store`.
    pub fn start(
        store: &Store,
        id: &BackupId,
        name: ArtifactName,
        codec: &Codec,
        meter: Meter,
    ) -> Self {
        let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(4);
        let (out_tx, mut out_rx) = mpsc::channel::<Msg>(4);
        let codec = codec.clone();
        let encoder = tokio::task::spawn_blocking(move || -> io::Result<Sums> {
            let up = Hashing {
                inner: ToUpload {
                    tx: out_tx,
                    buf: Vec::with_capacity(CHUNK),
                },
                sha: Sha256::new(),
                n: 0,
            };
            let sink = if codec.recipients.is_empty() {
                Sink::Plain(up)
            } else {
                let e = age::Encryptor::with_recipients(
                    codec.recipients.iter().map(|r| r as &dyn age::Recipient),
                )
                .map_err(io::Error::other)?;
                Sink::Age(e.wrap_output(up)?)
            };
            let mut enc = zstd::stream::write::Encoder::new(sink, codec.level)?;
            enc.include_checksum(true)?;
            if codec.workers > 0 {
                enc.multithread(codec.workers)?;
            }
            let mut plain = Sha256::new();
            let mut size = 0u64;
            while let Some(b) = in_rx.blocking_recv() {
                plain.update(&b);
                size += b.len() as u64;
                enc.write_all(&b)?;
            }
            let mut up = enc.finish()?.finish()?;
            up.inner.flush_chunk()?;
            let sums = Sums {
                size,
                plain_sha: hex::encode(plain.finalize()),
                stored: up.n,
                sha: hex::encode(up.sha.finalize()),
            };
            // Only now may the upload complete.
            up.inner.send(Msg::End)?;
            Ok(sums)
        });
        let path = store.path(id, name.as_str());
        let inner = store.inner().clone();
        let upload = tokio::spawn(async move {
            let mut w = object_store::buffered::BufWriter::with_capacity(inner, path, PART)
                .with_max_concurrency(2);
            loop {
                match out_rx.recv().await {
                    Some(Msg::Data(b)) => {
                        if let Err(e) = w.write_all(&b).await {
                            let _ = w.abort().await;
                            return Err(e);
                        }
                    }
                    Some(Msg::End) => return w.shutdown().await,
                    None => {
                        // The encoder failed: never complete a partial object.
                        let _ = w.abort().await;
                        return Err(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "the encoder stopped before the end",
                        ));
                    }
                }
            }
        });
        Self {
            name,
            destination: store.name().to_owned(),
            tx: Some(in_tx),
            encoder,
            upload,
            meter,
        }
    }

    /// The artifact's name.
    pub fn name(&self) -> &ArtifactName {
        &self.name
    }

    /// Appends bytes.
    pub async fn write(&mut self, b: Bytes) -> Result<(), PipelineError> {
        let n = b.len() as u64;
        let sent = match &self.tx {
            Some(tx) => tx.send(b).await.is_ok(),
            None => false,
        };
        if !sent {
            return Err(self.failure().await);
        }
        self.meter.add(n);
        Ok(())
    }

    /// Appends everything `r` yields, in chunks.
    pub async fn copy_from(&mut self, mut r: impl AsyncRead + Unpin) -> Result<u64, PipelineError> {
        let mut total = 0u64;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            // Fill whole chunks: small reads (pipes give 64 KiB) would make small messages.
            while filled < CHUNK {
                let n = r
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|source| PipelineError::Io {
                        artifact: self.name.clone(),
                        what: "reading its source",
                        source,
                    })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Ok(total);
            }
            buf.truncate(filled);
            total += filled as u64;
            self.write(Bytes::from(buf)).await?;
        }
    }

    /// Why the pipeline stopped: the upload's error first (a full destination shows
    /// up as a broken pipe in the encoder), else the encoder's.
    async fn failure(&mut self) -> PipelineError {
        self.tx = None;
        let enc = (&mut self.encoder).await;
        let up = (&mut self.upload).await;
        match up {
            Ok(Err(source)) if source.kind() != io::ErrorKind::Interrupted => {
                PipelineError::Upload {
                    artifact: self.name.clone(),
                    destination: self.destination.clone(),
                    source,
                }
            }
            _ => match enc {
                Ok(Err(source)) => PipelineError::Io {
                    artifact: self.name.clone(),
                    what: "compressing or encrypting",
                    source,
                },
                Err(join) => PipelineError::Io {
                    artifact: self.name.clone(),
                    what: "compressing or encrypting",
                    source: io::Error::other(join),
                },
                Ok(Ok(_)) => PipelineError::Io {
                    artifact: self.name.clone(),
                    what: "uploading",
                    source: io::Error::other("the upload stopped"),
                },
            },
        }
    }

    /// Ends the artifact: flushes, completes the upload, and returns its record.
    pub async fn finish(mut self) -> Result<Artifact, PipelineError> {
        self.tx = None;
        let enc = (&mut self.encoder).await;
        let sums = match enc {
            Ok(Ok(s)) => s,
            _ => return Err(self.failure_after(enc).await),
        };
        match (&mut self.upload).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(PipelineError::Upload {
                    artifact: self.name.clone(),
                    destination: self.destination.clone(),
                    source,
                });
            }
            Err(join) => {
                return Err(PipelineError::Upload {
                    artifact: self.name.clone(),
                    destination: self.destination.clone(),
                    source: io::Error::other(join),
                });
            }
        }
        Ok(Artifact {
            name: self.name.clone(),
            size: sums.size,
            stored_size: sums.stored,
            sha256: sums.sha,
            plain_sha256: sums.plain_sha,
        })
    }

    async fn failure_after(
        &mut self,
        enc: Result<io::Result<Sums>, tokio::task::JoinError>,
    ) -> PipelineError {
        let up = (&mut self.upload).await;
        match up {
            Ok(Err(source)) if source.kind() != io::ErrorKind::Interrupted => {
                PipelineError::Upload {
                    artifact: self.name.clone(),
                    destination: self.destination.clone(),
                    source,
                }
            }
            _ => PipelineError::Io {
                artifact: self.name.clone(),
                what: "compressing or encrypting",
                source: match enc {
                    Ok(Err(e)) => e,
                    Err(j) => io::Error::other(j),
                    Ok(Ok(_)) => io::Error::other("the upload stopped"),
                },
            },
        }
    }
}

impl Drop for ArtifactWriter {
    fn drop(&mut self) {
        // Unfinished: the channel closes without `End`, and the upload aborts.
        self.tx = None;
    }
}

/// Reads the channel as a `Read` (on the decoding thread).
struct FromDownload {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for FromDownload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The plain bytes of an artifact, as an `AsyncRead`: decrypted, decompressed, and
/// checked (both digests and sizes) before the end is reported. An error names the
/// artifact and what did not match.
pub async fn open(
    store: &Store,
    id: &BackupId,
    artifact: &Artifact,
    identity: Option<&Identity>,
) -> Result<impl AsyncRead + Send + Unpin + 'static, PipelineError> {
    let path = store.path(id, artifact.name.as_str());
    let get = store
        .inner()
        .get(&path)
        .await
        .map_err(|source| PipelineError::Download {
            artifact: artifact.name.clone(),
            destination: store.name().to_owned(),
            source,
        })?;
    let mut stream = get.into_stream();
    let (dl_tx, dl_rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let (verdict_tx, verdict_rx) = oneshot::channel::<io::Result<(u64, String)>>();
    tokio::spawn(async move {
        let mut sha = Sha256::new();
        let mut n = 0u64;
        let mut tx = Some(dl_tx);
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => {
                    sha.update(&b);
                    n += b.len() as u64;
                    if let Some(t) = &tx
                        && t.send(Ok(b)).await.is_err()
                    {
                        tx = None;
                    }
                }
                Err(e) => {
                    let e = io::Error::other(e);
                    if let Some(t) = &tx {
                        let _ = t.send(Err(io::Error::new(e.kind(), e.to_string()))).await;
                    }
                    let _ = verdict_tx.send(Err(e));
                    return;
                }
            }
        }
        drop(tx);
        let _ = verdict_tx.send(Ok((n, hex::encode(sha.finalize()))));
    });
    let (out_tx, out_rx) = mpsc::channel::<io::Result<Bytes>>(4);
    let expected = artifact.clone();
    let identity = identity.cloned();
    tokio::task::spawn_blocking(move || {
        let name = expected.name.to_string();
        let src = FromDownload {
            rx: dl_rx,
            cur: Bytes::new(),
        };
        let mut plain = Sha256::new();
        let mut size = 0u64;
        let decoded: io::Result<()> = (|| {
            let reader: Box<dyn Read + Send> = if is_age(&expected) {
                let Some(id) = &identity else {
                    return Err(invalid(format!(
                        "artifact {name} is encrypted and no identity was given (set backup.identity)"
                    )));
                };
                let d = age::Decryptor::new(io::BufReader::new(src)).map_err(|e| {
                    invalid(format!("artifact {name}: not a readable age file: {e}"))
                })?;
                Box::new(
                    d.decrypt(std::iter::once(id.0.as_ref() as &dyn age::Identity))
                        .map_err(|e| invalid(format!("artifact {name}: cannot decrypt: {e}")))?,
                )
            } else {
                Box::new(src)
            };
            let mut dec = zstd::stream::read::Decoder::new(reader)?;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = dec.read(&mut buf[filled..])?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(());
                }
                buf.truncate(filled);
                plain.update(&buf);
                size += filled as u64;
                if out_tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "reader went away",
                    ));
                }
            }
        })();
        // The stored digest decides first: a flipped byte is reported as such, not
        // as whatever the decoder made of it.
        let stored = verdict_rx
            .blocking_recv()
            .unwrap_or_else(|_| Err(io::Error::other("the download stopped")));
        let outcome = match (stored, decoded) {
            (Err(e), _) => Err(e),
            (Ok((n, sha)), _) if sha != expected.sha256 || n != expected.stored_size => {
                Err(invalid(format!(
                    "artifact {name}: SHA-256 of the stored bytes is {sha} ({n} bytes), the manifest says {} ({} bytes): it was changed or damaged",
                    expected.sha256, expected.stored_size
                )))
            }
            (_, Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => return,
            (_, Err(e)) => Err(invalid(format!("artifact {name}: {e}"))),
            (_, Ok(())) => {
                let sha = hex::encode(plain.finalize());
                if sha != expected.plain_sha256 || size != expected.size {
                    Err(invalid(format!(
                        "artifact {name}: SHA-256 of the decoded bytes is {sha} ({size} bytes), the manifest says {} ({} bytes)",
                        expected.plain_sha256, expected.size
                    )))
                } else {
                    Ok(())
                }
            }
        };
        if let Err(e) = outcome {
            let _ = out_tx.blocking_send(Err(e));
        }
    });
    let stream = futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(tokio_util::io::StreamReader::new(Box::pin(stream)))
}

/// Whether an artifact is age-encrypted: its name says so (`.zst.age`).
fn is_age(a: &Artifact) -> bool {
    a.name.as_str().ends_with(".age")
}

/// The stored name's suffix for an encoding: `.zst`, or `.zst.age` when encrypted.
pub fn suffix(codec: &Codec) -> &'static str {
    if codec.recipients.is_empty() {
        ".zst"
    } else {
        ".zst.age"
    }
}

/// Reads an artifact to its end, checking everything [`open`] checks.
pub async fn verify(
    store: &Store,
    id: &BackupId,
    artifact: &Artifact,
    identity: Option<&Identity>,
) -> Result<(), PipelineError> {
    let mut r = open(store, id, artifact, identity).await?;
    let mut sink = tokio::io::sink();
    tokio::io::copy(&mut r, &mut sink)
        .await
        .map(|_| ())
        .map_err(|source| PipelineError::Io {
            artifact: artifact.name.clone(),
            what: "verifying",
            source,
        })
}

/// Checks only the stored bytes' digest and size (no key needed, nothing decoded):
/// what `restore` does for every artifact before it touches anything.
pub async fn check_stored(
    store: &Store,
    id: &BackupId,
    artifact: &Artifact,
) -> Result<(), PipelineError> {
    let path = store.path(id, artifact.name.as_str());
    let dl = |source| PipelineError::Download {
        artifact: artifact.name.clone(),
        destination: store.name().to_owned(),
        source,
    };
    let mut s = store.inner().get(&path).await.map_err(dl)?.into_stream();
    let mut sha = Sha256::new();
    let mut n = 0u64;
    while let Some(b) = s.next().await {
        let b = b.map_err(dl)?;
        sha.update(&b);
        n += b.len() as u64;
    }
    let sha = hex::encode(sha.finalize());
    if sha != artifact.sha256 || n != artifact.stored_size {
        return Err(PipelineError::Io {
            artifact: artifact.name.clone(),
            what: "checking its digest",
            source: invalid(format!(
                "SHA-256 of the stored bytes is {sha} ({n} bytes), the manifest says {} ({} bytes): it was changed or damaged",
                artifact.sha256, artifact.stored_size
            )),
        });
    }
    Ok(())
}
