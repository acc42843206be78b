//! Listings through real mounts of Garage: many keys, implicit folders, odd names, `dir/`
//! markers, a key beside a prefix of the same name, and keys that cannot be file names.
#![cfg(feature = "lab-tests")]

mod common;

use std::collections::BTreeMap;

use common::{Mount, Server, unique_prefix};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn five_thousand_keys_list_exactly() {
    let server = Server::garage();
    let prefix = unique_prefix("many");
    let items: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("{prefix}/k{i:05}.dat"), vec![b'x'; i % 97]))
        .collect();
    let expected: BTreeMap<String, u64> = items
        .iter()
        .map(|(k, v)| (k.rsplit('/').next().unwrap().to_string(), v.len() as u64))
        .collect();
    server.put_many(items);
    let m = Mount::s3(&server, &prefix, &[]);
    let mut got = BTreeMap::new();
    for e in std::fs::read_dir(m.path()).unwrap() {
        let e = e.unwrap();
        got.insert(
            e.file_name().to_string_lossy().into_owned(),
            e.metadata().unwrap().len(),
        );
    }
    assert_eq!(got.len(), 5000);
    assert!(got == expected, "names or sizes differ");
    // 5,000 keys take 5 pages of 1,000; the stat of every entry is answered from the listing.
    let lists = m.stat("list_requests");
    assert!((5..=8).contains(&lists), "{lists} LIST requests");
    assert_eq!(m.stat("head_requests"), 0);
}

#[test]
fn folders_odd_names_markers_and_shadowed_keys() {
    let server = Server::garage();
    let prefix = unique_prefix("tree");
    let odd = [
        "with space.txt",
        "ünïcødé-名前.txt",
        "100%.txt",
        "a+b.txt",
        "semi;colon&amp.txt",
    ];
    for name in odd {
        server.put(&format!("{prefix}/odd/{name}"), name.as_bytes().to_vec());
    }
    server.put(&format!("{prefix}/a/b/c/deep.txt"), b"deep".to_vec());
    server.put_raw(&format!("{prefix}/empty-marker/"), b"");
    server.put_raw(&format!("{prefix}/marker-with-child/"), b"");
    server.put(
        &format!("{prefix}/marker-with-child/child.txt"),
        b"child".to_vec(),
    );
    server.put(&format!("{prefix}/same"), b"the object".to_vec());
    server.put(&format!("{prefix}/same/inner.txt"), b"inner".to_vec());

    let m = Mount::s3(&server, &prefix, &[]);
    assert_eq!(
        names(m.path()),
        ["a", "empty-marker", "marker-with-child", "odd", "same"]
    );
    let mut odd_sorted: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    odd_sorted.sort();
    assert_eq!(names(&m.join("odd")), odd_sorted);
    for name in odd {
        assert_eq!(
            std::fs::read(m.join("odd").join(name)).unwrap(),
            name.as_bytes()
        );
    }
    // Implicit folders, each level a directory.
    for d in ["a", "a/b", "a/b/c"] {
        assert!(std::fs::metadata(m.join(d)).unwrap().is_dir(), "{d}");
    }
    assert_eq!(std::fs::read(m.join("a/b/c/deep.txt")).unwrap(), b"deep");
    // `dir/` markers: a directory, empty or with its children; the marker itself is not a file.
    assert!(std::fs::metadata(m.join("empty-marker")).unwrap().is_dir());
    assert!(names(&m.join("empty-marker")).is_empty());
    assert_eq!(names(&m.join("marker-with-child")), ["child.txt"]);
    // A key beside a prefix of the same name: the directory wins, the object is hidden.
    assert!(std::fs::metadata(m.join("same")).unwrap().is_dir());
    assert_eq!(names(&m.join("same")), ["inner.txt"]);
}

/// Keys that cannot be file names are skipped; the rest of the listing is served.
#[test]
fn keys_that_cannot_be_names_are_skipped() {
    let server = Server::garage();
    let prefix = unique_prefix("bad");
    let long = "L".repeat(300);
    server.put_raw(&format!("{prefix}/dir/double//slash"), b"bad");
    server.put_raw(&format!("{prefix}/dir/{long}"), b"bad");
    server.put(&format!("{prefix}/dir/good.txt"), b"good".to_vec());
    let m = Mount::s3(&server, &prefix, &[]);
    assert_eq!(names(&m.join("dir")), ["double", "good.txt"]);
    // `double/` holds only the key with an empty segment: it lists, but shows nothing.
    assert!(names(&m.join("dir/double")).is_empty());
    assert_eq!(std::fs::read(m.join("dir/good.txt")).unwrap(), b"good");
    assert_eq!(m.stat("request_errors"), 0);
}

#[test]
fn ownership_and_modes_are_as_configured() {
    use std::os::unix::fs::MetadataExt;
    let server = Server::garage();
    let prefix = unique_prefix("own");
    server.put(&format!("{prefix}/d/f.txt"), b"f".to_vec());
    let m = Mount::s3(
        &server,
        &prefix,
        &[
            "--uid",
            "1234",
            "--gid",
            "5678",
            "--file-mode",
            "0640",
            "--dir-mode",
            "0750",
        ],
    );
    let f = std::fs::metadata(m.join("d/f.txt")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1234, 5678, 0o640));
    let d = std::fs::metadata(m.join("d")).unwrap();
    assert_eq!((d.uid(), d.gid(), d.mode() & 0o7777), (1234, 5678, 0o750));
    // Writes of every kind are refused with EROFS.
    let erofs =
        |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    erofs(std::fs::write(m.join("new.txt"), b"x"));
    erofs(std::fs::create_dir(m.join("newdir")));
    erofs(std::fs::remove_file(m.join("d/f.txt")));
    erofs(std::fs::rename(m.join("d/f.txt"), m.join("d/g.txt")));
    erofs(
        std::fs::OpenOptions::new()
            .append(true)
            .open(m.join("d/f.txt"))
            .map(drop),
    );
}

#[test]
fn listings_and_missing_names_refresh_after_the_metadata_ttl() {
    let server = Server::garage();
    let prefix = unique_prefix("ttl");
    server.put(&format!("{prefix}/first.txt"), b"1".to_vec());
    let m = Mount::s3(&server, &prefix, &["--metadata-ttl", "2s"]);
    assert_eq!(names(m.path()), ["first.txt"]);
    assert!(!m.join("later.txt").exists());
    server.put(&format!("{prefix}/later.txt"), b"2".to_vec());
    // Within the TTL both the listing and the missing name are served from the caches.
    assert_eq!(names(m.path()), ["first.txt"]);
    assert!(!m.join("later.txt").exists());
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(names(m.path()), ["first.txt", "later.txt"]);
    assert_eq!(std::fs::read(m.join("later.txt")).unwrap(), b"2");
}
