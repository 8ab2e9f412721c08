#!/usr/bin/env python3
"""Token latency while the archiver prunes (issue 37, item 3): pairs of fresh servers
(release build), 100 agents on the enterprise tier each, one archiving and one not,
in alternating order.

On: the organization's retention is 60 s (the platform admin's override) and the
archiver runs every --every seconds, so after the first minute every round archives and
removes the events that have just passed the retention — as many a second as tokens are
issued. Off: the tier's 90 days, nothing is due. Each server is loaded for --settle
seconds (past the first archiving rounds), then measured for --window seconds: the same
age of store, the same load, one difference.

    python3 benches/audit/prune_p99.py --pairs 3 --window 20 --settle 90
"""
import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "load"))
import harness  # noqa: E402

sys.path.insert(0, HERE)
from size import Fresh  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--settle", type=int, default=90, help="seconds of load before the measured window")
    ap.add_argument("--every", type=int, default=10, help="seconds between archiver rounds")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--database-url", help="a PostgreSQL server to create (and drop) a database in")
    ap.add_argument("--server-bin", help="an agentidp binary instead of the release build")
    args = ap.parse_args()
    binary = args.server_bin or os.path.join(harness.TARGET, "release", "agentidp")
    results = {"on": [], "off": []}
    print("| pair | arm | tokens/s | p99 ms | server CPU µs/token | non-2xx |")
    print("|---|---|---|---|---|---|")
    for pair in range(args.pairs):
        for arm in (("on", "off") if pair % 2 == 0 else ("off", "on")):
            archive = tempfile.mkdtemp(prefix="agentidp-prune-archive-")
            settings = {"AGENTIDP_AUDIT_ARCHIVE_DIR": archive, "AGENTIDP_AUDIT_ARCHIVE_INTERVAL": str(args.every)}
            with Fresh(binary, args.database_url, f"prune{pair}{arm}", settings) as fresh:
                base = fresh.base
                if arm == "on":
                    retention = f"{base}/api/v1/organizations/{fresh.creds['org_id']}/audit-retention"
                    harness.http("PUT", retention, {"seconds": 60}, token=fresh.platform)
                lines = fresh.provision(args.agents)
                harness.wrk(argparse.Namespace(connections=64, threads=2, duration=args.settle), base, lines,
                            fresh.server.pid)
                run = harness.wrk(argparse.Namespace(connections=64, threads=2, duration=args.window), base, lines,
                                  fresh.server.pid)
                archived = sum(1 for _ in os.scandir(archive))
            os.system(f"rm -rf {archive}")
            results[arm].append(run)
            print(f"| {pair + 1} | {arm} | {run['ok_per_s']:.0f} | {run['p99_us'] / 1000:.2f} "
                  f"| {run['cpu_us_per_req']:.1f} | {run['errors']} |{' (archived)' if archived else ''}", flush=True)
    print()
    for arm, runs in results.items():
        print(f"{arm}: tokens/s median {statistics.median(r['ok_per_s'] for r in runs):.0f}, "
              f"p99 median {statistics.median(r['p99_us'] for r in runs) / 1000:.2f} ms, "
              f"CPU median {statistics.median(r['cpu_us_per_req'] for r in runs):.1f} µs/token, "
              f"errors {sum(r['errors'] for r in runs)}")


if __name__ == "__main__":
    main()
