#!/usr/bin/env bash
# fuzz/seed.sh — builds the seed corpus of every fuzz target under fuzz/corpus/TARGET/ (not
# committed) from the project's own fixtures (tests/data, made by tests/data/make.py; the
# Blosc frames of src/convert/blosc_testdata) and a few small inputs written here. Seeds are
# only added: what the fuzzer found before stays. Needs python3 (standard library only).
#   fuzz/seed.sh [CORPUS_DIR]     default fuzz/corpus (a relative path is from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:-fuzz/corpus}
mkdir -p "$corpus"

python3 - "$corpus" <<'EOF'
import gzip, json, os, struct, sys, zlib
from pathlib import Path

corpus = Path(sys.argv[1])
data = Path("tests/data")

def seed(target, name, content):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())

def files(pattern):
    return sorted(p for p in Path(".").glob(pattern) if p.is_file())

# HDF5 / NetCDF-4: the planning walk and the description.
for p in files("tests/data/hdf5/*") + files("tests/data/netcdf/*.nc"):
    for t in ("hdf5_walk", "hdf5_describe"):
        seed(t, p.name, p.read_bytes())

# TIFF: the first 16 KiB of each COG hold its IFDs (GDAL writes them before the tiles).
for p in files("tests/data/cog/*.tif"):
    seed("tiff_ifd", p.name, p.read_bytes()[:16384])

# GRIB2: the whole file (two messages, a stray byte after each), each message, and heads.
grib = (data / "grib2/hrrr.t00z.wrfsfcf12.grib2").read_bytes()
seed("grib2_sections", "hrrr.grib2", grib)
pos, k = 0, 0
while (at := grib.find(b"GRIB", pos)) >= 0:
    (length,) = struct.unpack(">Q", grib[at + 8 : at + 16])
    msg = grib[at : at + length]
    seed("grib2_sections", f"msg{k}.grib2", msg)
    seed("grib2_sections", f"head{k}.grib2", msg[:256])
    seed("grib_decode", f"msg{k}.grib2", bytes([0]) + msg)
    pos, k = at + length, k + 1

# .idx inventories: one byte of object size past the last offset, then the text.
for p in files("tests/data/grib2/*.idx") + files("tests/data/idx/*.idx"):
    seed("grib2_idx", p.name, b"\x10" + p.read_bytes())

# Zarr metadata: the v2 consolidated document, and a small v3 one (sharded array inside).
for p in files("tests/data/zarr/*.zarr/.zmetadata"):
    seed("zarr_meta", "zmetadata", p.read_bytes())
v3 = {
    "zarr_format": 3, "node_type": "group", "attributes": {},
    "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {
        "t": {"zarr_format": 3, "node_type": "array", "shape": [4, 6], "data_type": "float32",
              "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 6]}},
              "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
              "fill_value": "NaN", "dimension_names": ["y", "x"], "attributes": {},
              "codecs": [{"name": "sharding_indexed", "configuration": {
                  "chunk_shape": [1, 3],
                  "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                             {"name": "zstd", "configuration": {"level": 0}}],
                  "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                   {"name": "crc32c"}],
                  "index_location": "end"}}]}}}}
seed("zarr_meta", "zarr.json", json.dumps(v3))

# Zarr shards: the configuration, a 0 byte, then a shard of 2x2 inner chunks of 8 bytes.
conf = v3["consolidated_metadata"]["metadata"]["t"]["codecs"][0]["configuration"]
body = bytes(range(32))
index = b"".join(struct.pack("<QQ", 8 * i, 8) for i in range(3)) + b"\xff" * 16
seed("zarr_shard", "crc_end", json.dumps(conf).encode() + b"\0" + body + index + b"\0\0\0\0")
start = dict(conf, index_location="start", index_codecs=[{"name": "bytes"}])
seed("zarr_shard", "start", json.dumps(start).encode() + b"\0" + index + body)

# Blosc frames: the unit tests' frames and the Zarr fixture's chunks (blosc-lz4, shuffle).
blosc = files("src/convert/blosc_testdata/*.blosc") + files("tests/data/zarr/*.zarr/*/[0-9]*")
for p in blosc:
    seed("blosc", p.name, struct.pack("<I", 1 << 19) + p.read_bytes())

