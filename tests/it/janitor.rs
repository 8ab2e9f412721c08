//! Issue 37, item 5: the janitor under token load — it removes what has ended in short
//! batches while tokens are issued beside it, and neither loses anything.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{backends, spawn_app_with, App};

async fn revoke(app: &App, token: &str) {
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/revoke"))
        .basic_auth(&app.boot.client_id, Some(&app.boot.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn introspect(app: &App, token: &str) -> Value {
    let resp = app
        .http
        .post(app.url("/api/v1/oauth2/introspect"))
        .basic_auth(&app.boot.client_id, Some(&app.boot.client_secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_janitor_sweeps_a_backlog_in_batches_while_tokens_are_issued() {
    const EXPIRED: usize = 240;
    const ISSUED: usize = 200;
    for backend in backends() {
        let app = spawn_app_with(&backend, |config| {
            config.janitor.batch = 16;
            config.tiers.free.token_rate = 100_000;
            config.tiers.free.token_burst = 100_000;
        })
        .await;
        let (id, secret) = (app.boot.client_id.clone(), app.boot.client_secret.clone());
        for _ in 0..EXPIRED {
            let token = app.token(&id, &secret, None).await;
            revoke(&app, &token).await;
        }
        // Those tokens expire; one revoked now does not, and its revocation stays.
        app.storage.clock.advance(Duration::from_secs(3600));
        let live = app.token(&id, &secret, None).await;
        revoke(&app, &live).await;

        // Four clients issue tokens while the janitor sweeps, round after round.
        let load = futures_util::future::join_all((0..4).map(|_| async {
            let mut statuses = Vec::with_capacity(ISSUED / 4);
            for _ in 0..ISSUED / 4 {
                statuses.push(app.token_request(&id, &secret, None).await.0);
            }
            statuses
        }));
        let sweeping = async {
            let mut removed = 0;
            for _ in 0..5 {
                let report = app.engine.sweep().await;
                removed += report.iter().find(|(w, _)| *w == "revocations").map_or(0, |r| r.1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            removed
        };
        let (statuses, removed) = tokio::join!(load, sweeping);
        let statuses: Vec<StatusCode> = statuses.into_iter().flatten().collect();
        assert_eq!(statuses.len(), ISSUED);
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        assert_eq!(removed, EXPIRED as u64, "exactly the expired tokens' revocations, in batches of 16");

        // The live revocation holds; every token issued beside the sweeps is in an
        // intact chain.
        assert_eq!(introspect(&app, &live).await["active"], false);
        let admin = app.admin_token().await;
        let (status, verdict) = app.call(Method::GET, "/api/v1/audit-events/verify", &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{verdict}");
        assert_eq!(verdict["intact"], true, "{verdict}");
        let (mut issued, mut cursor) = (0, String::new());
        loop {
            let path = format!("/api/v1/audit-events?action=token.issue&limit=200&cursor={cursor}");
            let (_, page) = app.call(Method::GET, &path, &admin, None).await;
            issued += page["items"].as_array().unwrap_or_else(|| panic!("{page}")).len();
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => break,
            }
        }
        assert_eq!(issued, EXPIRED + 1 + ISSUED + 1, "every token's event: {issued}");
        app.stop().await;
    }
}
