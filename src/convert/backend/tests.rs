use std::sync::Arc;

use object_store::local::LocalFileSystem;

use super::*;
use crate::store::object::{Lister, ObjectBackend};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/grib2/hrrr.t00z.wrfsfcf12.grib2"
);
const NAME: &str = "hrrr.grib2";
const CELLS: u64 = 1799 * 1059;

/// A local-folder backend holding the HRRR fixture (with its `.idx` when `idx`), and a copy
/// with a damaged second message and no `.idx`.
fn backend(idx: bool) -> (tempfile::TempDir, Convert<ObjectBackend>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(FIXTURE).expect("fixture");
    std::fs::write(dir.path().join(NAME), &bytes).unwrap();
    if idx {
        std::fs::copy(
            format!("{FIXTURE}.idx"),
            dir.path().join(format!("{NAME}.idx")),
        )
        .unwrap();
    }
    // Message 2 (the last) loses its end marker: its length still reads, its data does not.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(b"XXXX");
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/bad.grib2"), &bad).unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let inner = ObjectBackend::new(Arc::new(store), String::new(), Lister::Generic);
    (dir, Convert::new(inner))
}

async fn read(b: &Convert<ObjectBackend>, key: &str) -> Result<Vec<u8>, FsError> {
    let info = b.head(key).await?;
    let rope = b.get_range(key, 0..info.size, info.etag.as_deref()).await?;
    Ok(rope.to_bytes().to_vec())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn view_paths_split_at_the_view_segment() {
    let vp = parse_vpath("a/b/x.grib2.zarr/T/.zarray").unwrap();
    assert_eq!(
        (vp.source.as_str(), vp.kind, vp.rest.as_str()),
        ("a/b/x.grib2", Kind::Zarr, "T/.zarray")
    );
    let vp = parse_vpath("x.grb2.cog/").unwrap();
    assert_eq!(
        (vp.source.as_str(), vp.kind, vp.rest.as_str()),
        ("x.grb2", Kind::Cog, "")
    );
    assert_eq!(parse_vpath("data.zarr/x/.zarray"), None);
    assert_eq!(parse_vpath("x.grib2"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grib_views_list_and_serve_eccodes_values() {
    let (_dir, b) = backend(true);
    let root = b.list("").await.unwrap();
    for d in ["hrrr.grib2.zarr", "hrrr.grib2.cog"] {
        assert!(root.dirs.iter().any(|x| x == d), "{:?}", root.dirs);
    }
    let z = b.list("hrrr.grib2.zarr/").await.unwrap();
    let files: Vec<&str> = z.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        files,
        vec![".zattrs", ".zgroup", ".zmetadata", "preview.png"]
    );
    let png = read(&b, "hrrr.grib2.cog/preview.png").await.unwrap();
    let size = b.head("hrrr.grib2.cog/preview.png").await.unwrap().size;
    assert_eq!((png.len() as u64, &png[1..4]), (size, &b"PNG"[..]));
    let a1 = "APCP_surface_0_12_hour_acc_fcst";
    let a2 = "APCP_surface_11_12_hour_acc_fcst";
    for d in [a1, a2, "x", "y", "latitude", "longitude", "crs"] {
        assert!(z.dirs.iter().any(|x| x == d), "{d} in {:?}", z.dirs);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&read(&b, "hrrr.grib2.zarr/.zmetadata").await.unwrap()).unwrap();
    let zarray = &meta["metadata"][format!("{a1}/.zarray")];
    assert_eq!(zarray["shape"], serde_json::json!([1059, 1799]));
    let attrs = &meta["metadata"][format!("{a1}/.zattrs")];
    assert_eq!(attrs["units"], "kg m-2");
    assert_eq!(attrs["_ARRAY_DIMENSIONS"], serde_json::json!(["y", "x"]));

    // Values: eccodes' statistics of each message (tests/data/make.py), the mean within 1e-5
    // relative.
    let eccodes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURE}.json")).unwrap()).unwrap();
    for (k, name) in [a1, a2].into_iter().enumerate() {
        let stat = |key: &str| eccodes["messages"][k][key].as_f64().unwrap();
        let (mean, max) = (stat("mean"), stat("max"));
        let v = f32s(
            &read(&b, &format!("hrrr.grib2.zarr/{name}/0.0"))
                .await
                .unwrap(),
        );
        assert_eq!(v.len() as u64, CELLS);
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!((m - mean).abs() / mean < 1e-5, "{name} mean {m}");
        let mx = v.iter().cloned().fold(f32::MIN, f32::max);
        assert!((f64::from(mx) - max).abs() / max < 1e-4, "{name} max {mx}");
    }

    // The COG's size is known from the listing; its header needs no decoding.
    let c = b.list("hrrr.grib2.cog/").await.unwrap();
    let tif = c
        .files
        .iter()
        .find(|f| f.name == format!("{a1}.tif"))
        .expect("tif listed");
    let head = b
        .get_range(&format!("hrrr.grib2.cog/{a1}.tif"), 0..16, None)
        .await
        .unwrap();
    assert_eq!(&head.to_bytes()[..4], b"II*\0");
    assert_eq!(
        tif.size,
        b.head(&format!("hrrr.grib2.cog/{a1}.tif"))
            .await
            .unwrap()
            .size
    );
    let fields = b
        .memory()
        .count_derived(|k| k.what.starts_with("field/"))
        .await;
    assert_eq!(fields, 2, "only the two zarr reads decoded");

    // A wrong ETag is stale, a missing name is not found.
    let err = b
        .get_range(&format!("hrrr.grib2.cog/{a1}.tif"), 0..16, Some("nope"))
        .await;
    assert!(matches!(err, Err(FsError::Stale { .. })));
    assert!(matches!(
        b.head("hrrr.grib2.zarr/nothing/.zarray").await,
        Err(FsError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_message_fails_only_its_own_views() {
    let (_dir, b) = backend(false);
    // No .idx: messages found from section 0 lengths, names from the codes.
    let z = b.list("sub/bad.grib2.zarr/").await.unwrap();
    let names: Vec<&str> = z
        .dirs
        .iter()
        .map(|s| s.as_str())
        .filter(|s| s.starts_with("var_"))
        .collect();
    assert_eq!(names, vec!["var_d0_c1_n8_1", "var_d0_c1_n8_2"]);
    let good = read(&b, "sub/bad.grib2.zarr/var_d0_c1_n8_1/0.0")
        .await
        .unwrap();
    assert_eq!(good.len() as u64, CELLS * 4);
    let err = read(&b, "sub/bad.grib2.zarr/var_d0_c1_n8_2/0.0")
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    let err = read(&b, "sub/bad.grib2.cog/var_d0_c1_n8_2.tif")
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
    // The rest still serves.
    assert!(
        read(&b, "sub/bad.grib2.cog/var_d0_c1_n8_1.tif")
            .await
            .is_ok()
    );
    assert!(read(&b, "hrrr.grib2").await.is_ok());
}

#[test]
fn packed_tiles_unpack_to_their_padded_bytes_and_weigh_their_content() {
    use crate::convert::cog::{CogSpec, GeoRef, pyramid};
    use crate::convert::crs::{Crs, Earth};
    let (w, h) = (700, 300);
    let full = Raster {
        width: w,
        height: h,
        data: (0..w * h).map(|k| ((k % 700) / 50) as f32).collect(),
    };
    let spec = CogSpec {
        width: w,
        height: h,
        geo: GeoRef {
            west: 0.0,
            north: 0.0,
            dx: 1.0,
            dy: 1.0,
        },
        crs: Crs::Geographic {
            earth: Earth { a: 1.0, b: 1.0 },
        },
        nodata: f32::NAN,
        gdal_metadata: None,
    };
    let layout = CogLayout::new(&spec).unwrap();
    let levels = pyramid(full, f32::NAN);
    for (l, t) in layout.tiles_in(0..layout.size()) {
        let framed = layout.tile_bytes(&levels, l, t).unwrap();
        let packed = PackedTile::pack(&framed);
        assert_eq!(&packed.unpack()[..], &framed[..], "tile {l}/{t}");
        assert!(
            packed.weight() * 20 < framed.len(),
            "tile {l}/{t}: {} bytes held for {}",
            packed.weight(),
            framed.len()
        );
    }
}

#[test]
fn le_ranges_are_the_slices_of_the_whole_encoding() {
    let v: Vec<f32> = (0..10).map(|k| k as f32 * 1.5).collect();
    let whole: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    for (a, b) in [(0, 40), (1, 7), (3, 4), (4, 8), (38, 45), (40, 50), (9, 9)] {
        let got = le_range(&v, a..b, f32::to_le_bytes);
        let end = (b as usize).min(whole.len());
        let start = (a as usize).min(end);
        assert_eq!(&got[..], &whole[start..end], "{a}..{b}");
    }
}

/// Reads of a view file carry its ETag, which names the source's: once the views are built no
/// read sends a HEAD, and what the views made again after eviction comes from source bytes the
/// range store holds (no GET either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_reads_send_no_head_and_rebuilt_values_read_held_source_bytes() {
    use crate::store::metered::Metered;
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(FIXTURE, dir.path().join(NAME)).unwrap();
    std::fs::copy(
        format!("{FIXTURE}.idx"),
        dir.path().join(format!("{NAME}.idx")),
    )
    .unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let metrics = Arc::new(Metrics::default());
    let inner = Arc::new(Metered::new(
        ObjectBackend::new(Arc::new(store), String::new(), Lister::Generic),
        metrics.clone(),
        std::time::Duration::from_secs(5),
    ));
    let sources = BlockCache::new(inner.clone(), metrics.clone(), 64 << 20);
    let b = Convert::with_cache(inner, sources);
    let key = "hrrr.grib2.cog/APCP_surface_0_12_hour_acc_fcst.tif";
    let info = b.head(key).await.unwrap();
    let (heads, gets) = (
        metrics.head_requests.load(Relaxed),
        metrics.get_requests.load(Relaxed),
    );
    // The last 1 MiB: full-resolution tiles, so the message is read and decoded.
    let tail = info.size - (1 << 20)..info.size;
    let first = b
        .get_range(key, tail.clone(), info.etag.as_deref())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        metrics.head_requests.load(Relaxed),
        heads,
        "no HEAD per read"
    );
    assert_eq!(
        metrics.get_requests.load(Relaxed),
        gets + 1,
        "the message, once"
    );
    // Everything the views made is dropped; the source bytes are still held.
    b.memory()
        .invalidate_derived(|k| !k.what.starts_with("views"))
        .await;
    let again = b
        .get_range(key, tail, info.etag.as_deref())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(again, first);
    assert_eq!(
        (
            metrics.head_requests.load(Relaxed),
            metrics.get_requests.load(Relaxed)
        ),
        (heads, gets + 1),
        "made again from held source bytes"
    );
    // A view ETag that names another source version is stale.
    let err = b
        .get_range(key, 0..16, Some("other.cog"))
        .await
        .unwrap_err();
    assert!(matches!(err, FsError::Stale { .. }), "{err}");
}

/// A file of a two-field message (HRRR message 1 with its sections 4-7 repeated) and HRRR
/// message 2, each padded to a multiple of 120 bytes as MARS writes them, with 5 bytes of
/// junk after: the views from its `.idx` (two lines sharing the first offset) and from section
/// 0 list the same three fields, numbered as eccodes counts, with the same values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idx_and_section0_views_agree_on_a_padded_multi_field_file() {
    use crate::formats::grib2::{Walked, field_sections};
    let hrrr = std::fs::read(FIXTURE).unwrap();
    let len1 = section0_len(&hrrr).unwrap() as usize;
    let msg1 = &hrrr[..len1];
    let Walked::Fields(f) = field_sections(msg1, len1 as u64).unwrap() else {
        panic!("whole message")
    };
    let mut two = msg1[..f[0].s7.end].to_vec();
    for r in [&f[0].s4, &f[0].s5, &f[0].s6, &f[0].s7] {
        two.extend_from_slice(&msg1[r.clone()]);
    }
    two.extend_from_slice(b"7777");
    let total = two.len() as u64;
    two[8..16].copy_from_slice(&total.to_be_bytes());
    let start2 = find_magic(&hrrr[len1..]).unwrap() + len1;
    let msg2 = &hrrr[start2..start2 + section0_len(&hrrr[start2..]).unwrap() as usize];
    let mut file = Vec::new();
    let mut offsets = Vec::new();
    for m in [&two[..], msg2] {
        offsets.push(file.len());
        file.extend_from_slice(m);
        file.resize(file.len().div_ceil(120) * 120, 0);
    }
    file.extend_from_slice(b"junk!");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.grib2"), &file).unwrap();
    std::fs::write(dir.path().join("b.grib2"), &file).unwrap();
    let idx = format!(
        "1:{}:d=2020121400:APCP:surface:0-12 hour acc fcst:\n\
         1.2:{}:d=2020121400:APCP:surface:0-12 hour acc fcst copy:\n\
         2:{}:d=2020121400:APCP:surface:11-12 hour acc fcst:\n",
        offsets[0], offsets[0], offsets[1]
    );
    std::fs::write(dir.path().join("a.grib2.idx"), idx).unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let b = Convert::new(ObjectBackend::new(
        Arc::new(store),
        String::new(),
        Lister::Generic,
    ));
    let mut by_number = Vec::new();
    for name in ["a.grib2", "b.grib2"] {
        let meta: serde_json::Value =
            serde_json::from_slice(&read(&b, &format!("{name}.zarr/.zmetadata")).await.unwrap())
                .unwrap();
        let mut fields: Vec<(u64, String)> = meta["metadata"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| {
                let n = v.get("GRIB_message")?.as_u64()?;
                Some((n, k.trim_end_matches("/.zattrs").to_string()))
            })
            .collect();
        fields.sort();
        assert_eq!(
            fields.iter().map(|f| f.0).collect::<Vec<_>>(),
            [1, 2, 3],
            "{name}: {fields:?}"
        );
        let mut values = Vec::new();
        for (_, array) in &fields {
            let v = read(&b, &format!("{name}.zarr/{array}/0.0")).await.unwrap();
            assert_eq!(v.len() as u64, CELLS * 4, "{name} {array}");
            values.push(v);
        }
        // The repeated sections decode to the first field's values.
        assert!(values[0] == values[1], "{name}");
        by_number.push((fields, values));
    }
    let (a, b_) = (&by_number[0], &by_number[1]);
    assert!(a.1 == b_.1, "the same values through either path");
    assert_eq!(a.0[0].1, "APCP_surface_0_12_hour_acc_fcst");
    assert_eq!(b_.0[0].1, "var_d0_c1_n8_1");
}
