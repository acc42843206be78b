//! Entries a writable mount made that the server may not have yet: staged files and new
//! directories. They are *pinned*: lookups and listings show them whatever the server says,
//! until they are unpinned (a file once uploaded; a directory never, for the mount's life).
//!
//! Invariants: a pinned entry's node is in `by_path` under its path and in its parent's pinned
//! set under its name; every cached listing of the parent includes it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::error::FsError;

use super::{DirEntry, Namespace, NodeInfo, NodeKind, Tables, join};

impl Tables {
    /// Adds or replaces `name` in `dir`'s cached listing (if it has one).
    fn listing_insert(&mut self, dir: u64, entry: DirEntry) {
        let Some(n) = self.nodes.get_mut(&dir) else {
            return;
        };
        if let Some((entries, _)) = &mut n.listing {
            let v = Arc::make_mut(entries);
            match v.binary_search_by(|e| e.name.cmp(&entry.name)) {
                Ok(i) => v[i] = entry,
                Err(i) => v.insert(i, entry),
            }
        }
    }

    fn listing_remove(&mut self, dir: u64, name: &str) {
        if let Some(n) = self.nodes.get_mut(&dir)
            && let Some((entries, _)) = &mut n.listing
            && let Ok(i) = entries.binary_search_by(|e| e.name.as_str().cmp(name))
        {
            Arc::make_mut(entries).remove(i);
        }
    }

    /// Pinned entries of `dir`, for a listing.
    pub(super) fn pinned_in(&self, dir: u64) -> Vec<DirEntry> {
        self.pinned.get(&dir).map_or_else(Vec::new, |names| {
            names
                .iter()
                .filter_map(|(name, ino)| {
                    let n = self.nodes.get(ino)?;
                    Some(DirEntry {
                        ino: *ino,
                        name: name.clone(),
                        is_dir: matches!(n.info.kind, NodeKind::Dir),
                    })
                })
                .collect()
        })
    }

