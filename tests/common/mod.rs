//! Shared harness for the lab tier: the lab's servers (from the environment written by
//! `lab/lab.sh start`), seeding through object_store, and a [`Mount`] guard that always unmounts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the lab tests through scripts/test.sh, which starts the lab servers")
    })
}

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().expect("tokio runtime"))
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    rt().block_on(f)
}

/// One S3 server of the lab and how to reach it.
#[derive(Clone, Debug)]
pub struct Server {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// (key id, secret) for signed servers; `None` for moto with unsigned requests.
    pub keys: Option<(String, String)>,
}

impl Server {
    pub fn garage() -> Server {
        Server {
            endpoint: env("GARAGE_ENDPOINT"),
            region: env("GARAGE_REGION"),
            bucket: env("GARAGE_BUCKET"),
            keys: Some((env("GARAGE_KEY_ID"), env("GARAGE_SECRET"))),
        }
    }

    pub fn moto() -> Server {
        Server {
            endpoint: env("MOTO_ENDPOINT"),
            region: "us-east-1".into(),
            bucket: env("MOTO_BUCKET"),
            keys: None,
        }
    }

    /// Garage's settings pointed at a loopback port nothing listens on.
    pub fn unreachable() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free loopback port")
            .port();
        Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            ..Server::garage()
        }
    }

    /// A client for seeding (moto takes any credentials; only geomount reads unsigned).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        let (k, s) = self
            .keys
            .clone()
            .unwrap_or_else(|| ("test".into(), "test".into()));
        Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region(&self.region)
                .with_bucket_name(&self.bucket)
                .with_access_key_id(k)
                .with_secret_access_key(s)
                .build()
                .expect("seeding client"),
        )
    }

    pub fn put(&self, key: &str, data: impl Into<Vec<u8>>) {
        let store = self.store();
        block_on(store.put(
            &OPath::parse(key).expect("key"),
            PutPayload::from(data.into()),
        ))
        .unwrap_or_else(|e| panic!("seeding {key}: {e}"));
    }

    /// Seeds many small objects concurrently.
    pub fn put_many(&self, items: Vec<(String, Vec<u8>)>) {
        use futures::StreamExt;
        let store = self.store();
        block_on(async {
            futures::stream::iter(items)
                .map(|(k, v)| {
                    let store = store.clone();
                    async move {
                        store
                            .put(&OPath::parse(&k).expect("key"), PutPayload::from(v))
                            .await
                            .unwrap_or_else(|e| panic!("seeding {k}: {e}"))
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        });
    }

    /// Writes `key` exactly as given (object_store would normalise `dir/` or `a//b`), with boto3.
    pub fn put_raw(&self, key: &str, data: &[u8]) {
        let tmp = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(tmp.path(), data).expect("write tempfile");
        let mut cmd = python();
        cmd.arg(project_root().join("lab/s3.py")).args([
            "--endpoint",
            &self.endpoint,
            "--region",
            &self.region,
        ]);
        match &self.keys {
            Some((k, s)) => cmd.args(["--key-id", k, "--secret", s]),
            None => cmd.arg("--anonymous"),
        };
        run_ok(cmd.args(["put", &self.bucket, key]).arg(tmp.path()));
    }

    /// The mount arguments that reach this server.
    pub fn mount_args(&self, prefix: &str) -> (Vec<String>, Vec<(String, String)>) {
        let mut args = vec![
            format!("s3://{}/{}", self.bucket, prefix),
            "--endpoint-url".into(),
            self.endpoint.clone(),
            "--region".into(),
            self.region.clone(),
        ];
        let mut envs = Vec::new();
        match &self.keys {
            Some((k, s)) => {
                envs.push(("AWS_ACCESS_KEY_ID".into(), k.clone()));
                envs.push(("AWS_SECRET_ACCESS_KEY".into(), s.clone()));
            }
            None => args.push("--no-sign-request".into()),
        }
        (args, envs)
    }
}

/// A key prefix unique to one test, so tests share a bucket without seeing each other.
pub fn unique_prefix(test: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t-{test}-{}-{n}", std::process::id())
}

pub fn geomount() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_geomount"));
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE");
    c
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixtures that tests/data/make.py writes with the real producers (tests/data/README.md).
pub fn fixtures() -> PathBuf {
    project_root().join("tests/data")
}

/// The HRRR-like GRIB2 file under [`fixtures`]: two APCP messages written by eccodes (Lambert
/// conformal, complex packing with spatial differencing), with its `.idx` and `.json` beside it.
pub const HRRR: &str = "grib2/hrrr.t00z.wrfsfcf12.grib2";

/// The JSON that tests/data/make.py wrote beside a fixture: what its producer reads from it.
pub fn reference(rel: &str) -> serde_json::Value {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// eccodes' reading of message `n` (from 0) of [`HRRR`]: `idx_offset`, `offset`, `length`,
/// `count`, `min`, `max`, `mean`, ...
pub fn hrrr_message(n: usize) -> serde_json::Value {
    reference(&format!("{HRRR}.json"))["messages"][n].clone()
}

/// A FUSE mount made by the real binary; dropping it unmounts (also when the test panicked).
pub struct Mount {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Mount {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Mounts `server`'s `prefix` with extra flags; panics with the daemon's message on failure.
    pub fn s3(server: &Server, prefix: &str, extra: &[&str]) -> Mount {
        let (args, envs) = server.mount_args(prefix);
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        Self::with_args(&args, &envs)
    }

    /// `geomount mount ARGS[0] <tempdir> ARGS[1..]`.
    pub fn with_args(args: &[String], envs: &[(String, String)]) -> Mount {
        Self::with_args_logging(args, envs, "geomount=debug,info")
    }

    /// [`Mount::with_args`] with `GEOMOUNT_LOG=filter`.
    pub fn with_args_logging(args: &[String], envs: &[(String, String)], filter: &str) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("gm-mnt-")
            .tempdir()
            .expect("tempdir");
        let log = dir.path().with_extension("log");
        let out = geomount()
            .arg("mount")
            .arg(&args[0])
            .arg(dir.path())
            .args(&args[1..])
            .arg("--log-file")
            .arg(&log)
            .envs(envs.iter().cloned())
            .env("GEOMOUNT_LOG", filter)
            // Each mount gets its own disk cache (removed on drop) unless it passes --cache-dir.
            .env("GEOMOUNT_CACHE_DIR", dir.path().with_extension("cache"))
            .output()
            .expect("run geomount");
        assert!(
            out.status.success(),
            "mount failed: {}\nlog: {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Mount { dir, log }
    }

    pub fn stats(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.join(".geomount-stats")).expect("stats file");
        serde_json::from_str(&text).expect("stats JSON")
    }

    pub fn stat(&self, name: &str) -> u64 {
        self.stats()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}"))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        unmount_until_gone(self.dir.path());
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_dir_all(self.dir.path().with_extension("cache"));
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

/// Unmounts with the real command, falling back to a lazy unmount so no test leaves a mount behind.
pub fn unmount_until_gone(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(p) && Instant::now() < deadline {
        let _ = geomount().arg("unmount").arg(p).output();
        if is_mounted(p) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if is_mounted(p) {
        let _ = Command::new("umount").arg("-l").arg(p).output();
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for 100 MiB.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The lab's Python (venv with xarray, zarr, h5netcdf, eccodes).
pub fn python() -> Command {
    Command::new(PathBuf::from(env("LAB_VENV")).join("bin/python"))
}

/// Runs a command and returns its output, panicking with stderr if it failed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lab's labproxy (lab/proxy) in front of one server: every request through it is counted by
/// kind, and delays or faults can be added. The process is killed by PID when the guard drops.
pub struct Proxy {
    child: std::process::Child,
    pub endpoint: String,
    upstream: Server,
}

impl Proxy {
    /// Starts a proxy in front of `upstream`; `flags` go to the proxy (`--delay-ms 20`, ...).
    pub fn start(upstream: &Server, flags: &[&str]) -> Proxy {
        use std::io::BufRead;
        let mut child = Command::new(env("LAB_PROXY_BIN"))
            .args(["--upstream", &upstream.endpoint])
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start labproxy (run lab/install.sh): {e}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("proxy stdout");
        let read = std::io::BufReader::new(stdout).read_line(&mut line);
        let endpoint = match (read, line.strip_prefix("listening ")) {
            (Ok(_), Some(url)) => url.trim().to_string(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("labproxy did not print its address: {line:?}");
            }
        };
        Proxy {
            child,
            endpoint,
            upstream: upstream.clone(),
        }
    }

    /// The upstream server as reached through the proxy.
    pub fn server(&self) -> Server {
        Server {
            endpoint: self.endpoint.clone(),
            ..self.upstream.clone()
        }
    }

    /// The counts so far: `get`, `get_range`, `head`, `list`, `put`, `requests`, `bytes_out`, ...
    pub fn stats(&self) -> serde_json::Value {
        self.call("GET", "/__proxy/stats")
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        self.call("POST", "/__proxy/reset");
    }

    /// One count from [`Proxy::stats`].
    pub fn count(&self, name: &str) -> u64 {
        self.stats()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("proxy stats have no {name}"))
    }

    fn call(&self, method: &str, path: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr).expect("connect to labproxy");
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        write!(
            conn,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("write to labproxy");
        let mut reply = String::new();
        conn.read_to_string(&mut reply)
            .expect("read labproxy reply");
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("bad labproxy reply: {reply:?}"));
        serde_json::from_str(body).unwrap_or_else(|e| panic!("labproxy stats {body:?}: {e}"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's stdout; panics with its output if it failed.
pub fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout).into_owned()
}

/// Asserts that GDAL reports `tif` as `LAYOUT=COG` and that GDAL's own validator
/// (`validate_cloud_optimized_geotiff.py` from python3-gdal) passes it with `--full-check`.
/// Returns `gdalinfo`'s output for further checks.
pub fn assert_valid_cog(tif: &Path) -> String {
    let info = stdout_of(Command::new("gdalinfo").arg(tif));
    assert!(info.contains("LAYOUT=COG"), "gdalinfo {tif:?}: {info}");
    let listing = stdout_of(Command::new("dpkg").args(["-L", "python3-gdal"]));
    let validator = listing
        .lines()
        .find(|l| l.ends_with("/validate_cloud_optimized_geotiff.py"))
        .expect("python3-gdal ships validate_cloud_optimized_geotiff.py");
    let out = stdout_of(
        Command::new("/usr/bin/python3")
            .arg(validator)
            .arg("--full-check=yes")
            .arg(tif),
    );
    assert!(
        out.contains("is a valid cloud optimized GeoTIFF"),
        "validator {tif:?}: {out}"
    );
    info
}

/// The `Checksum=N` (one per band) and `Overviews checksum: a, b, ...` values gdalinfo prints.
pub fn gdal_checksums(path: &Path) -> Vec<String> {
    let out = run_ok(Command::new("gdalinfo").arg("-checksum").arg(path));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sums = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Checksum=") {
            sums.push(format!("band {v}"));
        } else if let Some(v) = line.strip_prefix("Overviews checksum:") {
            sums.push(format!("overviews {}", v.trim()));
        }
    }
    sums
}

/// Runs tests/py/xr_compare.py (xarray with `engine` on both copies) and returns its JSON.
pub fn xr_compare(engine: &str, local: &Path, mounted: &Path) -> serde_json::Value {
    let script = project_root().join("tests/py/xr_compare.py");
    let out = run_ok(python().arg(script).arg(engine).arg(local).arg(mounted));
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("xr_compare {engine}: {text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("xr_compare output {text:?}: {e}"))
}
