//! `agentidp ctl`, the admin CLI, against a running server: every command group, its
//! tables and its `--json`, and the errors an operator sees.

use serde_json::{json, Value};

use crate::support::{backends, spawn_app, App};

/// One `agentidp ctl` run: (succeeded, stdout, stderr). Asynchronous, so the server
/// this test runs in-process keeps answering while the command waits.
struct Ctl<'a> {
    app: &'a App,
    dir: std::path::PathBuf,
    /// AGENTIDP_CREDENTIALS, if any.
    credentials: Option<&'static str>,
}

impl Ctl<'_> {
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_with(args, "").await
    }

    async fn run_with(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
        for var in [
            "AGENTIDP_CLIENT_ID",
            "AGENTIDP_CLIENT_SECRET",
            "AGENTIDP_TOKEN",
            "AGENTIDP_CACERT",
            "AGENTIDP_CREDENTIALS",
        ] {
            cmd.env_remove(var);
        }
        if let Some(file) = self.credentials {
            cmd.env("AGENTIDP_CREDENTIALS", file);
        }
        cmd.current_dir(&self.dir)
            .arg("ctl")
            .args(args)
            .env("AGENTIDP_SERVER", &self.app.base)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// A successful run's stdout; panics with stderr otherwise.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "ctl {args:?} failed: {stderr}");
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args).await;
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("ctl {args:?} printed no JSON ({e}): {stdout}"))
    }

    /// A failing run's stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(!ok, "ctl {args:?} should fail: {stdout}");
        stderr
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_administers_a_running_server_with_a_credential() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.json"), serde_json::to_string(&app.boot).unwrap()).unwrap();
        let ctl = Ctl { app: &app, dir: dir.path().to_path_buf(), credentials: Some("admin.json") };
        let bare = Ctl { app: &app, dir: dir.path().to_path_buf(), credentials: None };

        // Organizations: the platform admin's.
        let org = ctl.json(&["--platform", "orgs", "create", "Acme", "--tier", "pro"]).await;
        assert_eq!((org["name"].as_str(), org["tier"].as_str()), (Some("Acme"), Some("pro")));
        let org_id = id(&org).to_string();
        let table = ctl.ok(&["--platform", "organizations", "list"]).await;
        assert!(table.starts_with("ID"), "a table with a header: {table}");
        assert!(table.lines().any(|l| l.contains(&org_id) && l.contains("Acme") && l.contains("pro")), "{table}");
        let renamed =
            ctl.json(&["--platform", "orgs", "update", &org_id, "--name", "Acme Labs", "--tier", "free"]).await;
        assert_eq!((renamed["name"].as_str(), renamed["tier"].as_str()), (Some("Acme Labs"), Some("free")));
        let record = ctl.ok(&["--platform", "orgs", "get", &org_id]).await;
        assert!(record.lines().any(|l| l.starts_with("name") && l.ends_with("Acme Labs")), "{record}");
        let usage = ctl.json(&["--platform", "orgs", "usage", &org_id]).await;
        assert!(usage.is_object(), "{usage}");
        // The org admin is no platform admin: the server's refusal, in words.
        let refused = ctl.fails(&["orgs", "create", "Nope"]).await;
        assert!(refused.contains("403") && refused.contains("platform:admin"), "{refused}");

        // Agents of the org admin's own organization.
        let agent = ctl
            .json(&[
                "agents",
                "create",
                "researcher",
                "--scope",
                "agents:read",
                "--description",
                "reads",
                "--metadata",
                r#"{"team":"x"}"#,
            ])
            .await;
        let agent_id = id(&agent).to_string();
        assert_eq!(agent["scopes"], json!(["agents:read"]));
        assert_eq!(agent["metadata"], json!({"team": "x"}));
        let list = ctl.json(&["agents", "list", "--all", "--limit", "1"]).await;
        let names: Vec<&str> = list["items"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
        assert!(names.contains(&"researcher") && names.contains(&"admin"), "--all follows every page: {names:?}");
        let first = ctl.run(&["agents", "list", "--limit", "1"]).await;
        assert!(first.2.contains("--cursor"), "a table names the next page: {}", first.2);
        let updated =
            ctl.json(&["agents", "update", &agent_id, "--scope", "agents:read", "--scope", "audit:read"]).await;
        assert_eq!(updated["scopes"], json!(["agents:read", "audit:read"]));
        assert_eq!(ctl.json(&["agents", "suspend", &agent_id]).await["status"], "suspended");
        assert_eq!(ctl.json(&["agents", "reactivate", &agent_id]).await["status"], "active");
        let bad = ctl.fails(&["agents", "get", "not-an-id"]).await;
        assert!(bad.contains("400") && bad.contains("not a valid id"), "{bad}");
        let bad = ctl.fails(&["agents", "create", "x", "--metadata", "{"]).await;
        assert!(bad.contains("--metadata is not JSON"), "{bad}");

        // Credentials: one saved to a file, which then serves as --credentials.
        let (ok, _, stderr) = ctl.run(&["credentials", "create", &agent_id, "--output", "agent.json"]).await;
        assert!(ok, "{stderr}");
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("agent.json")).unwrap()).unwrap();
        assert!(saved["client_secret"].as_str().unwrap().starts_with("aidp_sk_"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("agent.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = ctl.fails(&["credentials", "create", &agent_id, "--output", "agent.json"]).await;
        assert!(again.contains("exists"), "never overwritten: {again}");
        let creds = ctl.json(&["credentials", "list", &agent_id]).await;
        assert_eq!(creds["items"].as_array().map(Vec::len), Some(1), "the refused create issued nothing: {creds}");

        // Tokens: get (the token alone on stdout), introspect, revoke, introspect again.
        let token = ctl.ok(&["--credentials", "agent.json", "token", "get", "--scope", "agents:read"]).await;
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        let response = ctl.json(&["--credentials", "agent.json", "token", "get"]).await;
        assert_eq!(response["token_type"], "Bearer");
        let seen = ctl.json(&["token", "introspect", token]).await;
        assert_eq!((seen["active"].as_bool(), seen["scope"].as_str()), (Some(true), Some("agents:read")));
        let empty = ctl.fails(&["token", "revoke", "-"]).await;
        assert!(empty.contains("no token on standard input"), "{empty}");
        // RFC 7009 §2.1: a token is revoked by the client it was issued to.
        let foreign = ctl.fails(&["token", "revoke", token]).await;
        assert!(foreign.contains("not issued to this client"), "{foreign}");
        let (ok, _, stderr) =
            ctl.run_with(&["--credentials", "agent.json", "token", "revoke", "-"], &format!("{token}\n")).await;
        assert!(ok && stderr.contains("revoked"), "{stderr}");
        let record = ctl.ok(&["token", "introspect", token]).await;
        assert_eq!(record.trim(), "active  false");
        // The agent reads with its token; the API accepts what ctl got.
        let agents =
            bare.ok(&["--token", response["access_token"].as_str().unwrap(), "agents", "get", &agent_id]).await;
        assert!(agents.contains("researcher"), "{agents}");
        let needs_client = bare.fails(&["--token", "x.y.z", "token", "introspect", "x.y.z"]).await;
        assert!(needs_client.contains("client credential"), "{needs_client}");

        // Rotate and delete a credential.
        let cred_id = creds["items"][0]["id"].as_str().unwrap().to_string();
        let rotated = ctl.json(&["credentials", "rotate", &agent_id, &cred_id]).await;
        assert_ne!(rotated["client_secret"], saved["client_secret"]);
        let old = ctl.fails(&["--credentials", "agent.json", "token", "get"]).await;
        assert!(old.contains("401") && old.contains("invalid_client"), "the old secret is refused: {old}");
        ctl.ok(&["credentials", "delete", &agent_id, &cred_id]).await;
        let listed = ctl.ok(&["credentials", "list", &agent_id]).await;
        assert!(listed.lines().any(|l| l.contains(&cred_id) && l.contains("revoked")), "{listed}");

        // Keys: the platform admin's.
        let key = ctl.json(&["--platform", "keys", "rotate"]).await;
        assert_eq!(key["alg"], "ES256");
        assert!(ctl.fails(&["keys", "rotate"]).await.contains("platform:admin"));

        // Audit: list with a filter, verify on the server, export and verify it here.
        let events = ctl.json(&["audit", "list", "--action", "agent.suspend"]).await;
        let items = events["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{events}");
        assert_eq!(items[0]["target"], agent_id.as_str());
        let table = ctl.ok(&["audit", "list", "--limit", "5"]).await;
        assert!(table.starts_with("SEQ") && table.lines().count() == 6, "{table}");
        let report = ctl.json(&["audit", "verify"]).await;
        assert_eq!(report["intact"], true);
        let (ok, _, stderr) = ctl.run(&["audit", "export", "--output", "audit.ndjson"]).await;
        assert!(ok && stderr.contains("intact"), "{stderr}");
        let exported = std::fs::read_to_string(dir.path().join("audit.ndjson")).unwrap();
        let seqs: Vec<i64> =
            exported.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "the whole chain, oldest first");
        assert!(seqs.len() as u64 >= report["events_checked"].as_u64().unwrap());
        let offline = ctl.json(&["audit", "verify", "--file", "audit.ndjson"]).await;
        assert_eq!(
            (offline["intact"].as_bool(), offline["events_checked"].as_u64()),
            (Some(true), Some(seqs.len() as u64))
        );
        // One field changed in the file: the offline check names the event and exits 1.
        let tampered = exported.replacen("\"outcome\":\"success\"", "\"outcome\":\"failure\"", 1);
        assert_ne!(tampered, exported);
        std::fs::write(dir.path().join("tampered.ndjson"), &tampered).unwrap();
        let first_changed: Value =
            serde_json::from_str(tampered.lines().zip(exported.lines()).find(|(a, b)| a != b).map(|(a, _)| a).unwrap())
                .unwrap();
        let broken = ctl.fails(&["audit", "verify", "--file", "tampered.ndjson"]).await;
        assert!(broken.contains(&format!("broken at event {}", id(&first_changed))), "{broken}");
        // Against the chain's signed checkpoints and the JWKS, saved beside the export
        // (issue 37): the export holds each checkpointed event.
        let token = app.admin_token().await;
        let start = std::time::Instant::now();
        let page = loop {
            let (_, page) = app.call(reqwest::Method::GET, "/api/v1/audit-events/checkpoints", &token, None).await;
            if page["items"].as_array().is_some_and(|items| !items.is_empty()) {
                break page;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "no checkpoint: {page}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        std::fs::write(dir.path().join("checkpoints.json"), page.to_string()).unwrap();
        let jwks = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
        std::fs::write(dir.path().join("jwks.json"), jwks).unwrap();
        let signed = ["--checkpoints", "checkpoints.json", "--jwks", "jwks.json"];
        let report = ctl.json(&[&["audit", "verify", "--file", "audit.ndjson"][..], &signed[..]].concat()).await;
        assert_eq!(report["intact"], true, "{report}");
        assert!(report["checkpoints_checked"].as_u64() >= Some(1), "{report}");
        // Cut before the checkpointed event: the links left verify; the checkpoint does not.
        let seq = page["items"][0]["seq"].as_u64().unwrap() as usize;
        let cut: String = exported.lines().take(seq - 1).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.path().join("cut.ndjson"), cut).unwrap();
        let refused = ctl.fails(&[&["audit", "verify", "--file", "cut.ndjson"][..], &signed[..]].concat()).await;
        assert!(refused.contains("signed checkpoint"), "{refused}");
        // A checkpoint another key signed (its signature altered) is refused.
        let mut forged = page.clone();
        let jwt = forged["items"][0]["jwt"].as_str().unwrap().to_string();
        let (head, sig) = jwt.rsplit_once('.').unwrap();
        forged["items"][0]["jwt"] = json!(format!("{head}.{}", sig.chars().rev().collect::<String>()));
        std::fs::write(dir.path().join("forged.json"), forged.to_string()).unwrap();
        let args = ["audit", "verify", "--file", "audit.ndjson", "--checkpoints", "forged.json", "--jwks", "jwks.json"];
        let refused = ctl.fails(&args).await;
        assert!(refused.contains("does not verify"), "{refused}");

        // The compliance report: a score, a table of findings; CSV as the server writes it.
        let report = ctl.ok(&["compliance", "report"]).await;
        assert!(report.starts_with("score ") && report.contains("SEVERITY  CHECK"), "{report}");
        let json = ctl.json(&["compliance", "report"]).await;
        assert_eq!(json["checks"].as_array().map(Vec::len), Some(13));
        let csv = ctl.ok(&["compliance", "report", "--csv"]).await;
        assert!(csv.starts_with("finding,severity,title,agent_id,resources,remediation"), "{csv}");
        let mine = ctl.json(&["compliance", "agent", &agent_id]).await;
        assert_eq!(mine["agent_id"], agent_id.as_str());
        // Billing is not configured on this server: its reason, exit 1.
        let billing = ctl.fails(&["billing", "subscription"]).await;
        assert!(billing.contains("404") && billing.contains("billing is not configured"), "{billing}");

        // Deleting, and what ctl says without a credential or a server.
        ctl.ok(&["agents", "delete", &agent_id]).await;
        assert!(ctl.fails(&["agents", "get", &agent_id]).await.contains("404"));
        ctl.ok(&["--platform", "orgs", "delete", &org_id]).await;
        let none = bare.fails(&["agents", "list"]).await;
        assert!(none.contains("no credential: give --credentials"), "{none}");
        let missing = ctl.fails(&["--credentials", "missing.json", "agents", "list"]).await;
        assert!(missing.contains("missing.json"), "{missing}");
        let down = ctl.fails(&["--server", "http://127.0.0.1:9", "agents", "list"]).await;
        assert!(down.contains("cannot reach http://127.0.0.1:9"), "{down}");
        app.stop().await;
    }
}

/// Issue 28, item 10: `ctl` sent `client_id:client_secret` as Basic, then the bearer
/// token, over plain HTTP to any host. Plain http is refused before anything is sent,
/// unless the server is loopback or the operator says `--insecure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_refuses_plain_http_to_a_host_that_is_not_loopback_without_insecure() {
    let app = spawn_app(&backends()[0]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.json"), serde_json::to_string(&app.boot).unwrap()).unwrap();
    let ctl = Ctl { app: &app, dir: dir.path().to_path_buf(), credentials: Some("admin.json") };
    // The TEST-NET address is never reached: the refusal comes first.
    for server in ["http://192.0.2.1:8080", "http://idp.example", "http://[2001:db8::1]:8080"] {
        let refused = ctl.fails(&["--server", server, "agents", "list"]).await;
        assert!(refused.contains("clear text") && refused.contains("--insecure"), "{server}: {refused}");
        assert!(!refused.contains("cannot reach"), "nothing was sent to {server}: {refused}");
    }
    // 0.0.0.0 is this machine too, but not a loopback name: --insecure lets it through.
    let port = app.base.rsplit(':').next().unwrap();
    let wildcard = format!("http://0.0.0.0:{port}");
    assert!(ctl.fails(&["--server", &wildcard, "agents", "list"]).await.contains("--insecure"));
    let listed = ctl.ok(&["--server", &wildcard, "--insecure", "agents", "list"]).await;
    assert!(listed.starts_with("ID"), "{listed}");
    // Loopback needs no flag, by address or by name.
    assert!(ctl.ok(&["agents", "list"]).await.starts_with("ID"));
    let by_name = format!("http://localhost:{port}");
    assert!(ctl.ok(&["--server", &by_name, "agents", "list"]).await.starts_with("ID"));
    app.stop().await;
}

/// Issue 28, item 17: `credentials create --output FILE` printed the secret to stdout as
/// well; `orgs usage` needed an id the README did not give (now: the caller's own
/// organization by default); the compliance line said "1 agents".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_keeps_a_saved_secret_off_stdout_and_reads_its_own_usage() {
    let app = spawn_app(&backends()[0]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.json"), serde_json::to_string(&app.boot).unwrap()).unwrap();
    let ctl = Ctl { app: &app, dir: dir.path().to_path_buf(), credentials: Some("admin.json") };
    let agent = ctl.json(&["agents", "create", "saver", "--scope", "agents:read"]).await;
    let agent_id = id(&agent).to_string();
    for (file, json) in [("a.json", false), ("b.json", true)] {
        let mut args = vec!["credentials", "create", &agent_id, "--output", file];
        if json {
            args.push("--json");
        }
        let (ok, stdout, stderr) = ctl.run(&args).await;
        assert!(ok, "{stderr}");
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(file)).unwrap()).unwrap();
        let secret = saved["client_secret"].as_str().unwrap();
        assert!(secret.starts_with("aidp_sk_"), "{saved}");
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "the secret is in {file} only: {stdout}");
        assert!(stdout.contains(saved["client_id"].as_str().unwrap()), "the credential is still shown: {stdout}");
    }
    // Without --output the secret is shown, once: there is nowhere else it goes.
    let shown = ctl.json(&["credentials", "create", &agent_id]).await;
    assert!(shown["client_secret"].as_str().is_some_and(|s| s.starts_with("aidp_sk_")), "{shown}");

    // Usage: the caller's own organization with no id, as with its id.
    let own = ctl.json(&["orgs", "usage"]).await;
    let by_id = ctl.json(&["orgs", "usage", &app.boot.org_id.to_string()]).await;
    assert_eq!((own["tier"].clone(), own["agents"].clone()), (by_id["tier"].clone(), by_id["agents"].clone()));
    assert!(own["calls"]["used"].is_u64(), "{own}");
    let record = ctl.ok(&["orgs", "usage"]).await;
    assert!(record.lines().any(|l| l.starts_with("tier")), "{record}");

    // An organization of one agent, without a DID key: "1 agent", "1 agent has".
    let org = ctl.json(&["--platform", "orgs", "create", "Solo"]).await;
    let org_id = id(&org).to_string();
    ctl.json(&["--platform", "agents", "--org-id", &org_id, "create", "only"]).await;
    let report = ctl.ok(&["--platform", "compliance", "--org-id", &org_id, "report"]).await;
    assert!(report.contains("(1 agent checked)") && report.contains("1 agent has no DID key"), "{report}");
    assert!(!report.contains("1 agents"), "{report}");
    app.stop().await;
}

