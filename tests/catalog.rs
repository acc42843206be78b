//! Dataset presets, profiles, NASA Earthdata credentials and config-file trees, through real FUSE
//! mounts of lab replicas with the real key layout: moto (unsigned) stands in for the public
//! buckets, Garage (signed) for protected ones, and `lab/earthdata.py` for Earthdata's
//! credential endpoint. Every preset is mounted by name with its endpoint overridden to the lab.
#![cfg(feature = "lab-tests")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{
    Mount, Server, fixtures, geomount, project_root, pseudo_random, python, run_ok, sha256,
    unique_prefix,
};

const HRRR_KEY: &str = "hrrr.20201214/conus/hrrr.t00z.wrfsfcf12.grib2";
const HLS_KEY: &str =
    "HLSL30.020/HLS.L30.T10SEG.2021001T184511.v2.0/HLS.L30.T10SEG.2021001T184511.v2.0.B04.tif";

fn garage_cli() -> Command {
    let lab = std::env::var("GEOMOUNT_LAB").unwrap_or_else(|_| {
        format!(
            "{}/.cache/geomount-lab",
            std::env::var("HOME").expect("HOME")
        )
    });
    let mut c = Command::new(PathBuf::from(lab).join("garage/bin/garage"));
    c.arg("-c")
        .arg(PathBuf::from(common::env("GARAGE_DIR")).join("garage.toml"));
    c
}

/// Garage bucket `name` (created if needed) that the lab key can read and write.
fn garage_bucket(name: &str) -> Server {
    let _ = garage_cli().args(["bucket", "create", name]).output();
    let key = common::env("GARAGE_KEY_ID");
    run_ok(garage_cli().args([
        "bucket", "allow", "--read", "--write", "--owner", name, "--key", &key,
    ]));
    Server {
        bucket: name.into(),
        ..Server::garage()
    }
}

/// moto bucket `name` (created if needed), readable with unsigned requests like a public bucket.
fn moto_bucket(name: &str) -> Server {
    let s = Server {
        bucket: name.into(),
        ..Server::moto()
    };
    let script = r#"
import json, sys, boto3
endpoint, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:*",
     "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
"#;
    run_ok(python().args(["-c", script, &s.endpoint, name]));
    s
}

/// Uploads the files under `dir` to `server` as `prefix/relative/path`.
fn put_dir(server: &Server, dir: &Path, prefix: &str) {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let rel = format!("{rel}/{name}");
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &rel, out);
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut items = Vec::new();
    walk(dir, prefix, &mut items);
    server.put_many(items);
}

fn seed_hrrr() -> Server {
    let s = moto_bucket("noaa-hrrr-bdp-pds");
    let grib = fixtures().join(common::HRRR);
    s.put(HRRR_KEY, std::fs::read(&grib).unwrap());
    s.put(
        &format!("{HRRR_KEY}.idx"),
        std::fs::read(grib.with_extension("grib2.idx")).unwrap(),
    );
    s
}

