//! Running as a service: the systemd units pass `systemd-analyze verify`; readiness (`READY=1` on
//! `$NOTIFY_SOCKET`) is sent only once the mount answers, never for a mount that fails, and
//! SIGTERM sends `STOPPING=1` and unmounts; SIGHUP does not drop the mount; the Debian package
//! installs with `dpkg -i`, after which `mount -t fuse.geomount` and an fstab line mount a lab
//! bucket through the mount helper and `umount` unmounts it. The package is purged at the end.
#![cfg(feature = "lab-tests")]

mod common;

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Server, geomount, is_mounted, project_root, run_ok, unique_prefix};

const BIN: &str = env!("CARGO_BIN_EXE_geomount");

/// `systemd-analyze verify` must succeed and print nothing: it exits 0 even for bad lines.
fn verify_units(units: &[PathBuf], man: bool) {
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify");
    if !man {
        cmd.arg("--man=no");
    }
    let out = run_ok(cmd.args(units));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // An instance of the template, run by this build's binary (the package's path comes later).
    let unit = std::fs::read_to_string(project_root().join("packaging/systemd/geomount@.service"))
        .unwrap();
    assert!(unit.contains("/usr/bin/geomount"));
    let service = dir.path().join("geomount@lab.service");
    std::fs::write(&service, unit.replace("/usr/bin/geomount", BIN)).unwrap();
    let mount = dir.path().join("mnt-conus404.mount");
    std::fs::copy(
        project_root().join("packaging/examples/mnt-conus404.mount"),
        &mount,
    )
    .unwrap();
    verify_units(&[service, mount], false);
}

/// A datagram socket standing in for systemd's notify socket.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        NotifySocket {
            _dir: dir,
            path,
            sock,
        }
    }

    /// The next message, or `None` if none came within `limit`.
    fn recv(&self, limit: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
            Err(e) => panic!("notify socket: {e}"),
        }
    }
}

/// A `geomount mount --foreground` child; dropping it kills it and clears its mount.
struct Foreground {
    child: Child,
    mountpoint: tempfile::TempDir,
    stderr: PathBuf,
}

impl Foreground {
    fn spawn(server: &Server, prefix: &str, notify: &Path) -> Foreground {
        let mountpoint = tempfile::Builder::new()
            .prefix("gm-svc-")
            .tempdir()
            .unwrap();
        let stderr = mountpoint.path().with_extension("stderr");
        let (args, envs) = server.mount_args(prefix);
        let child = geomount()
            .args(["mount", "--foreground", &args[0]])
            .arg(mountpoint.path())
            .args(&args[1..])
            .envs(envs)
            .env("NOTIFY_SOCKET", notify)
            .env("GEOMOUNT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Foreground {
            child,
            mountpoint,
            stderr,
        }
    }

    fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {limit:?}; stderr: {}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        common::unmount_until_gone(self.mountpoint.path());
        let _ = std::fs::remove_file(&self.stderr);
    }
}

#[test]
fn ready_is_sent_once_the_mount_answers_and_stopping_on_sigterm() {
    let server = Server::garage();
    let prefix = unique_prefix("notify");
    server.put(
        &format!("{prefix}/hello.txt"),
        b"hello from garage".to_vec(),
    );
    let notify = NotifySocket::new();
    let mut fg = Foreground::spawn(&server, &prefix, &notify.path);

    let msg = notify
        .recv(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no message on NOTIFY_SOCKET; stderr: {}", fg.stderr_text()));
    // Checked right away: by the time READY=1 is read, the mount must already answer.
    assert!(is_mounted(fg.path()), "READY=1 came before the mount");
    let names: Vec<_> = std::fs::read_dir(fg.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["hello.txt"]);
    assert!(
        msg.lines().any(|l| l == "READY=1"),
        "first message is not READY=1: {msg:?}"
    );
    assert!(
        msg.lines()
            .any(|l| l == format!("MAINPID={}", fg.child.id())),
        "{msg:?}"
    );

    // SIGHUP (nothing to reload: keys from the environment) must not drop the mount.
    fg.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        fg.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the daemon"
    );
    assert_eq!(
        std::fs::read(fg.path().join("hello.txt")).unwrap(),
        b"hello from garage"
    );

    fg.signal(libc::SIGTERM);
    let msg = notify
        .recv(Duration::from_secs(10))
        .expect("no STOPPING=1 after SIGTERM");
    assert_eq!(msg, "STOPPING=1");
    let status = fg.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(!is_mounted(fg.path()), "still mounted after SIGTERM");
    assert_eq!(notify.recv(Duration::from_millis(200)), None);

    // Not on a terminal: plain lines for the journal, no colour codes.
    let stderr = fg.stderr_text();
    assert!(
        stderr.contains("mounted") && stderr.contains("SIGHUP"),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "ANSI escapes in: {stderr}");
}

