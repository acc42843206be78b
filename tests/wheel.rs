//! The Python package (pyproject.toml, python/geomount): maturin builds the wheel from this
//! checkout (a debug build that reuses this test build's artifacts), it is installed into a fresh
//! venv, and that venv's python runs tests/py/wheel_check.py: the context manager mounts the lab's
//! Garage bucket and xarray reads a Zarr store the test wrote and uploaded, equal to the local
//! copy; leaving the block (also by an exception) unmounts; a wrong bucket raises `MountError`
//! naming it within 10 s; `geomount.dask.MountPlugin` on a two-process `LocalCluster` gives the
//! local copy's mean; the package, `python -m geomount` and the venv's binary have Cargo.toml's
//! version; the option table is `geomount mount --help`'s flags, and an unknown option raises
//! `TypeError`.
//!
//! The fresh venv sees the lab venv's packages (xarray, zarr, dask) through a `.pth` file, so
//! nothing is downloaded; `geomount` itself comes only from the wheel. Each Python run gets a
//! TMPDIR of its own: whatever is still mounted under it afterwards is unmounted, and a run over
//! its time limit is killed by its process group.
#![cfg(feature = "lab-tests")]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Server, env, project_root, run_ok, unique_prefix, unmount_until_gone};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A Python run taking longer than this is killed (the dask run takes about 20 s).
const PY_LIMIT: Duration = Duration::from_secs(150);

/// The venv with the wheel installed, shared by this file's tests.
struct Venv {
    dir: PathBuf,
    wheel: PathBuf,
}

impl Venv {
    fn python(&self) -> Command {
        Command::new(self.dir.join("bin/python"))
    }
}

fn venv() -> &'static Venv {
    static VENV: OnceLock<Venv> = OnceLock::new();
    VENV.get_or_init(build_and_install)
}

/// `maturin build --profile dev` with this test build's features (so cargo finds everything
/// built), then a fresh venv with the wheel and a `.pth` line to the lab venv's packages.
fn build_and_install() -> Venv {
    let start = Instant::now();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wheel");
    let _ = std::fs::remove_dir_all(&root);
    let wheels = root.join("dist");
    let lab_venv = PathBuf::from(env("LAB_VENV"));
    run_ok(
        Command::new(lab_venv.join("bin/maturin"))
            .current_dir(project_root())
            .args(["build", "--profile", "dev", "--features", "lab-tests"])
            // The debug binary is linked against this machine's glibc; release wheels are
            // manylinux (packaging/README.md).
            .args(["--compatibility", "linux", "--quiet", "--out"])
            .arg(&wheels),
    );
    let found: Vec<PathBuf> = std::fs::read_dir(&wheels)
        .expect("maturin's output folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(found.len(), 1, "maturin wrote {found:?}");
    let wheel = found[0].clone();
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("geomount-{VERSION}-py3-none-")) && name.ends_with(".whl"),
        "{name}"
    );

    let dir = root.join("venv");
    run_ok(
        Command::new(lab_venv.join("bin/python"))
            .args(["-m", "venv"])
            .arg(&dir),
    );
    let purelib = |python: &Path| {
        let out = run_ok(Command::new(python).args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ]));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    let lab_site = purelib(&lab_venv.join("bin/python"));
    let site = purelib(&dir.join("bin/python"));
    std::fs::write(
        site.join("geomount-lab-venv.pth"),
        format!("{}\n", lab_site.display()),
    )
    .expect("write the .pth file");
    run_ok(
        Command::new(dir.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--no-deps", "--no-index"])
            .arg(&wheel),
    );
    eprintln!(
        "wheel {name} built and installed in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Venv { dir, wheel }
}

/// A TMPDIR for one Python run; dropping it unmounts anything still mounted under it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("gm-wheel-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Mount points under this folder, from /proc/self/mountinfo.
    fn mounts(&self) -> Vec<PathBuf> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(self.path()))
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for mp in self.mounts() {
            eprintln!("unmounting {} left by the Python run", mp.display());
            unmount_until_gone(&mp);
        }
    }
}