# Chunk decoders: pick byte (compressor | dtype << 3 | shuffle << 6), element count, chunk.
raw = struct.pack("<64f", *[i * 0.5 for i in range(64)])
seed("chunk_decode", "zlib_f4", bytes([1, 64, 0]) + zlib.compress(raw))
seed("chunk_decode", "gzip_f4", bytes([2, 64, 0]) + gzip.compress(raw, mtime=0))
seed("chunk_decode", "none_f4", bytes([0, 64, 0]) + raw)
seed("chunk_decode", "zlib_f4_shuffle", bytes([1 | 1 << 6, 64, 0]) + zlib.compress(raw))
for p in files("tests/data/zarr/*.zarr/dataset/0.0.0"):
    seed("chunk_decode", "blosc_f8", bytes([4 | 2 << 3, 0x00, 0x80]) + p.read_bytes())

# S3 listings: a prefix line, then the XML answer.
seed("s3_list", "page", """data/
<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Prefix>data/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>
<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr</NextContinuationToken>
<Contents><Key>data/</Key><Size>0</Size><LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>
<Contents><Key>data/a.nc</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified>
<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>78392</Size><StorageClass>STANDARD</StorageClass></Contents>
<CommonPrefixes><Prefix>data/sub/</Prefix></CommonPrefixes></ListBucketResult>
""")
seed("s3_list", "error", """
<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>
""")

# netrc: a host line, then the file.
seed("netrc", "earthdata", """urs.earthdata.nasa.gov
machine urs.earthdata.nasa.gov login alice password s3cret
machine other.example login bob
  password "x y"
macdef init
cd /pub

default login anonymous password me@example
""")

# AWS profiles: a name line, the credentials file, a 0 byte, the config file.
seed("aws_profile", "lab", """lab
[lab]
aws_access_key_id = AKID
aws_secret_access_key = SK
aws_session_token = TOK
\0[profile lab]
region = garage
endpoint_url = http://127.0.0.1:3900
[profile p]
credential_process = /bin/creds --x
[profile r]
role_arn = arn:aws:iam::1:role/x
source_profile = lab
[sso-session s]
sso_start_url = https://x
[default]
region = us-west-2
""")

# Config files: the packaged examples.
for p in files("packaging/etc/*.toml"):
    seed("config_toml", p.name, p.read_bytes())

# mount(8) options.
for i, o in enumerate([
    "ro,allow_other,endpoint-url=https://s3.example:9000,region=us-west-2,force_path_style",
    "rw,noexec,uid=1000,gid=1000,file_mode=0444,dir_mode=0555,x-systemd.automount,_netdev",
    "metadata_ttl=60s,cache_memory=512MiB,cache_disk=10GiB,request_timeout=10s,threads=4",
    "profile=lab,no_sign_request,no_convert,cache_dir=/var/cache/g,comment=x,nosuid,nodev",
]):
    seed("mount_options", f"opts{i}", o)

# COG encoder: width, height, nodata, west/north/dx/dy, then values.
def cog(w, h, nodata, values):
    head = struct.pack("<HHf4d", w - 1, h - 1, nodata, -180.0, 90.0, 0.25, 0.25)
    return head + struct.pack(f"<{len(values)}f", *values)
seed("cog_tiles", "small", cog(7, 5, -9999.0, [i * 1.5 for i in range(35)]))
seed("cog_tiles", "two_tiles", cog(600, 3, float("nan"), [1.0, float("nan"), -9999.0, 3.25]))
seed("cog_tiles", "levels", cog(1024, 520, 0.0, [float("inf"), -0.0, 7e37]))

# Disk cache entries: identity, length mode, then the file (magic, length, checksum,
# identity, payload); and attribute records as the cache writes them.
record = json.dumps({"size": 78392, "etag": '"9b2c"', "mtime": 1700000000.25,
                     "saved": 1700000100.5}).encode()
entry = b"GMBLOCK1" + struct.pack("<QQQ", len(record), 0, 7) + record
seed("disk_block", "entry", struct.pack("<Q", 7) + b"\1" + entry)
seed("disk_block", "record", struct.pack("<Q", 0) + b"\0" + record)
EOF
for d in "$corpus"/*/; do
  printf 'seed: %-16s %3d files\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done
