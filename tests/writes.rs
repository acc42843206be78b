//! Writable mounts against Garage: real writers (cp, rsync, gdal_translate, xarray's to_zarr)
//! write into a `--read-write` mount, and the results are checked on the server (through an
//! S3 client, never through the mount).
#![cfg(feature = "lab-tests")]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use futures::TryStreamExt;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt};

/// A writable mount of `prefix` with its own staging folder (inside the mount's temp dir's
/// sibling, removed with it).
fn writable(server: &Server, prefix: &str, extra: &[&str]) -> (Mount, tempfile::TempDir) {
    let staging = tempfile::tempdir().expect("staging dir");
    let staging_arg = staging.path().to_string_lossy().into_owned();
    let mut args = vec![
        "--read-write",
        "--write-back",
        "1s",
        "--staging-dir",
        &staging_arg,
    ];
    args.extend_from_slice(extra);
    (Mount::s3(server, prefix, &args), staging)
}

/// Every key under `prefix` on the server, relative to it, sorted.
fn server_keys(server: &Server, prefix: &str) -> Vec<String> {
    let store = server.store();
    let p = OPath::from(prefix);
    let mut keys: Vec<String> = block_on(
        store
            .list(Some(&p))
            .map_ok(|m| m.location.to_string())
            .try_collect::<Vec<_>>(),
    )
    .expect("list")
    .into_iter()
    .map(|k| k[prefix.len() + 1..].to_string())
    .collect();
    keys.sort();
    keys
}

fn server_bytes(server: &Server, key: &str) -> Vec<u8> {
    let store = server.store();
    block_on(async { store.get(&OPath::from(key)).await?.bytes().await })
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
        .to_vec()
}

/// `geomount sync`'s way to wait for uploads: fsync of the folder.
fn sync(dir: &Path) {
    let f = std::fs::File::open(dir).expect("open folder");
    f.sync_all()
        .expect("fsync of the folder uploads everything below it");
}

fn download_tree(server: &Server, prefix: &str, to: &Path) {
    for k in server_keys(server, prefix) {
        let p = to.join(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, server_bytes(server, &format!("{prefix}/{k}"))).unwrap();
    }
}

#[test]
fn cp_of_empty_small_large_and_sparse_files_lands_byte_for_byte() {
    let server = Server::garage();
    let prefix = unique_prefix("cp");
    let (m, _staging) = writable(&server, &prefix, &[]);
    let src = tempfile::tempdir().unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.bin", Vec::new()),
        ("small.bin", pseudo_random(1024, 1)),
        // Above the single-PUT limit (16 MiB): a multipart upload.
        ("large.bin", pseudo_random(40 << 20, 2)),
    ];
    for (name, data) in &files {
        std::fs::write(src.path().join(name), data).unwrap();
        run_ok(
            Command::new("cp")
                .arg(src.path().join(name))
                .arg(m.join(name)),
        );
    }
    // A sparse file: cp skips its hole and ends with ftruncate.
    let sparse = src.path().join("sparse.bin");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::create(&sparse).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"tail").unwrap();
    }
    run_ok(
        Command::new("cp")
            .arg("--sparse=always")
            .arg(&sparse)
            .arg(m.join("sparse.bin")),
    );
    // cp -a keeps mode and times.
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(src.path().join("small.bin"))
            .arg(m.join("kept.bin")),
    );
    // Visible through the mount before the upload.
    assert_eq!(
        std::fs::metadata(m.join("large.bin")).unwrap().len(),
        40 << 20
    );
    sync(m.path());
    assert_eq!(
        server_keys(&server, &prefix),
        vec![
            "empty.bin",
            "kept.bin",
            "large.bin",
            "small.bin",
            "sparse.bin"
        ]
    );
    for (name, data) in &files {
        assert_eq!(
            sha256(&server_bytes(&server, &format!("{prefix}/{name}"))),
            sha256(data),
            "{name}"
        );
    }
    assert_eq!(
        server_bytes(&server, &format!("{prefix}/sparse.bin")),
        std::fs::read(&sparse).unwrap()
    );
    assert_eq!(m.stat("uploads"), 5, "one upload per file");
    // cp -a's mtime is reported for the uploaded file.
    let want = std::fs::metadata(src.path().join("small.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let got = std::fs::metadata(m.join("kept.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn rsync_twice_uploads_once_and_never_puts_its_temporaries() {
    let server = Server::garage();
    let prefix = unique_prefix("rsync");
    let (m, _staging) = writable(&server, &prefix, &[]);
    let src = tempfile::tempdir().unwrap();
    for i in 0..20 {
        let d = src.path().join(format!("d{}", i % 3));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(format!("f{i}.dat")),
            pseudo_random(1000 + i * 37, i as u64),
        )
        .unwrap();
    }
    let rsync = |dry: bool| {
        let mut c = Command::new("rsync");
        c.arg("-a").arg("--stats");
        if dry {
            c.arg("--dry-run");
        }
        stdout_of(
            c.arg(format!("{}/", src.path().display()))
                .arg(m.join("tree")),
        )
    };
    rsync(false);
    sync(m.path());
    let keys = server_keys(&server, &prefix);
    assert_eq!(keys.len(), 20, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.rsplit('/').next().unwrap().starts_with('.')),
        "{keys:?}"
    );
    assert_eq!(m.stat("uploads"), 20);
    for k in &keys {
        let local = std::fs::read(src.path().join(k.strip_prefix("tree/").unwrap())).unwrap();
        assert_eq!(
            server_bytes(&server, &format!("{prefix}/{k}")),
            local,
            "{k}"
        );
    }
    let second = rsync(false);
    assert!(
        second.contains("Number of regular files transferred: 0"),
        "the second rsync copied again:\n{second}"
    );
    sync(m.path());
    assert_eq!(m.stat("uploads"), 20, "the second run uploads nothing");
}

