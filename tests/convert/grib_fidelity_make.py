"""Writes GRIB files with eccodes that real archives hold and the views must survive (run at
test time), one per case, into OUT, and prints their names:

padded.grib2     three GRIB2 messages, each padded with zeros to a multiple of 120 bytes (MARS)
fortran.grib2    three messages, each inside 4-byte big-endian Fortran record markers
mixed.grib2      GRIB1, GRIB2, GRIB1, GRIB2 (eccodes' GRIB1 sample)
multi.grib2      one message of three fields (sections 4-7 repeated) then a plain message
ccsds.grib2      5.42 (CCSDS), jpeg.grib2 5.40 (JPEG 2000), png.grib2 5.41 (PNG)
constant.grib2   complex packing (5.2) of a constant field: 0 bits, empty section 7
lcc_up.grib2     Lambert conformal, Latin1 25 < Latin2 45; lcc_down.grib2 the other order
ll_iinc.grib2    3.0 whose i increment disagrees with its first and last longitudes
ll_jinc.grib2    3.0 whose j increment disagrees with its first and last latitudes
badmix.grib2     good, polar stereographic with Dx = 0 (unusable), good, trailing junk
sample_NAME.grib2  every GRIB2 sample eccodes ships, as it ships it
"""
import glob
import os
import re
import struct
import sys

import eccodes as e
import numpy as np

out = sys.argv[1]


def field(n, seed):
    return 250.0 + 40.0 * np.random.default_rng(seed).random(n)


def msg(sample="regular_ll_sfc_grib2", seed=1, packing=None, bits=None, values=None, **keys):
    h = e.codes_grib_new_from_samples(sample)
    for k, v in keys.items():
        e.codes_set(h, k, v)
    if bits is not None:
        e.codes_set(h, "bitsPerValue", bits)
    if packing:
        e.codes_set(h, "packingType", packing)
    n = e.codes_get(h, "numberOfValues")
    e.codes_set_values(h, field(n, seed) if values is None else values(n))
    b = e.codes_get_message(h)
    e.codes_release(h)
    return b


def write(name, data):
    with open(f"{out}/{name}", "wb") as f:
        f.write(data)
    print(name)


def ll(seed, number):
    return msg(seed=seed, discipline=0, parameterCategory=0, parameterNumber=number)


def pad120(b):
    return b + b"\0" * (-len(b) % 120)


def sections(b):
    """(number, bytes) of each section of a GRIB2 message after section 0."""
    pos, out = 16, []
    while b[pos:pos + 4] != b"7777":
        n = struct.unpack(">I", b[pos:pos + 4])[0]
        out.append((b[pos + 4], b[pos:pos + n]))
        pos += n
    return out


write("padded.grib2", b"".join(pad120(ll(s, s)) for s in (1, 2, 3)))
write("fortran.grib2", b"".join(struct.pack(">I", len(m)) + m + struct.pack(">I", len(m))
                                for m in (ll(s, s) for s in (4, 5, 6))))
g1 = e.codes_grib_new_from_samples("GRIB1")
grib1 = e.codes_get_message(g1)
write("mixed.grib2", grib1 + ll(7, 0) + grib1 + ll(8, 2))

# Three fields in one message: the first message's sections 0-7, then sections 4-7 of two
# others on the same grid, then the end marker; the total length in section 0 made to fit.
parts = [sections(ll(s, s)) for s in (9, 10, 11)]
body = b"".join(s for _, s in parts[0])
for p in parts[1:]:
    body += b"".join(s for n, s in p if n >= 4)
first = ll(9, 9)
multi = first[:8] + struct.pack(">Q", 16 + len(body) + 4) + body + b"7777"
write("multi.grib2", multi + ll(12, 3))

write("ccsds.grib2", msg(seed=13, packing="grid_ccsds"))
write("jpeg.grib2", msg(seed=14, packing="grid_jpeg"))
# eccodes' PNG writer fails on noise (its output buffer is sized for compressible data).
write("png.grib2", msg(packing="grid_png", bits=16,
                       values=lambda n: np.linspace(250.0, 290.0, n)))
write("constant.grib2", msg(packing="grid_complex", values=lambda n: np.full(n, 273.5)))

for name, (l1, l2) in (("lcc_up.grib2", (25.0, 45.0)), ("lcc_down.grib2", (45.0, 25.0))):
    h = e.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    e.codes_set(h, "gridDefinitionTemplateNumber", 30)
    for k, v in dict(Nx=40, Ny=30, latitudeOfFirstGridPointInDegrees=30.0,
                     longitudeOfFirstGridPointInDegrees=250.0, LaDInDegrees=35.0,
                     LoVInDegrees=265.0, Latin1InDegrees=l1, Latin2InDegrees=l2,
                     DxInMetres=40000.0, DyInMetres=40000.0, shapeOfTheEarth=6,
                     jScansPositively=1, iScansNegatively=0).items():
        e.codes_set(h, k, v)
    e.codes_set_values(h, field(40 * 30, 16))
    write(name, e.codes_get_message(h))
    e.codes_release(h)

# Increments that disagree with the first and last points (eccodes: columns from the points,
# rows from the j increment): an i increment of 1.1 over 10 columns from 10 to 19 E, converted;
# a j increment of 0.9 over 5 rows from 50 to 46 N, which eccodes places unevenly, refused.
for name, inc in (("ll_iinc.grib2", "iDirectionIncrement"), ("ll_jinc.grib2", "jDirectionIncrement")):
    h = e.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    for k, v in dict(Ni=10, Nj=5, latitudeOfFirstGridPointInDegrees=50.0,
                     longitudeOfFirstGridPointInDegrees=10.0,
                     latitudeOfLastGridPointInDegrees=46.0,
                     longitudeOfLastGridPointInDegrees=19.0, iDirectionIncrementInDegrees=1.0,
                     jDirectionIncrementInDegrees=1.0).items():
        e.codes_set(h, k, v)
    e.codes_set_values(h, field(50, 20))
    e.codes_set(h, inc, 1_100_000 if inc.startswith("i") else 900_000)
    write(name, e.codes_get_message(h))
    e.codes_release(h)

bad_ps = msg("polar_stereographic_sfc_grib2", seed=17, DxInMetres=0.0, jScansPositively=1)
write("badmix.grib2", ll(18, 0) + bad_ps + ll(19, 2) + b"junk after the last message")


def sample_names():
    """GRIB2 samples eccodes ships: the files of its samples folder, or (a wheel, whose
    samples are compiled into its memfs library) the names that library holds."""
    path = e.codes_samples_path()
    names = [os.path.basename(p)[:-5] for p in glob.glob(f"{path}/*.tmpl")]
    if not names:
        import eccodeslib
        libs = glob.glob(os.path.join(os.path.dirname(eccodeslib.__file__), "lib*", "*memfs*"))
        for lib in libs:
            with open(lib, "rb") as f:
                names += [m.decode() for m in re.findall(rb"samples/([A-Za-z0-9_]+)\.tmpl", f.read())]
    return sorted({n for n in names if "grib2" in n.lower()})


names = sample_names()
assert len(names) > 20, names
for n in names:
    h = e.codes_grib_new_from_samples(n)
    write(f"sample_{n}.grib2", e.codes_get_message(h))
    e.codes_release(h)
