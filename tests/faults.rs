//! Bad input and faults: wrong bucket, endpoint or keys fail the mount fast with one line; a
//! server that goes away gives EIO (no hang) and reads recover when it is back; a replaced object
//! gives ESTALE; SIGTERM unmounts cleanly; `geomount unmount` clears the mount of a killed daemon.
#![cfg(feature = "lab-tests")]

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Mount, Server, geomount, is_mounted, pseudo_random, run_ok, unique_prefix};

/// Runs a mount that must fail; returns its stderr and how long it took.
fn failing_mount(args: &[String], envs: &[(String, String)]) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let out = geomount()
        .arg("mount")
        .arg(&args[0])
        .arg(dir.path())
        .args(&args[1..])
        .envs(envs.iter().cloned())
        .output()
        .unwrap();
    let took = t.elapsed();
    common::unmount_until_gone(dir.path());
    assert!(!out.status.success(), "mount unexpectedly succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "want one line, got: {err}");
    (err, took)
}

#[test]
fn missing_bucket_fails_fast_naming_the_bucket() {
    let mut server = Server::garage();
    server.bucket = "no-such-bucket-geomount".into();
    let (args, envs) = server.mount_args("");
    let (err, took) = failing_mount(&args, &envs);
    assert!(err.contains("no-such-bucket-geomount"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn unreachable_endpoint_fails_fast_naming_the_endpoint() {
    let server = Server::unreachable();
    let (args, envs) = server.mount_args("");
    let (err, took) = failing_mount(&args, &envs);
    assert!(
        err.contains(server.endpoint.trim_start_matches("http://")),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn wrong_keys_fail_fast_naming_the_bucket_and_the_fix() {
    let mut server = Server::garage();
    let (id, _) = server.keys.clone().unwrap();
    server.keys = Some((id, "0".repeat(64)));
    let (args, envs) = server.mount_args("");
    let (err, took) = failing_mount(&args, &envs);
    assert!(
        err.contains(&server.bucket) && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(
        !err.contains(&"0".repeat(64)),
        "the secret leaked into the message"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A private moto server the test can stop and start again on the same port.
struct PrivateMoto {
    dir: tempfile::TempDir,
}

impl PrivateMoto {
    fn lab() -> Command {
        Command::new(common::project_root().join("lab/lab.sh"))
    }

    fn start(port: Option<u16>) -> (PrivateMoto, Server) {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Self::lab();
        cmd.arg("moto-start").arg(dir.path());
        if let Some(p) = port {
            cmd.arg(p.to_string());
        }
        run_ok(&mut cmd);
        let m = PrivateMoto { dir };
        let s = m.server();
        (m, s)
    }

    fn restart(&self) {
        run_ok(Self::lab().arg("moto-start").arg(self.dir.path()));
    }

    fn stop(&self) {
        run_ok(Self::lab().arg("moto-stop").arg(self.dir.path()));
    }

    fn server(&self) -> Server {
        let env = std::fs::read_to_string(self.dir.path().join("env")).unwrap();
        let get = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("{name} missing from moto env"))
                .trim_matches(['"', '\''])
                .to_string()
        };
        Server {
            endpoint: get("MOTO_ENDPOINT"),
            region: "us-east-1".into(),
            bucket: get("MOTO_BUCKET"),
            keys: None,
        }
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = Self::lab().arg("moto-stop").arg(self.dir.path()).output();
    }
}

#[test]
fn server_down_gives_eio_then_reads_recover_without_remount() {
    let (moto, server) = PrivateMoto::start(None);
    let data = pseudo_random(24 << 20, 11);
    server.put("obj.bin", data.clone());
    let m = Mount::s3(&server, "", &["--request-timeout", "3s"]);
    let f = std::fs::File::open(m.join("obj.bin")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_at(&mut buf, 0).unwrap();
    assert!(buf[..] == data[..4096]);

    moto.stop();
    let t = Instant::now();
    let err = f.read_at(&mut buf, 20 << 20).unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Bounded by the request timeout (3 s) plus retries' slack: no hang.
    assert!(took < Duration::from_secs(15), "EIO took {took:?}");

    moto.restart();
    // moto keeps objects in memory: put the same bytes back (same ETag, so the open handle is valid).
    server.put("obj.bin", data.clone());
    let n = f.read_at(&mut buf, 20 << 20).unwrap();
    assert_eq!(n, 4096);
    assert!(buf[..] == data[20 << 20..(20 << 20) + 4096]);
    assert!(m.stat("request_errors") > 0);
}

#[test]
fn object_replaced_while_open_gives_estale_never_mixed_bytes() {
    let server = Server::garage();
    let prefix = unique_prefix("stale");
    let old = pseudo_random(6 << 20, 21);
    server.put(&format!("{prefix}/obj"), old.clone());
    let m = Mount::s3(&server, &prefix, &[]);
    let f = std::fs::File::open(m.join("obj")).unwrap();
    let mut buf = vec![0u8; 4096];
    f.read_at(&mut buf, 0).unwrap();
    assert!(buf[..] == old[..4096]);
    server.put(&format!("{prefix}/obj"), pseudo_random(6 << 20, 22));
    let err = f.read_at(&mut buf, 5 << 20).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
}

fn daemon_pid(log: &Path) -> i32 {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("mounted"))
        .expect("mounted line in log");
    let pid = line
        .split("pid=")
        .nth(1)
        .expect("pid field")
        .split(' ')
        .next()
        .unwrap();
    pid.parse().unwrap()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_unmounts_cleanly_and_logs_metrics() {
    let server = Server::garage();
    let prefix = unique_prefix("term");
    server.put(&format!("{prefix}/f"), b"x".to_vec());
    let m = Mount::s3(&server, &prefix, &[]);
    assert_eq!(std::fs::read(m.join("f")).unwrap(), b"x");
    let pid = daemon_pid(&m.log);
    // SAFETY: sending a signal to a PID read from our own daemon's log.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    wait_until("unmount", Duration::from_secs(10), || !is_mounted(m.path()));
    wait_until("daemon exit", Duration::from_secs(10), || {
        !PathBuf::from(format!("/proc/{pid}")).exists()
    });
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(
        log.contains("session ended") && log.contains("get_requests"),
        "{log}"
    );
}

#[test]
fn unmount_clears_the_mount_of_a_killed_daemon() {
    let server = Server::garage();
    let prefix = unique_prefix("kill");
    server.put(&format!("{prefix}/f"), b"x".to_vec());
    let m = Mount::s3(&server, &prefix, &[]);
    let pid = daemon_pid(&m.log);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until("daemon death", Duration::from_secs(10), || {
        !PathBuf::from(format!("/proc/{pid}")).exists()
    });
    // (stat of the root may still be answered from the kernel's attribute cache; opendir is not)
    let err = std::fs::read_dir(m.path()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    // Mounting over a stale mount is refused with the fix named.
    let again = geomount()
        .arg("mount")
        .arg(format!("s3://{}/{prefix}", server.bucket))
        .arg(m.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("geomount unmount"));
    run_ok(geomount().arg("unmount").arg(m.path()));
    assert!(!is_mounted(m.path()));
    assert!(std::fs::metadata(m.path()).unwrap().is_dir());
}

/// SIGHUP re-reads `--credentials-file`: bad keys make new reads fail, good keys make them work
/// again, and the mount stays up throughout.
#[test]
fn sighup_reloads_keys_from_the_credentials_file() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::garage();
    let prefix = unique_prefix("hup");
    server.put(&format!("{prefix}/a.txt"), b"aaa".to_vec());
    server.put(&format!("{prefix}/b.txt"), b"bbb".to_vec());
    let (id, secret) = server.keys.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("keys.env");
    let write_keys = |secret: &str| {
        std::fs::write(
            &cred,
            format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_keys(&secret);
    let args: Vec<String> = [
        &format!("s3://{}/{prefix}", server.bucket),
        "--endpoint-url",
        &server.endpoint,
        "--region",
        &server.region,
        "--credentials-file",
        cred.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let m = Mount::with_args(&args, &[]);
    assert_eq!(std::fs::read(m.join("a.txt")).unwrap(), b"aaa");
    let pid = daemon_pid(&m.log);
    let reloads = || {
        std::fs::read_to_string(&m.log)
            .unwrap()
            .matches("reloaded the S3 keys")
            .count()
    };

    write_keys(&"0".repeat(40));
    // SAFETY: signalling our own daemon, PID from its log.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_until("first reload", Duration::from_secs(10), || reloads() == 1);
    let err = std::fs::read(m.join("b.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");

    write_keys(&secret);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_until("second reload", Duration::from_secs(10), || reloads() == 2);
    assert_eq!(std::fs::read(m.join("b.txt")).unwrap(), b"bbb");
    assert!(is_mounted(m.path()));
    assert!(
        !std::fs::read_to_string(&m.log).unwrap().contains(&secret),
        "secret in the log"
    );
}