#[test]
fn gdal_translate_cog_into_the_mount_uploads_only_the_cog_and_reruns_over_it() {
    let server = Server::garage();
    let prefix = unique_prefix("cog");
    let (m, _staging) = writable(&server, &prefix, &[]);
    let src = fixtures().join("cog/cog_gradient.tif");
    let translate = |to: &Path| {
        run_ok(
            Command::new("gdal_translate")
                .args(["-q", "-of", "COG", "-co", "COMPRESS=DEFLATE"])
                .arg(&src)
                .arg(to),
        );
    };
    let local = tempfile::tempdir().unwrap();
    let reference = local.path().join("reference.tif");
    translate(&reference);
    for _ in 0..2 {
        translate(&m.join("out.tif"));
    }
    sync(m.path());
    assert_eq!(server_keys(&server, &prefix), vec!["out.tif"]);
    let copy = local.path().join("out.tif");
    std::fs::write(&copy, server_bytes(&server, &format!("{prefix}/out.tif"))).unwrap();
    assert_valid_cog(&copy);
    assert_eq!(gdal_checksums(&copy), gdal_checksums(&reference));
    // GDAL's `.ovr.tmp` and the first run's object: at most one upload per run, none of a
    // temporary (the listing above holds only out.tif).
    assert!(m.stat("uploads") <= 2, "uploads: {}", m.stat("uploads"));
}

#[test]
fn xarray_to_zarr_with_appends_lands_on_the_server_with_no_partial_keys() {
    let server = Server::garage();
    let prefix = unique_prefix("zarr");
    let (m, _staging) = writable(&server, &prefix, &[]);
    let script = project_root().join("tests/writes/to_zarr.py");
    run_ok(python().arg(&script).arg("write").arg(m.join("conus.zarr")));
    sync(m.path());
    let keys = server_keys(&server, &prefix);
    assert!(
        keys.iter()
            .any(|k| k == "conus.zarr/zarr.json" || k == "conus.zarr/.zmetadata"),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| !k.contains(".partial")), "{keys:?}");
    let local = tempfile::tempdir().unwrap();
    download_tree(&server, &prefix, local.path());
    let out = stdout_of(
        python()
            .arg(&script)
            .arg("check")
            .arg(local.path().join("conus.zarr")),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["times"], 9);
    assert_eq!(v["equal"], true);
    // Roughly one PUT per final key: rewrites of the metadata on each append add a few.
    let uploads = m.stat("uploads") as usize;
    assert!(
        uploads <= keys.len() * 2,
        "{uploads} uploads for {} keys",
        keys.len()
    );
}

#[test]
fn a_read_only_mount_refuses_writes_with_erofs() {
    let server = Server::garage();
    let prefix = unique_prefix("ro");
    server.put(&format!("{prefix}/a.txt"), b"a".to_vec());
    let m = Mount::s3(&server, &prefix, &[]);
    let err = std::fs::write(m.join("b.txt"), b"b").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(server_keys(&server, &prefix), vec!["a.txt"]);
}

