//! Secrets never reach the daemon's output: mounts logging at `trace` (every crate) sign their
//! requests with keys from each source geomount reads (a credentials file, the environment, a
//! profile's keys, a profile's `credential_process`, NASA Earthdata with a `~/.netrc`
//! password), read through the mount, and then neither the log file nor the stats file holds
//! any of the key ids, secrets, session tokens or the password (nor the password's basic-auth
//! form); nor do the errors logged when Garage refuses a wrong secret. geomount serves no
//! metrics endpoint: the stats file is its only other output.
//! Garage checks the signatures; moto stands in where keys are made up.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{Mount, Server, project_root, pseudo_random, python, sha256, unique_prefix};

/// A distinctive value for `what`: random per run, so no other text holds it by chance.
fn secret(what: &str) -> String {
    let mut b = [0u8; 12];
    getrandom(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{what}{hex}")
}

fn getrandom(out: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(out))
        .expect("/dev/urandom");
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// `lab/earthdata.py` handing out `keys`, stopped by PID on drop.
struct Earthdata {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Earthdata {
    /// How many credential answers it gave.
    fn served(&self) -> u64 {
        let text = std::fs::read_to_string(self.dir.path().join("state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        state["served"].as_u64().unwrap()
    }

    fn start(keys: &(String, String), password: &str) -> Earthdata {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = python()
            .arg(project_root().join("lab/earthdata.py"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--state")
            .arg(dir.path().join("state.json"))
            .args(["--login", "labuser", "--password", password])
            .args(["--static", &keys.0, &keys.1])
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("start lab/earthdata.py");
        let mut ed = Earthdata {
            child,
            dir,
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file)
                && !p.trim().is_empty()
            {
                break p;
            }
            assert!(Instant::now() < deadline, "lab/earthdata.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        ed.url = format!("http://127.0.0.1:{}/s3credentials", port.trim());
        ed
    }
}

impl Drop for Earthdata {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mounts `args` at `trace`, reads `key` (which holds `data`) and the stats file, unmounts, and
/// asserts that no string of `secrets` is in the log or the stats.
fn assert_nothing_leaks(
    what: &str,
    args: &[String],
    envs: &[(String, String)],
    key: &str,
    data: &[u8],
    secrets: &[String],
) {
    let m = Mount::with_args_logging(args, envs, "trace");
    let name = Path::new(key).file_name().unwrap().to_str().unwrap();
    let listed: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(listed.iter().any(|n| n == name), "{what}: {listed:?}");
    let got = std::fs::read(m.join(name)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(sha256(&got), sha256(data), "{what}");
    let stats = std::fs::read_to_string(m.join(".geomount-stats")).unwrap();
    let counts: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(
        counts["get_requests"].as_u64() >= Some(1),
        "{what}: no signed GET: {stats}"
    );
    // Unmounted, the daemon has logged its last lines (the metrics at unmount).
    common::unmount_until_gone(m.path());
    let log = std::fs::read_to_string(&m.log).unwrap();
    assert!(
        log.contains("TRACE") && log.contains("mounted"),
        "{what}: not a trace log ({} bytes)",
        log.len()
    );
    assert!(log.contains("GET "), "{what}: no GET traced");
    eprintln!("{what}: {} log lines checked", log.lines().count());
    for s in secrets {
        assert!(!s.is_empty());
        if let Some(line) = log.lines().find(|l| l.contains(s.as_str())) {
            panic!("{what}: the log holds secret {s:?}: {line}");
        }
        assert!(!stats.contains(s.as_str()), "{what}: the stats hold {s:?}");
    }
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn s3_args(server: &Server, prefix: &str) -> Vec<String> {
    vec![
        format!("s3://{}/{}", server.bucket, prefix),
        "--endpoint-url".into(),
        server.endpoint.clone(),
        "--region".into(),
        server.region.clone(),
    ]
}

#[test]
fn no_secret_is_logged_at_trace_nor_in_the_stats() {
    assert_eq!(base64(b"labuser:pw"), "bGFidXNlcjpwdw==");
    let garage = Server::garage();
    let (gk, gs) = garage.keys.clone().unwrap();
    let prefix = unique_prefix("secrets");
    let key = format!("{prefix}/f.bin");
    let data = pseudo_random(300_000, 5);
    garage.put(&key, data.clone());
    let moto = Server::moto();
    moto.put(&key, data.clone());
    let tmp = tempfile::tempdir().unwrap();

    // Garage, keys from a --credentials-file (Garage checks the signatures).
    let file = tmp.path().join("keys.env");
    write_private(
        &file,
        &format!("AWS_ACCESS_KEY_ID={gk}\nAWS_SECRET_ACCESS_KEY={gs}\n"),
    );
    let mut args = s3_args(&garage, &prefix);
    args.extend(["--credentials-file".into(), file.display().to_string()]);
    assert_nothing_leaks(
        "credentials file",
        &args,
        &[],
        &key,
        &data,
        &[gk.clone(), gs.clone()],
    );

    // Garage refusing a wrong secret: the mount fails, and neither its message nor the errors
    // logged hold a secret.
    let wrong = secret("wrongsecret");
    let args = s3_args(&garage, &prefix);
    let mnt = tempfile::tempdir().unwrap();
    let log = tmp.path().join("refused.log");
    let out = common::geomount()
        .arg("mount")
        .arg(&args[0])
        .arg(mnt.path())
        .args(&args[1..])
        .arg("--log-file")
        .arg(&log)
        .env("AWS_ACCESS_KEY_ID", &gk)
        .env("AWS_SECRET_ACCESS_KEY", &wrong)
        .env("GEOMOUNT_LOG", "trace")
        .env("GEOMOUNT_CACHE_DIR", tmp.path().join("refused-cache"))
        .output()
        .unwrap();
    common::unmount_until_gone(mnt.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("access denied"),
        "refused keys: {stderr}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("TRACE"), "refused keys: not a trace log");
    for s in [&gk, &wrong] {
        assert!(
            !stderr.contains(s.as_str()),
            "refused keys: stderr holds {s:?}"
        );
        if let Some(line) = log.lines().find(|l| l.contains(s.as_str())) {
            panic!("refused keys: the log holds secret {s:?}: {line}");
        }
    }

    // moto, made-up keys and a session token from the environment.
    let (id, sk, tok) = (secret("AKIAENV"), secret("envsecret"), secret("envtoken"));
    let envs = vec![
        ("AWS_ACCESS_KEY_ID".into(), id.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), sk.clone()),
        ("AWS_SESSION_TOKEN".into(), tok.clone()),
    ];
    assert_nothing_leaks(
        "environment",
        &s3_args(&moto, &prefix),
        &envs,
        &key,
        &data,
        &[id, sk, tok],
    );

    // moto, a profile's keys and session token, and a profile whose credential_process prints
    // them (a script, as real ones are: the keys are never in the command line).
    let home = tmp.path().join("home");
    let (id, sk, tok) = (secret("AKIAPRO"), secret("prosecret"), secret("protoken"));
    let (pid, psk, ptok) = (
        secret("AKIAPROC"),
        secret("procsecret"),
        secret("proctoken"),
    );
    let script = home.join("keys.sh");
    write_private(
        &script,
        &format!(
            "#!/bin/sh\nprintf '%s' '{{\"Version\": 1, \"AccessKeyId\": \"{pid}\", \"SecretAccessKey\": \"{psk}\", \"SessionToken\": \"{ptok}\"}}'\n"
        ),
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    write_private(
        &home.join(".aws/credentials"),
        &format!(
            "[lab]\naws_access_key_id = {id}\naws_secret_access_key = {sk}\naws_session_token = {tok}\n"
        ),
    );
    write_private(
        &home.join(".aws/config"),
        &format!(
            "[profile lab]\nregion = us-east-1\n\n[profile proc]\nregion = us-east-1\ncredential_process = {}\n",
            script.display()
        ),
    );
    let envs = vec![("HOME".to_string(), home.display().to_string())];
    for (profile, secrets) in [("lab", [id, sk, tok]), ("proc", [pid, psk, ptok])] {
        let mut args = s3_args(&moto, &prefix);
        args.extend(["--profile".into(), profile.into()]);
        assert_nothing_leaks(
            &format!("profile {profile}"),
            &args,
            &envs,
            &key,
            &data,
            &secrets,
        );
    }

    // Garage, NASA Earthdata keys (the lab's, with a session token) fetched with a ~/.netrc
    // login whose password goes out as HTTP basic auth.
    let password = secret("edlpassword");
    let ed = Earthdata::start(&(gk.clone(), gs.clone()), &password);
    let netrc = tmp.path().join("netrc");
    write_private(
        &netrc,
        &format!("machine 127.0.0.1\n  login labuser\n  password {password}\n"),
    );
    let mut args = s3_args(&garage, &prefix);
    args.extend(["--earthdata-url".into(), ed.url.clone()]);
    let basic = base64(format!("labuser:{password}").as_bytes());
    assert_nothing_leaks(
        "Earthdata",
        &args,
        &[("NETRC".into(), netrc.display().to_string())],
        &key,
        &data,
        &[gk.clone(), gs, format!("lab-session-{gk}"), password, basic],
    );
    assert!(ed.served() >= 1, "no Earthdata keys were fetched");
}
