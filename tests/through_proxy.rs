//! geomount behind the lab's labproxy: requests counted by the proxy (what S3 would bill and see),
//! and injected server faults (503 SlowDown, 500, bodies cut off mid-way) that retries must absorb.
#![cfg(feature = "lab-tests")]

mod common;

use common::{Mount, Proxy, Server, pseudo_random, sha256, unique_prefix};

/// After a listing, a cold sequential read fetches every byte exactly once, with GETs only.
#[test]
fn a_cold_read_fetches_each_byte_once_as_counted_by_the_proxy() {
    let garage = Server::garage();
    let prefix = unique_prefix("px-once");
    let data = pseudo_random(24 << 20, 11);
    garage.put(&format!("{prefix}/obj.bin"), data.clone());

    let proxy = Proxy::start(&garage, &["--delay-ms", "5"]);
    let m = Mount::s3(&proxy.server(), &prefix, &[]);
    let names: Vec<_> = std::fs::read_dir(m.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    proxy.reset();
    let got = std::fs::read(m.join("obj.bin")).unwrap();
    assert_eq!(sha256(&got), sha256(&data));
    let s = proxy.stats();
    assert_eq!(s["bytes_out"].as_u64(), Some(data.len() as u64), "{s}");
    assert_eq!(s["head"].as_u64(), Some(0), "{s}");
    assert_eq!(s["list"].as_u64(), Some(0), "{s}");
    let gets = s["get"].as_u64().unwrap() + s["get_range"].as_u64().unwrap();
    assert_eq!(
        gets,
        m.stat("get_requests"),
        "proxy and daemon disagree: {s}"
    );
}

/// With a fifth of requests failing (503/500) and some bodies cut off, every read still returns the
/// right bytes: the failures are retried below the filesystem.
#[test]
fn injected_server_faults_are_retried_and_bytes_stay_correct() {
    let garage = Server::garage();
    let prefix = unique_prefix("px-faults");
    let data = pseudo_random(16 << 20, 12);
    garage.put(&format!("{prefix}/obj.bin"), data.clone());

    let proxy = Proxy::start(
        &garage,
        &[
            "--fail-503",
            "0.1",
            "--fail-500",
            "0.1",
            "--reset-mid-body",
            "0.05",
            "--seed",
            "4",
        ],
    );
    let m = Mount::s3(&proxy.server(), &prefix, &[]);
    let got = std::fs::read(m.join("obj.bin")).unwrap();
    assert_eq!(sha256(&got), sha256(&data));
    let s = proxy.stats();
    let injected = s["injected_503"].as_u64().unwrap() + s["injected_500"].as_u64().unwrap();
    assert!(
        injected > 0,
        "no fault was injected, the test proved nothing: {s}"
    );
}

/// Readers of different chunks of one Zarr array, all at once, fetch them at once: lookups in
/// one directory run in parallel (FUSE_PARALLEL_DIROPS), and each chunk is fetched at its lookup.
/// Without it the kernel holds the directory's lock across each lookup: one GET at a time.
#[test]
fn parallel_readers_of_one_arrays_chunks_fetch_them_concurrently() {
    let garage = Server::garage();
    let prefix = unique_prefix("px-par");
    let array = r#"{"chunks":[1,256],"compressor":null,"dtype":"<f4","fill_value":0.0,"filters":null,"order":"C","shape":[12,256],"zarr_format":2}"#;
    let zmetadata = format!(
        r#"{{"zarr_consolidated_format":1,"metadata":{{".zgroup":{{"zarr_format":2}},"a/.zarray":{array}}}}}"#
    );
    let store = format!("{prefix}/s.zarr");
    garage.put(&format!("{store}/.zmetadata"), zmetadata.into_bytes());
    garage.put(
        &format!("{store}/.zgroup"),
        br#"{"zarr_format":2}"#.to_vec(),
    );
    garage.put(&format!("{store}/a/.zarray"), array.as_bytes().to_vec());
    let chunks: Vec<Vec<u8>> = (0..12).map(|i| pseudo_random(1024, 100 + i)).collect();
    for (i, c) in chunks.iter().enumerate() {
        garage.put(&format!("{store}/a/{i}.0"), c.clone());
    }
    // A delay long enough that requests in flight together are seen together.
    let proxy = Proxy::start(&garage, &["--delay-ms", "300"]);
    let m = Mount::s3(&proxy.server(), &prefix, &[]);
    assert!(m.join("s.zarr/a/.zarray").exists());
    proxy.reset();
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let path = m.join(&format!("s.zarr/a/{i}.0"));
            std::thread::spawn(move || std::fs::read(path).unwrap())
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), chunks[i], "chunk {i}");
    }
    let s = proxy.stats();
    assert_eq!(s["get"].as_u64(), Some(12), "one GET per chunk: {s}");
    assert!(
        s["in_flight_max"].as_u64().unwrap() >= 6,
        "the chunks were fetched (nearly) one at a time: {s}"
    );
}

/// `ls -l` of a folder costs its listing and nothing per entry: the listing carries each
/// entry's attributes (READDIRPLUS), so the kernel makes no lookup for them.
#[test]
fn ls_l_needs_no_lookup_per_entry() {
    let garage = Server::garage();
    let prefix = unique_prefix("px-lsl");
    let items = (0..50)
        .map(|i| (format!("{prefix}/d/f{i:02}"), vec![b'x'; i]))
        .collect();
    garage.put_many(items);
    let proxy = Proxy::start(&garage, &[]);
    let m = Mount::s3(&proxy.server(), &prefix, &[]);
    assert!(m.join("d").is_dir());
    let lookups = m.stat("lookups");
    proxy.reset();
    let out = common::stdout_of(std::process::Command::new("ls").arg("-l").arg(m.join("d")));
    let sizes: Vec<usize> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(4).unwrap().parse().unwrap())
        .collect();
    assert_eq!(sizes, (0..50).collect::<Vec<_>>(), "{out}");
    // The folder's listing came with its lookup; an entry costs no request.
    let s = proxy.stats();
    assert!(s["list"].as_u64().unwrap() <= 1, "{s}");
    assert_eq!(s["head"].as_u64(), Some(0), "{s}");
    let per_entry = m.stat("lookups") - lookups;
    assert!(per_entry < 5, "{per_entry} lookups for 50 entries listed");
}
