#!/usr/bin/env python3
"""The benchmark lab's driver (bench/run.sh runs it as root with the bench venv's python).

It starts a private lab (Garage) and the labproxy in front of it, generates (or reuses) the data,
uploads it, then for each workload W1-W6 and each client that can run it: a fresh mount (or a
fresh process for the direct S3 clients), bench/workloads.py running the workload cold and then
warm, and the mount taken down again. Every client reaches Garage through the proxy, whose
counters are reset around each timed part. The results go to WORK/results.json and, unless
--no-write, into BENCHMARKS.md between this mode's and profile's markers (report.py).

Everything started here (lab, proxy, mounts, FUSE daemons) is stopped by PID and unmounted in a
`finally`, also on SIGINT/SIGTERM. Exit status 1 if any cell failed or disagreed with the
reference (so the smoke run catches harness rot), else 0: times are never asserted.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import gen_data
import report

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREFIX = "bench/"

# Parameters of the workloads per mode (sizes of the data are gen_data.SIZES).
PARAMS = {
    "smoke": dict(n4k=5, n64k=5, n1m=2, patches=3, patch=64, windows=3, window=256, infos=10),
    "quick": dict(n4k=40, n64k=40, n1m=10, patches=8, patch=256, windows=10, window=512, infos=30),
    "full": dict(n4k=200, n64k=200, n1m=50, patches=20, patch=256, windows=10, window=512,
                 infos=100),
}
SEQ = ["geomount", "rclone-off", "rclone-full", "s3fs", "baseline", "local"]
WORKLOADS = {  # id: (description, clients; the first is geomount, "local" is the reference)
    "W1seq": ("sequential read of one object, 256 KiB reads", SEQ),
    "W1par": ("4 readers on 4 objects at once, 256 KiB reads", SEQ),
    "W2": ("random reads in one object", SEQ),
    "W3": ("xarray on the CONUS404-shaped Zarr store", ["geomount", "fsspec", "rclone-full", "local"]),
    "W4": ("GDAL on a COG and a folder of COGs", ["geomount", "vsis3", "rclone-full", "local"]),
    "W5": ("one HRRR field out of a GRIB2 file with its .idx",
           ["geomount", "download", "herbie", "local"]),
    "W6": ("`ls -l` and `find` over the folder of small objects (cold = first, warm = second)",
           ["geomount", "rclone-off", "s3fs"]),
    "W9": ("xarray on WRF-CMIP6-shaped NetCDF-4 files (one per year, one chunk per time step)",
           ["geomount", "geomount-views", "fsspec", "s3fs", "rclone-full", "local"]),
}
# geomount-views: a geomount mount of its own whose parts read through the converted views.
MOUNTS = {"geomount", "geomount-views", "rclone-off", "rclone-full", "s3fs"}


def say(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if line.startswith("export ") and "=" in line:
                k, v = line[7:].strip().split("=", 1)
                env[k] = v
    return env


def pid_is(pid, name):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            alive = name.encode() in f.read()
        with open(f"/proc/{pid}/stat") as f:
            return alive and f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Lab:
    """The private lab, the proxy and the mounts of one run; stop() undoes all of it."""

    def __init__(self, work, geomount, delay_ms, proxy_flags):
        self.work, self.geomount = work, geomount
        self.delay_ms, self.proxy_flags = delay_ms, proxy_flags
        self.env_lab = dict(os.environ, LAB_STATE=os.path.join(work, "lab"))
        self.started = False
        self.proxy_dir = os.path.join(work, "proxy")
        self.mp = os.path.join(work, "mnt")
        self.daemon = None  # (pid, name, Popen or None) of the current mount
        os.makedirs(self.mp, exist_ok=True)

    def lab_sh(self, *args):
        out = subprocess.run([os.path.join(ROOT, "lab", "lab.sh"), *args], env=self.env_lab,
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        return out.strip()

    def start(self):
        self.started = True
        self.env_file = self.lab_sh("start")
        self.g = read_env(self.env_file)
        self.lab_sh("proxy-start", self.proxy_dir, self.g["GARAGE_ENDPOINT"],
                    "--delay-ms", str(self.delay_ms), *self.proxy_flags)
        self.proxy = read_env(os.path.join(self.proxy_dir, "env"))["PROXY_ENDPOINT"]
        self.bucket = self.g["GARAGE_BENCH_BUCKET"]
        g = self.g
        with open(os.path.join(self.work, "rclone.conf"), "w", opener=private) as f:
            f.write(f"[lab]\ntype = s3\nprovider = Other\nendpoint = {self.proxy}\n"
                    f"access_key_id = {g['GARAGE_KEY_ID']}\nsecret_access_key = {g['GARAGE_SECRET']}\n"
                    f"region = {g['GARAGE_REGION']}\nforce_path_style = true\n")
        with open(os.path.join(self.work, "s3fs.passwd"), "w", opener=private) as f:
            f.write(f"{g['GARAGE_KEY_ID']}:{g['GARAGE_SECRET']}\n")

    def s3py(self, *args):
        subprocess.run([sys.executable, os.path.join(ROOT, "lab", "s3.py"), "--lab", "garage",
                        "--env-file", self.env_file, *args], check=True)

    def s3_access(self, client):
        g = self.g
        return {"kind": "s3", "client": client, "endpoint": self.proxy, "region": g["GARAGE_REGION"],
                "bucket": self.bucket, "prefix": PREFIX, "key_id": g["GARAGE_KEY_ID"],
                "secret": g["GARAGE_SECRET"]}

    # ------------------------------------------------------------ mounts
    def mount(self, client):
        log = os.path.join(self.work, "logs", f"{client}.log")
        src = f"{self.bucket}/{PREFIX.rstrip('/')}"
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        if client.startswith("geomount"):
            open(log, "w").close()
            # A fresh, empty persistent block cache per mount: "cold" must not find blocks a
            # previous cell left on disk (the default dir survives mounts); removed on unmount.
            cache = os.path.join(self.work, "geomount-cache")
            shutil.rmtree(cache, ignore_errors=True)
            env.update(AWS_ACCESS_KEY_ID=self.g["GARAGE_KEY_ID"],
                       AWS_SECRET_ACCESS_KEY=self.g["GARAGE_SECRET"])
            subprocess.run([self.geomount, "mount", f"s3://{src}", self.mp, "--endpoint-url",
                            self.proxy, "--region", self.g["GARAGE_REGION"], "--log-file", log,
                            "--cache-dir", cache],
                           env=env, check=True)
            pid = int(open(log).read().split(" pid=")[-1].split()[0])
            self.daemon = (pid, "geomount", None)
        elif client.startswith("rclone"):
            mode = client.split("-")[1]
            cache = os.path.join(self.work, "rclone-cache")
            shutil.rmtree(cache, ignore_errors=True)
            p = subprocess.Popen(["rclone", "--config", os.path.join(self.work, "rclone.conf"),
                                  "mount", f"lab:{src}", self.mp, "--read-only",
                                  "--vfs-cache-mode", mode, "--cache-dir", cache,
                                  "--log-file", log], env=env, stdin=subprocess.DEVNULL)
            self.daemon = (p.pid, "rclone", p)
        else:
            p = subprocess.Popen(["s3fs", f"{self.bucket}:/{PREFIX.rstrip('/')}", self.mp, "-f",
                                  "-o", f"url={self.proxy}", "-o", "use_path_request_style",
                                  "-o", f"passwd_file={self.work}/s3fs.passwd", "-o", "ro",
                                  "-o", f"endpoint={self.g['GARAGE_REGION']}",
                                  "-o", f"logfile={log}"], env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=open(log + ".err", "w"))
            self.daemon = (p.pid, "s3fs", p)
        for _ in range(300):
            if os.path.ismount(self.mp):
                return self.daemon[0]
            if not self.daemon_alive():
                raise RuntimeError(f"{client} exited before mounting (log: {log})")
            time.sleep(0.1)
        raise RuntimeError(f"{client} did not mount within 30 s (log: {log})")

    def daemon_alive(self):
        """Our own children are polled (their /proc cmdline is python's until they exec);
        geomount, which daemonizes, is checked by PID and name."""
        pid, name, popen = self.daemon
        return popen.poll() is None if popen else pid_is(pid, name)

    def unmount(self):
        if os.path.ismount(self.mp):
            if self.daemon and self.daemon[1] == "geomount":
                cmd = [self.geomount, "unmount", self.mp]
            else:
                cmd = ["fusermount3", "-u", self.mp]
            if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode != 0:
                time.sleep(1)
                subprocess.run(["umount", "-l", self.mp], stderr=subprocess.DEVNULL)
        if self.daemon:
            pid, name, _ = self.daemon
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig:
                    say(f"{name} (pid {pid}) still running after unmount; sending {sig.name}")
                    os.kill(pid, sig)
                for _ in range(200):
                    if not self.daemon_alive():
                        break
                    time.sleep(0.1)
                else:
                    continue
                break
            self.daemon = None
        shutil.rmtree(os.path.join(self.work, "geomount-cache"), ignore_errors=True)

    def stop(self):
        try:
            self.unmount()
        finally:
            if self.started:
                subprocess.run([os.path.join(ROOT, "lab", "lab.sh"), "proxy-stop", self.proxy_dir],
                               env=self.env_lab)
                subprocess.run([os.path.join(ROOT, "lab", "lab.sh"), "stop"], env=self.env_lab)


def private(path, flags):
    return os.open(path, flags, 0o600)


def evict(root):
    """Drop the local copy's pages from the page cache (the local reference's cold run)."""
    for d, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def expected_check(workload, sizes):
    """Checks known without a reference client; else None (compare with `local`)."""
    if workload == "W1seq":
        return {"seq 256KiB reads": sizes["obj"]}
    if workload == "W1par":
        return {"4 readers, 4 objects": 4 * sizes["obj"]}
    if workload == "W6":
        return {"ls -l": sizes["small"], "find": sizes["small"] + 1}
    return None


def run_cell(lab, data, workload, client, params, timeout):
    """One client on one workload: {"reps": [...]} or {"error": "..."}."""
    spec = {"workload": workload, "params": params, "reps": 2, "proxy": lab.proxy, "rss_pid": None}
    try:
        if client in MOUNTS:
            spec["rss_pid"] = lab.mount(client)
            spec["access"] = {"kind": "path", "root": lab.mp, "client": client}
        elif client == "local":
            evict(data)
            spec["access"] = {"kind": "path", "root": data}
            spec["proxy"] = None
        else:
            spec["access"] = lab.s3_access(client)
        out = subprocess.run([sys.executable, os.path.join(HERE, "workloads.py"), json.dumps(spec)],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            tail = " | ".join(out.stderr.strip().splitlines()[-3:])
            return {"error": f"exit {out.returncode}: {tail}"}
        return json.loads(out.stdout)
    except (subprocess.SubprocessError, RuntimeError, OSError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        lab.unmount()


# Parts only geomount has (reads through its converted views) and the part of the same read
# of the source files, whose check value they must equal.
VIEW_OF = {"open_zarr wrf.zarr": "open_mfdataset",
           "T2 point series via wrf.zarr": "T2 point time series",
           "one day's T2 field via wrf.zarr": "one day's T2 field"}


def verify(results, workload, sizes):
    """Mark cells whose check values disagree with the expected or the local reference."""
    cells = results[workload]
    want = expected_check(workload, sizes)
    if want is None:
        ref = cells.get("local", {})
        if "reps" not in ref:
            return
        want = {row["part"]: row["check"] for row in ref["reps"][0]}
    # A part through one of geomount's views checks against the same read of the files.
    for view, part in VIEW_OF.items():
        if part in want:
            want.setdefault(view, want[part])
    for client, cell in cells.items():
        if "reps" not in cell:
            continue
        bad = [f"{row['part']}: {row['check']} != {want.get(row['part'])}"
               for rep in cell["reps"] for row in rep if row["check"] != want.get(row["part"])]
        if bad:
            cell["error"] = "wrong result: " + "; ".join(bad[:2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=list(PARAMS), default="quick")
    p.add_argument("--delay-ms", type=int, default=20)
    p.add_argument("--proxy-flag", action="append", default=[],
                   help="extra labproxy flag, e.g. --proxy-flag=--fail-503=0.01 (repeatable)")
    p.add_argument("--geomount", required=True, help="the geomount binary to measure")
    p.add_argument("--geomount-rev", default="unknown")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--clients", default="", help="comma-separated subset (default: all)")
    p.add_argument("--write", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--command", default="bench/run.sh")
    p.add_argument("--keep-work", action="store_true")
    a = p.parse_args()
    write = a.write if a.write is not None else a.mode != "smoke"
    workloads = [w for w in a.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"bench: unknown workload {w!r} (one of {', '.join(WORKLOADS)})")
    only = set(c for c in a.clients.split(",") if c)

    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "geomount-lab", "bench-data", f"{a.mode}-{gen_data.DATA_VERSION}")
    sizes = gen_data.SIZES[a.mode]
    params = dict(PARAMS[a.mode], obj_size=sizes["obj"], cog_side=sizes["cog"], cogs=sizes["cogs"],
                  grib_msgs=sizes["grib_msgs"])
    timeout = {"smoke": 300, "quick": 900, "full": 7200}[a.mode]
    t_start = time.time()
    say(f"data: {cache}")
    gen = subprocess.run([sys.executable, os.path.join(HERE, "gen_data.py"), a.mode, cache],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    data_info = json.loads(gen)

    work = tempfile.mkdtemp(prefix="gm-bench-")
    os.makedirs(os.path.join(work, "logs"))
    lab = Lab(work, a.geomount, a.delay_ms, a.proxy_flag)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results, failed = {}, []
    try:
        lab.start()
        say(f"uploading to s3://{lab.bucket}/{PREFIX} (direct to Garage)")
        for d in gen_data.DATASETS:
            lab.s3py("sync-dir", lab.bucket, f"{PREFIX}{d}/", os.path.join(cache, d))
        if "W6" in workloads:
            lab.s3py("put-many", lab.bucket, f"{PREFIX}small/", str(sizes["small"]))
        t_bench = time.time()
        for w in workloads:
            results[w] = {}
            for client in WORKLOADS[w][1]:
                if only and client not in only:
                    continue
                t0 = time.time()
                cell = run_cell(lab, cache, w, client, params, timeout)
                results[w][client] = cell
                say(f"{w} {client}: {time.time() - t0:.1f} s")
            verify(results, w, sizes)
            for client, cell in results[w].items():
                if "error" in cell:
                    failed.append(f"{w} {client}: {cell['error']}")
                    say(f"FAILED {w} {client}: {cell['error']}")
                else:
                    say(f"{w} {client}: " + ", ".join(
                        f"{r['part']} {r['wall']:.2f}/{w2['wall']:.2f}s"
                        for r, w2 in zip(*cell["reps"])))
        meta = report.machine_and_versions(a.geomount, a.geomount_rev)
        meta.update(mode=a.mode, delay_ms=a.delay_ms, proxy_flags=a.proxy_flag, command=a.command,
                    data=data_info, params=params, bench_seconds=round(time.time() - t_bench),
                    total_seconds=round(time.time() - t_start),
                    finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        doc = {"meta": meta, "workloads": {w: WORKLOADS[w][0] for w in workloads},
               "results": results}
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(doc, f, indent=1)
        block = report.render(doc)
        print(block)
        if write:
            report.write_block(os.path.join(ROOT, "BENCHMARKS.md"), a.mode, a.delay_ms, block)
            say("BENCHMARKS.md updated")
    finally:
        lab.stop()
        if a.keep_work or failed:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        say(f"{len(failed)} cell(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
