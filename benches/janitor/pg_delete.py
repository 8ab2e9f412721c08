#!/usr/bin/env python3
"""How the janitor removes rows on PostgreSQL (issue 37, item 5): batched deletes of
1,000 rows a transaction (what it does) against one DELETE of everything expired, while
single-row writes go on beside them.

In a database of its own it makes `token_revocations` as migration 2 does, and for
--rounds rounds adds --rows expired rows, then removes them one way or the other while
pgbench inserts fresh rows from 4 clients; each round it reports how long the removal
took, the longest and 99th-percentile latency of the writes beside it, and the table's
size after autovacuum had its chance (does the space get reused, or does the table
grow).

    python3 benches/janitor/pg_delete.py --database-url postgres://postgres@127.0.0.1:5432/postgres
"""
import argparse
import glob
import os
import subprocess
import tempfile
import time
import urllib.parse

PGBENCH = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))), "pgbench")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qAtX", "-c", sql], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def writes_beside(url, seconds, work):
    """pgbench inserting fresh revocations for `seconds`; its transactions' latencies (ms)."""
    script = os.path.join(work, "insert.sql")
    with open(script, "w") as f:
        f.write("INSERT INTO token_revocations VALUES (gen_random_uuid()::text, gen_random_uuid(), "
                "extract(epoch from now())::bigint + 900, extract(epoch from now())::bigint);\n")
    logs = os.path.join(work, "log")
    for old in glob.glob(logs + "*"):
        os.unlink(old)
    proc = subprocess.Popen([PGBENCH, "-n", "-c", "4", "-j", "2", "-T", str(seconds), "-f", script, "-l",
                             f"--log-prefix={logs}", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=work)
    return proc, logs


def latencies(logs):
    values = []
    for path in glob.glob(logs + "*"):
        with open(path) as f:
            values += [int(line.split()[2]) / 1000 for line in f if line.strip()]
    return sorted(values)


def remove(url, how):
    started = time.time()
    if how == "batched":
        # The janitor's statement, 1,000 rows a transaction, in one session.
        psql(url, "DO $$ DECLARE n bigint; BEGIN LOOP DELETE FROM token_revocations WHERE jti IN (SELECT jti FROM "
                  "token_revocations WHERE expires_at <= 1000 LIMIT 1000); GET DIAGNOSTICS n = ROW_COUNT; COMMIT; "
                  "EXIT WHEN n < 1000; END LOOP; END $$")
    else:
        psql(url, "DELETE FROM token_revocations WHERE expires_at <= 1000")
    return time.time() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    name = f"agentidp_janitor_{os.getpid()}"
    psql(args.database_url, f"CREATE DATABASE {name}")
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(args.database_url)._replace(path=f"/{name}"))
    work = tempfile.mkdtemp(prefix="agentidp-janitor-")
    try:
        print("| how | round | removal (s) | writes beside it | p99 write (ms) | longest write (ms) | table MB |")
        print("|---|---|---|---|---|---|---|")
        for how in ["batched", "one statement"]:
            psql(url, "DROP TABLE IF EXISTS token_revocations; CREATE TABLE token_revocations (jti TEXT PRIMARY KEY, "
                      "org_id UUID NOT NULL, expires_at BIGINT NOT NULL, revoked_at BIGINT NOT NULL); "
                      "CREATE INDEX token_revocations_expiry ON token_revocations (expires_at)")
            for round_no in range(1, args.rounds + 1):
                psql(url, f"INSERT INTO token_revocations SELECT gen_random_uuid()::text, gen_random_uuid(), "
                          f"g % 1000, 0 FROM generate_series(1, {args.rows}) g")
                proc, logs = writes_beside(url, 20, work)
                time.sleep(2)
                took = remove(url, how)
                proc.wait()
                lat = latencies(logs)
                psql(url, "VACUUM token_revocations")
                size = int(psql(url, "SELECT pg_total_relation_size('token_revocations')")) / 1e6
                p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
                print(f"| {how} | {round_no} | {took:.1f} | {len(lat)} | {p99:.1f} | {lat[-1] if lat else 0:.1f} "
                      f"| {size:.0f} |", flush=True)
    finally:
        psql(args.database_url, f"DROP DATABASE IF EXISTS {name}")
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
