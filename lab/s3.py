#!/usr/bin/env python3
"""Small S3 client for the geomount test lab. Run it with the lab venv's python.

    s3.py CONNECTION COMMAND ARGS...

CONNECTION (one of):
    --lab garage|moto          read endpoint, region and key from $LAB_STATE/env
                               (or --env-file FILE), as written by `lab/lab.sh start`
    --endpoint URL [--region R] (--key-id ID --secret S | --anonymous)
                               --anonymous sends unsigned requests (moto accepts them)

COMMANDS:
    put BUCKET KEY FILE                  upload one file
    put-bytes BUCKET KEY --size N --seed S
                                         upload N deterministic pseudo-random bytes (see below)
    gen-bytes --size N --seed S [--out FILE]
                                         write the same bytes locally (default stdout)
    put-many BUCKET PREFIX COUNT [--workers W]
                                         COUNT small objects PREFIX000000, PREFIX000001, ...
                                         (6 digits, more if needed), body f"object {i}\\n"
    sync-dir BUCKET PREFIX LOCALDIR      upload a directory tree; key = PREFIX + relative path
    delete-prefix BUCKET PREFIX          delete every object under PREFIX
    ls BUCKET [PREFIX]                   print "key<TAB>size<TAB>etag" lines
    get BUCKET KEY [--range A-B] [--if-match ETAG] [--out FILE]
    head BUCKET KEY                      print size and ETag as JSON
    mb BUCKET                            create a bucket (no error if it is already ours)

Deterministic bytes: the stream is the concatenation, for c = 0, 1, 2, ..., of the first
1 MiB of SHAKE128(ascii "geomount-lab:{seed}:{c}"), cut to N bytes.
Objects bigger than 64 MiB are uploaded in 64 MiB parts (multipart ETag "md5-N").
Addressing is always path-style.
"""

import argparse
import concurrent.futures
import hashlib
import io
import json
import os
import signal
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config

BLOCK = 1 << 20
PART = 64 << 20
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)


def block(seed, index):
    return hashlib.shake_128(f"geomount-lab:{seed}:{index}".encode()).digest(BLOCK)


class DeterministicStream(io.RawIOBase):
    """Readable, non-seekable stream of the deterministic bytes, generated on the fly."""

    def __init__(self, size, seed):
        self.size, self.seed, self.pos = size, seed, 0
        self.buf, self.buf_index = b"", -1

    def readable(self):
        return True

    def readinto(self, out):
        n = min(len(out), self.size - self.pos)
        done = 0
        while done < n:
            index, offset = divmod(self.pos, BLOCK)
            if index != self.buf_index:
                self.buf, self.buf_index = block(self.seed, index), index
            take = min(n - done, BLOCK - offset)
            out[done:done + take] = self.buf[offset:offset + take]
            done += take
            self.pos += take
        return done


def load_lab_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                name, value = line[len("export "):].split("=", 1)
                env[name] = value
    return env


