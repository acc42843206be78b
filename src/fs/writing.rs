//! The write operations of a `--read-write` mount: they stage bytes through [`Writes`] and keep
//! the namespace showing what was made. Without `--read-write` each is EROFS. Converted views
//! are always read-only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{Attr, Fs, Handle, Opened};
use crate::error::FsError;
use crate::namespace::{Namespace, NodeInfo, NodeKind};
use crate::store::valid_name;
use crate::write::{Events, Writes};

/// The extended attribute that shows a file's upload state.
pub const STATE_XATTR: &str = "user.geomount.state";

impl Events for Namespace {
    fn uploaded(&self, ino: u64, _path: &str, size: u64, mtime: SystemTime, etag: Option<String>) {
        self.set_uploaded(ino, size, mtime, etag);
    }

    fn unstaged(&self, ino: u64) {
        self.unpin(ino);
    }
}

/// What `setattr` asks to change.
#[derive(Debug, Default, Clone, Copy)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub size: Option<u64>,
    pub mtime: Option<SystemTime>,
}

fn new_file() -> NodeKind {
    NodeKind::File {
        size: 0,
        mtime: SystemTime::now(),
        etag: None,
    }
}

impl Fs {
    /// Makes the mount writable through `writes`, and shows what a previous mount left staged.
    pub fn with_writes(mut self, writes: Arc<Writes>) -> Self {
        let ns = self.ns.clone();
        let events: Arc<dyn Events> = ns.clone();
        writes.attach(Arc::downgrade(&events), |path| {
            ns.pin_path(path, new_file())
        });
        self.writes = Some(writes);
        self
    }

    pub fn writes(&self) -> Option<&Arc<Writes>> {
        self.writes.as_ref()
    }

    fn writable(&self) -> Result<&Arc<Writes>, FsError> {
        self.writes.as_ref().ok_or(FsError::ReadOnly)
    }

