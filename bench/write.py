"""W7, writes: `cp` of one large file and `rsync -a` of many small files into a bucket, through
geomount --read-write, rclone mount --vfs-cache-mode writes, s3fs-fuse, and the direct tool
(boto3: upload_file for the large file, 8 threads of put_object for the small ones), every client
going through the labproxy (20 ms before each response) in front of a private Garage.

A run is timed twice from the command's start: when the command returns, and when the server
lists every object with its size (polled on Garage directly, every 50 ms), so mounts that upload
after close (geomount, whose default write-back delay is 2 s, and rclone) are timed to the same
point as those that upload in close (s3fs, geomount-wb0: `--write-back 0`) and the direct tool.
PUTs are counted at the proxy (a multipart upload's parts count; geomount's include the two of
its write check at mount). Times are printed, never asserted.

    bench/write.sh [--mode quick|full|smoke] [--clients geomount,geomount-wb0,rclone,s3fs,direct]
                   [--runs N]

Runs under the lab venv's Python (boto3). Needs root (FUSE mounts) and lab/install.sh's tools.
Everything it starts (lab, proxy, mounts) is stopped by PID and unmounted on exit, also on error.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = {"quick": (256 << 20, 100), "full": (1 << 30, 1000), "smoke": (8 << 20, 20)}


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Lab:
    """A private lab (Garage, moto) and a labproxy in front of Garage."""

    def __init__(self, work):
        self.state = os.path.join(work, "lab")
        env = dict(os.environ, LAB_STATE=self.state)
        out = sh(f"{ROOT}/lab/lab.sh", "start", env=env, capture_output=True, text=True).stdout
        self.env = {}
        for line in open(out.strip()):
            line = line.strip().removeprefix("export ")
            if "=" in line:
                k, v = line.split("=", 1)
                self.env[k] = v.strip("'\"")
        self.proxy = subprocess.Popen(
            [self.env["LAB_PROXY_BIN"], "--upstream", self.env["GARAGE_ENDPOINT"], "--delay-ms", "20"],
            stdout=subprocess.PIPE, text=True)
        line = self.proxy.stdout.readline()
        assert line.startswith("listening "), line
        self.proxy_url = line.split()[1]
        self.bucket = self.env["GARAGE_BUCKET"]

    def client(self, endpoint):
        return boto3.client(
            "s3", endpoint_url=endpoint, region_name=self.env["GARAGE_REGION"],
            aws_access_key_id=self.env["GARAGE_KEY_ID"],
            aws_secret_access_key=self.env["GARAGE_SECRET"])

    def puts(self):
        with urllib.request.urlopen(f"{self.proxy_url}/__proxy/stats") as r:
            return json.load(r)["put"]

    def stop(self):
        self.proxy.terminate()
        self.proxy.wait()
        env = dict(os.environ, LAB_STATE=self.state)
        subprocess.run([f"{ROOT}/lab/lab.sh", "stop"], env=env, capture_output=True)


def listed(s3, bucket, prefix):
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            if not o["Key"].endswith("/"):  # s3fs's folder markers
                keys[o["Key"][len(prefix) + 1:]] = o["Size"]
    return keys


def wait_on_server(s3, bucket, prefix, want, limit=300):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if listed(s3, bucket, prefix) == want:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{prefix}: the server did not get every object within {limit} s")


class Mounted:
    """One client's mount of the bucket through the proxy; unmounted and stopped by PID."""

    def __init__(self, client, lab, work, geomount):
        self.mp = tempfile.mkdtemp(prefix=f"w7-{client}-", dir=work)
        self.proc = None
        keys = {"AWS_ACCESS_KEY_ID": lab.env["GARAGE_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": lab.env["GARAGE_SECRET"]}
        if client.startswith("geomount"):
            extra = ["--write-back", "0"] if client == "geomount-wb0" else []
            staging = tempfile.mkdtemp(prefix="w7-staging-", dir=work)
            log = os.path.join(work, "geomount.log")
            sh(geomount, "mount", f"s3://{lab.bucket}", self.mp, "--endpoint-url", lab.proxy_url,
               "--region", lab.env["GARAGE_REGION"], "--read-write", "--staging-dir", staging,
               "--cache-disk", "0", "--log-file", log, *extra, env=dict(os.environ, **keys))
            self.pid = int(open(log).read().split(" pid=")[-1].split()[0].rstrip(","))
        elif client == "rclone":
            conf = os.path.join(work, "rclone.conf")
            with open(conf, "w") as f:
                f.write(f"[g]\ntype = s3\nprovider = Other\nendpoint = {lab.proxy_url}\n"
                        f"access_key_id = {keys['AWS_ACCESS_KEY_ID']}\n"
                        f"secret_access_key = {keys['AWS_SECRET_ACCESS_KEY']}\n"
                        f"region = {lab.env['GARAGE_REGION']}\nforce_path_style = true\n")
            self.proc = subprocess.Popen(
                ["rclone", "--config", conf, "mount", f"g:{lab.bucket}", self.mp,
                 "--vfs-cache-mode", "writes", "--cache-dir", os.path.join(work, "rclone-cache"),
                 "--log-file", os.path.join(work, "rclone.log")],
                stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # rclone refuses AWS_CA_BUNDLE with a plain-http endpoint.
                env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"})
            self.pid = self.proc.pid
        elif client == "s3fs":
            pw = os.path.join(work, "s3fs.passwd")
            with open(pw, "w") as f:
                f.write(f"{keys['AWS_ACCESS_KEY_ID']}:{keys['AWS_SECRET_ACCESS_KEY']}\n")
            os.chmod(pw, 0o600)
            self.proc = subprocess.Popen(
                ["s3fs", lab.bucket, self.mp, "-f", "-o", f"url={lab.proxy_url}", "-o",
                 "use_path_request_style", "-o", f"passwd_file={pw}", "-o",
                 f"endpoint={lab.env['GARAGE_REGION']}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.pid = self.proc.pid
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mp):
            if time.monotonic() > deadline:
                self.close()
                log = os.path.join(work, f"{client}.log")
                tail = open(log).read()[-2000:] if os.path.exists(log) else ""
                raise RuntimeError(f"{client} did not mount: {tail}")
            time.sleep(0.05)

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mp], capture_output=True)
        if os.path.ismount(self.mp):
            subprocess.run(["umount", "-l", self.mp], capture_output=True)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            for _ in range(100):
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


def run_one(workload, client, lab, work, src, geomount, n):
    prefix = f"w7-{workload}-{client}-{n}"
    s3 = lab.client(lab.env["GARAGE_ENDPOINT"])
    if workload == "cp":
        want = {"big.bin": os.path.getsize(os.path.join(src, "big.bin"))}
    else:
        tree = os.path.join(src, "tree")
        want = {os.path.relpath(os.path.join(d, f), tree): os.path.getsize(os.path.join(d, f))
                for d, _, fs in os.walk(tree) for f in fs}
    puts0 = lab.puts()
    if client == "direct":
        direct = lab.client(lab.proxy_url)
        t0 = time.monotonic()
        if workload == "cp":
            direct.upload_file(os.path.join(src, "big.bin"), lab.bucket, f"{prefix}/big.bin",
                               Config=TransferConfig(max_concurrency=8))
        else:
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda k: direct.upload_file(os.path.join(tree, k), lab.bucket,
                                                           f"{prefix}/{k}"), want))
        t_cmd = time.monotonic() - t0
        wait_on_server(s3, lab.bucket, prefix, want)
        return t_cmd, time.monotonic() - t0, lab.puts() - puts0
    m = Mounted(client, lab, work, geomount)
    try:
        dest = os.path.join(m.mp, prefix)
        os.makedirs(dest, exist_ok=True)
        t0 = time.monotonic()
        if workload == "cp":
            sh("cp", os.path.join(src, "big.bin"), os.path.join(dest, "big.bin"))
        else:
            sh("rsync", "-a", os.path.join(src, "tree") + "/", dest + "/")
        t_cmd = time.monotonic() - t0
        wait_on_server(s3, lab.bucket, prefix, want)
        return t_cmd, time.monotonic() - t0, lab.puts() - puts0
    finally:
        m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="quick", choices=sorted(SIZES))
    ap.add_argument("--geomount", required=True)
    ap.add_argument("--clients", default="geomount,geomount-wb0,rclone,s3fs,direct")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    big, small = SIZES[a.mode]
    work = tempfile.mkdtemp(prefix="w7-")
    lab = Lab(work)
    try:
        src = os.path.join(work, "src")
        os.makedirs(os.path.join(src, "tree"))
        with open(os.path.join(src, "big.bin"), "wb") as f:
            for _ in range(big >> 20):
                f.write(os.urandom(1 << 20))
        for i in range(small):
            d = os.path.join(src, "tree", f"d{i % 10}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"f{i}.dat"), "wb") as f:
                f.write(os.urandom(4096 + i))
        clients = a.clients.split(",")
        rows = []
        for workload in ("cp", "rsync"):
            times = {c: [] for c in clients}
            cmd_times = {c: [] for c in clients}
            puts = {}
            # Round-robin, so a slow drift of the machine hits every client alike.
            for n in range(a.runs):
                for c in clients:
                    tc, t, p = run_one(workload, c, lab, work, src, a.geomount, n)
                    times[c].append(t)
                    cmd_times[c].append(tc)
                    puts[c] = p
            med = {c: statistics.median(times[c]) for c in clients}
            peers = [c for c in clients if not c.startswith("geomount")]
            best = min(peers, key=lambda c: med[c]) if peers else None
            for c in clients:
                ratio = med[best] / med[c] if best and c.startswith("geomount") else None
                rows.append((workload, c, statistics.median(cmd_times[c]), med[c], puts[c], ratio))
        what = {"cp": f"cp of {big >> 20} MiB", "rsync": f"rsync -a of {small} files (4 KiB)"}
        print(f"| workload | client | command returns, s | on the server, s (median of {a.runs})"
              " | PUTs | best peer / geomount (on the server) |")
        print("|---|---|---:|---:|---:|---:|")
        for w, c, tc, t, p, r in rows:
            ratio = f"{r:.2f}x" if r is not None else ""
            print(f"| {what[w]} | {c} | {tc:.2f} | {t:.2f} | {p} | {ratio} |")
    finally:
        lab.stop()
        if os.environ.get("BENCH_KEEP_WORK") != "1":
            shutil.rmtree(work, ignore_errors=True)


main()
