//! Byte-identical reads through real FUSE mounts of real S3 servers: Garage with signed requests
//! and moto with unsigned ones.
#![cfg(feature = "lab-tests")]

mod common;

use std::os::unix::fs::FileExt;

use common::{Mount, Server, pseudo_random, sha256, unique_prefix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SIZES: [usize; 6] = [0, 1, 4095, 131_073, 8 << 20, 100 << 20];

fn byte_identical_reads(server: Server, name: &str) {
    let prefix = unique_prefix(name);
    let mut sources = Vec::new();
    for (i, size) in SIZES.iter().enumerate() {
        let data = pseudo_random(*size, 1000 + i as u64);
        server.put(&format!("{prefix}/obj-{size}"), data.clone());
        sources.push((format!("obj-{size}"), data));
    }

    // Cold random preads first, so they are served by ranged GETs and not by a warm cache.
    let m = Mount::s3(&server, &prefix, &[]);
    let (big_name, big) = sources.last().unwrap();
    let f = std::fs::File::open(m.join(big_name)).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..1000 {
        let off = rng.random_range(0..big.len() as u64 + 10);
        let len = rng.random_range(1..300_000usize);
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).unwrap();
        let start = (off as usize).min(big.len());
        let end = (start + len).min(big.len());
        assert_eq!(n, end - start, "short read at {off}+{len}");
        assert!(buf[..n] == big[start..end], "bytes differ at {off}+{len}");
    }
    drop(f);

    for (name, data) in &sources {
        let path = m.join(name);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            data.len() as u64,
            "{name} size"
        );
        let got = std::fs::read(&path).unwrap();
        assert_eq!(sha256(&got), sha256(data), "{name} content");
    }
    assert!(m.stat("get_requests") > 0);
    assert_eq!(m.stat("request_errors"), 0);
}

#[test]
fn garage_signed_reads_are_byte_identical() {
    byte_identical_reads(Server::garage(), "reads-garage");
}

#[test]
fn moto_unsigned_reads_are_byte_identical() {
    byte_identical_reads(Server::moto(), "reads-moto");
}

/// A sequential reader gets multi-block prefetch GETs: far fewer requests than 1 MiB blocks.
#[test]
fn sequential_read_is_prefetched_in_large_requests() {
    let server = Server::garage();
    let prefix = unique_prefix("seq");
    let data = pseudo_random(64 << 20, 3);
    server.put(&format!("{prefix}/seq.bin"), data.clone());
    let m = Mount::s3(&server, &prefix, &[]);
    let got = std::fs::read(m.join("seq.bin")).unwrap();
    assert!(got == data);
    let gets = m.stat("get_requests");
    assert!(
        gets < 32,
        "{gets} GETs for 64 blocks: prefetch did not merge blocks"
    );
    assert!(m.stat("prefetch_requests") > 0);
    // A second open of the unchanged object is served from the caches.
    let before = m.stat("get_requests");
    let again = std::fs::read(m.join("seq.bin")).unwrap();
    assert!(again == data);
    assert_eq!(m.stat("get_requests"), before, "warm re-read made requests");
}
