//! A local-directory destination whose every directory is created 0700 and every file
//! 0600, at creation: a set holds full table dumps taken with BYPASSRLS, the Redis RDB
//! and the Vault snapshot, none of them for other local users. object_store's
//! `LocalFileSystem` creates with the process umask (0755/0644), so the two calls that
//! create (a put and a multipart upload) are ours; reads, listing, deletes and copies
//! go to it unchanged. Staged files are named `<object>#<n>` as it names them, so its
//! listing skips them the same way.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};

/// Mode of every directory the destination creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file it writes.
pub const FILE_MODE: u32 = 0o600;

const STORE: &str = "PrivateLocal";

/// A local directory holding backup sets, private to this user.
#[derive(Debug)]
pub struct PrivateLocal {
    fs: LocalFileSystem,
}

impl std::fmt::Display for PrivateLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateLocal({})", self.fs)
    }
}

fn generic(source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: Box::new(source),
    }
}

/// Creates `dir` and its missing parents 0700.
pub fn private_dirs(dir: &FsPath) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// A new staging file `<dest>#<n>`, 0600, its directory made 0700 if missing.
fn stage(dest: &FsPath) -> std::io::Result<(File, PathBuf)> {
    if let Some(parent) = dest.parent() {
        private_dirs(parent)?;
    }
    for n in 1u32.. {
        let mut staged = dest.as_os_str().to_owned();
        staged.push(format!("#{n}"));
        let staged = PathBuf::from(staged);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&staged)
        {
            Ok(f) => return Ok((f, staged)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 staging names exhausted")
}

/// Makes a written staging file the object: renamed over it, or (`create`) linked to
/// its name only if that is free.
fn publish(
    file: File,
    staged: &FsPath,
    dest: &FsPath,
    create: bool,
) -> std::result::Result<PutResult, object_store::Error> {
    let done = (|| -> Result<PutResult> {
        file.sync_all().map_err(generic)?;
        let meta = file.metadata().map_err(generic)?;
        let e_tag = format!(
            "{:x}-{:x}-{:x}",
            meta.ino(),
            meta.mtime() * 1_000_000 + meta.mtime_nsec() / 1000,
            meta.len()
        );
        drop(file);
        if create {
            match std::fs::hard_link(staged, dest) {
                Ok(()) => {
                    let _ = std::fs::remove_file(staged);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(object_store::Error::AlreadyExists {
                        path: dest.display().to_string(),
                        source: Box::new(e),
                    });
                }
                Err(e) => return Err(generic(e)),
            }
        } else {
            std::fs::rename(staged, dest).map_err(generic)?;
        }
        Ok(PutResult {
            e_tag: Some(e_tag),
            version: None,
            extensions: Default::default(),
        })
    })();
    if done.is_err() {
        let _ = std::fs::remove_file(staged);
    }
    done
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?
}

impl PrivateLocal {
    /// The destination at `dir`, created 0700 (with any missing parent) if absent.
    pub fn new(dir: &FsPath) -> std::io::Result<Self> {
        private_dirs(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(std::io::Error::other)?
            .with_automatic_cleanup(true);
        Ok(Self { fs })
    }
}

#[async_trait]
impl ObjectStore for PrivateLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => {
                return Err(object_store::Error::NotImplemented {
                    operation: "`put_opts` with mode `PutMode::Update`".into(),
                    implementer: self.to_string(),
                });
            }
        };
        if !opts.attributes.is_empty() {
            return Err(object_store::Error::NotImplemented {
                operation: "`put_opts` with `opts.attributes` specified".into(),
                implementer: self.to_string(),
            });
        }
        let dest = self.fs.path_to_filesystem(location)?;
        blocking(move || {
            let (mut file, staged) = stage(&dest).map_err(generic)?;
            if let Err(e) = payload
                .iter()
                .try_for_each(|b| std::io::Write::write_all(&mut file, b))
            {
                let _ = std::fs::remove_file(&staged);
                return Err(generic(e));
            }
            publish(file, &staged, &dest, create)
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return Err(object_store::Error::NotImplemented {
                operation: "`put_multipart_opts` with `opts.attributes` specified".into(),
                implementer: self.to_string(),
            });
        }
        let dest = self.fs.path_to_filesystem(location)?;
        let (file, staged) = stage(&dest).map_err(generic)?;
        Ok(Box::new(Upload {
            file: Arc::new(Mutex::new(Some(file))),
            staged: Some(staged),
            dest,
            offset: 0,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.fs.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.fs.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        // A copy keeps its source's mode, which is ours.
        self.fs.copy_opts(from, to, options).await
    }
}

/// A multipart upload into a 0600 staging file; parts land at their offsets, so they
/// may complete in any order.
#[derive(Debug)]
struct Upload {
    file: Arc<Mutex<Option<File>>>,
    staged: Option<PathBuf>,
    dest: PathBuf,
    offset: u64,
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let at = self.offset;
        self.offset += data.content_length() as u64;
        let file = Arc::clone(&self.file);
        Box::pin(blocking(move || {
            let guard = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let f = guard.as_ref().ok_or_else(|| {
                generic(std::io::Error::other("the upload was completed or aborted"))
            })?;
            let mut pos = at;
            for b in data.iter() {
                f.write_all_at(b, pos).map_err(generic)?;
                pos += b.len() as u64;
            }
            Ok(())
        }))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let staged = self
            .staged
            .take()
            .ok_or_else(|| generic(std::io::Error::other("the upload was already finished")))?;
        let file = Arc::clone(&self.file);
        let dest = self.dest.clone();
        blocking(move || {
            let f = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| generic(std::io::Error::other("the upload was aborted")))?;
            publish(f, &staged, &dest, false)
        })
        .await
    }

    async fn abort(&mut self) -> Result<()> {
        let Some(staged) = self.staged.take() else {
            return Ok(());
        };
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        blocking(move || std::fs::remove_file(&staged).map_err(generic)).await
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Neither completed nor aborted: leave no staging file behind.
        if let Some(staged) = self.staged.take() {
            let _ = std::fs::remove_file(staged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn mode(p: &FsPath) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[tokio::test]
    async fn puts_and_uploads_create_private_directories_and_files_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sets/local");
        let s = PrivateLocal::new(&root).unwrap();
        s.put(
            &Path::from("a/b/manifest.json"),
            PutPayload::from(b"{}".to_vec()),
        )
        .await
        .unwrap();
        let mut up = s.put_multipart(&Path::from("a/c/dump")).await.unwrap();
        let p2 = up.put_part(PutPayload::from(b"world".to_vec()));
        let p1 = up.put_part(PutPayload::from(b"!".to_vec()));
        p1.await.unwrap();
        p2.await.unwrap();
        up.complete().await.unwrap();
        let got = s
            .get(&Path::from("a/c/dump"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"world!");
        for d in [
            "sets",
            "sets/local",
            "sets/local/a",
            "sets/local/a/b",
            "sets/local/a/c",
        ] {
            assert_eq!(mode(&tmp.path().join(d)), DIR_MODE, "{d}");
        }
        for f in ["sets/local/a/b/manifest.json", "sets/local/a/c/dump"] {
            assert_eq!(mode(&tmp.path().join(f)), FILE_MODE, "{f}");
        }
        // Listing sees the two objects only.
        use futures::TryStreamExt;
        let listed: Vec<ObjectMeta> = s.list(None).try_collect().await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        // An aborted upload leaves nothing.
        let mut up = s.put_multipart(&Path::from("a/d/x")).await.unwrap();
        up.put_part(PutPayload::from(b"x".to_vec())).await.unwrap();
        up.abort().await.unwrap();
        assert_eq!(std::fs::read_dir(root.join("a/d")).unwrap().count(), 0);
    }
}
