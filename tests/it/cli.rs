//! The `agentidp` binary as an operator runs it: bootstrap, migrate, serve, SIGTERM.

use std::process::{Command, Stdio};

use crate::support::ServeProcess;

fn agentidp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentidp"));
    // The operator's environment must not leak into these runs.
    for var in ["DATABASE_URL", "REDIS_URL", "AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "AGENTIDP_DATA_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn bootstrap_prints_json_once_and_migrate_reports_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let boot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["org_id", "client_id", "client_secret", "platform_client_id", "platform_client_secret"] {
        assert!(boot[key].as_str().is_some_and(|v| !v.is_empty()), "{key} missing: {boot}");
    }
    // secrets go to stdout only, never to the log
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(boot["client_secret"].as_str().unwrap()));
    // a second bootstrap refuses
    let again = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!again.status.success());
    let out = agentidp().args(["migrate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "schema at version 3");
    let out = agentidp().args(["keys", "rotate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["alg"], "ES256");
    assert!(key["activates_at"].as_str().unwrap() > key["created_at"].as_str().unwrap());
}

#[test]
fn bad_configuration_is_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentidp.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:1\"\nunknown_key = 1\n").unwrap();
    let out = agentidp().args(["migrate", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown"));
    let out = agentidp().args(["serve", "--token-ttl", "1"]).output().unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn serve_answers_then_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("agentidp.toml");
    // The file sets the data dir; the flag overrides the file's listen address.
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:1\"\ndata_dir = {:?}\ntoken_ttl = 60\n", dir.path().join("data")),
    )
    .unwrap();
    let mut child = agentidp()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_until_up(&format!("{base}/ready"), "agentidp serve").await;
    let http = reqwest::Client::new();
    let meta: serde_json::Value =
        http.get(format!("{base}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], base);
    assert!(dir.path().join("data").join("agentidp.db").exists(), "data_dir from the file is used");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "serve exited with {exit:?} on SIGTERM");
}

/// `serve` on `data`.
async fn serve(data: &std::path::Path) -> ServeProcess {
    let mut cmd = agentidp();
    cmd.args(["serve", "--data-dir"]).arg(data).env("AGENTIDP_LOG", "warn");
    ServeProcess::start(cmd).await
}

async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let resp = http
        .post(format!("{base}/api/v1/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// A token is handed out only once its audit event is written: the AuditWriter batches
/// concurrent requests into one commit, and killing the process (no graceful drain) right
/// after the last answer must lose none of the events behind the answers given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_answered_is_audited_even_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let boot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (id, secret) = (boot["client_id"].as_str().unwrap(), boot["client_secret"].as_str().unwrap());
    let http = reqwest::Client::new();

    let first = serve(&data).await;
    let tokens = futures_util::future::join_all((0..256).map(|_| token(&http, &first.base, id, secret))).await;
    drop(first); // SIGKILL: no graceful drain

    let issued: std::collections::HashSet<String> =
        tokens.iter().map(|t| crate::support::jwt_parts(t).1["jti"].as_str().unwrap().to_string()).collect();
    assert_eq!(issued.len(), 256);

    let restarted = serve(&data).await;
    let base = &restarted.base;
    let admin = token(&http, base, id, secret).await;
    let mut audited = std::collections::HashSet::new();
    let mut cursor = String::new();
    loop {
        let page =
            get_json(&http, format!("{base}/api/v1/audit-events?action=token.issue&limit=200{cursor}"), &admin).await;
        for event in page["items"].as_array().unwrap() {
            audited.insert(event["detail"]["jti"].as_str().unwrap_or_default().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let lost: Vec<_> = issued.difference(&audited).collect();
    assert!(lost.is_empty(), "{} tokens answered without a stored audit event: {lost:?}", lost.len());
    let report = get_json(&http, format!("{base}/api/v1/audit-events/verify"), &admin).await;
    assert_eq!(report["intact"], true, "{report}");
}