/// Issue 30, item 9: `agentidp ctl users`, the password read from standard input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_manages_users_reading_passwords_from_standard_input() {
    let app = spawn_app(&backends()[0]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.json"), serde_json::to_string(&app.boot).unwrap()).unwrap();
    let ctl = Ctl { app: &app, dir: dir.path().to_path_buf(), credentials: Some("admin.json") };
    let (ok, stdout, stderr) = ctl
        .run_with(
            &[
                "users",
                "create",
                "Grace@Example.com",
                "--name",
                "Grace",
                "--scope",
                "agents:read",
                "--password-stdin",
                "--json",
            ],
            "velvet quarry lantern mosaic\n",
        )
        .await;
    assert!(ok, "{stderr}");
    let grace: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((grace["email"].as_str(), grace["has_password"].as_bool()), (Some("grace@example.com"), Some(true)));
    let user_id = id(&grace).to_string();
    let table = ctl.ok(&["users", "list", "--email", "grace"]).await;
    assert!(table.starts_with("ID") && table.contains("grace@example.com"), "{table}");
    let updated = ctl.json(&["users", "update", &user_id, "--name", "Grace Hopper", "--no-scopes"]).await;
    assert_eq!((updated["name"].as_str(), updated["scopes"].clone()), (Some("Grace Hopper"), json!([])));
    assert_eq!(ctl.json(&["users", "suspend", &user_id]).await["status"], "suspended");
    assert_eq!(ctl.json(&["users", "reactivate", &user_id]).await["status"], "active");
    let (ok, _, stderr) = ctl.run_with(&["users", "set-password", &user_id], "password123456789\n").await;
    assert!(!ok && stderr.contains("400") && stderr.contains("password"), "a guessable password: {stderr}");
    let (ok, _, stderr) = ctl.run_with(&["users", "set-password", &user_id], "orbit tundra saffron whistle\n").await;
    assert!(ok, "{stderr}");
    let origin = agentidp_engine::Origin::default();
    app.engine.sign_in(app.boot.org_id, "grace@example.com", "orbit tundra saffron whistle", &origin).await.unwrap();
    let (ok, _, stderr) = ctl.run(&["users", "delete", &user_id]).await;
    assert!(ok && stderr.contains("deleted"), "{stderr}");
    assert!(ctl.fails(&["users", "get", &user_id]).await.contains("404"));
    app.stop().await;
}