#[test]
fn two_mounts_overwriting_one_key_one_wins_and_the_other_keeps_a_conflict_copy() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let server = Server::garage();
    let prefix = unique_prefix("conflict");
    server.put(&format!("{prefix}/shared.txt"), b"v0".to_vec());
    let (a, _sa) = writable(&server, &prefix, &[]);
    let (b, sb) = writable(&server, &prefix, &[]);
    let open = |m: &Mount| {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .custom_flags(0)
            .open(m.join("shared.txt"))
            .expect("open for writing")
    };
    let (mut fa, mut fb) = (open(&a), open(&b));
    fa.write_all(b"from a").unwrap();
    fb.write_all(b"from b").unwrap();
    fa.sync_all().expect("the first upload wins");
    let err = fb.sync_all().expect_err("the second is refused");
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop((fa, fb));
    assert_eq!(
        server_bytes(&server, &format!("{prefix}/shared.txt")),
        b"from a"
    );
    let kept: Vec<Vec<u8>> = std::fs::read_dir(sb.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path().join("conflicts")).unwrap())
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(kept, vec![b"from b".to_vec()]);
}

/// The daemon's pid, from its log's `mounted` line.
fn daemon_pid(m: &Mount) -> i32 {
    let log = std::fs::read_to_string(&m.log).expect("mount log");
    log.lines()
        .filter(|l| l.contains("mounted"))
        .find_map(|l| {
            let rest = &l[l.find("pid=")? + 4..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no pid in the mount log:\n{log}"))
}

#[test]
fn a_mount_killed_inside_the_write_back_window_uploads_on_the_next_mount() {
    use std::io::Write;
    let server = Server::garage();
    let prefix = unique_prefix("crash");
    let staging = tempfile::tempdir().unwrap();
    let staging_arg = staging.path().to_string_lossy().into_owned();
    let args = [
        "--read-write",
        "--write-back",
        "60s",
        "--staging-dir",
        staging_arg.as_str(),
    ];
    let first = Mount::s3(&server, &prefix, &args);
    std::fs::write(first.join("closed.txt"), b"closed before the kill").unwrap();
    // zarr's idiom: a `.partial` renamed over the final key, inside the window.
    std::fs::write(first.join("chunk.abc.partial"), b"chunk").unwrap();
    std::fs::rename(first.join("chunk.abc.partial"), first.join("0.0")).unwrap();
    let mut open = std::fs::File::create(first.join("open.txt")).unwrap();
    open.write_all(b"torn").unwrap();
    // SAFETY: kill(2) of the daemon this test started, by its pid.
    assert_eq!(unsafe { libc::kill(daemon_pid(&first), libc::SIGKILL) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(open);
    assert!(
        server_keys(&server, &prefix).is_empty(),
        "nothing was uploaded before the kill"
    );
    drop(first);
    let second = Mount::s3(&server, &prefix, &args);
    sync(second.path());
    assert_eq!(server_keys(&server, &prefix), vec!["0.0", "closed.txt"]);
    assert_eq!(server_bytes(&server, &format!("{prefix}/0.0")), b"chunk");
    let quarantined: Vec<String> = std::fs::read_dir(staging.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path().join("quarantine")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(quarantined[0].starts_with("open.txt."), "{quarantined:?}");
}

#[test]
fn netcdf4_h5netcdf_and_h5py_write_files_that_read_back_from_the_server() {
    let server = Server::garage();
    let prefix = unique_prefix("nc");
    let (m, _staging) = writable(&server, &prefix, &[]);
    let script = project_root().join("tests/writes/netcdf.py");
    run_ok(python().arg(&script).arg("write").arg(m.path()));
    sync(m.path());
    assert_eq!(
        server_keys(&server, &prefix),
        vec!["a_netcdf4.nc", "b_h5netcdf.nc", "c_h5py.h5"]
    );
    let local = tempfile::tempdir().unwrap();
    download_tree(&server, &prefix, local.path());
    let out = stdout_of(python().arg(&script).arg("check").arg(local.path()));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for f in ["a_netcdf4.nc", "b_h5netcdf.nc", "c_h5py.h5"] {
        assert_eq!(v[f], true, "{out}");
    }
}

#[test]
fn a_multipart_upload_through_503s_and_resets_lands_whole() {
    let server = Server::garage();
    let prefix = unique_prefix("faults");
    let proxy = Proxy::start(&server, &["--fail-503", "0.2", "--reset-mid-body", "0.05"]);
    let (m, _staging) = writable(&proxy.server(), &prefix, &[]);
    let data = pseudo_random(40 << 20, 9);
    std::fs::write(m.join("big.bin"), &data).unwrap();
    sync(m.path());
    assert_eq!(
        sha256(&server_bytes(&server, &format!("{prefix}/big.bin"))),
        sha256(&data)
    );
    assert!(
        proxy.count("put") >= 3,
        "a multipart upload: {:?}",
        proxy.stats()
    );
}
