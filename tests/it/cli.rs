//! The `agentidp` binary as an operator runs it: bootstrap, migrate, serve, SIGTERM.

use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{JsonBody, ServeProcess};

pub(crate) fn agentidp() -> Command {
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
    // The administrator as a person: an email and a generated password, shown once.
    assert_eq!(boot["admin_email"], "admin@localhost");
    let password = boot["admin_password"].as_str().unwrap();
    assert!(password.len() >= 20 && !log.contains(password), "{boot}");
    // a second bootstrap refuses
    let again = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!again.status.success());
    let out = agentidp().args(["migrate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "schema at version 18");
    let out = agentidp().args(["keys", "rotate", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["alg"], "ES256");
    assert!(key["activates_at"].as_str().unwrap() > key["created_at"].as_str().unwrap());
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
    let log_path = dir.path().join("serve.log");
    let mut child = agentidp()
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("AGENTIDP_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    crate::support::wait_until_up(&format!("{base}/ready"), "agentidp serve").await;
    let http = reqwest::Client::new();
    let meta: serde_json::Value = http.get(format!("{base}/.well-known/oauth-authorization-server")).json_body().await;
    assert_eq!(meta["issuer"], base);
    assert!(dir.path().join("data").join("agentidp.db").exists(), "data_dir from the file is used");
    // A refusal's access line says why and for which client, never the secret.
    let form =
        [("grant_type", "client_credentials"), ("client_id", "aidp_ci_nosuch"), ("client_secret", "s3cr3t-value")];
    let refused = http.post(format!("{base}/api/v1/oauth2/token")).form(&form).send().await.unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "serve exited with {exit:?} on SIGTERM");
    // stderr was a file: plain text, no ANSI colour codes.
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.is_empty(), "serve logged nothing at info");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file: {log:?}");
    // The first line says what runs where; the last that it stopped cleanly.
    let serving = log.lines().find(|l| l.contains("serving")).unwrap_or_else(|| panic!("no startup line: {log}"));
    for part in [env!("CARGO_PKG_VERSION"), "SQLite", "in-process", &base, &format!("127.0.0.1:{port}")] {
        assert!(serving.contains(part), "{part} missing from the startup line: {serving}");
    }
    assert!(log.lines().last().is_some_and(|l| l.contains("stopped")), "no final stopped line: {log}");
    let line = log.lines().find(|l| l.contains("status=401")).unwrap_or_else(|| panic!("no 401 access line: {log}"));
    for part in ["client_id=aidp_ci_nosuch", "reason=invalid_client: client authentication failed"] {
        assert!(line.contains(part), "{part} missing from the access line: {line}");
    }
    assert!(!log.contains("s3cr3t-value"), "a secret in the log: {log}");
}

/// `serve` on `data`.
async fn serve(data: &std::path::Path) -> ServeProcess {
    serve_configured(data, "").await
}

/// `serve` on `data` with a configuration file holding `toml`.
async fn serve_configured(data: &std::path::Path, toml: &str) -> ServeProcess {
    let config = data.with_extension("toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = agentidp();
    cmd.args(["serve", "--data-dir"]).arg(data).arg("--config").arg(&config).env("AGENTIDP_LOG", "warn");
    ServeProcess::start(cmd).await
}

/// The free tier without its token rate and daily quota, for tests that load one client.
const UNLIMITED_FREE_TIER: &str =
    "[tiers.free]\ncalls_per_day = \"unlimited\"\ntoken_rate = 100000\ntoken_burst = 100000\n";

async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url).bearer_auth(token).json_body().await
}

async fn token(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let (status, token) = token_response(http, base, id, secret).await;
    assert_eq!(status, 200);
    token
}

