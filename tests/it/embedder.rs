//! The embedder path: the engine in-process, no HTTP.

use agentidp_engine::{Call, Engine, EngineConfig, EngineError, NewAgent, OAuthError, TokenRequest};

#[tokio::test]
async fn an_embedder_starts_calls_and_shuts_down_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(EngineConfig::embedded(dir.path())).await.unwrap();
    let boot = engine.bootstrap().await.unwrap();
    let token = engine
        .issue_token(
            TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None),
            &agentidp_engine::Origin::default(),
        )
        .await
        .unwrap();
    let caller = engine.authenticate(&token.access_token).await.unwrap();
    assert_eq!(caller.org_id, boot.org_id);
    let call = Call { caller, request_id: Some("embedded-1".into()) };
    let agent = engine.create_agent(&call, NewAgent { name: "in-process".into(), ..Default::default() }).await.unwrap();
    assert_eq!(agent.org_id, boot.org_id);
    let err = engine
        .issue_token(
            TokenRequest::client_credentials(&boot.client_id, "nope", None),
            &agentidp_engine::Origin::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::OAuth { error: OAuthError::InvalidClient, .. }));
    engine.shutdown().await;

    // Everything acknowledged before shutdown is in the store for the next start.
    let engine = Engine::start(EngineConfig::embedded(dir.path())).await.unwrap();
    let token = engine
        .issue_token(
            TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None),
            &agentidp_engine::Origin::default(),
        )
        .await
        .unwrap();
    let call = Call { caller: engine.authenticate(&token.access_token).await.unwrap(), request_id: None };
    let page = engine.list_audit(&call, Default::default()).await.unwrap();
    let actions: Vec<&str> = page.items.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"agent.create"), "{actions:?}");
    assert!(actions.contains(&"client.authenticate"), "{actions:?}");
    assert!(engine.verify_audit(&call, None, true).await.unwrap().intact);
    engine.shutdown().await;
}
