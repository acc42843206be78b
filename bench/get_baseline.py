#!/usr/bin/env python3
"""Parallel ranged-GET baseline for bench/seq_read.sh: what a plain S3 client pulls from the same
server, with no filesystem in between. Run it with the lab venv's python (boto3).

    get_baseline.py --endpoint URL --region R --bucket B --key K [--part 8MiB] [--threads 8]

Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. HEADs the object, then fetches it as
ranged GETs of --part bytes on --threads threads, each part read into one reused buffer per thread
and discarded. Prints one JSON line: bytes, seconds (first GET to last byte, HEAD excluded),
get_requests, threads, part, peak_rss_kib (ru_maxrss of this process), cpu_seconds (user+sys
of this process during the GETs).
"""

import argparse
import concurrent.futures
import json
import os
import resource
import sys
import threading
import time

import boto3
from botocore.config import Config


def parse_size(s):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    s = s.strip().lower()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(num) * units[s[len(num):]]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--part", default="8MiB")
    p.add_argument("--threads", type=int, default=8)
    a = p.parse_args()
    part = parse_size(a.part)

    s3 = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        region_name=a.region,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=a.threads,
            retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
        verify=False if a.endpoint.startswith("http://") else None,
    )
    size = s3.head_object(Bucket=a.bucket, Key=a.key)["ContentLength"]
    local = threading.local()

    def fetch(start):
        end = min(start + part, size) - 1
        body = s3.get_object(Bucket=a.bucket, Key=a.key, Range=f"bytes={start}-{end}")["Body"]
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = memoryview(bytearray(part))
        raw, got = body._raw_stream, 0  # urllib3 response: readinto avoids a copy per chunk
        want = end - start + 1
        while got < want:
            n = raw.readinto(buf[got:want])
            if not n:
                break
            got += n
        body.close()
        if got != want:
            raise IOError(f"short read at {start}: {got} of {want} bytes")
        return got

    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(a.threads) as pool:
        total = sum(pool.map(fetch, range(0, size, part)))
    secs = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if total != size:
        sys.exit(f"get_baseline: read {total} of {size} bytes")
    print(json.dumps({
        "bytes": total,
        "seconds": secs,
        "get_requests": -(-size // part),
        "threads": a.threads,
        "part": part,
        "peak_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu0,
    }))


if __name__ == "__main__":
    main()
