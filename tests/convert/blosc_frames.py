"""Writes the Blosc1 frames src/convert/blosc.rs's unit tests decode: numcodecs' Blosc (c-blosc
1.21) over 1100 little-endian uint16 values v[i] = (i // 16) * 3 + 7 * (i % 16 == 5), with a
1024-byte block size (two split blocks and a 152-byte leftover block), one file per codec and
shuffle: NAME.blosc. Run: ~/.cache/geomount-lab/venv/bin/python tests/convert/blosc_frames.py"""
import pathlib

import numpy as np
from numcodecs import Blosc

out = pathlib.Path(__file__).resolve().parents[2] / "src/convert/blosc_testdata"
i = np.arange(1100)
v = ((i // 16) * 3 + 7 * (i % 16 == 5)).astype("<u2")
for cname, shuffle, name in [
    ("blosclz", Blosc.SHUFFLE, "blosclz_shuffle"),
    ("blosclz", Blosc.NOSHUFFLE, "blosclz_noshuffle"),
    ("lz4", Blosc.BITSHUFFLE, "lz4_bitshuffle"),
    ("zlib", Blosc.NOSHUFFLE, "zlib_noshuffle"),
    ("zstd", Blosc.BITSHUFFLE, "zstd_bitshuffle"),
]:
    frame = Blosc(cname=cname, clevel=9, shuffle=shuffle, blocksize=1024).encode(v)
    assert (np.frombuffer(Blosc().decode(frame), "<u2") == v).all()
    (out / f"{name}.blosc").write_bytes(frame)
