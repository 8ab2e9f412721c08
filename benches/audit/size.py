#!/usr/bin/env python3
"""How many bytes the audit trail costs a token, on either store.

Starts the real server (release build) on a fresh store — a temporary data directory, or
a database of its own created in the PostgreSQL given by --database-url and dropped
after — provisions agents, issues tokens with wrk for --duration seconds, and reports:

- bytes a stored event costs, all in: the audit records and the dictionary of words they
  share, with their indexes (SQLite: `dbstat` pages; PostgreSQL: `pg_total_relation_size`),
  divided by the events stored;
- the split between rows and indexes;
- each action's average row size (SQLite: the bytes of its columns as its record format
  stores them; PostgreSQL: `pg_column_size` of the row), so the token's own event can be
  told from the rest.

    python3 benches/audit/size.py --duration 20
    python3 benches/audit/size.py --database-url postgres://postgres@127.0.0.1:5432/postgres
"""
import argparse
import base64
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "load"))
import harness  # noqa: E402  (the load harness's server, wrk and provisioning helpers)

AUDIT = "audit_records"
# The words records share (counted in "all in": every event pays its part).
WORDS = "audit_strings"


def int_bytes(col):
    """SQLite's stored size of an integer column (its record format's serial types)."""
    return (f"(CASE WHEN {col} BETWEEN 0 AND 1 THEN 0 WHEN {col} BETWEEN -128 AND 127 THEN 1 "
            f"WHEN {col} BETWEEN -32768 AND 32767 THEN 2 WHEN {col} BETWEEN -8388608 AND 8388607 THEN 3 "
            f"WHEN {col} BETWEEN -2147483648 AND 2147483647 THEN 4 "
            f"WHEN {col} BETWEEN -140737488355328 AND 140737488355327 THEN 6 ELSE 8 END)")


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qAtX", "-F", "\t", "-c", sql], capture_output=True, text=True, check=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def measure_sqlite(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "agentidp.db"))
    tables = (AUDIT, WORDS)
    indexes = [r[0] for r in db.execute(
        f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN {tables}")]
    pages = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    rows = db.execute(f"SELECT count(*) FROM {AUDIT}").fetchone()[0]
    width = (" + ".join(int_bytes(c) for c in ("key", "action", "tag"))
             + " + length(id) + length(rec) + coalesce(length(anchor), 0)")
    actions = db.execute(f"SELECT w.text, count(*), avg({width}) FROM {AUDIT} r JOIN {WORDS} w ON w.n = r.action "
                         "GROUP BY w.text ORDER BY 2 DESC").fetchall()
    words = db.execute(f"SELECT count(*) FROM {WORDS}").fetchone()[0]
    db.close()
    return {"events": rows, "table": sum(pages.get(t, 0) for t in tables),
            "indexes": sum(pages.get(i, 0) for i in indexes), "words": words,
            "actions": [(a, n, float(w)) for a, n, w in actions]}


def measure_postgres(url):
    psql(url, f"VACUUM ANALYZE {AUDIT}")
    psql(url, f"VACUUM ANALYZE {WORDS}")
    [[rows, table, total, words]] = psql(
        url, f"SELECT (SELECT count(*) FROM {AUDIT}), pg_table_size('{AUDIT}') + pg_table_size('{WORDS}'), "
             f"pg_total_relation_size('{AUDIT}') + pg_total_relation_size('{WORDS}'), (SELECT count(*) FROM {WORDS})")
    actions = psql(url, f"SELECT w.text, count(*), avg(pg_column_size(r.*)) FROM {AUDIT} r "
                        f"JOIN {WORDS} w ON w.n = r.action GROUP BY w.text ORDER BY 2 DESC")
    return {"events": int(rows), "table": int(table), "indexes": int(total) - int(table), "words": int(words),
            "actions": [(a, int(n), float(w)) for a, n, w in actions]}


class Fresh:
    """A server on a fresh store: a temporary data directory, or a database of its own
    created in the PostgreSQL at `database_url` (and dropped after); bootstrapped, its
    organization on the enterprise tier. `extra` adds to its environment."""

    def __init__(self, binary, database_url, label, extra=None):
        self.binary, self.database_url = binary, database_url
        self.work = tempfile.mkdtemp(prefix=f"agentidp-audit-{label}-")
        port = harness.free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = dict(os.environ, AGENTIDP_DATA_DIR=os.path.join(self.work, "data"),
                        AGENTIDP_LISTEN=f"127.0.0.1:{port}", AGENTIDP_ISSUER=self.base, AGENTIDP_LOG="warn",
                        AGENTIDP_REDIS_NAMESPACE=f"{label}{port}",
                        AGENTIDP_MASTER_KEY=base64.b64encode(os.urandom(32)).decode(), **(extra or {}))
        self.env.pop("DATABASE_URL", None)
        self.env.pop("REDIS_URL", None)
        self.db_url, self.server = None, None
        if database_url:
            name = f"agentidp_{label}_{os.getpid()}"
            psql(database_url, f"CREATE DATABASE {name}")
            parts = urllib.parse.urlsplit(database_url)
            self.db_url = urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
            self.env["DATABASE_URL"] = self.db_url

    def __enter__(self):
        try:
            boot = subprocess.run([self.binary, "bootstrap", "--json"], env=self.env, capture_output=True, text=True,
                                  check=True)
            self.creds = json.loads(boot.stdout)
            self.start()
            self.platform = self.token(self.creds["platform_client_id"], self.creds["platform_client_secret"])
            harness.http("PATCH", f"{self.base}/api/v1/organizations/{self.creds['org_id']}", {"tier": "enterprise"},
                         token=self.platform)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def start(self):
        self.server = harness.start([self.binary, "serve"], env=self.env)
        harness.wait_ready(f"{self.base}/ready", self.server)

    def token(self, client_id, secret):
        return harness.http("POST", f"{self.base}/api/v1/oauth2/token", {"grant_type": "client_credentials"},
                            basic=(client_id, secret), form=True)["access_token"]

    def admin(self):
        return self.token(self.creds["client_id"], self.creds["client_secret"])

    def provision(self, n):
        """n agents with credentials; wrk's lines issuing them tokens."""
        agents = harness.provision(self.base, self.admin(), n)
        return [f"POST\t/api/v1/oauth2/token\t"
                f"{harness.q({'grant_type': 'client_credentials', 'client_id': a[1], 'client_secret': a[2]})}\t"
                for a in agents]

    def __exit__(self, *exc):
        if self.server:
            harness.stop(self.server)
            self.server = None
        if self.db_url:
            psql(self.database_url, f"DROP DATABASE IF EXISTS {self.db_url.rsplit('/', 1)[1]}")
        subprocess.run(["rm", "-rf", self.work])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20, help="seconds of token issuance")
    ap.add_argument("--database-url", help="a PostgreSQL server to create (and drop) a database in")
    ap.add_argument("--server-bin", help="an agentidp binary instead of the release build")
    args = ap.parse_args()
    binary = args.server_bin or os.path.join(harness.TARGET, "release", "agentidp")
    with Fresh(binary, args.database_url, "size") as fresh:
        lines = fresh.provision(args.agents)
        wrk_args = argparse.Namespace(connections=args.connections, threads=args.threads, duration=args.duration)
        run = harness.wrk(wrk_args, fresh.base, lines, fresh.server.pid)
        time.sleep(0.5)
        db_url = fresh.db_url
        m = measure_postgres(db_url) if db_url else measure_sqlite(os.path.join(fresh.work, "data"))
    store = "PostgreSQL" if db_url else "SQLite"
    n = max(m["events"], 1)
    print(f"{store}: {m['events']} audit events ({m['words']} dictionary words) after {run['requests'] - run['errors']} tokens in {args.duration}s ({run['ok_per_s']:.0f}/s)")
    print("| store | bytes / event, all in | rows | indexes |")
    print("|---|---|---|---|")
    print(f"| {store} | {(m['table'] + m['indexes']) / n:.0f} | {m['table'] / n:.0f} | {m['indexes'] / n:.0f} |")
    print()
    print("| action | events | average row bytes |")
    print("|---|---|---|")
    for action, count, width in m["actions"]:
        print(f"| `{action}` | {count} | {width:.0f} |")


if __name__ == "__main__":
    main()