#[test]
fn no_ready_when_the_mount_fails() {
    let server = Server::unreachable();
    let notify = NotifySocket::new();
    let mut fg = Foreground::spawn(&server, "", &notify.path);
    let status = fg.wait(Duration::from_secs(30));
    assert!(!status.success(), "the mount of a dead endpoint succeeded");
    assert!(
        fg.stderr_text()
            .contains(server.endpoint.trim_start_matches("http://")),
        "{}",
        fg.stderr_text()
    );
    assert_eq!(notify.recv(Duration::from_millis(200)), None);
    assert!(!is_mounted(fg.path()));
}

/// What the template unit's ExecStartPre relies on: `unmount --stale-only` clears the mount of a
/// killed daemon, so a restart can mount again, and leaves a live mount or a plain directory alone.
#[test]
fn stale_only_unmount_clears_only_a_stale_mount() {
    let server = Server::garage();
    let prefix = unique_prefix("stale");
    server.put(&format!("{prefix}/x"), b"x".to_vec());
    let notify = NotifySocket::new();
    let mut fg = Foreground::spawn(&server, &prefix, &notify.path);
    assert!(notify.recv(Duration::from_secs(30)).is_some(), "no READY=1");
    let mp = fg.path().to_path_buf();
    let stale_only = || {
        let out = run_ok(geomount().args(["unmount", "--stale-only"]).arg(&mp));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    assert_eq!(stale_only(), "");
    assert!(is_mounted(fg.path()), "a live mount was unmounted");
    assert_eq!(std::fs::read(fg.path().join("x")).unwrap(), b"x");

    fg.signal(libc::SIGKILL);
    fg.wait(Duration::from_secs(10));
    assert!(
        is_mounted(fg.path()),
        "SIGKILL left no stale mount to clear"
    );
    assert!(stale_only().contains("cleared a stale mount"));
    assert!(!is_mounted(fg.path()));
    assert_eq!(stale_only(), "", "a plain directory");
}

const PACKAGE: &str = "geomount";

fn package_installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The cargo-deb that lab/install.sh caches.
fn cargo_deb() -> PathBuf {
    let lab = std::env::var_os("GEOMOUNT_LAB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(common::env("HOME")).join(".cache/geomount-lab"));
    let bin = lab.join("cargo-deb/bin/cargo-deb");
    assert!(
        bin.is_file(),
        "{} is missing: run lab/install.sh",
        bin.display()
    );
    bin
}

/// Builds the package around this build's binary: cargo-deb with `--no-build` and a target dir
/// laid out as a release build, so the test costs no release build (packaging/build-deb.sh is the
/// release path; the package contents are the same but for the binary's optimisation).
fn build_deb(work: &Path) -> PathBuf {
    let release = work.join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    std::fs::copy(BIN, release.join("geomount")).unwrap();
    run_ok(
        Command::new(BIN)
            .arg("generate-assets")
            .arg(release.join("assets")),
    );
    let deb = work.join("geomount.deb");
    run_ok(
        Command::new(cargo_deb())
            .args(["--no-build", "--strip", "--fast", "--output"])
            .arg(&deb)
            .arg("--manifest-path")
            .arg(project_root().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", work.join("target")),
    );
    deb
}

/// Purges the package when dropped, so a failed test leaves the machine as it found it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let out = Command::new("dpkg").args(["--purge", PACKAGE]).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("dpkg --purge {PACKAGE} failed: {out:?}");
        }
    }
}

/// The file system type of the mount at `mp`, from /proc/self/mountinfo.
fn fstype(mp: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mp = mp.to_string_lossy();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(&*mp))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_string)
}

