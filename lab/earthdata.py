#!/usr/bin/env python3
"""A loopback stand-in for NASA Earthdata's temporary S3 credentials, for the geomount lab.

    earthdata.py --port-file FILE --login USER --password PASS --state FILE
                 (--static KEY_ID SECRET | --rotate --garage BIN --garage-config TOML --bucket B)
                 [--lifetime SECONDS]

It follows the real flow: GET /s3credentials without a session redirects (302) to
/oauth/authorize, which wants HTTP basic auth (401 otherwise) and redirects back with a session
cookie; /s3credentials with the cookie answers JSON {accessKeyId, secretAccessKey, sessionToken,
expiration}, expiration as "YYYY-MM-DD HH:MM:SS+00:00".

--static hands out the given keys, valid for --lifetime (default 3600 s).
--rotate creates a new Garage key for every request (read access to --bucket) and deletes it
  (revokes it) when it expires, --lifetime seconds later.
--state is rewritten after every change: {"issued": [key ids], "revoked": [key ids],
"served": number of credential answers}.
The port it listens on (127.0.0.1, chosen by the kernel) is written to --port-file.
SIGTERM stops it after revoking every key it created.
"""

import argparse
import base64
import datetime
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SESSION = "edl-session=" + secrets.token_hex(8)
lock = threading.Lock()
state = {"issued": [], "revoked": [], "served": 0}
timers = []


def save(args):
    tmp = args.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, args.state)


def garage(args, *cmd):
    subprocess.run([args.garage, "-c", args.garage_config, *cmd], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)


def revoke(args, key_id):
    try:
        garage(args, "key", "delete", "--yes", key_id)
    except subprocess.CalledProcessError as e:
        print(f"revoking {key_id} failed: {e.stderr!r}", file=sys.stderr)
        return
    with lock:
        state["revoked"].append(key_id)
        save(args)


def new_keys(args):
    expires = int(time.time()) + args.lifetime
    if args.static:
        return args.static[0], args.static[1], expires
    key_id = "GK" + secrets.token_hex(12)
    secret = secrets.token_hex(32)
    garage(args, "key", "import", "--yes", "-n", "earthdata-" + key_id, key_id, secret)
    garage(args, "bucket", "allow", "--read", args.bucket, "--key", key_id)
    with lock:
        state["issued"].append(key_id)
        save(args)
        t = threading.Timer(max(0.0, expires - time.time()), revoke, (args, key_id))
        t.daemon = True
        timers.append((t, key_id))
        t.start()
    return key_id, secret, expires


class Handler(BaseHTTPRequestHandler):
    args = None

    def log_message(self, fmt, *a):
        sys.stderr.write("earthdata: " + fmt % a + "\n")

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/oauth/authorize":
            want = "Basic " + base64.b64encode(
                f"{self.args.login}:{self.args.password}".encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, b"Unauthorized", [("WWW-Authenticate", 'Basic realm="URS"')])
            return self.reply(302, headers=[("Location", "/s3credentials?code=ok"),
                                            ("Set-Cookie", SESSION + "; Path=/; HttpOnly")])
        if path == "/s3credentials":
            if SESSION not in (self.headers.get("Cookie") or ""):
                return self.reply(302, headers=[
                    ("Location", "/oauth/authorize?client_id=lab&response_type=code")])
            key_id, secret, expires = new_keys(self.args)
            with lock:
                state["served"] += 1
                save(self.args)
            exp = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
            body = json.dumps({
                "accessKeyId": key_id,
                "secretAccessKey": secret,
                "sessionToken": "lab-session-" + key_id,
                "expiration": exp.strftime("%Y-%m-%d %H:%M:%S+00:00"),
            }).encode()
            return self.reply(200, body, [("Content-Type", "application/json")])
        self.reply(404, b"not found")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--login", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--lifetime", type=int, default=3600)
    p.add_argument("--static", nargs=2, metavar=("KEY_ID", "SECRET"))
    p.add_argument("--rotate", action="store_true")
    p.add_argument("--garage")
    p.add_argument("--garage-config")
    p.add_argument("--bucket")
    args = p.parse_args()
    if bool(args.static) == bool(args.rotate):
        p.error("give exactly one of --static and --rotate")
    Handler.args = args
    save(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def stop(*_):
        for t, key_id in timers:
            t.cancel()
            if key_id not in state["revoked"]:
                revoke(args, key_id)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