/// Client credentials with client_secret_basic: the status and the token (empty if none).
async fn token_response(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> (StatusCode, String) {
    let resp = http
        .post(format!("{base}/api/v1/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body["access_token"].as_str().unwrap_or_default().to_string())
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

    let first = serve_configured(&data, UNLIMITED_FREE_TIER).await;
    let tokens = futures_util::future::join_all((0..256).map(|_| token(&http, &first.base, id, secret))).await;
    drop(first); // SIGKILL: no graceful drain

    let issued: std::collections::HashSet<String> =
        tokens.iter().map(|t| crate::support::jwt_parts(t).1["jti"].as_str().unwrap().to_string()).collect();
    assert_eq!(issued.len(), 256);

    let restarted = serve_configured(&data, UNLIMITED_FREE_TIER).await;
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

/// The operator's way back in: with the platform administrator suspended (by a second
/// one), `agentidp admin recover` — run beside the live server — reactivates it with a
/// fresh credential, audited; the running node honours it within its feed poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_recover_reactivates_the_platform_admin_beside_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let boot: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (pid, psecret) =
        (boot["platform_client_id"].as_str().unwrap(), boot["platform_client_secret"].as_str().unwrap());
    let server = serve(&data).await;
    let (base, http) = (server.base.clone(), reqwest::Client::new());
    let call = |method: Method, path: String, token: String, body: Option<Value>| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut req = http.request(method, format!("{base}{path}")).bearer_auth(token);
            if let Some(body) = body {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (_, first) = token_response(&http, &base, pid, psecret).await;
    let (_, me) = call(Method::GET, "/api/v1/agents".into(), first.clone(), None).await;
    let first_id = me["items"][0]["id"].as_str().unwrap().to_string();
    let scopes = me["items"][0]["scopes"].clone();
    // A second platform administrator suspends the first.
    let (status, second) =
        call(Method::POST, "/api/v1/agents".into(), first.clone(), Some(json!({"name": "second", "scopes": scopes})))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_id = second["id"].as_str().unwrap();
    let (_, cred) = call(Method::POST, format!("/api/v1/agents/{second_id}/credentials"), first.clone(), None).await;
    let (_, second_token) =
        token_response(&http, &base, cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str().unwrap())
            .await;
    let (status, _) = call(Method::POST, format!("/api/v1/agents/{first_id}/suspend"), second_token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token_response(&http, &base, pid, psecret).await.0, StatusCode::UNAUTHORIZED);

    let out = agentidp().args(["admin", "recover", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recovered: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recovered["agent_id"], first_id.as_str(), "the oldest platform admin is the one recovered");
    assert_eq!(recovered["created"], false);
    let (id, secret) = (recovered["client_id"].as_str().unwrap(), recovered["client_secret"].as_str().unwrap());
    let started = std::time::Instant::now();
    let fresh = loop {
        match token_response(&http, &base, id, secret).await {
            (StatusCode::OK, t) => break t,
            (status, _) => {
                assert!(
                    started.elapsed().as_secs() < 5,
                    "the running node still refuses the recovered admin: {status}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(call(Method::GET, "/api/v1/organizations".into(), fresh.clone(), None).await.0, StatusCode::OK);
    let (_, events) = call(Method::GET, "/api/v1/audit-events?action=admin.recover".into(), fresh.clone(), None).await;
    assert_eq!(events["items"][0]["actor"], "operator", "{events}");
    let (_, report) = call(Method::GET, "/api/v1/audit-events/verify".into(), fresh, None).await;
    assert_eq!(report["intact"], true, "{report}");
}

/// A second bootstrap is refused with one line saying what to do, never a backtrace.
#[test]
fn a_second_bootstrap_says_what_to_do_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(agentidp().args(["bootstrap", "--data-dir"]).arg(&data).output().unwrap().status.success());
    let out =
        agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).env("RUST_BACKTRACE", "1").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("admin recover"), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Stack"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout to truncate a file with");
}

/// Issue 15, item 1: the quick start's `bootstrap --output` writes an owner-only file,
/// never overwrites one (a re-run keeps the credentials), and leaves no file behind when
/// the store is bootstrapped already.
#[test]
fn bootstrap_output_is_owner_only_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("admin.json");
    let out = agentidp().args(["bootstrap", "--output"]).arg(&file).arg("--data-dir").arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "the secrets go to the file only");
    let saved = std::fs::read_to_string(&file).unwrap();
    let boot: Value = serde_json::from_str(&saved).unwrap();
    assert!(boot["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Re-running the quick start: refused, the file as it was.
    let again = agentidp().args(["bootstrap", "--output"]).arg(&file).arg("--data-dir").arg(&data).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("left as it is"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), saved);
    // Another file on a bootstrapped store: refused, and no empty file left behind.
    let other = dir.path().join("other.json");
    let out = agentidp().args(["bootstrap", "--output"]).arg(&other).arg("--data-dir").arg(&data).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin recover"));
    assert!(!other.exists(), "no file is left when nothing was bootstrapped");
}

/// Defect 10: under umask 022 the data directory was 0755 and the database (which holds
/// the secret-hash key beside the hashes) and its -wal/-shm files 0644.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 022; exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_agentidp"), "serve", "--data-dir"])
        .arg(&data)
        .env("AGENTIDP_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    let server = ServeProcess::start(cmd).await;
    let mode = |name: &str| std::fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    for file in ["agentidp.db", "agentidp.db-wal", "agentidp.db-shm", "master.key"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    drop(server);
}

/// Issue 15, item 10: a backup taken while the server works restores into a fresh data
/// dir (with the master key beside it) where every record is and the audit chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_with_every_record_and_an_intact_chain() {
    use reqwest::StatusCode;
    let dir = tempfile::tempdir().unwrap();
    let (live, restored, backup) = (dir.path().join("live"), dir.path().join("restored"), dir.path().join("backup.db"));
    let boot = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&live).output().unwrap();
    assert!(boot.status.success(), "{}", String::from_utf8_lossy(&boot.stderr));
    let creds: serde_json::Value = serde_json::from_slice(&boot.stdout).unwrap();
    let mut serve = agentidp();
    serve.args(["serve", "--data-dir"]).arg(&live).env_remove("AGENTIDP_LOG");
    let server = crate::support::ServeProcess::start(serve).await;
    let http = reqwest::Client::new();
    let (id, secret) =
        (creds["client_id"].as_str().unwrap().to_string(), creds["client_secret"].as_str().unwrap().to_string());
    let token_at = move |base: String| {
        let (id, secret) = (id.clone(), secret.clone());
        async move { crate::support::client_token(&base, &id, &secret).await }
    };
    let admin = token_at(server.base.clone()).await;
    let mut agents = Vec::new();
    for i in 0..5 {
        let resp = http
            .post(format!("{}/api/v1/agents", server.base))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": format!("kept-{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        agents.push(resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    // Load while the backup runs: tokens, each an audit event committed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (stop, base) = (stop.clone(), server.base.clone());
        let token_at = token_at.clone();
        async move {
            let mut issued = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                token_at(base.clone()).await;
                issued += 1;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            issued
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let out = tokio::task::spawn_blocking({
        let (live, backup) = (live.clone(), backup.clone());
        move || agentidp().args(["backup", "--data-dir"]).arg(&live).arg(&backup).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master.key"), "the backup must say to keep the master key");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.await.unwrap() > 0);
    drop(server);
    // A backup never overwrites; a restore needs the master key, then an empty data dir.
    assert!(!agentidp().args(["backup", "--data-dir"]).arg(&live).arg(&backup).output().unwrap().status.success());
    let refused = agentidp().args(["restore", "--data-dir"]).arg(&restored).arg(&backup).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("master key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(live.join("master.key"), restored.join("master.key")).unwrap();
    let out = agentidp().args(["restore", "--data-dir"]).arg(&restored).arg(&backup).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!agentidp().args(["restore", "--data-dir"]).arg(&restored).arg(&backup).output().unwrap().status.success());
    let not_a_backup = dir.path().join("junk");
    std::fs::write(&not_a_backup, b"not a database").unwrap();
    let out =
        agentidp().args(["restore", "--data-dir"]).arg(dir.path().join("other")).arg(&not_a_backup).output().unwrap();
    assert!(!out.status.success());

    let mut serve = agentidp();
    serve.args(["serve", "--data-dir"]).arg(&restored).env_remove("AGENTIDP_LOG");
    let server = crate::support::ServeProcess::start(serve).await;
    let admin = token_at(server.base.clone()).await; // the signing keys were unsealed
    for id in &agents {
        let resp = http.get(format!("{}/api/v1/agents/{id}", server.base)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "agent {id} lost");
    }
    let report: serde_json::Value =
        http.get(format!("{}/api/v1/audit-events/verify", server.base)).bearer_auth(&admin).json_body().await;
    assert_eq!(report["intact"], true, "{report}");
}

/// Issue 28, item 13: an operator-placed `master.key` with mode 0644 was accepted and
/// left world-readable. It is made owner-only at start, with a warning in the log.
#[cfg(unix)]
#[test]
fn a_master_key_open_to_others_is_made_owner_only_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key = data.join("master.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = agentidp().args(["bootstrap", "--json", "--data-dir"]).arg(&data).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(stderr.contains("WARN") && stderr.contains("master.key was open to group or others"), "{stderr}");
    assert!(stderr.contains("was=644"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), [7u8; 32], "the key itself is kept");
    // Owner-only already: nothing to say.
    let out = agentidp().args(["keys", "rotate", "--data-dir"]).arg(&data).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("master.key"), "{stderr}");
}

/// Issue 28, item 11: the README's quick start, run as written (bash, curl, jq) and then
/// run again. The second run used to get a 409 for the agent, make `AGENT` "null" and
/// overwrite agent.json — the only copy of its secret — with the error; the secret files
/// were 0644. Now every step is idempotent or refuses clearly, and secrets are 0600.
#[cfg(unix)]
#[test]
fn the_readme_quick_start_runs_twice_and_keeps_its_secrets_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let block = readme.split("## Quick start").nth(1).and_then(|r| r.split("```sh\n").nth(1)).unwrap();
    let block = block.split("\n```").next().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // As written, but on a free port, with the binary under test, and the server's PID
    // kept so that the test can stop it.
    let script: Vec<String> = block
        .lines()
        .filter(|l| !l.starts_with("cargo build") && !l.starts_with("export PATH="))
        .map(|l| match l {
            "agentidp serve &" => "agentidp serve & echo $! >> serve.pids".to_string(),
            _ => l.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")),
        })
        .collect();
    let script = script.join("\n");
    assert!(script.contains("serve.pids"), "the quick start no longer starts the server so: {block}");
    let dir = tempfile::tempdir().unwrap();
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            for pid in std::fs::read_to_string(&self.0).unwrap_or_default().split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
            }
        }
    }
    let _stop = Stop(dir.path().join("serve.pids"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_agentidp")).parent().unwrap().to_path_buf();
    let run = |n: u32| {
        let (out, err) = (dir.path().join(format!("run{n}.out")), dir.path().join(format!("run{n}.err")));
        let mut cmd = Command::new("bash");
        cmd.args(["-c", &script])
            .current_dir(dir.path())
            .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
            .env("AGENTIDP_LISTEN", format!("127.0.0.1:{port}"))
            .env("AGENTIDP_LOG", "warn")
            // Files, not pipes: the server started in the background keeps them open.
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for var in ["DATABASE_URL", "REDIS_URL", "AGENTIDP_CONFIG", "AGENTIDP_DATA_DIR", "CURL_HOME"] {
            cmd.env_remove(var);
        }
        let status = cmd.status().unwrap();
        (status, std::fs::read_to_string(out).unwrap(), std::fs::read_to_string(err).unwrap())
    };
    let mode = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;

    let (status, stdout, stderr) = run(1);
    assert!(
        status.success() && stdout.contains("\"researcher\"") && stdout.contains("\"intact\": true"),
        "{stdout}{stderr}"
    );
    let agent = std::fs::read_to_string(dir.path().join("agent.json")).unwrap();
    let saved: Value = serde_json::from_str(&agent).unwrap_or_else(|e| panic!("agent.json: {e}: {agent}"));
    assert!(saved["client_secret"].as_str().is_some_and(|s| s.starts_with("aidp_sk_")), "{agent}");
    assert_eq!((mode("admin.json"), mode("agent.json")), (0o600, 0o600), "secret files are owner-only");
    let admin = std::fs::read_to_string(dir.path().join("admin.json")).unwrap();

    let (status, stdout, stderr) = run(2);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("left as it is"), "the bootstrap step says why it did nothing: {stderr}");
    assert!(!stdout.contains("not a valid id") && !stderr.contains("not a valid id"), "{stdout}{stderr}");
    assert!(stdout.contains("\"researcher\"") && stdout.contains("\"intact\": true"), "{stdout}{stderr}");
    assert_eq!(std::fs::read_to_string(dir.path().join("agent.json")).unwrap(), agent, "agent.json is kept");
    assert_eq!(std::fs::read_to_string(dir.path().join("admin.json")).unwrap(), admin, "admin.json is kept");
    assert_eq!((mode("admin.json"), mode("agent.json")), (0o600, 0o600));
}