/// The per-mount flags (`ro,nosuid,...`) of the mount at `mp`, from /proc/self/mountinfo.
fn mount_flags(mp: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mp = mp.to_string_lossy();
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(&*mp))
        .and_then(|l| l.split(' ').nth(5))
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits until the daemon behind a mount has logged its end (it exits right after).
fn wait_for_session_end(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("session ended")
    {
        assert!(
            Instant::now() < deadline,
            "the daemon did not end after umount; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Holds an exclusive lock for the life of the value: concurrent test runs on one machine take
/// turns installing the package (dpkg has one database).
struct MachineLock {
    _file: std::fs::File,
}

impl MachineLock {
    fn take() -> MachineLock {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create("/tmp/geomount-deb-test.lock").unwrap();
        // SAFETY: flock on a descriptor we own; released when the file is closed.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        MachineLock { _file: f }
    }
}

#[test]
fn debian_package_installs_and_mount_t_fuse_geomount_works() {
    let _lock = MachineLock::take();
    assert!(
        !package_installed(),
        "the {PACKAGE} package is already installed: this test installs and purges it, so remove it first (dpkg --purge {PACKAGE})"
    );
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(work.path());
    let installed = Installed;
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(package_installed());

    // Layout: binary, helper link, unit, man pages, completions, examples.
    assert_eq!(
        std::fs::read_link("/sbin/mount.fuse.geomount").unwrap(),
        Path::new("/usr/bin/geomount")
    );
    for f in [
        "/usr/bin/geomount",
        "/lib/systemd/system/geomount@.service",
        "/usr/share/man/man1/geomount.1.gz",
        "/usr/share/man/man1/geomount-mount.1.gz",
        "/usr/share/man/man8/mount.fuse.geomount.8.gz",
        "/usr/share/bash-completion/completions/geomount",
        "/usr/share/zsh/vendor-completions/_geomount",
        "/usr/share/fish/vendor_completions.d/geomount.fish",
        "/usr/share/doc/geomount/examples/example.conf",
        "/usr/share/doc/geomount/examples/mnt-conus404.mount",
    ] {
        assert!(Path::new(f).is_file(), "{f} is not installed");
    }
    let depends = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Depends}", PACKAGE]));
    assert!(
        String::from_utf8_lossy(&depends.stdout).contains("fuse3"),
        "{depends:?}"
    );

    // The installed units, with the installed binary and man page (verify checks both).
    let units = tempfile::tempdir().unwrap();
    let service = units.path().join("geomount@lab.service");
    std::fs::copy("/lib/systemd/system/geomount@.service", &service).unwrap();
    let mount_unit = units.path().join("mnt-conus404.mount");
    std::fs::copy(
        "/usr/share/doc/geomount/examples/mnt-conus404.mount",
        &mount_unit,
    )
    .unwrap();
    verify_units(&[service, mount_unit], true);

    // A lab bucket through mount(8) and the helper, keys from a credentials file only.
    let server = Server::garage();
    let prefix = unique_prefix("deb");
    server.put(
        &format!("{prefix}/data/a.bin"),
        b"through mount(8)".to_vec(),
    );
    let (key_id, secret) = server.keys.clone().unwrap();
    let cred = work.path().join("lab.cred");
    std::fs::write(
        &cred,
        format!("AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cred, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let source = format!("s3://{}/{prefix}", server.bucket);
    let log = work.path().join("mount.log");
    let opts = format!(
        "ro,_netdev,nofail,endpoint_url={},region={},credentials_file={},log_file={}",
        server.endpoint,
        server.region,
        cred.display(),
        log.display()
    );
    let mp = tempfile::Builder::new()
        .prefix("gm-deb-")
        .tempdir()
        .unwrap();
    let mount = |args: &[&str]| {
        let mut cmd = Command::new("mount");
        cmd.args(args);
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
        ] {
            cmd.env_remove(v);
        }
        cmd.output().unwrap()
    };
    let mpath = mp.path().to_str().unwrap();

    let out = mount(&["-t", "fuse.geomount", &source, mpath, "-o", &opts]);
    let guard = Cleared(mp.path());
    assert!(
        out.status.success(),
        "mount -t fuse.geomount failed: {}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(fstype(mp.path()).as_deref(), Some("fuse.geomount"));
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(mount_flags(mp.path()).contains(&flag.to_string()), "{flag}");
    }
    assert_eq!(
        std::fs::read(mp.path().join("data/a.bin")).unwrap(),
        b"through mount(8)"
    );
    run_ok(Command::new("umount").arg(mp.path()));
    assert!(!is_mounted(mp.path()), "still mounted after umount");
    wait_for_session_end(&log);
    std::fs::remove_file(&log).unwrap();

    // The same as an fstab line (a private fstab file, so /etc/fstab is left alone).
    let fstab = work.path().join("fstab");
    std::fs::write(
        &fstab,
        format!("{source} {mpath} fuse.geomount {opts},noexec,x-systemd.automount 0 0\n"),
    )
    .unwrap();
    let out = mount(&["-T", fstab.to_str().unwrap(), mpath]);
    assert!(
        out.status.success(),
        "mount from fstab failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags = mount_flags(mp.path());
    assert!(flags.contains(&"noexec".to_string()), "{flags:?}");
    assert_eq!(
        std::fs::read(mp.path().join("data/a.bin")).unwrap(),
        b"through mount(8)"
    );
    run_ok(Command::new("umount").arg(mp.path()));
    assert!(!is_mounted(mp.path()));
    wait_for_session_end(&log);

    // A wrong option fails the mount, naming the option.
    let out = mount(&[
        "-t",
        "fuse.geomount",
        &source,
        mpath,
        "-o",
        "ro,no_such_option",
    ]);
    assert!(!out.status.success(), "a bad option mounted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_option"), "{stderr}");
    assert!(!is_mounted(mp.path()));
    drop(guard);

    drop(installed);
    assert!(!package_installed());
    for f in ["/usr/bin/geomount", "/sbin/mount.fuse.geomount"] {
        assert!(
            std::fs::symlink_metadata(f).is_err(),
            "{f} is left after purge"
        );
    }
}

/// Clears a mount at the path when dropped (a failed assertion must not leave one behind).
struct Cleared<'a>(&'a Path);

impl Drop for Cleared<'_> {
    fn drop(&mut self) {
        common::unmount_until_gone(self.0);
    }
}
