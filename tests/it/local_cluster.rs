//! `scripts/cluster` (issue 15, item 11): PostgreSQL + Redis, two `agentidp serve` nodes
//! and nginx in front, in one command — driven through the balancer, with a revocation
//! made on one node seen by the other.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{backends, client_token, Backend, JsonBody};

/// How to call the script for one cluster.
#[derive(Clone)]
struct Script {
    state: PathBuf,
    port: u16,
    database: String,
    server_url: String,
}

impl Script {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster"))
            .args(args)
            .env("AGENTIDP_CLUSTER_DIR", &self.state)
            .env("AGENTIDP_CLUSTER_PORT", self.port.to_string())
            .env("AGENTIDP_CLUSTER_DB", &self.database)
            .env("AGENTIDP_CLUSTER_PG", &self.server_url)
            .env("AGENTIDP_BIN", env!("CARGO_BIN_EXE_agentidp"))
            .env_remove("AGENTIDP_REDIS_NAMESPACE")
            .output()
            .unwrap()
    }

    /// `run` off the async runtime's threads.
    async fn run_async(&self, args: &'static [&'static str]) -> std::process::Output {
        let script = self.clone();
        tokio::task::spawn_blocking(move || script.run(args)).await.unwrap()
    }

    fn node(&self, n: u16) -> String {
        format!("http://127.0.0.1:{}", self.port + n)
    }
}

/// A cluster the script started: stopped (by the script, by PID) and its database
/// dropped when dropped, also when the test fails.
struct LocalCluster {
    script: Script,
    _dir: tempfile::TempDir,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.script.run(&["stop"]);
        let _ = Command::new("psql")
            .arg(format!("{}/postgres", self.script.server_url))
            .args(["-qc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.script.database)])
            .output();
    }
}

/// A port with the next `n` ports free as well.
/// `n + 1` free ports in a row, below Linux's ephemeral range (32768–60999): a port there
/// can be taken by any outgoing connection between this check and the script's bind
/// (nginx once failed so while the suite ran beside it).
fn free_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (uuid::Uuid::now_v7().as_u128() % 12_000) as u16;
        if (0..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} free ports in a row");
}

async fn token_requests_served(http: &reqwest::Client, node: &str) -> u64 {
    let text = http.get(format!("{node}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(r#"agentidp_http_request_duration_seconds_count{route="/api/v1/oauth2/token"} "#))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_script_serves_two_nodes_behind_nginx_and_revokes_across_them() {
    // CI always has PostgreSQL (backends() insists); elsewhere without one, nothing to run.
    let Some(Backend::Postgres { database_url, .. }) = backends().into_iter().find(Backend::is_postgres) else {
        return;
    };
    let mut server_url = url::Url::parse(&database_url).unwrap();
    server_url.set_path("");
    server_url.set_query(None);
    let dir = tempfile::tempdir().unwrap();
    let script = Script {
        state: dir.path().join("cluster"),
        port: free_ports(2),
        database: format!("agentidp_cluster_t{}", uuid::Uuid::now_v7().simple()),
        server_url: server_url.as_str().trim_end_matches('/').to_string(),
    };
    let cluster = LocalCluster { script: script.clone(), _dir: dir };
    let started = script.run_async(&["start", "2"]).await;
    assert!(
        started.status.success(),
        "scripts/cluster start: {}{}",
        String::from_utf8_lossy(&started.stdout),
        String::from_utf8_lossy(&started.stderr)
    );
    let summary = String::from_utf8_lossy(&started.stdout);
    let balancer = format!("http://127.0.0.1:{}", script.port);
    assert!(summary.contains(&format!("balancer (issuer)  {balancer}")), "{summary}");

    // Through the balancer: the bootstrap credentials the script saved, an agent, tokens.
    let http = reqwest::Client::new();
    let admin: Value =
        serde_json::from_str(&std::fs::read_to_string(script.state.join("admin.json")).unwrap()).unwrap();
    let (admin_id, admin_secret) = (admin["client_id"].as_str().unwrap(), admin["client_secret"].as_str().unwrap());
    let admin_token = client_token(&balancer, admin_id, admin_secret).await;
    let post = |path: String, body: Value| {
        let (http, url, token) = (http.clone(), format!("{balancer}{path}"), admin_token.clone());
        async move { http.post(url).bearer_auth(token).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let agent = post("/api/v1/agents".into(), json!({"name": "behind-nginx", "scopes": ["agents:read"]})).await;
    let agent_id = agent["id"].as_str().unwrap_or_else(|| panic!("{agent}"));
    let cred = post(format!("/api/v1/agents/{agent_id}/credentials"), json!({})).await;
    let (id, secret) = (cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str().unwrap());
    for _ in 0..10 {
        client_token(&balancer, id, secret).await;
    }
    let (one, two) =
        (token_requests_served(&http, &script.node(1)).await, token_requests_served(&http, &script.node(2)).await);
    assert!(one > 0 && two > 0 && one + two == 11, "nginx spreads the token requests: {one} and {two}");
    // The issuer is the balancer's address on every node.
    for node in [script.node(1), script.node(2)] {
        let meta: Value = http.get(format!("{node}/.well-known/oauth-authorization-server")).json_body().await;
        assert_eq!(meta["issuer"], balancer.as_str());
    }

    // A token both nodes accept; revoked on node 1, refused by node 2 and the balancer.
    let agent_token = client_token(&balancer, id, secret).await;
    let read = |base: String| {
        let (http, token, path) = (http.clone(), agent_token.clone(), format!("/api/v1/agents/{agent_id}"));
        async move { http.get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(read(script.node(1)).await, StatusCode::OK);
    assert_eq!(read(script.node(2)).await, StatusCode::OK, "node 2 has the token verified and cached");
    let revoked = http
        .post(format!("{}/api/v1/oauth2/revoke", script.node(1)))
        .basic_auth(id, Some(secret))
        .form(&[("token", agent_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let mut refused = false;
    for _ in 0..100 {
        if read(script.node(2)).await == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "node 2 refuses the token revoked on node 1 within 2 s");
    for _ in 0..4 {
        assert_eq!(read(balancer.clone()).await, StatusCode::UNAUTHORIZED, "every node behind the balancer refuses it");
    }

    // Stop: every process the script started ends; status says so.
    let stopped = (script.run_async(&["stop"]).await, script.run_async(&["status"]).await);
    assert!(stopped.0.status.success(), "{}", String::from_utf8_lossy(&stopped.0.stderr));
    assert!(!stopped.1.status.success(), "status after stop: {}", String::from_utf8_lossy(&stopped.1.stdout));
    for port in [script.port, script.port + 1, script.port + 2] {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers");
    }
    drop(cluster);
}