    /// `path` belongs to a converted view (or is one): read-only whatever the mount.
    fn refuse_views(&self, path: &str) -> Result<(), FsError> {
        if self.ns.is_derived(path) {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn child_path(&self, parent: u64, name: &str) -> Result<String, FsError> {
        if !valid_name(name) {
            return Err(FsError::InvalidArgument(format!("bad file name {name:?}")));
        }
        let p = self.ns.get(parent)?;
        let path = if p.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", p.path)
        };
        self.refuse_views(&path)?;
        Ok(path)
    }

    /// The node at `parent/name`, or `None` if there is none.
    async fn existing(&self, parent: u64, name: &str) -> Result<Option<NodeInfo>, FsError> {
        match self.ns.lookup(parent, name).await {
            Ok(n) => Ok(Some(n)),
            Err(FsError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn staged_handle(&self, ino: u64) -> Result<Opened, FsError> {
        let w = self.writable()?;
        let file = w.get(ino).ok_or(FsError::NotFound)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Handle::Staged { ino, file });
        Ok(Opened {
            fh,
            keep_cache: false,
            direct_io: false,
        })
    }

    /// `create`: a new staged file at `parent/name` (with `O_EXCL`, EEXIST if there is one).
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        flags: i32,
    ) -> Result<(Attr, Opened), FsError> {
        let w = self.writable()?.clone();
        let path = self.child_path(parent, name)?;
        let base = match self.existing(parent, name).await? {
            Some(_) if flags & libc::O_EXCL != 0 => return Err(FsError::Exists),
            Some(NodeInfo {
                kind: NodeKind::Dir,
                ..
            }) => return Err(FsError::IsADirectory),
            Some(n) if w.is_staged(n.ino) => {
                let opened = self.open_staged(n.ino, flags | libc::O_TRUNC, true).await?;
                return Ok((self.attr(n.ino)?, opened));
            }
            Some(NodeInfo {
                kind: NodeKind::File { etag, .. },
                ..
            }) => etag,
            None => None,
        };
        let existed = base.is_some();
        let node = self.ns.pin(parent, name, new_file())?;
        if let Err(e) = w.create(node.ino, &path, base) {
            if existed {
                self.ns.unpin(node.ino);
            } else {
                self.ns.detach(node.ino);
            }
            return Err(e);
        }
        if let Some(st) = w.get(node.ino) {
            w.set_mode(&st, mode as u16);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let file = w.get(node.ino).ok_or(FsError::NotFound)?;
        self.handles.lock().insert(
            fh,
            Handle::Staged {
                ino: node.ino,
                file,
            },
        );
        Ok((
            self.attr(node.ino)?,
            Opened {
                fh,
                keep_cache: false,
                direct_io: false,
            },
        ))
    }

    /// `open` of a staged file, or of a server's file for writing (staged first: emptied with
    /// `O_TRUNC`, otherwise copied down).
    pub(super) async fn open_staged(
        &self,
        ino: u64,
        flags: i32,
        writing: bool,
    ) -> Result<Opened, FsError> {
        let w = self.writable()?.clone();
        let trunc = flags & libc::O_TRUNC != 0;
        if let Some(st) = w.get(ino) {
            w.opened(&st);
            if trunc && let Err(e) = w.truncate(&st, 0) {
                let _ = w.released(ino);
                return Err(e);
            }
            return self.staged_handle(ino).inspect_err(|_| {
                let _ = w.released(ino);
            });
        }
        if !writing {
            // Uploaded and unstaged since the caller looked: read it from the server.
            return Err(FsError::NotStaged);
        }
        let (info, _) = self.ns.open_file(ino).await?;
        self.refuse_views(&info.path)?;
        let NodeKind::File { size, etag, .. } = info.kind else {
            return Err(FsError::IsADirectory);
        };
        let name = info.path.rsplit('/').next().unwrap_or_default().to_string();
        let parent = self.ns.parent_of(ino);
        if trunc {
            w.create(ino, &info.path, etag)?;
        } else {
            let store = self.store.clone();
            let key = info.path.clone();
            let pin = etag.clone();
            w.copy_down(ino, &info.path, size, etag, |range| {
                let (store, key, pin) = (store.clone(), key.clone(), pin.clone());
                async move { store.get_range(&key, range, pin.as_deref()).await }
            })
            .await?;
        }
        let kind = self.ns.get(ino)?.kind;
        self.ns.pin(parent, &name, kind)?;
        self.staged_handle(ino).inspect_err(|_| {
            let _ = w.released(ino);
        })
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        let file = match self.handles.lock().get(&fh) {
            Some(Handle::Staged { file, .. }) => file.clone(),
            Some(_) => return Err(FsError::BadHandle),
            None => return Err(FsError::BadHandle),
        };
        self.writable()?.write(&file, offset, data)
    }

    /// `flush` (each close): with a zero write-back delay the last close uploads, and its
    /// error is the close's.
    pub async fn flush(&self, fh: u64) -> Result<(), FsError> {
        let Some(w) = &self.writes else {
            return Ok(());
        };
        let ino = match self.handles.lock().get(&fh) {
            Some(Handle::Staged { ino, .. }) => *ino,
            _ => return Ok(()),
        };
        if w.uploads_in_close() {
            w.fsync(ino).await
        } else {
            Ok(())
        }
    }

    /// `fsync`: uploads now and returns the upload's outcome.
    pub async fn fsync(&self, ino: u64) -> Result<(), FsError> {
        match &self.writes {
            Some(w) => w.fsync(ino).await,
            None => Ok(()),
        }
    }

    /// `fsync` of a directory: every staged file below it is uploaded (`geomount sync`).
    pub async fn fsyncdir(&self, ino: u64) -> Result<(), FsError> {
        match &self.writes {
            Some(w) => w.sync_under(&self.ns.get(ino)?.path).await,
            None => Ok(()),
        }
    }

    /// `setattr`: a size truncates (staging a server's file for it); mode and mtime are kept
    /// for staged files; chmod, chown and utimens of anything else are accepted and not kept.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr, FsError> {
        let w = self.writable()?.clone();
        let info = self.ns.get(ino)?;
        if let Some(size) = set.size {
            if matches!(info.kind, NodeKind::Dir) {
                return Err(FsError::IsADirectory);
            }
            self.refuse_views(&info.path)?;
            // truncate(2) of a path not open here: staged for the change, then closed again.
            let staged_here = !w.is_staged(ino);
            if staged_here {
                let flags = libc::O_WRONLY | if size == 0 { libc::O_TRUNC } else { 0 };
                let o = self.open_staged(ino, flags, true).await?;
                self.handles.lock().remove(&o.fh);
            }
            let st = w.get(ino).ok_or(FsError::NotFound)?;
            let res = w.truncate(&st, size);
            if staged_here {
                w.released(ino)?;
            }
            res?;
        }
        if let Some(st) = w.get(ino) {
            if let Some(m) = set.mode {
                w.set_mode(&st, m as u16);
            }
            if let Some(t) = set.mtime {
                w.set_times(&st, t);
            }
        }
        self.attr(ino)
    }

    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        self.writable()?;
        self.child_path(parent, name)?;
        if self.existing(parent, name).await?.is_some() {
            return Err(FsError::Exists);
        }
        let node = self.ns.pin(parent, name, NodeKind::Dir)?;
        // The lookup above found nothing on the server: nothing is below it there.
        self.ns.mark_local_dir(node.ino);
        self.attr(node.ino)
    }

    pub async fn unlink(&self, parent: u64, name: &str) -> Result<(), FsError> {
        let w = self.writable()?.clone();
        let path = self.child_path(parent, name)?;
        let node = self
            .existing(parent, name)
            .await?
            .ok_or(FsError::NotFound)?;
        if matches!(node.kind, NodeKind::Dir) {
            return Err(FsError::IsADirectory);
        }
        let on_server = match w.unlink(node.ino) {
            // Staged: on the server only if it replaced an object there.
            Some(base) => base.is_some(),
            None => true,
        };
        if on_server {
            if w.no_delete() {
                return Err(FsError::NotPermitted(
                    "--no-delete keeps what is on the server",
                ));
            }
            self.store.delete(&path).await?;
        }
        self.ns.detach(node.ino);
        Ok(())
    }

    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<(), FsError> {
        self.writable()?;
        self.child_path(parent, name)?;
        let node = self
            .existing(parent, name)
            .await?
            .ok_or(FsError::NotFound)?;
        if !matches!(node.kind, NodeKind::Dir) {
            return Err(FsError::NotADirectory);
        }
        if !self.ns.list(node.ino).await?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.ns.detach(node.ino);
        Ok(())
    }

    /// `rename`: of a staged file, a local move (uploaded once, at its new key); of a folder
    /// that is all staged, the same for everything in it. Anything already on the server is
    /// EXDEV, so `mv` copies and deletes through the mount.
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        no_replace: bool,
    ) -> Result<(), FsError> {
        let w = self.writable()?.clone();
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        let src = self
            .existing(parent, name)
            .await?
            .ok_or(FsError::NotFound)?;
        let dest = self.existing(new_parent, new_name).await?;
        if let Some(d) = &dest {
            if d.ino == src.ino {
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
        }
        match src.kind {
            NodeKind::File { .. } => {
                if !w.is_staged(src.ino) {
                    return Err(FsError::CrossDevice("the file is already uploaded"));
                }
                // The upload replaces what the destination is on the server.
                let base = match &dest {
                    Some(NodeInfo {
                        kind: NodeKind::Dir,
                        ..
                    }) => return Err(FsError::IsADirectory),
                    Some(d) => match w.unlink(d.ino) {
                        Some(base) => base,
                        None => match &d.kind {
                            NodeKind::File { etag, .. } => etag.clone(),
                            NodeKind::Dir => None,
                        },
                    },
                    None => None,
                };
                let replaced_server_src = w.base_of(src.ino).is_some();
                w.rename(src.ino, &to, base)?;
                self.ns.rename(src.ino, new_parent, new_name)?;
                if replaced_server_src && !w.no_delete() {
                    // The source's own key (a server file opened for writing, then moved).
                    self.store.delete(&from).await?;
                }
                Ok(())
            }
            NodeKind::Dir => {
                if let Some(d) = &dest {
                    if !matches!(d.kind, NodeKind::Dir) {
                        return Err(FsError::NotADirectory);
                    }
                    if !self.ns.list(d.ino).await?.is_empty() {
                        return Err(FsError::NotEmpty);
                    }
                }
                let local = self.ns.is_pinned(src.ino)
                    && match self.store.list(&format!("{from}/")).await {
                        Ok(l) => l.dirs.is_empty() && l.files.is_empty() && !l.marker,
                        Err(FsError::NotFound) => true,
                        Err(e) => return Err(e),
                    };
                if !local {
                    return Err(FsError::CrossDevice("the folder has files on the server"));
                }
                for (ino, path) in w.staged_under(&from) {
                    let moved = format!("{to}{}", &path[from.len()..]);
                    w.rename(ino, &moved, None)?;
                }
                self.ns.rename(src.ino, new_parent, new_name)?;
                Ok(())
            }
        }
    }

    /// `link`: a staged file gets a second name, as a copy of its bytes staged for upload
    /// there (the create-if-absent idiom of zarr-python 3.1.3+: link, then unlink the
    /// temporary). Anything else is EPERM.
    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &str) -> Result<Attr, FsError> {
        let w = self.writable()?.clone();
        let to = self.child_path(new_parent, new_name)?;
        if self.existing(new_parent, new_name).await?.is_some() {
            return Err(FsError::Exists);
        }
        let Some(src) = w.get(ino) else {
            return Err(FsError::NotPermitted(
                "only a file not yet uploaded can be linked",
            ));
        };
        let node = self.ns.pin(new_parent, new_name, new_file())?;
        if let Err(e) = w.copy_staged(&src, node.ino, &to) {
            self.ns.detach(node.ino);
            return Err(e);
        }
        self.attr(node.ino)
    }

    /// The upload state of `ino`, as its `user.geomount.state` attribute (files of a writable
    /// mount only: a read-only mount has no attributes).
    pub fn state_xattr(&self, ino: u64) -> Result<String, FsError> {
        let info = self.ns.get(ino)?;
        let Some(w) = &self.writes else {
            return Err(FsError::NoAttribute);
        };
        if matches!(info.kind, NodeKind::Dir) {
            return Err(FsError::NoAttribute);
        }
        Ok(match w.state(ino) {
            Some(s) => s.name().to_string(),
            None => "clean".to_string(),
        })
    }

    /// What `statfs` reports free: the staging disk's room on a writable mount.
    pub fn free_bytes(&self) -> Option<u64> {
        self.writes.as_ref().map(|w| w.free_bytes())
    }
}