/// Runs `tests/py/wheel_check.py ARGS` with the venv's python against Garage; returns its JSON.
/// Over [`PY_LIMIT`], its process group (it and its dask processes) is killed.
fn check(scratch: &Scratch, args: &[&str]) -> serde_json::Value {
    let garage = Server::garage();
    let (key, secret) = garage.keys.clone().expect("Garage keys");
    let mut child = venv()
        .python()
        .arg(project_root().join("tests/py/wheel_check.py"))
        .args(args)
        .env("TMPDIR", scratch.path())
        .env("WHEEL_ENDPOINT", &garage.endpoint)
        .env("WHEEL_REGION", &garage.region)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("GEOMOUNT_CACHE_DIR", scratch.path().join("cache"))
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run the venv's python");
    let pid = child.id();
    // Read both pipes on threads, so the limit below is kept even if the child fills one.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = |r: &mut dyn std::io::Read| {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    };
    let out = std::thread::spawn(move || reader(&mut out));
    let err = std::thread::spawn(move || reader(&mut err));
    let deadline = Instant::now() + PY_LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for python") {
            break Some(st);
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the process group this test started (its pgid is the pid).
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    eprintln!("wheel_check {args:?}: {out}");
    let status =
        status.unwrap_or_else(|| panic!("wheel_check {args:?} ran over {PY_LIMIT:?}: {err}"));
    assert!(status.success(), "wheel_check {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("wheel_check output {out:?}: {e}"))
}

/// Every file under `root`, relative to it.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Writes the Zarr fixture with xarray under `local/store.zarr` and uploads it under a prefix
/// of its own; returns the source URL of that prefix and the fixture's mean.
fn seed(scratch: &Scratch, local: &Path, test: &str) -> (String, f64) {
    std::fs::create_dir_all(local).unwrap();
    let made = check(scratch, &["make", &local.to_string_lossy()]);
    let garage = Server::garage();
    let prefix = unique_prefix(test);
    let files = walk(local);
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(".zmetadata") || f.ends_with("zarr.json")),
        "no consolidated metadata in {files:?}"
    );
    garage.put_many(
        files
            .iter()
            .map(|f| {
                let data = std::fs::read(local.join(f)).unwrap();
                (format!("{prefix}/{}", f.display()), data)
            })
            .collect(),
    );
    let mean = made["mean"].as_f64().expect("fixture mean");
    (format!("s3://{}/{prefix}", garage.bucket), mean)
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout)
        .trim()
        .to_string()
}

