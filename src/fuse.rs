//! Thin fuser adapter: each kernel request becomes one `fs` call on the tokio runtime, inside one
//! tracing span, with one error path that logs and replies. Nothing here decides policy.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, WriteFlags,
};
use tokio::runtime::Handle;
use tracing::Instrument;

use crate::config::MAX_READ;
use crate::error::FsError;
use crate::fs::{Attr, FileKind, Fs, Opened};
use crate::reader::ReadFor;
/// Background requests the kernel may have in flight (mountpoint-s3 measured +29% at 64 vs 16).
pub const MAX_BACKGROUND: u16 = 64;

pub struct FuseAdapter {
    fs: Arc<Fs>,
    rt: Handle,
}

impl FuseAdapter {
    pub fn new(fs: Arc<Fs>, rt: Handle) -> Self {
        Self { fs, rt }
    }
}

fn to_file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: kind_of(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 1 << 20,
        flags: 0,
    }
}

fn kind_of(k: FileKind) -> FileType {
    match k {
        FileKind::Dir => FileType::Directory,
        FileKind::File => FileType::RegularFile,
    }
}

thread_local! {
    /// Where a read made of several pieces is joined for the reply: reused per thread, so the
    /// join touches warm memory (at most `MAX_READ` bytes).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Kernel open flags for an [`Opened`], on top of `base`.
fn fopen_flags(o: &Opened, base: FopenFlags) -> FopenFlags {
    let mut f = base;
    if o.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if o.direct_io {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    f
}

/// Whom a kernel read is for. The kernel names the lock owner (the calling process's file
/// table) on every read(2) of a direct-I/O file and on none of the reads that fill the page
/// cache (faults in a mapping, readahead), which must be answered in full.
fn read_for(lock_owner: Option<LockOwner>) -> ReadFor {
    match lock_owner {
        Some(_) => ReadFor::Process,
        None => ReadFor::PageCache,
    }
}

/// The one place errors leave the filesystem: logged once with their operation, then replied.
fn errno(op: &str, err: &FsError) -> Errno {
    if err.is_expected() {
        tracing::debug!(op, error = %err, "request failed");
    } else {
        tracing::warn!(op, error = %err, "request failed");
    }
    Errno::from_i32(err.errno())
}

impl fuser::Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_max_readahead(MAX_READ);
        // Lookups in one directory run in parallel (without this the kernel holds the
        // directory's lock across each lookup, so 12 readers of one Zarr array's chunks make one
        // GET at a time), and listings carry attributes, so `ls -l` needs no lookup per entry.
        // Files opened with direct I/O (planned files, the stats file) may be mapped with
        // MAP_SHARED (Linux 6.6+; without it their mmap fails with ENODEV): faults fill the
        // page cache through reads with no lock owner, answered in full ([`read_for`]).
        // A kernel without one of these keeps working without it.
        for flag in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
        ] {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!(?flag, "the kernel does not offer this FUSE capability");
            }
        }
        tracing::debug!(?config, "FUSE session initialised");
        Ok(())
    }

    fn destroy(&mut self) {
        tracing::info!(metrics = %self.fs.metrics().snapshot(), "unmounted");
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let fs = self.fs.clone();
        let name = name.to_string_lossy().into_owned();
        let span = tracing::debug_span!("lookup", parent = parent.0, name = name.as_str());
        self.rt.spawn(
            async move {
                match fs.lookup(parent.0, &name).await {
                    Ok(a) => reply.entry(&fs.ttl(), &to_file_attr(&a), Generation(0)),
                    Err(e) => reply.error(errno("lookup", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = self.fs.clone();
        let span = tracing::debug_span!("getattr", ino = ino.0);
        self.rt.spawn(
            async move {
                match fs.getattr(ino.0).await {
                    Ok(a) => reply.attr(&fs.ttl(), &to_file_attr(&a)),
                    Err(e) => reply.error(errno("getattr", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let span = tracing::debug_span!("open", ino = ino.0);
        self.rt.spawn(
            async move {
                match fs.open(ino.0, flags.0).await {
                    Ok(o) => reply.opened(FileHandle(o.fh), fopen_flags(&o, FopenFlags::empty())),
                    Err(e) => reply.error(errno("open", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = self.fs.clone();
        let of = read_for(lock_owner);
        let span = tracing::trace_span!("read", ino = ino.0, offset, size, ?of);
        self.rt.spawn(
            async move {
                match fs.read_for(fh.0, offset, size, of).await {
                    Ok(d) => {
                        SCRATCH.with_borrow_mut(|buf| d.with_contiguous(buf, |b| reply.data(b)))
                    }
                    Err(e) => reply.error(errno("read", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fs = self.fs.clone();
        let span = tracing::debug_span!("opendir", ino = ino.0);
        self.rt.spawn(
            async move {
                match fs.opendir(ino.0).await {
                    Ok(o) => reply.opened(
                        FileHandle(o.fh),
                        fopen_flags(&o, FopenFlags::FOPEN_CACHE_DIR),
                    ),
                    Err(e) => reply.error(errno("opendir", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.fs.readdir(ino.0, fh.0, offset) {
            Ok(entries) => {
                for (ino, kind, name, next) in entries {
                    if reply.add(INodeNo(ino), next, kind_of(kind), &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno("readdir", &e)),
        }
    }

    /// `readdir` with each entry's attributes, from what the listing recorded (no request).
    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.fs.ttl();
        match self.fs.readdir(ino.0, fh.0, offset) {
            Ok(entries) => {
                for (ino, _, name, next) in entries {
                    // An entry that vanished since the snapshot is left out, not an error.
                    let Ok(attr) = self.fs.attr(ino) else {
                        continue;
                    };
                    let attr = to_file_attr(&attr);
                    if reply.add(INodeNo(ino), next, &name, &ttl, &attr, Generation(0)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno("readdirplus", &e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    // Nothing is ever dirty on a read-only mount: flush (every close) and fsync succeed.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    // No extended attributes (yet): an empty list, and ENODATA for any name.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(errno("getxattr", &FsError::NoAttribute));
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0);
        } else {
            reply.data(&[]);
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object stores have no capacity; report a large read-only volume with nothing free.
        reply.statfs(1 << 40, 0, 0, 1 << 20, 0, 1 << 20, 255, 1 << 20);
    }

    // Every write is refused: the mount is read-only.
    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(errno("setattr", &FsError::ReadOnly));
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(errno("mkdir", &FsError::ReadOnly));
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(errno("mknod", &FsError::ReadOnly));
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(errno("unlink", &FsError::ReadOnly));
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(errno("rmdir", &FsError::ReadOnly));
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(errno("symlink", &FsError::ReadOnly));
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(errno("rename", &FsError::ReadOnly));
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(errno("link", &FsError::ReadOnly));
    }

    fn create(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: ReplyCreate,
    ) {
        reply.error(errno("create", &FsError::ReadOnly));
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(errno("write", &FsError::ReadOnly));
    }
}