def make_client(args):
    if args.lab:
        env_file = args.env_file or os.path.join(
            os.environ.get("LAB_STATE", "/tmp/geomount-lab-state"), "env")
        env = load_lab_env(env_file)
        if args.lab == "garage":
            args.endpoint, args.region = env["GARAGE_ENDPOINT"], env["GARAGE_REGION"]
            args.key_id, args.secret = env["GARAGE_KEY_ID"], env["GARAGE_SECRET"]
        else:
            args.endpoint, args.anonymous = env["MOTO_ENDPOINT"], True
    if not args.endpoint:
        sys.exit("s3.py: --endpoint or --lab is required")
    if not args.anonymous and not (args.key_id and args.secret):
        sys.exit("s3.py: give --key-id and --secret, or --anonymous")
    config = Config(
        s3={"addressing_style": "path"},
        signature_version=UNSIGNED if args.anonymous else "s3v4",
        max_pool_connections=max(args.workers, 10),
        retries={"max_attempts": 3, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A CA bundle from the environment means nothing for plain http; only pass it for https.
    verify = None
    if args.endpoint.startswith("http://"):
        verify = False
    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=None if args.anonymous else args.key_id,
        aws_secret_access_key=None if args.anonymous else args.secret,
        config=config,
        verify=verify,
    )


def cmd_put(s3, a):
    s3.upload_file(a.file, a.bucket, a.key, Config=TRANSFER)


def cmd_put_bytes(s3, a):
    s3.upload_fileobj(io.BufferedReader(DeterministicStream(a.size, a.seed), BLOCK),
                      a.bucket, a.key, Config=TRANSFER)


def cmd_gen_bytes(_s3, a):
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    stream = DeterministicStream(a.size, a.seed)
    while chunk := stream.read(BLOCK):
        out.write(chunk)
    out.flush()


def run_parallel(fn, items, workers):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in concurrent.futures.as_completed([pool.submit(fn, i) for i in items]):
            future.result()


def cmd_put_many(s3, a):
    width = max(6, len(str(a.count - 1)))
    run_parallel(lambda i: s3.put_object(Bucket=a.bucket, Key=f"{a.prefix}{i:0{width}d}",
                                         Body=f"object {i}\n".encode()),
                 range(a.count), a.workers)


def cmd_sync_dir(s3, a):
    files = []
    for root, _dirs, names in os.walk(a.localdir):
        for name in names:
            path = os.path.join(root, name)
            files.append((path, a.prefix + os.path.relpath(path, a.localdir).replace(os.sep, "/")))
    run_parallel(lambda f: s3.upload_file(f[0], a.bucket, f[1], Config=TRANSFER), files, a.workers)
    print(f"uploaded {len(files)} files", file=sys.stderr)


def list_objects(s3, bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def cmd_delete_prefix(s3, a):
    keys = [o["Key"] for o in list_objects(s3, a.bucket, a.prefix)]
    for i in range(0, len(keys), 1000):
        batch = [{"Key": k} for k in keys[i:i + 1000]]
        resp = s3.delete_objects(Bucket=a.bucket, Delete={"Objects": batch, "Quiet": True})
        if resp.get("Errors"):
            sys.exit(f"s3.py: delete failed: {resp['Errors'][:3]}")
    print(f"deleted {len(keys)} objects", file=sys.stderr)


def cmd_ls(s3, a):
    for o in list_objects(s3, a.bucket, a.prefix):
        print(f"{o['Key']}\t{o['Size']}\t{o['ETag']}")


def cmd_get(s3, a):
    kwargs = {"Bucket": a.bucket, "Key": a.key}
    if a.range:
        kwargs["Range"] = f"bytes={a.range}"
    if a.if_match:
        kwargs["IfMatch"] = a.if_match
    body = s3.get_object(**kwargs)["Body"]
    out = open(a.out, "wb") if a.out else sys.stdout.buffer
    while chunk := body.read(BLOCK):
        out.write(chunk)
    out.flush()


def cmd_head(s3, a):
    r = s3.head_object(Bucket=a.bucket, Key=a.key)
    print(json.dumps({"size": r["ContentLength"], "etag": r["ETag"]}))


def cmd_mb(s3, a):
    try:
        s3.create_bucket(Bucket=a.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet exit when piped into head
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lab", choices=["garage", "moto"])
    p.add_argument("--env-file")
    p.add_argument("--endpoint")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--key-id")
    p.add_argument("--secret")
    p.add_argument("--anonymous", action="store_true")
    p.add_argument("--workers", type=int, default=16)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name, fn, *positional):
        c = sub.add_parser(name)
        for arg in positional:
            c.add_argument(arg)
        c.add_argument("--workers", type=int, default=argparse.SUPPRESS)
        c.set_defaults(fn=fn)
        return c

    command("put", cmd_put, "bucket", "key", "file")
    c = command("put-bytes", cmd_put_bytes, "bucket", "key")
    c.add_argument("--size", type=int, required=True)
    c.add_argument("--seed", type=int, required=True)
    c = command("gen-bytes", cmd_gen_bytes)
    c.add_argument("--size", type=int, required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--out")
    c = command("put-many", cmd_put_many, "bucket", "prefix")
    c.add_argument("count", type=int)
    command("sync-dir", cmd_sync_dir, "bucket", "prefix", "localdir")
    command("delete-prefix", cmd_delete_prefix, "bucket", "prefix")
    c = command("ls", cmd_ls, "bucket")
    c.add_argument("prefix", nargs="?", default="")
    c = command("get", cmd_get, "bucket", "key")
    c.add_argument("--range")
    c.add_argument("--if-match")
    c.add_argument("--out")
    command("head", cmd_head, "bucket", "key")
    command("mb", cmd_mb, "bucket")

    a = p.parse_args()
    s3 = None if a.command == "gen-bytes" else make_client(a)
    a.fn(s3, a)


if __name__ == "__main__":
    main()
