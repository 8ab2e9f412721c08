//! The audit trail: what is recorded, filters, pagination, and hash-chain verification
//! (including detection of an edit made behind the server's back).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::each_backend;
use crate::support::{spawn_app, Backend};

async fn events(app: &crate::support::App, token: &str, query: &str) -> Vec<Value> {
    let (status, page) = app.call(Method::GET, &format!("/api/v1/audit-events{query}"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

each_backend!(mutations_tokens_and_failures_are_audited_with_request_ids, |app| {
    let token = app.admin_token().await;
    let resp = app
        .http
        .post(app.url("/api/v1/agents"))
        .bearer_auth(&token)
        .header("x-request-id", "req-create-1")
        .json(&json!({"name": "audited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-request-id"], "req-create-1");
    let agent: Value = resp.json().await.unwrap();
    let (status, _) = app.token_request(&app.boot.client_id, "wrong-secret", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let all = events(&app, &token, "").await;
    let created = all.iter().find(|e| e["action"] == "agent.create").expect("agent.create audited");
    assert_eq!(created["target"], agent["id"]);
    assert_eq!(created["actor"], app.boot.agent_id.to_string());
    assert_eq!(created["outcome"], "success");
    assert_eq!(created["request_id"], "req-create-1");
    assert!(all.iter().any(|e| e["action"] == "token.issue" && e["outcome"] == "success"));
    let failed = all.iter().find(|e| e["action"] == "client.authenticate").expect("failed auth audited");
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["actor"], app.boot.client_id);
    // newest first
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");

    // filters
    let only = events(&app, &token, "?action=agent.create").await;
    assert!(only.len() == 1 && only[0]["action"] == "agent.create");
    let failures = events(&app, &token, "?outcome=failure").await;
    assert!(failures.iter().all(|e| e["outcome"] == "failure") && !failures.is_empty());
    let by_agent = events(&app, &token, &format!("?agent_id={}", agent["id"].as_str().unwrap())).await;
    assert_eq!(by_agent.len(), 1);
    let future = events(&app, &token, "?since=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    let past = events(&app, &token, "?until=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());
    let (status, body) = app.call(Method::GET, "/api/v1/audit-events?since=yesterday", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "since");

    // one event by id
    let id = created["id"].as_str().unwrap();
    let (status, one) = app.call(Method::GET, &format!("/api/v1/audit-events/{id}"), &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, created);
});

each_backend!(audit_pages_and_the_chain_verifies, |app| {
    let token = app.admin_token().await;
    for i in 0..5 {
        app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": format!("n{i}")}))).await;
    }
    let mut ids = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let (_, page) = app.call(Method::GET, &format!("/api/v1/audit-events{query}"), &token, None).await;
        ids.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    // bootstrap (the organization, its admin person) + token + 5 creates
    assert_eq!(ids.len(), 8);
    let (status, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["events_checked"], 8);
});

each_backend!(another_organizations_audit_events_are_invisible, |app| {
    let platform = app.platform_token().await;
    let admin = app.admin_token().await;
    let platform_events = events(&app, &platform, "").await;
    let foreign = platform_events[0]["id"].as_str().unwrap();
    let (status, _) = app.call(Method::GET, &format!("/api/v1/audit-events/{foreign}"), &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) =
        app.call(Method::GET, &format!("/api/v1/audit-events?org_id={}", app.boot.platform_org_id), &admin, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // the platform admin may read any organization's trail
    let theirs = events(&app, &platform, &format!("?org_id={}", app.boot.org_id)).await;
    assert!(!theirs.is_empty());
});

#[tokio::test]
async fn an_edited_event_breaks_the_chain() {
    for backend in crate::support::backends() {
        let app = spawn_app(&backend).await;
        let token = app.admin_token().await;
        for i in 0..3 {
            app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": format!("t{i}")}))).await;
        }
        let (_, page) = app.call(Method::GET, "/api/v1/audit-events?action=agent.create", &token, None).await;
        let victim = page["items"][1]["id"].as_str().unwrap().to_string();
        assert_eq!(tamper(&app, &backend, &rewrite(&backend, &victim)).await, 1);
        let (status, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["intact"], false, "{report}");
        assert_eq!(report["first_broken_event"], victim);
    }
}

/// SQL that rewrites the stored event `id` (it becomes a token issuance), as someone
/// with the database's password could.
fn rewrite(backend: &Backend, id: &str) -> String {
    let id = match backend {
        Backend::Sqlite => format!("X'{}'", id.replace('-', "")),
        Backend::Postgres { .. } => format!("'{id}'"),
    };
    format!(
        "UPDATE audit_records SET action = (SELECT n FROM audit_strings WHERE text = 'token.issue') WHERE id = {id}"
    )
}

/// Run SQL on a test app's store, behind the server's back.
async fn tamper(app: &crate::support::App, backend: &Backend, sql: &str) -> u64 {
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(app.storage.data_dir.join("agentidp.db")).unwrap();
            conn.execute(sql, []).unwrap() as u64
        }
        Backend::Postgres { .. } => {
            let url = app.storage.database_url.as_deref().unwrap();
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client.execute(sql, &[]).await.unwrap()
        }
    }
}

const VERIFY_CHECKPOINT: &str = r#"
import json, sys
import jwt
base, token = sys.argv[1], sys.argv[2]
key = jwt.PyJWKClient(base + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
assert jwt.get_unverified_header(token)["typ"] == "audit-checkpoint+jwt"
claims = jwt.decode(token, key.key, algorithms=["ES256"], issuer=base, options={"require": ["iss", "sub", "iat"]})
print(json.dumps(claims))
"#;

/// Issue 37, item 2: every chain gets signed checkpoints, which PyJWT verifies against
/// the JWKS; a chain that lost its newest events (the checkpointed one among them), or
/// whose checkpointed event was rewritten, no longer verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_vouch_for_the_head_and_expose_a_truncated_chain() {
    for backend in crate::support::backends() {
        let app = crate::support::spawn_app_with(&backend, |config| {
            config.checkpoints.every = std::time::Duration::from_millis(50);
            // The injected clock stands still: a checkpoint follows every move of the head.
            config.checkpoints.every_events = 1;
        })
        .await;
        let token = app.admin_token().await;
        for i in 0..4 {
            app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": format!("c{i}")}))).await;
        }
        // The head: the newest event of the organization's chain, checkpointed.
        let head = until_checkpointed(&app, &token).await;
        let (status, page) = app.call(Method::GET, "/api/v1/audit-events/checkpoints", &token, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let checkpoint = page["items"][0].clone();
        assert_eq!(checkpoint["seq"], head["seq"], "{checkpoint} {head}");
        assert_eq!(checkpoint["hash"], head["hash"], "{checkpoint} {head}");

        // An independent JWT library verifies it against the JWKS.
        let (base, jwt) = (app.base.clone(), checkpoint["jwt"].as_str().unwrap().to_string());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(["-c", VERIFY_CHECKPOINT, &base, &jwt]).output()
        })
        .await
        .unwrap()
        .expect("python3 with PyJWT");
        assert!(out.status.success(), "PyJWT refused the checkpoint:\n{}", String::from_utf8_lossy(&out.stderr));
        let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(claims["sub"], app.boot.org_id.to_string());
        assert_eq!(claims["seq"], checkpoint["seq"]);
        assert_eq!(claims["hash"], checkpoint["hash"]);
        // It is not an access token.
        let (status, _) = app.call(Method::GET, "/api/v1/agents", checkpoint["jwt"].as_str().unwrap(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(report["intact"], true, "{report}");
        assert_eq!(report["checkpoint"]["seq"], checkpoint["seq"], "{report}");
        assert_eq!(report["checkpoint"]["holds"], true, "{report}");

        // The newest events removed — head and all, the links left intact: only the
        // checkpoint tells. (The token in hand: issuing another would append an event.)
        let seq = checkpoint["seq"].as_i64().unwrap();
        let chain = app.boot.org_id;
        let sql = match backend {
            // SQLite keys a record by its chain's number above its seq (n << 40 | seq).
            Backend::Sqlite => format!(
                "DELETE FROM audit_records WHERE key >> 40 = (SELECT n FROM audit_heads WHERE chain = '{chain}') \
                 AND key & 1099511627775 > {}",
                seq - 2
            ),
            Backend::Postgres { .. } => format!(
                "DELETE FROM audit_records WHERE chain = (SELECT n FROM audit_heads WHERE chain = '{chain}') AND seq > {}",
                seq - 2
            ),
        };
        let removed = tamper(&app, &backend, &sql).await;
        assert!(removed >= 2, "{removed}");
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(report["intact"], false, "{report}");
        assert_eq!(report["first_broken_event"], Value::Null, "the links that are left are intact: {report}");
        assert_eq!(report["checkpoint"]["holds"], false, "{report}");
    }
}

/// Wait until the organization's chain has a checkpoint of its head; that head.
async fn until_checkpointed(app: &crate::support::App, token: &str) -> Value {
    let head = events(app, token, "?limit=1").await[0].clone();
    let start = std::time::Instant::now();
    loop {
        let (_, page) = app.call(Method::GET, "/api/v1/audit-events/checkpoints?limit=1", token, None).await;
        if page["items"][0]["seq"] == head["seq"] {
            return head;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "no checkpoint of {head}: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
}

/// Issue 37, item 4: verification resumes after the last checkpoint it found intact, so
/// its cost follows the new events; `full=true` walks the whole chain again, and only it
/// sees an edit made before that checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_resumes_from_the_last_verified_checkpoint() {
    for backend in crate::support::backends() {
        let app = crate::support::spawn_app_with(&backend, |config| {
            config.checkpoints.every = std::time::Duration::from_millis(30);
            config.checkpoints.every_events = 1;
        })
        .await;
        let token = app.admin_token().await;
        for i in 0..3 {
            app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": format!("v{i}")}))).await;
        }
        let first = until_checkpointed(&app, &token).await;
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(report["intact"], true, "{report}");
        assert_eq!(report["resumed_after"], Value::Null, "the first verification walks it all: {report}");
        assert_eq!(report["events_checked"], first["seq"], "{report}");

        let (_, victim) = app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": "victim"}))).await;
        app.call(Method::POST, "/api/v1/agents", &token, Some(json!({"name": "after"}))).await;
        let second = until_checkpointed(&app, &token).await;
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(report["intact"], true, "{report}");
        assert_eq!(report["resumed_after"], first["seq"], "{report}");
        let new = second["seq"].as_i64().unwrap() - first["seq"].as_i64().unwrap();
        assert_eq!(report["events_checked"], new, "only the new events: {report}");

        // An edit before the verified checkpoint: the resumed walk does not see it (its
        // event's hash no longer recomputes, but that event is behind the resume point);
        // the full walk does.
        let events_now = events(&app, &token, "?action=agent.create&limit=2").await;
        let edited = events_now[1]["id"].as_str().unwrap().to_string();
        assert_eq!(events_now[1]["target"], victim["id"], "{events_now:?}");
        tamper(&app, &backend, &rewrite(&backend, &edited)).await;
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(report["resumed_after"], second["seq"], "{report}");
        assert_eq!(report["intact"], true, "behind the resume point: {report}");
        let (_, report) = app.call(Method::GET, "/api/v1/audit-events/verify?full=true", &token, None).await;
        assert_eq!(report["intact"], false, "{report}");
        assert_eq!(report["first_broken_event"], edited, "{report}");
        assert_eq!(report["resumed_after"], Value::Null);
    }
}