#[test]
fn the_wheel_has_cargo_s_version_and_the_binary() {
    let venv = venv();
    assert!(venv.wheel.is_file());
    let want = format!("geomount {VERSION}");
    assert_eq!(
        stdout_of(venv.python().args(["-m", "geomount", "--version"])),
        want
    );
    let bin = venv.dir.join("bin/geomount");
    assert_eq!(stdout_of(Command::new(&bin).arg("--version")), want);
    // `python -m geomount ARGS` is the binary with ARGS, exit status included.
    let out = venv
        .python()
        .args(["-m", "geomount", "unmount", "/nonexistent-geomount"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not mounted"));

    let scratch = Scratch::new();
    let about = check(&scratch, &["about"]);
    assert_eq!(about["version"], VERSION);
    assert_eq!(about["binary"], bin.to_string_lossy().as_ref());
    let file = about["file"].as_str().unwrap();
    assert!(
        file.starts_with(&*venv.dir.to_string_lossy()),
        "the geomount package comes from {file}, not the wheel's venv"
    );
    let names: Vec<&str> = about["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, geomount::catalog::names());
}

/// `--flag` -> whether it takes a value, from `geomount mount --help`.
fn help_flags(help: &str) -> BTreeMap<String, bool> {
    let mut flags = BTreeMap::new();
    for line in help.lines().map(str::trim_start) {
        let line = line.strip_prefix("-").map_or(line, |_| {
            // "-f, --foreground" -> "--foreground"
            line.split_once(", ").map_or(line, |(_, rest)| rest)
        });
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let takes_value = rest[name.len()..].starts_with(" <");
        flags.insert(name, takes_value);
    }
    flags
}

#[test]
fn the_option_table_is_the_cli_s_and_unknown_options_raise_type_error() {
    let venv = venv();
    let help = stdout_of(Command::new(venv.dir.join("bin/geomount")).args(["mount", "--help"]));
    let cli = help_flags(&help);
    assert!(cli.contains_key("endpoint-url") && cli.contains_key("no-sign-request"));
    assert!(cli["cache-memory"]);
    assert!(!cli["no-sign-request"]);

    let scratch = Scratch::new();
    let about = check(&scratch, &["about"]);
    let mut table: BTreeMap<String, bool> =
        serde_json::from_value(about["flags"].clone()).expect("flag table");
    let not_options: Vec<String> = serde_json::from_value(about["not_options"].clone()).unwrap();
    for name in &not_options {
        assert!(
            !table.contains_key(name),
            "{name} is both an option and not"
        );
        // Not options, but flags of the command all the same.
        let takes_value = *cli
            .get(name)
            .unwrap_or_else(|| panic!("--{name} is not a flag of geomount mount"));
        table.insert(name.clone(), takes_value);
    }
    assert_eq!(
        table, cli,
        "the Python option table differs from `geomount mount --help`"
    );

    let errors = check(&scratch, &["unknown"]);
    let has = |k: &str, s: &str| {
        let msg = errors[k]
            .as_str()
            .unwrap_or_else(|| panic!("no TypeError for {k}: {errors}"));
        assert!(msg.contains(s), "{k}: {msg}");
    };
    has("mount", "'bogus_option'");
    has("foreground", "'foreground'");
    has("switch", "'no_sign_request'");
    has("plugin", "'cache_mem'");
}

#[test]
fn the_context_manager_reads_zarr_from_garage_and_always_unmounts() {
    let scratch = Scratch::new();
    let local = scratch.path().join("local");
    let (source, mean) = seed(&scratch, &local, "wheel-read");
    let v = check(&scratch, &["read", &source, &local.to_string_lossy()]);
    assert_eq!(v["mounted_inside"], true, "{v}");
    assert_eq!(v["identical"], true, "xarray reads another dataset: {v}");
    assert_eq!(v["equal"], true, "{v}");
    let read_mean = v["mean"].as_f64().unwrap();
    assert!((read_mean - mean).abs() < 1e-3, "{read_mean} vs {mean}");
    assert!(v["stats"]["get_requests"].as_u64().unwrap() > 0, "{v}");
    assert!(v["stats"]["bytes_fetched"].as_u64().unwrap() > 0, "{v}");
    // The mount point was a temporary folder: unmounted and removed.
    let root = PathBuf::from(v["root"].as_str().unwrap());
    assert!(root.starts_with(scratch.path()), "{root:?}");
    assert_eq!(v["mounted_after"], false, "{v}");
    assert_eq!(v["root_exists_after"], false, "{v}");
    assert_eq!(v["mounted_inside2"], true, "{v}");
    assert_eq!(v["raised"], "inside the block");
    assert_eq!(
        v["mounted_after2"], false,
        "an exception left the mount: {v}"
    );
    for mp in [&root, &PathBuf::from(v["root2"].as_str().unwrap())] {
        let st = Command::new("mountpoint")
            .arg("-q")
            .arg(mp)
            .status()
            .unwrap();
        assert!(!st.success(), "{} is still mounted", mp.display());
    }
    assert!(scratch.mounts().is_empty(), "{:?}", scratch.mounts());
}

#[test]
fn a_wrong_bucket_raises_mount_error_naming_it_within_10_s() {
    let scratch = Scratch::new();
    let bucket = format!("no-such-bucket-{}", std::process::id());
    let v = check(&scratch, &["wrong", &format!("s3://{bucket}/x")]);
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no MountError: {v}"));
    assert!(msg.contains(&format!("'{bucket}'")), "{msg}");
    assert!(
        !msg.starts_with("geomount:"),
        "the prefix stays on the CLI: {msg}"
    );
    let seconds = v["seconds"].as_f64().unwrap();
    assert!(seconds < 10.0, "MountError after {seconds} s");
    assert!(scratch.mounts().is_empty());
}

#[test]
fn the_dask_plugin_mounts_on_every_worker_and_gives_the_local_mean() {
    let scratch = Scratch::new();
    let local = scratch.path().join("local");
    let (source, mean) = seed(&scratch, &local, "wheel-dask");
    let mp = scratch.path().join("mnt");
    let v = check(
        &scratch,
        &[
            "dask",
            &source,
            &local.to_string_lossy(),
            &mp.to_string_lossy(),
        ],
    );
    let pids = v["worker_pids"].as_array().unwrap();
    assert_eq!(pids.len(), 2, "{v}");
    assert_ne!(pids[0], pids[1], "{v}");
    assert_eq!(v["workers_mounted"], serde_json::json!([true, true]), "{v}");
    // 4 steps of 3 times 2 x 2 of the store's chunks; the workers computed them.
    assert_eq!(v["chunks"], 16, "{v}");
    assert!(v["tasks"].as_u64().unwrap() >= 16, "{v}");
    assert!(v["task_workers"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["mean"], v["local_mean"], "{v}");
    assert!((v["mean"].as_f64().unwrap() - mean).abs() < 1e-3, "{v}");
    assert!(v["stats"]["get_requests"].as_u64().unwrap() > 0, "{v}");
    // The client left first; the workers' teardown unmounted when the cluster closed.
    assert_eq!(v["mounted_before_close"], true, "{v}");
    assert_eq!(v["mounted_after_close"], false, "{v}");
}
