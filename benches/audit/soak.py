#!/usr/bin/env python3
"""Bounded disk, measured (issue 37, item 6): issue --tokens tokens against one server
whose organization keeps its audit events --retain seconds, and watch the store level
off while the archiver moves what is older to the archive.

It starts the real server (release build) on a fresh store, provisions --agents agents
on the enterprise tier, sets the organization's retention (the platform admin's
override), and runs wrk in windows of --window seconds until the tokens are issued. After
each window it prints: tokens/s and p99 of that window, the store's size on disk (SQLite:
the database file and its WAL; PostgreSQL: pg_database_size), the events the store holds
and the events archived. Once, in the middle, it kills the server with SIGKILL while a
segment is being written (a `.tmp` file in the archive), starts it again and goes on.

At the end it checks that nothing acknowledged was lost and nothing counted twice: every
token answered 200 has its `token.issue` event either in the archive or in the store,
`GET /api/v1/audit-events/verify?full=true` finds what the store holds intact, and
`agentidp audit verify-archive` finds the archive intact, signed, and ending where the
store goes on.

    python3 benches/audit/soak.py --tokens 10000000 --retain 60
    python3 benches/audit/soak.py --tokens 2000000 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""
import argparse
import glob
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "load"))
import harness  # noqa: E402

sys.path.insert(0, HERE)
from size import Fresh, psql  # noqa: E402


def store_bytes(work, db_url):
    if db_url:
        name = db_url.rsplit("/", 1)[1]
        return int(psql(db_url, f"SELECT pg_database_size('{name}')")[0][0])
    data = os.path.join(work, "data")
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data, "agentidp.db*")))


def store_events(work, db_url, action=None):
    where = "" if action is None else f" WHERE action = (SELECT n FROM audit_strings WHERE text = '{action}')"
    if db_url:
        return int(psql(db_url, f"SELECT count(*) FROM audit_records{where}")[0][0])
    db = sqlite3.connect(f"file:{os.path.join(work, 'data', 'agentidp.db')}?mode=ro", uri=True)
    try:
        return db.execute(f"SELECT count(*) FROM audit_records{where}").fetchone()[0]
    finally:
        db.close()


def archived(archive, action=None):
    """Events in the archive's segments (of `action`, if given), and their bytes."""
    events, size = 0, 0
    for path in glob.glob(os.path.join(archive, "*", "*.ndjson.gz")):
        size += os.path.getsize(path)
        with gzip.open(path, "rt") as f:
            for line in f:
                if action is None or json.loads(line)["action"] == action:
                    events += 1
    return events, size


