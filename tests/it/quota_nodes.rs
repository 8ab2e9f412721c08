//! The daily quota across processes (issue 11): two `agentidp serve` nodes on one
//! PostgreSQL + Redis enforce one limit for an organization — Redis is the ledger, every
//! key has a TTL — and when Redis goes away each node admits only its share of what was
//! left (503 past it, never a 500, never unlimited), then carries on when Redis returns.

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{OwnRedis, ProcessCluster, ServeProcess};

/// A free tier of `calls` a day whose per-client token rate never interferes.
fn free_tier(calls: u64) -> String {
    format!("[tiers.free]\ncalls_per_day = {calls}\ntoken_rate = 1000000\ntoken_burst = 1000000\n")
}

/// `n` token requests spread over `nodes` in turn, 16 at a time: each answer's status,
/// headers and body.
async fn tokens(
    cluster: &ProcessCluster,
    nodes: &[&ServeProcess],
    n: usize,
) -> Vec<(StatusCode, reqwest::header::HeaderMap, Value)> {
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cluster.client_id.as_str()),
        ("client_secret", cluster.client_secret.as_str()),
    ];
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, url) = (&http, format!("{}/api/v1/oauth2/token", nodes[i % nodes.len()].base));
            let form = &form;
            async move {
                let resp = http.post(url).form(form).send().await.unwrap();
                let (status, headers) = (resp.status(), resp.headers().clone());
                (status, headers, resp.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn count(answers: &[(StatusCode, reqwest::header::HeaderMap, Value)], status: StatusCode) -> usize {
    answers.iter().filter(|(s, _, _)| *s == status).count()
}

/// `redis-cli` against `url`, its output.
fn redis_cli(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli").args(["-u", url]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A metric's value on a node's `/metrics`.
async fn metric(node: &ServeProcess, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_enforce_one_daily_limit_through_redis() {
    let Some(cluster) = ProcessCluster::new(None, Some(&free_tier(200))).await else {
        return; // needs PostgreSQL + Redis; CI always has them.
    };
    let (a, b) = (cluster.node("a").await, cluster.node("b").await);
    let answers = tokens(&cluster, &[&a, &b], 400).await;
    let admitted = count(&answers, StatusCode::OK);
    // Zero overshoot: every admitted call was granted by the ledger first. Both nodes
    // drain their leases, so at most the two last chunks (4 calls each) go unused.
    assert!((192..=200).contains(&admitted), "admitted {admitted} of a limit of 200");
    assert_eq!(admitted + count(&answers, StatusCode::TOO_MANY_REQUESTS), 400, "every other answer is a 429");
    let (_, headers, body) = answers.iter().find(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS).unwrap();
    assert_eq!(body["error"], "quota_exceeded", "{body}");
    assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(headers["ratelimit-policy"], "\"daily\";q=200;w=86400");
    assert!(headers["ratelimit"].to_str().unwrap().starts_with("\"daily\";r=0;t="), "{headers:?}");

    // The ledger: one key for the organization's day, holding the whole limit, with a TTL.
    let keys =
        redis_cli(&cluster.redis_url, &["--scan", "--pattern", &format!("{}:quota:*", cluster.storage.namespace)]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(redis_cli(&cluster.redis_url, &["GET", keys[0]]).trim(), "200");
    let ttl: i64 = redis_cli(&cluster.redis_url, &["PTTL", keys[0]]).trim().parse().unwrap();
    assert!(ttl > 86_400_000, "the day's key expires a day after its day ends, not never: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_node_admits_only_its_share_and_recovers_when_redis_returns() {
    let mut redis = OwnRedis::start().await;
    let Some(cluster) = ProcessCluster::new(Some(redis.url()), Some(&free_tier(400))).await else {
        return; // needs PostgreSQL; CI always has it.
    };
    let (a, b) = (cluster.node("a").await, cluster.node("b").await);
    // Both nodes draw on the ledger, so each knows there are two.
    let before = count(&tokens(&cluster, &[&a, &b], 40).await, StatusCode::OK);
    assert_eq!(before, 40);

    redis.kill();
    let during = tokens(&cluster, &[&a, &b], 400).await;
    let admitted = count(&during, StatusCode::OK);
    let unavailable = count(&during, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(admitted + unavailable, 400, "only 200s and 503s while Redis is down");
    // Each node: what its lease held plus half of what it last saw left. Past the limit
    // by half of what a node's view lagged the other's grants: with the load spread
    // evenly, a lag of at most two chunks (16), so at most 16 in all.
    assert!(admitted >= 100 && before + admitted <= 400 + 16, "admitted {admitted} during the outage");
    let (_, headers, body) = during.iter().find(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(headers.contains_key("retry-after"));
    for node in [&a, &b] {
        assert!(metric(node, "agentidp_quota_ledger_unreachable_total").await >= 1.0);
        assert!(metric(node, "agentidp_quota_outage_grants_total").await >= 1.0);
    }

    // Redis returns, empty (no persistence): the nodes carry on, starting the day from
    // what they saw, and write back what they admitted on their own.
    redis.restart().await;
    let (back, mut after) = (std::time::Instant::now(), 0);
    loop {
        let answers = tokens(&cluster, &[&a, &b], 2).await;
        after += count(&answers, StatusCode::OK);
        if count(&answers, StatusCode::SERVICE_UNAVAILABLE) == 0 {
            break;
        }
        assert!(back.elapsed() < std::time::Duration::from_secs(10), "no recovery: {answers:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    after += count(&tokens(&cluster, &[&a, &b], 400).await, StatusCode::OK);
    let total = before + admitted + after;
    // The reseeded day misses what the other node was granted after the reseeding
    // node's last view: about two chunks with even load; on a loaded machine the views
    // lag further, so the bound allows six chunks in all (unlimited admission during the
    // outage alone would pass it).
    eprintln!("quota through a Redis outage: {before} + {admitted} + {after} admitted of 400");
    assert!(total <= 400 + 48, "{before} + {admitted} + {after} admitted of a limit of 400");
    assert!(total >= 400 - 16, "the day's remainder is served once Redis is back: {total}");
}
