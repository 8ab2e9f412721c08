//! The toy family through the engine, on the embedded store and on PostgreSQL: a note
//! is kept with its audit event, survives a restart, and a bad one changes nothing.

use uuid::Uuid;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::kernel::error::EngineError;

/// The embedded store, and PostgreSQL when `AGENTIDP_TEST_DATABASE_URL` is set (CI sets
/// it: there the PostgreSQL run never skips).
pub(crate) async fn configs(dir: &std::path::Path) -> Vec<EngineConfig> {
    let mut out = vec![EngineConfig::embedded(dir.join("sqlite"))];
    #[cfg(feature = "postgres")]
    match std::env::var("AGENTIDP_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()) {
        Some(url) => {
            let schema = format!("t_{}", Uuid::now_v7().simple());
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("PostgreSQL");
            tokio::spawn(conn);
            client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.expect("schema");
            let sep = if url.contains('?') { '&' } else { '?' };
            let mut config = EngineConfig::embedded(dir.join("postgres"));
            config.database_url = Some(format!("{url}{sep}options=-csearch_path%3D{schema}"));
            out.push(config);
        }
        None if std::env::var_os("CI").is_some() => panic!("CI must set AGENTIDP_TEST_DATABASE_URL"),
        None => {}
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toy_family_commits_through_the_engine_on_both_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in configs(dir.path()).await {
        let engine = Engine::start(config.clone()).await.expect("start");
        let org = Uuid::now_v7();
        engine.put_note(org, "groceries", "milk, bread").await.expect("put");
        engine.put_note(org, "groceries", "milk, bread, eggs").await.expect("replace");
        assert!(matches!(engine.put_note(org, "Bad Key", "x").await, Err(EngineError::Invalid { .. })));
        assert_eq!(engine.note("groceries").await.expect("read").as_deref(), Some("milk, bread, eggs"));

        // Each change came with its audit event, in the organization's chain.
        let trail = engine.trail();
        let ends = engine.shared.store.chain_ends(org).await.expect("ends").expect("a chain");
        let chain: Vec<_> = trail.run(org, &ends, 0, 10).await.expect("chain").into_iter().map(|l| l.event).collect();
        let actions: Vec<&str> = chain.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["note.put", "note.put"], "one event per change, none for the refused one");
        engine.shutdown().await;

        let again = Engine::start(config).await.expect("restart");
        assert_eq!(again.note("groceries").await.expect("read").as_deref(), Some("milk, bread, eggs"));
        assert_eq!(again.note("other").await.expect("read"), None);
        again.shutdown().await;
    }
}