def archived_fast(archive):
    """Events the manifests name, and the segments' bytes (cheap: for the progress lines)."""
    events, size = 0, 0
    for path in glob.glob(os.path.join(archive, "*", "*.json")):
        with open(path) as f:
            events += json.load(f)["events"]
        size += os.path.getsize(path[:-len(".json")] + ".ndjson.gz")
    return events, size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--retain", type=int, default=60, help="seconds the organization keeps its audit events")
    ap.add_argument("--window", type=int, default=30, help="seconds of load between two measurements")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--database-url", help="a PostgreSQL server to create (and drop) a database in")
    ap.add_argument("--server-bin", help="an agentidp binary instead of the release build")
    ap.add_argument("--no-kill", action="store_true", help="do not kill the server mid-archive")
    args = ap.parse_args()
    binary = args.server_bin or os.path.join(harness.TARGET, "release", "agentidp")
    acknowledged = 0
    archive = tempfile.mkdtemp(prefix="agentidp-soak-archive-")
    settings = {"AGENTIDP_AUDIT_ARCHIVE_DIR": archive, "AGENTIDP_AUDIT_ARCHIVE_INTERVAL": "10"}
    with Fresh(binary, args.database_url, "soak", settings) as fresh:
        work, db_url, base, env = fresh.work, fresh.db_url, fresh.base, fresh.env
        org = fresh.creds["org_id"]
        harness.http("PUT", f"{base}/api/v1/organizations/{org}/audit-retention", {"seconds": args.retain},
                     token=fresh.platform)
        lines = fresh.provision(args.agents)
        wrk_args = argparse.Namespace(connections=args.connections, threads=args.threads, duration=args.window)
        print(f"{'store' if not db_url else 'PostgreSQL'}: {args.tokens} tokens, retention {args.retain} s, "
              f"windows of {args.window} s", flush=True)
        print("| after (s) | tokens | tokens/s | p99 (ms) | store MB | events in store | archived | archive MB |")
        print("|---|---|---|---|---|---|---|---|")
        started, window, killed = time.time(), 0, args.no_kill
        while acknowledged < args.tokens:
            window += 1
            kill_now = not killed and acknowledged >= args.tokens // 2
            if kill_now:
                # Load in the background; SIGKILL the server while it writes a segment.
                tmp_lines = os.path.join(work, "lines.txt")
                with open(tmp_lines, "w") as f:
                    f.write("\n".join(lines) + "\n")
                load = subprocess.Popen(
                    ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.window}s", "--timeout", "10s",
                     "-s", os.path.join(os.path.dirname(HERE), "load", "requests.lua"), base, "--", tmp_lines],
                    stdout=subprocess.PIPE, text=True)
                deadline = time.time() + args.window - 5
                while time.time() < deadline and not glob.glob(os.path.join(archive, "*", ".*.tmp")):
                    time.sleep(0.001)
                mid_write = bool(glob.glob(os.path.join(archive, "*", ".*.tmp")))
                os.kill(fresh.server.pid, signal.SIGKILL)
                fresh.server.wait()
                fresh.start()
                out, _ = load.communicate()
                run = json.loads(out.strip().splitlines()[-1])
                run["ok_per_s"] = (run["requests"] - run["errors"]) / (run["duration_us"] / 1e6)
                killed = True
                print(f"(SIGKILL {'while a segment was being written' if mid_write else 'during load'}; restarted)",
                      flush=True)
            else:
                run = harness.wrk(wrk_args, base, lines, fresh.server.pid)
            acknowledged += run["requests"] - run["errors"]
            events, size = archived_fast(archive)
            print(f"| {time.time() - started:.0f} | {acknowledged} | {run['ok_per_s']:.0f} | {run['p99_us'] / 1000:.1f} "
                  f"| {store_bytes(work, db_url) / 1e6:.0f} | {store_events(work, db_url)} | {events} "
                  f"| {size / 1e6:.0f} |", flush=True)
        # Let the archiver catch up with what is past the retention, then check it all.
        time.sleep(args.retain + 15)
        report = harness.http("GET", f"{base}/api/v1/audit-events/verify?full=true", token=fresh.admin())
        jwks = os.path.join(work, "jwks.json")
        with open(jwks, "w") as f:
            json.dump(harness.http("GET", f"{base}/.well-known/jwks.json"), f)
        harness.stop(fresh.server)
        fresh.server = None
        verify = subprocess.run([binary, "audit", "verify-archive", archive, "--jwks", jwks], env=env,
                                capture_output=True, text=True)
        in_archive, archive_bytes = archived(archive, "token.issue")
        in_store = store_events(work, db_url, "token.issue")
        print()
        print(f"store: intact={report['intact']} events_checked={report['events_checked']}")
        print(f"archive: verify-archive exit {verify.returncode}: {verify.stdout.strip()[:600]} {verify.stderr.strip()[:300]}")
        print(f"token.issue events: {in_archive} archived + {in_store} in the store = {in_archive + in_store}; "
              f"tokens acknowledged (HTTP 200): {acknowledged}")
        print(f"final store {store_bytes(work, db_url) / 1e6:.0f} MB, archive {archive_bytes / 1e6:.0f} MB")
        ok = report["intact"] and verify.returncode == 0 and in_archive + in_store >= acknowledged
        print("PASS" if ok else "FAIL")
    subprocess.run(["rm", "-rf", archive])


if __name__ == "__main__":
    main()