fn seed_conus404() -> Server {
    let s = moto_bucket("hytest");
    put_dir(
        &s,
        &fixtures().join("zarr/dataset_3d.zarr"),
        "conus404/conus404_daily.zarr",
    );
    s
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn assert_same_file(got: &Path, want: &Path) {
    let (g, w) = (std::fs::read(got).unwrap(), std::fs::read(want).unwrap());
    assert_eq!(
        sha256(&g),
        sha256(&w),
        "{} differs from {}",
        got.display(),
        want.display()
    );
}

/// A HOME of its own with `~/.aws` and `~/.netrc` files, for the daemon.
struct Home(tempfile::TempDir);

impl Home {
    fn new() -> Home {
        Home(
            tempfile::Builder::new()
                .prefix("gm-home-")
                .tempdir()
                .unwrap(),
        )
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        self
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("HOME".into(), self.0.path().display().to_string())]
    }

    /// A `lab` profile whose endpoint, region and keys live only in ~/.aws, and a `proc` profile
    /// whose keys come from a credential_process.
    fn with_lab_profiles(self) -> Self {
        let g = Server::garage();
        let (k, s) = g.keys.clone().unwrap();
        let json = format!(r#"{{"Version": 1, "AccessKeyId": "{k}", "SecretAccessKey": "{s}"}}"#);
        self.write(
            ".aws/config",
            &format!(
                "[profile lab]\nregion = {r}\nendpoint_url = {e}\n\n[profile proc]\nregion = {r}\nendpoint_url = {e}\ncredential_process = printf '%s' '{json}'\n",
                r = g.region,
                e = g.endpoint
            ),
        );
        self.write(
            ".aws/credentials",
            &format!("[lab]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n"),
        );
        self
    }
}

/// `lab/earthdata.py`, stopped (and its keys revoked) by PID on drop.
struct Earthdata {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Earthdata {
    fn start(extra: &[String], password: &str) -> Earthdata {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = python()
            .arg(project_root().join("lab/earthdata.py"))
            .arg("--port-file")
            .arg(&port_file)
            .arg("--state")
            .arg(dir.path().join("state.json"))
            .args(["--login", "labuser", "--password", password])
            .args(extra)
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("start lab/earthdata.py");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(Instant::now() < deadline, "lab/earthdata.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        let url = format!("http://127.0.0.1:{}/s3credentials", port.trim());
        Earthdata { child, dir, url }
    }

    fn static_keys(password: &str) -> Earthdata {
        let (k, s) = Server::garage().keys.unwrap();
        Self::start(&args(&["--static", &k, &s]), password)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap())
            .unwrap()
    }

    fn count(&self, what: &str) -> usize {
        self.state()[what].as_array().unwrap().len()
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

fn netrc_home(password: &str) -> Home {
    let h = Home::new();
    h.write(
        ".netrc",
        &format!("machine 127.0.0.1\n  login labuser\n  password {password}\n"),
    );
    h
}

#[test]
fn conus404_preset_serves_the_zarr_to_xarray() {
    let moto = seed_conus404();
    let m = Mount::with_args(&args(&["conus404", "--endpoint-url", &moto.endpoint]), &[]);
    let script = r#"
import sys, xarray as xr
got = xr.open_zarr(sys.argv[1], consolidated=True).load()
want = xr.open_zarr(sys.argv[2], consolidated=True).load()
xr.testing.assert_identical(got, want)
print(float(got["dataset"].mean()))
"#;
    let out = run_ok(
        python()
            .args(["-c", script])
            .arg(m.join("conus404_daily.zarr"))
            .arg(fixtures().join("zarr/dataset_3d.zarr")),
    );
    let mean: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(mean.is_finite());
    assert!(m.stat("get_requests") > 0);
}

#[test]
fn hrrr_preset_serves_grib2_and_idx_byte_for_byte() {
    let moto = seed_hrrr();
    let m = Mount::with_args(&args(&["hrrr", "--endpoint-url", &moto.endpoint]), &[]);
    let local_grib = fixtures().join(common::HRRR);
    let grib = m.join(HRRR_KEY);
    assert_same_file(&grib, &local_grib);
    assert_same_file(
        &m.join(&format!("{HRRR_KEY}.idx")),
        &local_grib.with_extension("grib2.idx"),
    );
    // The second message as Herbie reads it: a ranged read from its .idx offset to the end.
    use std::os::unix::fs::FileExt;
    let at = common::hrrr_message(1)["idx_offset"].as_u64().unwrap();
    let f = std::fs::File::open(&grib).unwrap();
    let len = f.metadata().unwrap().len();
    let mut msg = vec![0u8; (len - at) as usize];
    f.read_exact_at(&mut msg, at).unwrap();
    let local = std::fs::read(&local_grib).unwrap();
    assert!(msg[..] == local[at as usize..]);
    assert!(
        msg.windows(4).take(8).any(|w| w == b"GRIB"),
        "no GRIB header near the offset"
    );
}

#[test]
fn the_other_anonymous_presets_mount_by_name() {
    let nc = std::fs::read(fixtures().join("netcdf/air.nc")).unwrap();
    let cases = [
        (
            "wrf-cmip6",
            "wrf-cmip6-noversioning",
            "downscaled_products/gcm/cesm2_r11i1p1f1_ssp370/postprocess/d02/t2.daily.cesm2.r11i1p1f1.ssp370.d02.2015.nc",
            nc.clone(),
        ),
        (
            "cresst",
            "cresst",
            "stehekin/planet/catalog.json",
            b"{\"type\": \"Catalog\"}".to_vec(),
        ),
        (
            "mast",
            "stpubdata",
            "jwst/public/jw01234/jw01234_x1d.fits",
            pseudo_random(20_000, 9),
        ),
    ];
    for (preset, bucket, key, data) in cases {
        let s = moto_bucket(bucket);
        s.put(key, data.clone());
        let m = Mount::with_args(&args(&[preset, "--endpoint-url", &s.endpoint]), &[]);
        let got = std::fs::read(m.join(key)).unwrap_or_else(|e| panic!("{preset}: {e}"));
        assert_eq!(sha256(&got), sha256(&data), "{preset}");
    }
}

#[test]
fn hls_preset_reads_a_cog_with_earthdata_keys_from_netrc() {
    let g = garage_bucket("lp-prod-protected");
    let cog = fixtures().join("cog/cog_ovr.tif");
    g.put(HLS_KEY, std::fs::read(&cog).unwrap());
    let ed = Earthdata::static_keys("right");
    let home = netrc_home("right");
    let m = Mount::with_args(
        &args(&[
            "hls",
            "--endpoint-url",
            &g.endpoint,
            "--region",
            &g.region,
            "--earthdata-url",
            &ed.url,
        ]),
        &home.env(),
    );
    let checksums = |p: &Path| {
        let out = run_ok(Command::new("gdalinfo").arg("-checksum").arg(p));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("Checksum="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let want = checksums(&cog);
    assert!(!want.is_empty());
    assert_eq!(checksums(&m.join(HLS_KEY)), want);
    assert!(
        ed.state()["served"].as_u64().unwrap() >= 1,
        "no Earthdata keys were fetched"
    );
}

#[test]
fn earthdata_401_names_the_netrc() {
    let ed = Earthdata::static_keys("right");
    let home = netrc_home("wrong");
    let g = garage_bucket("lp-prod-protected");
    let dir = tempfile::tempdir().unwrap();
    let out = geomount()
        .args(["mount", "hls"])
        .arg(dir.path())
        .args([
            "--endpoint-url",
            &g.endpoint,
            "--region",
            &g.region,
            "--earthdata-url",
            &ed.url,
        ])
        .envs(home.env())
        .output()
        .unwrap();
    common::unmount_until_gone(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(".netrc") && err.contains("401"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn earthdata_keys_rotate_under_a_streaming_reader() {
    let g = garage_bucket("lp-prod-protected");
    let key = format!("{}/stream.bin", unique_prefix("earthdata"));
    let data = pseudo_random(96 << 20, 77);
    g.put(&key, data.clone());
    let garage = garage_cli().get_program().to_owned();
    let config = PathBuf::from(common::env("GARAGE_DIR")).join("garage.toml");
    let ed = Earthdata::start(
        &[
            "--rotate".to_string(),
            "--lifetime".into(),
            "4".into(),
            "--garage".into(),
            garage.to_string_lossy().into(),
            "--garage-config".into(),
            config.display().to_string(),
            "--bucket".into(),
            "lp-prod-protected".into(),
        ],
        "right",
    );
    let home = netrc_home("right");
    // A small cache keeps the reader fetching from S3 all along instead of prefetching it all.
    let m = Mount::with_args(
        &args(&[
            "hls",
            "--endpoint-url",
            &g.endpoint,
            "--region",
            &g.region,
            "--earthdata-url",
            &ed.url,
            "--cache-memory",
            "16MiB",
        ]),
        &home.env(),
    );
    use std::io::Read;
    let mut f = std::fs::File::open(m.join(&key)).unwrap();
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 1 << 20];
    let mut gets_per_key = Vec::new();
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        gets_per_key.push((ed.count("issued"), m.stat("get_requests")));
        std::thread::sleep(Duration::from_millis(120));
    }
    assert_eq!(got.len(), data.len());
    assert!(sha256(&got) == sha256(&data), "streamed bytes differ");
    assert_eq!(m.stat("request_errors"), 0);
    let issued = ed.count("issued");
    let revoked = ed.count("revoked");
    assert!(
        issued >= 3 && revoked >= 2,
        "issued {issued}, revoked {revoked}"
    );
    // GETs went out under at least three different keys, so reads crossed refreshes.
    let mut keys_with_gets = 0;
    for k in 1..=issued {
        let gets: Vec<u64> = gets_per_key
            .iter()
            .filter(|(i, _)| *i == k)
            .map(|(_, g)| *g)
            .collect();
        if gets.len() > 1 && gets.last() > gets.first() {
            keys_with_gets += 1;
        }
    }
    assert!(
        keys_with_gets >= 3,
        "GETs happened under {keys_with_gets} keys: {gets_per_key:?}"
    );
    eprintln!(
        "earthdata rotation: {issued} keys issued, {revoked} revoked, GETs under {keys_with_gets} keys, {} GETs",
        m.stat("get_requests")
    );
    // Revocation is real: the first key no longer reads.
    let first = ed.state()["issued"][0].as_str().unwrap().to_string();
    let out = garage_cli().args(["key", "info", &first]).output().unwrap();
    assert!(!out.status.success(), "key {first} still exists");
}

#[test]
fn a_profile_living_only_in_home_mounts_garage() {
    let g = Server::garage();
    let prefix = unique_prefix("profile");
    let data = pseudo_random(3 << 20, 5);
    g.put(&format!("{prefix}/obj"), data.clone());
    let home = Home::new().with_lab_profiles();
    let url = format!("s3://{}/{prefix}", g.bucket);
    // --profile, AWS_PROFILE, and a profile whose keys come from credential_process.
    let with_profile_env = [home.env(), vec![("AWS_PROFILE".into(), "lab".into())]].concat();
    let runs = [
        (args(&[&url, "--profile", "lab"]), home.env()),
        (args(&[&url]), with_profile_env),
        (args(&[&url, "--profile", "proc"]), home.env()),
    ];
    for (a, env) in runs {
        let m = Mount::with_args(&a, &env);
        assert_eq!(
            sha256(&std::fs::read(m.join("obj")).unwrap()),
            sha256(&data),
            "{a:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = geomount()
        .args(["mount", &url])
        .arg(dir.path())
        .args(["--profile", "nope"])
        .envs(home.env())
        .output()
        .unwrap();
    common::unmount_until_gone(dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let aws = home.0.path().join(".aws");
    for f in ["credentials", "config"] {
        assert!(err.contains(&aws.join(f).display().to_string()), "{err}");
    }
}

#[test]
fn a_config_file_mounts_several_sources_under_one_tree() {
    let moto_hrrr = seed_hrrr();
    let moto_conus = seed_conus404();
    let g = Server::garage();
    let prefix = unique_prefix("tree");
    g.put(&format!("{prefix}/README.md"), b"shared project\n".to_vec());
    let home = Home::new().with_lab_profiles();
    let toml = format!(
        "[cache]\nmemory = \"64MiB\"\n\n[sources.conus404]\npreset = \"conus404\"\nendpoint = \"{}\"\n\n[sources.hrrr]\npreset = \"hrrr\"\nendpoint = \"{}\"\n\n[sources.cresst]\nurl = \"s3://{}/{prefix}\"\nprofile = \"lab\"\n",
        moto_conus.endpoint, moto_hrrr.endpoint, g.bucket
    );
    home.write("geomount.toml", &toml);
    let config = home.0.path().join("geomount.toml");
    let m = Mount::with_args(&[format!("--config={}", config.display())], &home.env());
    let mut top: Vec<String> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["conus404", "cresst", "hrrr"]);
    assert_same_file(
        &m.join(&format!("hrrr/{HRRR_KEY}")),
        &fixtures().join(common::HRRR),
    );
    assert_same_file(
        &m.join("conus404/conus404_daily.zarr/.zmetadata"),
        &fixtures().join("zarr/dataset_3d.zarr/.zmetadata"),
    );
    assert_eq!(
        std::fs::read(m.join("cresst/README.md")).unwrap(),
        b"shared project\n"
    );
}

#[test]
fn catalog_and_config_errors_name_the_fix() {
    let out = run_ok(geomount().arg("catalog"));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "conus404",
        "hrrr",
        "wrf-cmip6",
        "cresst",
        "hls",
        "mast",
        "hytest",
        "lp-prod-protected",
    ] {
        assert!(text.contains(name), "{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = geomount()
        .args(["mount", "conus"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("conus404, hrrr, wrf-cmip6, cresst, hls, mast"),
        "{err}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[sources.a]\npreset = \"hrrr\"\n\n[mount]\nuid = \"me\"\n",
    )
    .unwrap();
    let mp = tempfile::tempdir().unwrap();
    let out = geomount()
        .args(["mount", "--config"])
        .arg(&bad)
        .arg(mp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 5") && err.contains("uid"),
        "{err}"
    );
}
