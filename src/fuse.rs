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
use crate::fs::writing::{STATE_XATTR, SetAttr};
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

    /// What a kind of entry no mount can make is refused with: EROFS on a read-only mount,
    /// EPERM on a writable one.
    fn not_here(&self, why: &'static str) -> FsError {
        if self.fs.writes().is_some() {
            FsError::NotPermitted(why)
        } else {
            FsError::ReadOnly
        }
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
        // `open` sees O_TRUNC itself (not a truncate before it).
        // A kernel without one of these keeps working without it.
        for flag in [
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
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

    /// Every close of a descriptor; on a writable mount with no write-back delay the last
    /// close uploads, and its error is the close's.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("flush", &e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let span = tracing::debug_span!("fsync", ino = ino.0);
        self.rt.spawn(
            async move {
                match fs.fsync(ino.0).await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno("fsync", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _ds: bool,
        reply: ReplyEmpty,
    ) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.fsyncdir(ino.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("fsyncdir", &e)),
            }
        });
    }

    /// One attribute: `user.geomount.state` (dirty, uploading, clean, conflict, failed).
    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if name != STATE_XATTR {
            return reply.error(errno("getxattr", &FsError::NoAttribute));
        }
        match self.fs.state_xattr(ino.0) {
            Ok(v) => xattr_reply(reply, v.as_bytes(), size),
            Err(e) => reply.error(errno("getxattr", &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = match self.fs.state_xattr(ino.0) {
            Ok(_) => format!("{STATE_XATTR}\0"),
            Err(_) => String::new(),
        };
        xattr_reply(reply, names.as_bytes(), size);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object stores have no capacity: a large volume, with the staging disk's room free on
        // a writable mount and nothing free on a read-only one.
        const BSIZE: u64 = 1 << 20;
        let free = self.fs.free_bytes().unwrap_or(0) / BSIZE;
        let total = (1u64 << 40).max(free);
        reply.statfs(
            total,
            free,
            free,
            1 << 20,
            1 << 20,
            BSIZE as u32,
            255,
            BSIZE as u32,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = self.fs.clone();
        let set = SetAttr {
            mode,
            size,
            mtime: mtime.map(|t| match t {
                fuser::TimeOrNow::SpecificTime(t) => t,
                fuser::TimeOrNow::Now => SystemTime::now(),
            }),
        };
        let span = tracing::debug_span!("setattr", ino = ino.0, ?size);
        self.rt.spawn(
            async move {
                match fs.setattr(ino.0, set).await {
                    Ok(a) => reply.attr(&fs.ttl(), &to_file_attr(&a)),
                    Err(e) => reply.error(errno("setattr", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn mkdir(&self, _req: &Request, p: INodeNo, n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        let fs = self.fs.clone();
        let name = n.to_string_lossy().into_owned();
        self.rt.spawn(async move {
            match fs.mkdir(p.0, &name).await {
                Ok(a) => reply.entry(&fs.ttl(), &to_file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno("mkdir", &e)),
            }
        });
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
        reply.error(errno(
            "mknod",
            &self.not_here("only regular files and folders"),
        ));
    }

    fn unlink(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let name = n.to_string_lossy().into_owned();
        let span = tracing::debug_span!("unlink", parent = p.0, name = name.as_str());
        self.rt.spawn(
            async move {
                match fs.unlink(p.0, &name).await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno("unlink", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn rmdir(&self, _req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        let name = n.to_string_lossy().into_owned();
        self.rt.spawn(async move {
            match fs.rmdir(p.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("rmdir", &e)),
            }
        });
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(errno(
            "symlink",
            &self.not_here("object stores have no symlinks"),
        ));
    }

    fn rename(
        &self,
        _req: &Request,
        p: INodeNo,
        n: &OsStr,
        np: INodeNo,
        nn: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(fuser::RenameFlags::RENAME_EXCHANGE) {
            return reply.error(errno(
                "rename",
                &FsError::InvalidArgument("RENAME_EXCHANGE is not supported".into()),
            ));
        }
        let no_replace = flags.contains(fuser::RenameFlags::RENAME_NOREPLACE);
        let fs = self.fs.clone();
        let (name, new_name) = (
            n.to_string_lossy().into_owned(),
            nn.to_string_lossy().into_owned(),
        );
        let span =
            tracing::debug_span!("rename", name = name.as_str(), new_name = new_name.as_str());
        self.rt.spawn(
            async move {
                match fs.rename(p.0, &name, np.0, &new_name, no_replace).await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno("rename", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn link(&self, _req: &Request, i: INodeNo, np: INodeNo, nn: &OsStr, reply: ReplyEntry) {
        let fs = self.fs.clone();
        let name = nn.to_string_lossy().into_owned();
        self.rt.spawn(async move {
            match fs.link(i.0, np.0, &name).await {
                Ok(a) => reply.entry(&fs.ttl(), &to_file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno("link", &e)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        p: INodeNo,
        n: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let fs = self.fs.clone();
        let name = n.to_string_lossy().into_owned();
        let span = tracing::debug_span!("create", parent = p.0, name = name.as_str());
        self.rt.spawn(
            async move {
                match fs.create(p.0, &name, mode, flags).await {
                    Ok((a, o)) => reply.created(
                        &fs.ttl(),
                        &to_file_attr(&a),
                        Generation(0),
                        FileHandle(o.fh),
                        fopen_flags(&o, FopenFlags::empty()),
                    ),
                    Err(e) => reply.error(errno("create", &e)),
                }
            }
            .instrument(span),
        );
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Local disk: answered on the FUSE thread, with no copy of the data.
        match self.fs.write(fh.0, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(errno("write", &e)),
        }
    }
}

/// Replies to a getxattr/listxattr with `value`: its size when asked for 0 bytes, ERANGE when
/// it does not fit.
fn xattr_reply(reply: ReplyXattr, value: &[u8], size: u32) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::from_i32(libc::ERANGE));
    } else {
        reply.data(value);
    }
}
