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
