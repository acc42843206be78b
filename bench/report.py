"""The BENCHMARKS.md block of bench/run.sh: machine, versions, command and one table per workload.

The block sits between `<!-- BEGIN bench/run.sh MODE DELAYms -->` and the matching END marker;
write_block replaces only that block (appending it if absent), so everything else in the file,
other scripts' blocks included, is kept as it is.
"""

import os
import platform
import re
import subprocess
from importlib import metadata

NAMES = {
    "geomount": "geomount",
    "geomount-views": "geomount, through its views (`wrf.zarr/`)",
    "rclone-off": "rclone mount, `--vfs-cache-mode off`",
    "rclone-full": "rclone mount, `--vfs-cache-mode full`",
    "s3fs": "s3fs-fuse",
    "baseline": "ranged GET (boto3; W1: 8 threads x 8 MiB)",
    "fsspec": "xarray + s3fs (fsspec), direct",
    "vsis3": "GDAL `/vsis3/`",
    "download": "whole-file GET, then eccodes",
    "herbie": "Herbie-style: .idx GET + ranged GET",
    "local": "local file (reference)",
}


def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine_and_versions(geomount, rev):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = int(open("/proc/meminfo").readline().split()[1]) / (1 << 20)
    py = {m: metadata.version(m) for m in ("xarray", "zarr", "s3fs", "fsspec", "boto3", "eccodes")}
    lab = os.path.expanduser(os.environ.get("GEOMOUNT_LAB", "~/.cache/geomount-lab"))
    return {
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {mem:.1f} GiB RAM, kernel {platform.release()}",
        "load": " ".join(open("/proc/loadavg").read().split()[:3]),
        "versions": {
            "geomount": f"{first_line([geomount, '--version'])} @ {rev}",
            "rclone": first_line(["rclone", "version"]),
            "s3fs-fuse": first_line(["s3fs", "--version"]),
            "GDAL": first_line(["gdalinfo", "--version"]),
            "garage": first_line([f"{lab}/garage/bin/garage", "--version"]),
            "python": platform.python_version(),
            **py,
        },
    }


def fmt_s(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_reqs(st):
    if not st:
        return "-"
    kinds = [("get", "GET"), ("get_range", "rGET"), ("head", "HEAD"), ("list", "LIST")]
    parts = [f"{st[k]} {name}" for k, name in kinds if st.get(k)]
    faults = st.get("injected_503", 0) + st.get("injected_500", 0) + st.get("resets", 0)
    if faults:
        parts.append(f"{faults} faults")
    return ", ".join(parts) or "0"


def fmt_mb(st):
    return f"{st['bytes_out'] / 1e6:.1f}" if st else "-"


def ratio(t, ref):
    return f"{t / ref:.2f}x" if ref else "-"


def render(doc):
    m, res = doc["meta"], doc["results"]
    v = m["versions"]
    out = [
        f"Run {m['finished']}: mode `{m['mode']}`, proxy delay {m['delay_ms']} ms"
        + (f", proxy flags `{' '.join(m['proxy_flags'])}`" if m["proxy_flags"] else "")
        + f"; workloads took {m['bench_seconds']} s ({m['total_seconds']} s with data and upload).",
        "",
        f"Command (from the project root, as root): `{m['command']}`",
        "",
        f"Machine: {m['machine']}; load average {m['load']} at the end. The machine is shared with "
        "other engineers compiling; Garage, the proxy, the FUSE daemon and the client all share "
        "its CPUs.",
        "",
        "Versions: " + "; ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"Data ({m['data']['mode']}, generator {m['data']['version']}): "
        + ", ".join(f"{k} {b / 1e6:.0f} MB" for k, b in m["data"]["bytes"].items())
        + f"; {m['data']['sizes']['small']} small objects. Parameters: "
        + ", ".join(f"{k}={val}" for k, val in m["params"].items()) + ".",
        "",
        "Each cell: a fresh mount (or process), the workload run cold, then again warm in the same "
        "mount or process. Time in seconds; **vs geomount** = client time / geomount time "
        "(above 1: geomount is faster). Requests and MB: what the proxy counted and sent during the "
        "part (rGET = ranged GET). Peak RSS: VmHWM of the FUSE daemon, or of the client process "
        "and its children for direct clients.",
        "",
    ]
    losses = []
    for w, desc in doc["workloads"].items():
        cells = res.get(w, {})
        out += [f"**{w}: {desc}**", "",
                "| part | client | cold s | warm s | cold vs geomount | warm vs geomount "
                "| cold requests | cold MB | warm requests | warm MB | peak RSS MiB |",
                "|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|"]
        gm = cells.get("geomount", {})
        parts = []  # every cell's parts, in order (geomount's views have parts of their own)
        for cell in [gm, *cells.values()]:
            for r in cell.get("reps", [[]])[0]:
                if r["part"] not in parts:
                    parts.append(r["part"])
        def row(cell, k, part):
            return next((r for r in cell["reps"][k] if r["part"] == part), None)
        for part in parts:
            ref = [None, None]
            if "reps" in gm and row(gm, 0, part) and row(gm, 1, part):
                ref = [row(gm, k, part)["wall"] for k in (0, 1)]
            for client, cell in cells.items():
                name = NAMES.get(client, client)
                if "reps" not in cell or "error" in cell:
                    err = cell.get("error", "no result").replace("|", "/")[:160]
                    out.append(f"| {part} | {name} | **failed**: {err} | | | | | | | | |")
                    continue
                c, wm = row(cell, 0, part), row(cell, 1, part)
                if c is None or wm is None:
                    continue  # a part only some clients have (geomount's views)
                out.append(
                    f"| {part} | {name} | {fmt_s(c['wall'])} | {fmt_s(wm['wall'])} "
                    f"| {ratio(c['wall'], ref[0])} | {ratio(wm['wall'], ref[1])} "
                    f"| {fmt_reqs(c['stats'])} | {fmt_mb(c['stats'])} "
                    f"| {fmt_reqs(wm['stats'])} | {fmt_mb(wm['stats'])} | {wm['rss_kib'] // 1024} |")
                if client not in ("geomount", "local") and ref[0]:
                    for phase, t, r in (("cold", c["wall"], ref[0]), ("warm", wm["wall"], ref[1])):
                        if t < 0.9 * r and r - t >= 0.05:  # below 50 ms: noise
                            losses.append(f"{w} {part}, {phase}: {name} takes {t / r:.2f}x "
                                          f"geomount's time ({fmt_s(t)} s vs {fmt_s(r)} s)")
        out.append("")
    out.append("**Where a peer is faster than geomount** (by more than 10% and 50 ms; one run "
               "each, so single cells move with the machine's load; generated):")
    out.append("")
    out += [f"- {x}" for x in losses] or ["- none"]
    return "\n".join(out)


def write_block(path, mode, delay_ms, block):
    tag = f"bench/run.sh {mode} {delay_ms}ms"
    begin = f"<!-- BEGIN {tag}: generated by bench/run.sh, edits inside are overwritten -->"
    end = f"<!-- END {tag} -->"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    new = f"{begin}\n{block}\n{end}"
    pat = re.compile(re.escape(f"<!-- BEGIN {tag}") + r"[^\n]*\n.*?" + re.escape(end), re.S)
    if pat.search(text):
        text = pat.sub(lambda _m: new, text)
    else:
        text = text.rstrip("\n") + f"\n\n### Results: `--{mode}`, {delay_ms} ms proxy delay\n\n{new}\n"
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
