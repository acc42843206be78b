//! The mount daemon's process: background mode with a readiness pipe (the parent returns only
//! once the mount answers), logging, systemd readiness (`notify`), signals, and unmount. What
//! is mounted is built by `mount`.

use std::ffi::CString;
use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::config::{MAX_READ, MountConfig};
use crate::logging::{init_logging, stderr_is_journal};
use crate::mount::{Assembled, assemble, reload_credentials};

/// How long an exiting writable mount waits for its uploads.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Mounts and serves until unmounted. In background mode the calling process returns as soon as
/// the mount answers (or fails, with the reason), and a child keeps serving.
pub fn run_mount(cfg: MountConfig, log_file: Option<PathBuf>) -> Result<()> {
    check_mountpoint(&cfg.mountpoint)?;
    if cfg.foreground {
        init_logging(log_file.as_deref(), true)?;
        return serve(cfg, None);
    }
    let (read_fd, write_fd) = pipe()?;
    // SAFETY: no threads exist yet (the runtime is built in the child), so fork is sound.
    match unsafe { libc::fork() } {
        -1 => bail!("fork failed: {}", std::io::Error::last_os_error()),
        0 => {
            drop(read_fd);
            unsafe { libc::setsid() };
            // Under systemd (a .mount unit, fstab) stderr is the journal: keep logging there.
            let journal = log_file.is_none() && stderr_is_journal();
            init_logging(log_file.as_deref(), journal)?;
            let mut ready = Ready {
                pipe: std::fs::File::from(write_fd),
                keep_stderr: journal,
            };
            match serve(cfg, Some(&mut ready)) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    // The parent may be gone already (the error came after readiness).
                    let _ = writeln!(ready.pipe, "{}", format!("{e:#}").replace('\n', " "));
                    tracing::error!("{e:#}");
                    std::process::exit(1)
                }
            }
        }
        _child => {
            drop(write_fd);
            // One line: "ready", or the reason the mount failed. EOF means the child died.
            let mut msg = String::new();
            std::io::BufReader::new(std::fs::File::from(read_fd)).read_line(&mut msg)?;
            match msg.trim() {
                "ready" => Ok(()),
                "" => bail!(
                    "the mount daemon exited before the mount was ready (set GEOMOUNT_LOG=debug and --log-file to see why)"
                ),
                other => Err(anyhow!("{}", other.trim_start_matches("ready").trim())),
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe failed: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn check_mountpoint(mp: &Path) -> Result<()> {
    // opendir, unlike stat, is never answered from the kernel's attribute cache, so it also
    // finds a stale FUSE mount.
    match std::fs::metadata(mp).and_then(|m| std::fs::read_dir(mp).map(|_| m)) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("mount point {} is not a directory", mp.display()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => bail!(
            "mount point {} holds a stale mount (transport endpoint is not connected): run `geomount unmount {}` first",
            mp.display(),
            mp.display()
        ),
        Err(e) => bail!("mount point {} is not usable: {e}", mp.display()),
    }
}

/// How a background child tells its parent the mount answers.
struct Ready {
    pipe: std::fs::File,
    /// Stderr is the journal: keep it when the other standard descriptors go to /dev/null.
    keep_stderr: bool,
}

/// Starts the runtime, assembles and mounts, signals readiness (pipe and `$NOTIFY_SOCKET`) once
/// the mount answers, and serves until unmounted.
fn serve(cfg: MountConfig, ready: Option<&mut Ready>) -> Result<()> {
    bound_allocator();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
        )
        .thread_name("geomount-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let Assembled {
        session,
        fs,
        metrics,
        backend: live,
    } = assemble(&cfg, &rt)?;

    let mountpoint = cfg.mountpoint.clone();
    let source = cfg.source.display_name();
    let session_thread = std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || session.run())?;

    // Ready only once the mount answers a request.
    std::fs::metadata(&mountpoint)
        .with_context(|| format!("the new mount at {} does not answer", mountpoint.display()))?;
    raise_readahead(&mountpoint);
    tracing::info!(pid = std::process::id(), %source, mountpoint = %mountpoint.display(), "mounted");
    crate::notify::ready();
    if let Some(r) = ready {
        r.pipe.write_all(b"ready\n")?;
        redirect_stdio_to_null(r.keep_stderr);
    }

    let mp = mountpoint.clone();
    let reload_cfg = cfg.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers: SIGTERM will not unmount cleanly");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                // Caught so a hangup never kills the daemon and leaves a stale mount behind.
                _ = hup.recv() => reload_credentials(&reload_cfg, &live),
            }
        }
        tracing::info!("signal received: unmounting");
        crate::notify::stopping();
        if let Err(e) = unmount(&mp) {
            tracing::error!("unmount on signal failed: {e:#}");
        }
    });

    let res = session_thread
        .join()
        .map_err(|_| anyhow!("the FUSE session thread panicked"))?;
    crate::notify::stopping();
    if let Some(w) = fs.writes() {
        // Unmounted: what was closed is uploaded now (within DRAIN_LIMIT); what is left stays
        // staged and journaled for the next mount with this staging folder.
        tracing::info!("uploading staged files before exit");
        let left = rt.block_on(w.drain(DRAIN_LIMIT));
        if left > 0 {
            tracing::error!(
                files = left,
                staging = %w.staging_root().display(),
                "files not uploaded at exit: they stay staged and the next mount with this staging folder uploads them"
            );
        }
    }
    tracing::info!(metrics = %metrics.snapshot(), open_handles = fs.open_handles(), "session ended");
    rt.shutdown_timeout(Duration::from_secs(1));
    res.context("FUSE session failed")
}

