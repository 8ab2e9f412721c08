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
    // bootstrap + token + 5 creates
    assert_eq!(ids.len(), 7);
    let (status, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["events_checked"], 7);
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
        let sql = format!("UPDATE audit_events SET actor = 'mallory' WHERE id = '{victim}'");
        match &backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(app.storage.data_dir.join("agentidp.db")).unwrap();
                assert_eq!(conn.execute(&sql, []).unwrap(), 1);
            }
            Backend::Postgres { .. } => {
                let url = app.storage.database_url.as_deref().unwrap();
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                assert_eq!(client.execute(&sql, &[]).await.unwrap(), 1);
            }
        }
        let (status, report) = app.call(Method::GET, "/api/v1/audit-events/verify", &token, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["intact"], false, "{report}");
        assert_eq!(report["first_broken_event"], victim);
    }
}
