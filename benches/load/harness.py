#!/usr/bin/env python3
"""AgentIdP HTTP load harness.

Starts the real server (release build; embedded store, or PostgreSQL + Redis when
--database-url/--redis-url are given), provisions N agents with credentials through the
API, and drives it with wrk: client_credentials issuance, introspection, and an
authenticated management GET. In the same sitting it measures the reference endpoint
(parse + SHA-256 check + cached-key ES256 sign: the bound of this stack) and node
oidc-provider doing client_credentials with ES256 JWTs, so every report carries ratios.

Throughput counts only successful responses; any failure is reported as an error.
Server CPU per request comes from /proc/<pid>/stat. Every scenario runs --runs times and
the median run (by throughput) is reported.

    python3 benches/load/harness.py --agents 1000 --connections 64 --duration 15
"""
import argparse
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not become ready")


def http(method, url, data=None, token=None, basic=None, form=False):
    headers = {}
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read()
        return json.loads(text) if text else None


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def quota_refusals(url):
    """The server's count of requests refused by the daily quota (every tier)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("agentidp_limit_rejections_total") and 'reason="daily_quota"' in line)


def wrk(args, url, lines, pid, refusals=False):
    """One wrk run over request `lines`; returns the parsed summary plus server CPU. With
    `refusals`, what counts as served is a refusal by the daily quota (a 429), and any
    other answer is an error."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    refused_before = quota_refusals(url) if refusals else 0
    before = cpu_ticks(pid)
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
         "-s", os.path.join(HERE, "requests.lua"), url, "--", path],
        capture_output=True, text=True, check=True)
    after = cpu_ticks(pid)
    os.unlink(path)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    ok = summary["requests"] - summary["errors"]
    if refusals:
        # wrk counts each refusal as a non-2xx; the server counts each as a quota refusal.
        ok = int(quota_refusals(url) - refused_before)
        summary["errors"] = max(0, summary["requests"] - ok)
    seconds = summary["duration_us"] / 1e6
    summary["ok_per_s"] = ok / seconds if seconds else 0.0
    summary["cpu_us_per_req"] = ((after - before) / CLK_TCK) * 1e6 / ok if ok else float("nan")
    summary["rss_mb"] = rss_mb(pid)
    return summary


def median_run(args, url, lines, pid, refusals=False):
    runs = [wrk(args, url, lines, pid, refusals) for _ in range(args.runs)]
    rss_in_order = [round(r["rss_mb"]) for r in runs]
    runs.sort(key=lambda r: r["ok_per_s"])
    best = runs[len(runs) // 2]
    best["all_ok_per_s"] = [round(r["ok_per_s"]) for r in runs]
    best["rss_mb_after_each_run"] = rss_in_order
    return best


def start(cmd, env=None, cwd=None):
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop(proc):
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def provision(base, admin, n, workers=8):
    """Create n agents, each with a credential and a token; returns their records."""
    def one(i):
        agent = http("POST", f"{base}/api/v1/agents", {"name": f"load-{i}", "scopes": ["agents:read"]}, token=admin)
        cred = http("POST", f"{base}/api/v1/agents/{agent['id']}/credentials", token=admin)
        return agent["id"], cred["client_id"], cred["client_secret"]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        agents = list(pool.map(one, range(n)))
    # Tokens for the introspection and management scenarios (at most 1,000 distinct).
    def token(rec):
        t = http("POST", f"{base}/api/v1/oauth2/token",
                 {"grant_type": "client_credentials", "client_id": rec[1], "client_secret": rec[2]}, form=True)
        return rec + (t["access_token"],)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(token, agents[:1000])) + [a + (None,) for a in agents[1000:]]


