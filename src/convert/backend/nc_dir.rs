//! The `DIR.zarr/` views of [`Convert`]: beside a folder `DIR/` of NetCDF-4/HDF5 files that
//! differ along one record dimension, a consolidated Zarr v2 store joining them, chunk for
//! chunk ([`crate::convert::nc_zarr::concat`]).
//!
//! - A listing shows `DIR.zarr` beside each of its folders (at most [`MAX_PROBES`] of them; a
//!   listing with more, or inside a Zarr store, shows none) that holds at least [`MIN_FILES`]
//!   such files and whose view is not known to be refused: one LIST of each folder, taken as
//!   current for the metadata TTL. A folder `DIR.zarr/` that holds no object is tried as a
//!   folder view too, so a view opened by path needs no listing of its parent first.
//! - The view is built from each file's description ([`Convert::nc_describe`]: the walk of its
//!   read plan, whose bytes the disk cache keeps, so a remount needs no request for it), with
//!   the values of small variables, so record coordinates are joined from their values.
//! - Files that cannot be joined (other variables, chunk grids that do not line up, no record
//!   dimension, a file that does not parse) make the view refused: it is absent, and the log
//!   says why, once per version of the folder. A request that fails is an error, not a refusal.
//! - The view's version is a digest of its files' names, sizes and ETags: a file added, removed
//!   or replaced makes a new view; readers of the old one read it while it is held (its chunks
//!   pinned to their files' old ETags), then get ESTALE, never bytes of two versions.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::netcdf::has_view;
use super::{Convert, SEEN_MAX, object_ref, stale_as};
use crate::convert::nc_zarr::{Part, Tree, concat};
use crate::error::FsError;
use crate::rope::Rope;
use crate::store::{Backend, Listing, ObjectInfo};

/// Suffix of the view beside `DIR/`.
const SUFFIX: &str = ".zarr";
/// A folder with fewer NetCDF files has no view (one file has its own `NAME.nc.zarr/`).
pub(super) const MIN_FILES: usize = 2;
/// A folder with more NetCDF files has no view (each file's description is held while the
/// view is built).
const MAX_FILES: usize = 10_000;
/// A listing with more folders than this shows no folder views (each costs a LIST).
const MAX_PROBES: usize = 64;
/// Values of variables of at most this many bytes are read while describing (coordinates).
const SMALL_VALUES: u64 = 64 << 10;
/// Files described at once: each walk is a few rounds of small GETs, so a folder's open costs
/// about its rounds' latency times the files over this (W9, BENCHMARKS.md).
const DESCRIBE_AT_ONCE: usize = 32;
/// At most this many folder views are known (a path each).
const MAX_ROOTS: usize = 16 * SEEN_MAX;
/// Names of files that mark a folder as a Zarr store (or group) of its own.
const ZARR_MARKERS: &[&str] = &[".zgroup", ".zarray", ".zattrs", ".zmetadata", "zarr.json"];

/// A folder's NetCDF files, and when they were listed.
type Listed = (Arc<Vec<ObjectInfo>>, Instant);

/// The folder views' state: each folder's NetCDF files as last listed, and the view roots
/// known to be folder views (so their paths need no probe).
#[derive(Debug, Default)]
pub(super) struct Folders {
    listed: Mutex<HashMap<String, Listed>>,
    roots: Mutex<HashSet<String>>,
}

/// A path below a folder view: the folder (`P/DIR/`) and the path inside the view root.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DPath {
    dir: String,
    rest: String,
}

/// A folder's view: its files (key, info) and the store joining them, or why there is none.
pub struct DirView {
    files: Vec<(String, ObjectInfo)>,
    tree: Result<Tree, String>,
    version: String,
}

impl DirView {
    fn weight(&self) -> usize {
        let tree: usize = match &self.tree {
            Ok(t) => t
                .iter()
                .map(|(p, f)| {
                    p.len()
                        + 64
                        + match &f.part {
                            Part::Json(s) => s.len(),
                            Part::Inline(b) => b.len(),
                            Part::Source { .. } => 0,
                        }
                })
                .sum(),
            Err(why) => why.len(),
        };
        tree + self.files.iter().map(|(k, _)| k.len() + 128).sum::<usize>()
    }

    fn tree(&self) -> Result<&Tree, FsError> {
        self.tree.as_ref().map_err(|_| FsError::NotFound)
    }

    /// The newest file's modification time.
    fn mtime(&self) -> std::time::SystemTime {
        let mtimes = self.files.iter().map(|(_, i)| i.mtime);
        mtimes.max().unwrap_or(std::time::UNIX_EPOCH)
    }
}