/// Large allocations (decoded fields, tiles, blocks joined for a reader) come straight from and
/// go straight back to the kernel, so freed memory does not stay resident. glibc's default
/// threshold for that starts at 128 KiB but rises to the size of each large block freed (up to
/// 32 MiB): after the first decoded field is evicted, fields and tiles come from the per-thread
/// arenas, whose freed holes stay resident, and peak RSS grew by about 70 MiB over the memory
/// budget in the 24-view test (tests/memory.rs). A fixed threshold keeps RSS near what the caches
/// hold. Other allocators need nothing: this is glibc's policy only.
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Allocations of at least this many bytes are mapped on their own.
        const MMAP_THRESHOLD: libc::c_int = 256 << 10;
        // SAFETY: mallopt only changes glibc's allocation policy; any value is valid to pass.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } != 1 {
            tracing::warn!(
                "could not fix the allocator's mmap threshold: RSS may exceed the memory budget"
            );
        }
    }
}

/// Lets the kernel send reads of up to [`MAX_READ`] bytes instead of its 128 KiB
/// default readahead: 8x fewer requests for sequential readers. Best effort: needs root.
fn raise_readahead(mountpoint: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let knob = format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb");
    match std::fs::write(&knob, format!("{}", MAX_READ / 1024)) {
        Ok(()) => tracing::debug!(knob, "raised kernel readahead"),
        Err(e) => tracing::debug!(knob, error = %e, "kept the kernel's default readahead"),
    }
}

fn redirect_stdio_to_null(keep_stderr: bool) {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors with a valid open fd.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            if !keep_stderr {
                libc::dup2(null.as_raw_fd(), 2);
            }
        }
    }
}

/// The absolute form of `p` without touching it (a stale mount cannot be stat'ed).
fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// Whether `mp` is a mount point, from /proc/self/mountinfo (works for stale FUSE mounts too).
pub fn is_mounted(mp: &Path) -> Result<bool> {
    let mp = absolute(mp)?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    Ok(info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|field| unescape_mountinfo(field) == mp.as_os_str().as_bytes())
    }))
}

fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Unmounts `mp` only if it is a stale mount (its daemon is gone, so it answers "transport endpoint
/// is not connected"); a live mount or a plain directory is left alone. Returns whether it unmounted.
pub fn unmount_stale(mp: &Path) -> Result<bool> {
    if !is_mounted(mp)? {
        return Ok(false);
    }
    match std::fs::read_dir(mp) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => unmount(mp).map(|()| true),
        _ => Ok(false),
    }
}

/// Unmounts `mp`, also when its daemon was killed (a stale mount): a plain unmount first, then a
/// lazy one if the mount is busy; non-root users go through `fusermount3`.
pub fn unmount(mp: &Path) -> Result<()> {
    let mp = absolute(mp)?;
    if !is_mounted(&mp)? {
        bail!("{} is not mounted", mp.display());
    }
    let c = CString::new(mp.as_os_str().as_bytes())?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::ENOTCONN) | Some(libc::EINVAL) => {
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                return Ok(());
            }
            bail!(
                "cannot unmount {}: {}",
                mp.display(),
                std::io::Error::last_os_error()
            )
        }
        Some(libc::EPERM) => {
            for args in [["-u"], ["-uz"]] {
                let st = std::process::Command::new("fusermount3")
                    .args(args)
                    .arg(&mp)
                    .status();
                if st.is_ok_and(|s| s.success()) {
                    return Ok(());
                }
            }
            bail!(
                "cannot unmount {}: permission denied and fusermount3 failed",
                mp.display()
            )
        }
        _ => bail!("cannot unmount {}: {err}", mp.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), b"/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/x\011y\134z"), b"/x\ty\\z");
        assert_eq!(unescape_mountinfo(r"/plain"), b"/plain");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), br"/trailing\04");
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_point_and_cannot_be_unmounted() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mounted(dir.path()).unwrap());
        let err = unmount(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not mounted"), "{err}");
    }
}