def q(params):
    return urllib.parse.urlencode(params)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration", type=int, default=15, help="seconds per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scenarios", default="token,introspect,get",
                    help="token, introspect, verify (verify-delegation), get, did (GET /agents/{id}/did.json), "
                    "refused (an organization over its quota)")
    ap.add_argument("--peers", default="reference,oidc-provider")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    ap.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    ap.add_argument("--signing-alg", default="ES256")
    ap.add_argument("--tier", default="enterprise", choices=["enterprise", "pro"],
                    help="the loaded organization's tier: enterprise (no limit) or pro with a limit too large "
                    "to reach (its leases refill every 1,000 calls)")
    ap.add_argument("--log", default="warn",
                    help="the server's AGENTIDP_LOG; 'info' adds an access-log line per request (to /dev/null)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--server-bin", help="an agentidp binary to measure instead of the release build "
                    "(to compare two builds in one sitting); implies --no-build")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    for tool in ("wrk", "cargo"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is required (wrk: apt-get install wrk)")
    if not args.no_build and not args.server_bin:
        subprocess.run(["cargo", "build", "--release", "--bin", "agentidp", "--example", "reference_server"],
                       cwd=ROOT, check=True)
    results = {"machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
               "params": vars(args), "scenarios": {}}
    work = tempfile.mkdtemp(prefix="agentidp-load-")
    procs = []
    try:
        # --- AgentIdP ---------------------------------------------------------------
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AGENTIDP_DATA_DIR=os.path.join(work, "data"), AGENTIDP_LISTEN=f"127.0.0.1:{port}",
                   AGENTIDP_ISSUER=base, AGENTIDP_LOG=args.log, AGENTIDP_SIGNING_ALG=args.signing_alg,
                   AGENTIDP_REDIS_NAMESPACE=f"load{port}")
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if args.database_url:
            env["DATABASE_URL"] = args.database_url
            env["AGENTIDP_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        if args.redis_url:
            env["REDIS_URL"] = args.redis_url
        if args.tier == "pro" or "refused" in args.scenarios.split(","):
            # Pro: a limit the load never reaches, and room for the agents. Free (the
            # refusal scenario): one call a day and a token rate that never trips, so
            # what refuses is the daily quota alone.
            config = os.path.join(work, "agentidp.toml")
            with open(config, "w") as f:
                f.write('[tiers.pro]\ncalls_per_day = 1000000000000\nmax_agents = "unlimited"\n'
                        '[tiers.free]\ncalls_per_day = 1\nmax_agents = "unlimited"\n'
                        'token_rate = 1000000\ntoken_burst = 1000000\n')
            env["AGENTIDP_CONFIG"] = config
        binary = args.server_bin or os.path.join(TARGET, "release", "agentidp")
        boot = subprocess.run([binary, "bootstrap", "--json"], env=env, capture_output=True, text=True)
        if boot.returncode != 0:
            sys.exit(f"bootstrap failed (use an empty database): {boot.stderr}")
        creds = json.loads(boot.stdout)
        server = start([binary, "serve"], env=env)
        procs.append(server)
        wait_ready(f"{base}/ready", server)
        admin = http("POST", f"{base}/api/v1/oauth2/token", {"grant_type": "client_credentials"},
                     basic=(creds["client_id"], creds["client_secret"]), form=True)["access_token"]
        # The first organization is on the free tier (10 agents): the platform admin
        # moves it to --tier so the load can provision its agents.
        platform = http("POST", f"{base}/api/v1/oauth2/token", {"grant_type": "client_credentials"},
                        basic=(creds["platform_client_id"], creds["platform_client_secret"]), form=True)["access_token"]
        org_path = f"{base}/api/v1/organizations/{creds['org_id']}"
        http("PATCH", org_path, {"tier": args.tier}, token=platform)
        t0 = time.time()
        agents = provision(base, admin, args.agents)
        print(f"provisioned {len(agents)} agents in {time.time() - t0:.1f}s", file=sys.stderr)
        with_tokens = [a for a in agents if a[3]]
        scenarios = args.scenarios.split(",")
        if "token" in scenarios:
            lines = [f"POST\t/api/v1/oauth2/token\t{q({'grant_type': 'client_credentials', 'client_id': a[1], 'client_secret': a[2]})}\t"
                     for a in agents]
            results["scenarios"]["agentidp token"] = median_run(args, base, lines, server.pid)
        if "introspect" in scenarios:
            lines = [f"POST\t/api/v1/oauth2/introspect\t{q({'client_id': a[1], 'client_secret': a[2], 'token': a[3]})}\t"
                     for a in with_tokens]
            results["scenarios"]["agentidp introspect"] = median_run(args, base, lines, server.pid)
        if "verify" in scenarios:
            # Each agent with a token delegates to the next; a service (the org admin,
            # tokens:introspect) verifies the delegation tokens.
            def delegation(i):
                a, b = with_tokens[i], with_tokens[(i + 1) % len(with_tokens)]
                return http("POST", f"{base}/api/v1/oauth2/token/delegate", {"delegatee_id": b[0]}, token=a[3])["token"]
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                delegations = list(pool.map(delegation, range(len(with_tokens))))
            lines = [f"POST\t/api/v1/oauth2/token/verify-delegation\t{json.dumps({'token': t})}\tBearer {admin}"
                     for t in delegations]
            results["scenarios"]["agentidp verify-delegation"] = median_run(args, base, lines, server.pid)
        if "get" in scenarios:
            lines = [f"GET\t/api/v1/agents/{a[0]}\t\tBearer {a[3]}" for a in with_tokens]
            results["scenarios"]["agentidp GET /agents/{id}"] = median_run(args, base, lines, server.pid)
        if "did" in scenarios:
            # Each agent's public did:web document, one registered key each (as GET
            # /agents/{id} above, the same agents: the yardstick of issue 13).
            def did_key(a):
                return http("POST", f"{base}/api/v1/agents/{a[0]}/did/keys", {"generate": True}, token=admin)
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(did_key, with_tokens))
            lines = [f"GET\t/agents/{a[0]}/did.json\t\t" for a in with_tokens]
            results["scenarios"]["agentidp GET /agents/{id}/did.json"] = median_run(args, base, lines, server.pid)
        if "refused" in scenarios:
            # The organization moves to the free tier (one call a day, used long ago): every
            # token request is refused by the daily quota. Only refusals by the quota count
            # as served here, read from the server's own counter.
            http("PATCH", org_path, {"tier": "free"}, token=platform)
            # A downgrade counts within what the node already holds (at most a chunk of
            # its lease): spend that first, so the load meets refusals only.
            a = agents[0]
            for _ in range(5000):
                try:
                    http("POST", f"{base}/api/v1/oauth2/token", {"grant_type": "client_credentials"},
                         basic=(a[1], a[2]), form=True)
                except urllib.error.HTTPError as e:
                    if e.code == 429:
                        break
                    raise
            lines = [f"POST\t/api/v1/oauth2/token\t{q({'grant_type': 'client_credentials', 'client_id': a[1], 'client_secret': a[2]})}\t"
                     for a in agents]
            results["scenarios"]["agentidp token refused (quota)"] = median_run(args, base, lines, server.pid,
                                                                                 refusals=True)
        stop(server)
        procs.remove(server)

        peers = args.peers.split(",") if args.peers else []
        client_id, secret = "bench-client", "bench-secret-" + base64.urlsafe_b64encode(os.urandom(24)).decode()
        token_line = f"POST\t/token\t{q({'grant_type': 'client_credentials', 'client_id': client_id, 'client_secret': secret})}\t"
        # --- reference endpoint ------------------------------------------------------
        if "reference" in peers:
            port = free_port()
            ref = start([os.path.join(TARGET, "release", "examples", "reference_server"), f"127.0.0.1:{port}",
                         client_id, secret])
            procs.append(ref)
            time.sleep(0.5)
            results["scenarios"]["reference token"] = median_run(args, f"http://127.0.0.1:{port}", [token_line], ref.pid)
            stop(ref)
            procs.remove(ref)
        # --- node oidc-provider -------------------------------------------------------
        if "oidc-provider" in peers:
            peer_dir = os.path.join(HERE, "oidc-provider")
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=peer_dir, check=True)
            port = free_port()
            peer = start(["node", "server.mjs", str(port), client_id, secret], cwd=peer_dir,
                         env=dict(os.environ, NODE_ENV="production"))
            procs.append(peer)
            wait_ready(f"http://127.0.0.1:{port}/.well-known/openid-configuration", peer)
            results["scenarios"]["oidc-provider token"] = median_run(args, f"http://127.0.0.1:{port}", [token_line],
                                                                     peer.pid)
            stop(peer)
            procs.remove(peer)
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)

    s = results["scenarios"]
    print(f"\n{args.connections} connections, {args.threads} wrk threads, {args.duration}s x {args.runs} runs "
          f"(median), {args.agents} agents, store: {'PostgreSQL + Redis' if args.database_url else 'SQLite'}\n")
    print("| scenario | ok req/s | runs | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs/req | RSS MB after each run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in s.items():
        print(f"| {name} | {r['ok_per_s']:.0f} | {r['all_ok_per_s']} | {r['p50_us'] / 1000:.2f} | {r['p99_us'] / 1000:.2f} "
              f"| {r['p999_us'] / 1000:.2f} | {r['errors']} | {r['cpu_us_per_req']:.1f} | {r['rss_mb_after_each_run']} |")
    ours = s.get("agentidp token")
    if ours and "reference token" in s:
        print(f"\nagentidp token / reference endpoint: {ours['ok_per_s'] / s['reference token']['ok_per_s']:.2f}")
    if ours and "oidc-provider token" in s:
        print(f"agentidp token / oidc-provider:      {ours['ok_per_s'] / s['oidc-provider token']['ok_per_s']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if any(r["errors"] for r in s.values()):
        sys.exit("some requests failed: see the errors column")


if __name__ == "__main__":
    main()