/// The first segment of `path` that could be a folder view's root (`DIR.zarr`, where `DIR`
/// names no NetCDF file): the root's path and the folder's.
fn candidate(path: &str) -> Option<(String, DPath)> {
    let mut start = 0;
    for seg in path.split('/') {
        let end = start + seg.len();
        if let Some(stem) = seg.strip_suffix(SUFFIX)
            && !stem.is_empty()
            && !has_view(stem)
        {
            let dp = DPath {
                dir: format!("{}{stem}/", &path[..start]),
                rest: path.get(end + 1..).unwrap_or("").to_string(),
            };
            return Some((path[..end].to_string(), dp));
        }
        start = end + 1;
    }
    None
}

/// The version of a view of `files`.
fn version_of(files: &[(String, ObjectInfo)]) -> String {
    let mut h = Sha256::new();
    for (key, info) in files {
        h.update(key.as_bytes());
        h.update([0]);
        h.update(info.size.to_le_bytes());
        h.update(info.etag.as_deref().unwrap_or("").as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    format!("ncdir-{}", hex(&d[..12]))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl<B: Backend> Convert<B> {
    /// The folder view below which `path` lies, when its root is known to be one.
    pub(super) fn dir_route(&self, path: &str) -> Option<DPath> {
        if self.folders.roots.lock().is_empty() {
            return None;
        }
        let (root, dp) = candidate(path)?;
        self.folders.roots.lock().contains(&root).then_some(dp)
    }

    /// The folder view whose root is `path` (`P/DIR.zarr` or `P/DIR.zarr/`), found by listing
    /// its folder: for a path that is no object. The root is remembered when the folder has
    /// enough NetCDF files; paths below a root are routed once it is known.
    pub(super) async fn dir_probe(&self, path: &str) -> Option<DPath> {
        self.probe_files(path).await.map(|(dp, _)| dp)
    }

    /// [`Self::dir_probe`], with the folder's NetCDF files.
    async fn probe_files(&self, path: &str) -> Option<(DPath, Arc<Vec<ObjectInfo>>)> {
        let (root, dp) = candidate(path).filter(|(_, dp)| dp.rest.is_empty())?;
        match self.nc_files(&dp.dir).await {
            Ok(files) if files.len() >= MIN_FILES && self.remember_root(root) => Some((dp, files)),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("{}: not listed as a folder view: {e}", dp.dir);
                None
            }
        }
    }

    /// Whether `root` is now known as a folder view: at most [`MAX_ROOTS`] are (paths below a
    /// root not known could not be routed, so a folder beyond them has no view).
    fn remember_root(&self, root: String) -> bool {
        let mut roots = self.folders.roots.lock();
        if roots.len() >= MAX_ROOTS && !roots.contains(&root) {
            tracing::debug!("{root}: more than {MAX_ROOTS} folder views: not shown");
            return false;
        }
        roots.insert(root);
        true
    }

    /// The NetCDF files directly in folder `dir` (ending with `/`), listed at most once per
    /// metadata TTL.
    async fn nc_files(&self, dir: &str) -> Result<Arc<Vec<ObjectInfo>>, FsError> {
        if let Some((files, at)) = self.folders.listed.lock().get(dir)
            && at.elapsed() < self.ttl
        {
            return Ok(files.clone());
        }
        let listing = match self.inner.list(dir).await {
            Err(FsError::NotFound) => Listing::default(),
            got => got?,
        };
        let files: Arc<Vec<ObjectInfo>> = Arc::new(
            listing
                .files
                .into_iter()
                .filter(|f| has_view(&f.name))
                .collect(),
        );
        if !self.ttl.is_zero() {
            let mut listed = self.folders.listed.lock();
            if listed.len() >= SEEN_MAX {
                listed.clear();
            }
            listed.insert(dir.to_string(), (files.clone(), Instant::now()));
        }
        Ok(files)
    }

    /// The folder views to add to `listing` of `dir`.
    pub(super) async fn nc_dir_dirs(&self, dir: &str, listing: &Listing) -> Vec<String> {
        let inside_zarr = dir.split('/').any(|s| s.ends_with(SUFFIX))
            || listing
                .files
                .iter()
                .any(|f| ZARR_MARKERS.contains(&f.name.as_str()));
        let taken: HashSet<&str> = listing
            .dirs
            .iter()
            .map(String::as_str)
            .chain(listing.files.iter().map(|f| f.name.as_str()))
            .collect();
        let folders: Vec<String> = listing
            .dirs
            .iter()
            .filter(|d| !d.ends_with(SUFFIX) && !has_view(d))
            .filter(|d| !taken.contains(format!("{d}{SUFFIX}").as_str()))
            .cloned()
            .collect();
        if inside_zarr || folders.is_empty() {
            return Vec::new();
        }
        if folders.len() > MAX_PROBES {
            tracing::debug!(
                "{dir}: {} folders, more than {MAX_PROBES}: no folder views listed",
                folders.len()
            );
            return Vec::new();
        }
        futures::stream::iter(folders)
            .map(|d: String| async move {
                let root = format!("{dir}{d}{SUFFIX}");
                let (dp, files) = self.probe_files(&root).await?;
                // A view known to be refused is not shown.
                let known = self
                    .memory()
                    .get::<DirView>(&super::DerivedKey::of::<DirView>(
                        &dp.dir,
                        Some(&version_of(&keyed(&dp.dir, &files))),
                        "nc-dir",
                    ))
                    .await;
                if known.is_some_and(|v| v.tree.is_err()) {
                    return None;
                }
                Some(format!("{d}{SUFFIX}"))
            })
            .buffer_unordered(16)
            .filter_map(|d| async move { d })
            .collect()
            .await
    }

    /// The view of folder `dir`, kept per version of its listing. With `etag` (the version a
    /// reader holds) a held view needs no request.
    async fn dir_view(&self, dir: &str, etag: Option<&str>) -> Result<Arc<DirView>, FsError> {
        let current = async {
            let files = keyed(dir, &self.nc_files(dir).await?);
            Ok((Some(version_of(&files)), files))
        };
        self.held_or_built(dir, etag, "nc-dir", current, |files| async move {
            let version = version_of(&files);
            let tree = self.join(dir, &files).await?;
            if let Err(why) = &tree {
                tracing::warn!(
                    "{dir}: no folder view {}{SUFFIX}: {why}",
                    dir.trim_end_matches('/')
                );
            }
            let view = DirView {
                files,
                tree,
                version,
            };
            let weight = view.weight();
            Ok((view, weight))
        })
        .await
    }

    /// The store joining `files`, or why they cannot be joined. A request that fails is an
    /// error; a file that does not parse is a refusal.
    async fn join(
        &self,
        dir: &str,
        files: &[(String, ObjectInfo)],
    ) -> Result<Result<Tree, String>, FsError> {
        if files.len() < MIN_FILES {
            return Ok(Err(format!("fewer than {MIN_FILES} NetCDF files in {dir}")));
        }
        if files.len() > MAX_FILES {
            return Ok(Err(format!("more than {MAX_FILES} NetCDF files in {dir}")));
        }
        let described = futures::stream::iter(files.to_vec())
            .map(|(key, info): (String, ObjectInfo)| async move {
                match self.nc_describe(&key, &info, SMALL_VALUES).await {
                    Ok(d) => Ok(Ok(d)),
                    Err(e @ (FsError::View(_) | FsError::Format(_))) => Ok(Err(e.to_string())),
                    Err(e) => Err(e),
                }
            })
            .buffered(DESCRIBE_AT_ONCE)
            .try_collect::<Vec<_>>()
            .await?;
        let mut descs = Vec::with_capacity(files.len());
        for ((key, _), d) in files.iter().zip(described) {
            match d {
                Ok(d) => descs.push((key.rsplit('/').next().unwrap_or(key), d)),
                Err(why) => return Ok(Err(why)),
            }
        }
        for (name, d) in &descs {
            for (var, why) in &d.skipped {
                tracing::warn!("{dir}{name}: '{var}' left out of the folder view: {why}");
            }
        }
        let refs: Vec<(&str, &_)> = descs.iter().map(|(n, d)| (*n, d)).collect();
        Ok(concat(&refs))
    }

    pub(super) async fn dir_list(&self, dir: &str, dp: &DPath) -> Result<Listing, FsError> {
        let view = self.dir_view(&dp.dir, None).await?;
        let files = view.tree()?.iter().map(|(p, f)| (p.as_str(), f.size));
        let info = ObjectInfo {
            name: String::new(),
            size: 0,
            mtime: view.mtime(),
            etag: None,
        };
        let listing = super::list_tree(files, &dp.rest, &info, Some(view.version.clone()))?;
        Ok(crate::store::finish_listing(dir, listing))
    }

    pub(super) async fn dir_head(&self, key: &str, dp: &DPath) -> Result<ObjectInfo, FsError> {
        let view = self.dir_view(&dp.dir, None).await?;
        let file = view.tree()?.get(&dp.rest).ok_or(FsError::NotFound)?;
        Ok(ObjectInfo {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            size: file.size,
            mtime: view.mtime(),
            etag: Some(view.version.clone()),
        })
    }

    pub(super) async fn dir_range(
        &self,
        dp: &DPath,
        range: Range<u64>,
        expected: Option<&str>,
    ) -> Result<Rope, FsError> {
        let stale = stale_as(expected);
        let view = self.dir_view(&dp.dir, expected).await.map_err(stale)?;
        let file = view.tree()?.get(&dp.rest).ok_or(FsError::NotFound)?;
        let obj = |i: usize| view.files.get(i).map(|(k, info)| object_ref(k, info));
        self.tree_range(file, obj, range).await.map_err(stale)
    }
}

/// The files of folder `dir` with their keys.
fn keyed(dir: &str, files: &[ObjectInfo]) -> Vec<(String, ObjectInfo)> {
    files
        .iter()
        .map(|f| (format!("{dir}{}", f.name), f.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::object::{Lister, ObjectBackend};

    const AIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/netcdf/air.nc");

    /// A local folder with `two/` (two copies of the air fixture), `one/` (one copy) and
    /// `store.zarr/` (a Zarr group), and the views over it.
    fn views() -> (tempfile::TempDir, Convert<ObjectBackend>) {
        let dir = tempfile::tempdir().unwrap();
        for f in ["two/a.nc", "two/b.nc", "one/a.nc"] {
            let to = dir.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(AIR, to).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("store.zarr")).unwrap();
        std::fs::write(dir.path().join("store.zarr/.zgroup"), "{}").unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let inner = ObjectBackend::new(Arc::new(store), String::new(), Lister::Generic);
        (dir, Convert::new(inner))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_folder_of_files_is_listed_with_its_view_whose_chunks_are_the_files_bytes() {
        let (dir, b) = views();
        let root = b.list("").await.unwrap();
        assert!(root.dirs.contains(&"two.zarr".to_string()), "{root:?}");
        assert!(!root.dirs.contains(&"one.zarr".to_string()), "{root:?}");
        assert!(
            !root.dirs.iter().any(|d| d.starts_with("store.zarr.")),
            "{root:?}"
        );
        let top = b.list("two.zarr/").await.unwrap();
        assert!(top.files.iter().any(|f| f.name == ".zmetadata"), "{top:?}");
        assert!(top.dirs.contains(&"air".to_string()), "{top:?}");
        // air is stored whole in each file (124 steps): cut into chunks of rows that divide
        // 124, the first file's first, the second's after them.
        let zarray: serde_json::Value = serde_json::from_slice(
            &b.get_object("two.zarr/air/.zarray")
                .await
                .unwrap()
                .1
                .to_bytes(),
        )
        .unwrap();
        assert_eq!(zarray["shape"][0], 248);
        let rows = zarray["chunks"][0].as_u64().unwrap();
        assert_eq!(124 % rows, 0);
        let second = format!("two.zarr/air/{}.0.0", 124 / rows);
        let info = b.head(&second).await.unwrap();
        let got = b
            .get_range(&second, 0..info.size, info.etag.as_deref())
            .await
            .unwrap()
            .to_bytes();
        let air = std::fs::read(AIR).unwrap();
        // The air fixture's data starts at byte 21104 (tests/data/netcdf/air.json).
        assert_eq!(&got[..], &air[21104..21104 + info.size as usize]);
        // A file replaced in the folder makes a new view version (the old one is served to
        // its readers while held); a version the folder never had is stale.
        let mut other = air.clone();
        other.push(0);
        std::fs::write(dir.path().join("two/b.nc"), other).unwrap();
        let now = b.head(&second).await.unwrap();
        assert_ne!(now.etag, info.etag);
        let err = b
            .get_range(&second, 0..16, Some("ncdir-0"))
            .await
            .unwrap_err();
        assert!(matches!(err, FsError::Stale { .. }), "{err}");
    }

    #[test]
    fn a_candidate_root_is_a_zarr_segment_that_names_no_netcdf_file() {
        let (root, dp) = candidate("wrf/tas.zarr/tas/0.0.0").unwrap();
        assert_eq!(root, "wrf/tas.zarr");
        assert_eq!(dp.dir, "wrf/tas/");
        assert_eq!(dp.rest, "tas/0.0.0");
        let (root, dp) = candidate("tas.zarr/").unwrap();
        assert_eq!(
            (root.as_str(), dp.dir.as_str(), dp.rest.as_str()),
            ("tas.zarr", "tas/", "")
        );
        // A file's own view is not a folder's.
        assert!(candidate("wrf/a.nc.zarr/x").is_none());
        assert!(candidate("wrf/.zarr/x").is_none());
        assert!(candidate("wrf/tas/x.nc").is_none());
    }

    #[test]
    fn a_view_version_changes_with_any_file() {
        let info = |etag: &str| ObjectInfo {
            name: "a.nc".into(),
            size: 10,
            mtime: std::time::UNIX_EPOCH,
            etag: Some(etag.into()),
        };
        let one = vec![("d/a.nc".to_string(), info("x"))];
        let other = vec![("d/a.nc".to_string(), info("y"))];
        assert_eq!(version_of(&one), version_of(&one.clone()));
        assert_ne!(version_of(&one), version_of(&other));
        assert_ne!(version_of(&one), version_of(&[]));
    }
}