    /// Removes the path `path` (and everything below it) from `by_path`; the nodes stay (an
    /// open handle may still use its inode).
    fn unlink_path(&mut self, path: &str) {
        let below = format!("{path}/");
        self.by_path
            .retain(|p, _| p != path && !p.starts_with(&below));
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl Namespace {
    /// Pins `name` in directory `parent` as `kind` and returns its node (its inode is the one the
    /// path already has, if any).
    pub fn pin(&self, parent: u64, name: &str, kind: NodeKind) -> Result<NodeInfo, FsError> {
        let parent_info = self.get(parent)?;
        if !matches!(parent_info.kind, NodeKind::Dir) {
            return Err(FsError::NotADirectory);
        }
        let path = join(&parent_info.path, name);
        self.forget_zarr_of(&path);
        let is_dir = matches!(kind, NodeKind::Dir);
        let mut t = self.tables.write();
        let ino = Self::upsert(&mut t, parent, path, kind);
        t.pinned
            .entry(parent)
            .or_default()
            .insert(name.to_string(), ino);
        t.listing_insert(
            parent,
            DirEntry {
                ino,
                name: name.to_string(),
                is_dir,
            },
        );
        Ok(t.nodes[&ino].info.clone())
    }

    /// `ino` is a folder made here that the server has nothing under: its listing is its pinned
    /// entries alone, so lookups of missing names in it need no request (for the TTL).
    pub fn mark_local_dir(&self, ino: u64) {
        let mut t = self.tables.write();
        let entries = Arc::new(t.pinned_in(ino));
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.listing = Some((entries, Instant::now()));
        }
    }

    /// Whether `ino` is pinned (made here, maybe not on the server).
    pub fn is_pinned(&self, ino: u64) -> bool {
        let t = self.tables.read();
        let Some(n) = t.nodes.get(&ino) else {
            return false;
        };
        let name = split(&n.info.path).1;
        t.pinned
            .get(&n.parent)
            .is_some_and(|m| m.get(name) == Some(&ino))
    }

    /// The server has `ino`'s file now, as this object.
    pub fn set_uploaded(&self, ino: u64, size: u64, mtime: SystemTime, etag: Option<String>) {
        let path = {
            let mut t = self.tables.write();
            let Some(n) = t.nodes.get_mut(&ino) else {
                return;
            };
            n.info.kind = NodeKind::File { size, mtime, etag };
            n.validated = Instant::now();
            n.info.path.clone()
        };
        self.forget_zarr_of(&path);
    }

    /// `ino` is no longer pinned; the server answers for it from now on.
    pub fn unpin(&self, ino: u64) {
        let mut t = self.tables.write();
        let Some(n) = t.nodes.get(&ino) else {
            return;
        };
        let (parent, name) = (n.parent, split(&n.info.path).1.to_string());
        if let Some(m) = t.pinned.get_mut(&parent)
            && m.get(&name) == Some(&ino)
        {
            m.remove(&name);
        }
    }

    /// Removes `ino` from the tree (unlink, rmdir): its path is missing from now on.
    pub fn detach(&self, ino: u64) {
        let mut t = self.tables.write();
        let Some(n) = t.nodes.get(&ino) else {
            return;
        };
        let (parent, path) = (n.parent, n.info.path.clone());
        let name = split(&path).1.to_string();
        if let Some(m) = t.pinned.get_mut(&parent) {
            m.remove(&name);
        }
        t.listing_remove(parent, &name);
        t.unlink_path(&path);
        t.remember_missing(path.clone(), self.ttl);
        drop(t);
        self.forget_zarr_of(&path);
    }

    /// Moves `ino` to `name` in `new_parent`, over whatever was there (detached first; its
    /// inode is returned). A directory's descendants move with it. The moved entry is pinned
    /// at its new place.
    pub fn rename(&self, ino: u64, new_parent: u64, name: &str) -> Result<Option<u64>, FsError> {
        let dest_dir = self.get(new_parent)?;
        if !matches!(dest_dir.kind, NodeKind::Dir) {
            return Err(FsError::NotADirectory);
        }
        let new_path = join(&dest_dir.path, name);
        let replaced = self.tables.read().by_path.get(&new_path).copied();
        if let Some(r) = replaced
            && r != ino
        {
            self.detach(r);
        }
        let mut t = self.tables.write();
        let n = t.nodes.get(&ino).ok_or(FsError::NotFound)?;
        let (old_parent, old_path, is_dir) = (
            n.parent,
            n.info.path.clone(),
            matches!(n.info.kind, NodeKind::Dir),
        );
        let old_name = split(&old_path).1.to_string();
        if let Some(m) = t.pinned.get_mut(&old_parent) {
            m.remove(&old_name);
        }
        t.listing_remove(old_parent, &old_name);
        // Every path at or below the old one moves.
        let below = format!("{old_path}/");
        let moved: Vec<(String, u64)> = t
            .by_path
            .iter()
            .filter(|(p, _)| *p == &old_path || p.starts_with(&below))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moved {
            t.by_path.remove(&p);
            let np = format!("{new_path}{}", &p[old_path.len()..]);
            if let Some(node) = t.nodes.get_mut(&i) {
                node.info.path = np.clone();
            }
            t.by_path.insert(np, i);
        }
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.parent = new_parent;
        }
        t.forget_missing(&new_path);
        t.remember_missing(old_path.clone(), self.ttl);
        t.pinned
            .entry(new_parent)
            .or_default()
            .insert(name.to_string(), ino);
        t.listing_insert(
            new_parent,
            DirEntry {
                ino,
                name: name.to_string(),
                is_dir,
            },
        );
        drop(t);
        self.forget_zarr_of(&old_path);
        self.forget_zarr_of(&new_path);
        Ok(replaced.filter(|r| *r != ino))
    }

    /// The inode of `path`, made of pinned directories down from the root where it has none
    /// (for files a previous mount staged).
    pub fn pin_path(&self, path: &str, file: NodeKind) -> Option<u64> {
        let mut parent = super::ROOT_INO;
        let mut parts = path.split('/').peekable();
        while let Some(part) = parts.next() {
            if !crate::store::valid_name(part) {
                return None;
            }
            let kind = if parts.peek().is_some() {
                let existing = {
                    let t = self.tables.read();
                    let p = join(&t.nodes.get(&parent)?.info.path, part);
                    t.by_path.get(&p).copied()
                };
                if let Some(i) = existing {
                    parent = i;
                    continue;
                }
                NodeKind::Dir
            } else {
                file.clone()
            };
            parent = self.pin(parent, part, kind).ok()?.ino;
        }
        Some(parent)
    }

    /// Zarr layouts of stores holding `path` (or held by it) are dropped: the store changed.
    fn forget_zarr_of(&self, path: &str) {
        let mut stores = self.zarr_stores.write();
        if stores.is_empty() {
            return;
        }
        stores.retain(|store, _| {
            let holds = path.starts_with(&format!("{store}/")) || path == store;
            let held = store.starts_with(&format!("{path}/"));
            !(holds || held)
        });
    }
}
