//! The quota's overshoot bound as a property: under random interleavings of concurrent
//! calls through two engines sharing one coordinator and ledger (Redis) and one store
//! (PostgreSQL), and random UTC midnights, the calls admitted on any day never pass the
//! limit (the documented bound is zero), and a day that was asked for more than the
//! limit admitted most of it (only leases still held by a node go unused).

use std::sync::Arc;
use std::time::Duration;

use agentidp_engine::{Call, Caller, Engine, EngineError};
use proptest::prelude::*;
use uuid::Uuid;

use crate::support::{backends, Storage};

/// One burst of concurrent calls: each goes to engine A (`false`) or B (`true`).
type Burst = Vec<bool>;

async fn run_case(limit: u64, bursts: Vec<Burst>, midnights: Vec<bool>) -> Result<(), TestCaseError> {
    for backend in backends().into_iter().filter(|b| b.is_postgres()) {
        let storage = Storage::new(&backend).await;
        let start = |storage: &Storage| {
            let mut config = storage.config("127.0.0.1:1".parse().unwrap());
            config.tiers.free.calls_per_day = Some(limit);
            Engine::start(config)
        };
        let a = start(&storage).await.expect("engine A");
        let b = start(&storage).await.expect("engine B");
        let boot = a.bootstrap().await.expect("bootstrap");
        let call = Call {
            caller: Arc::new(Caller {
                agent_id: boot.agent_id,
                org_id: boot.org_id,
                client_id: boot.client_id.clone(),
                scope: "organizations:read".into(),
                token_id: Uuid::now_v7().to_string(),
                expires_at: i64::MAX,
                jkt: None,
                delegation_id: None,
            }),
            request_id: None,
        };
        let (mut admitted, mut asked) = (0u64, 0u64);
        for (burst, midnight) in bursts.iter().zip(midnights.iter().chain(std::iter::repeat(&false))) {
            if *midnight {
                prop_assert!(admitted <= limit, "admitted {admitted} of {asked} at a limit of {limit}");
                storage.clock.advance(Duration::from_secs(86_400));
                (admitted, asked) = (0, 0);
            }
            let calls = burst.iter().map(|&on_b| {
                let (engine, call) = (if on_b { &b } else { &a }, &call);
                async move { engine.meter(call).await }
            });
            for outcome in futures_util::future::join_all(calls).await {
                asked += 1;
                match outcome {
                    Ok(_) => admitted += 1,
                    Err(EngineError::QuotaExceeded { .. }) => {}
                    Err(other) => prop_assert!(false, "a call failed otherwise: {other}"),
                }
            }
        }
        prop_assert!(admitted <= limit, "admitted {admitted} of {asked} at a limit of {limit}");
        // Under-admission is bounded too: each node's unused lease (a chunk, limit / 50
        // rounded up, plus the half chunk it refills ahead) is all that goes unused.
        let chunk = limit.div_ceil(50);
        if asked >= limit + 4 * chunk {
            prop_assert!(admitted + 4 * chunk >= limit, "admitted only {admitted} of {asked} at a limit of {limit}");
        }
        a.shutdown().await;
        b.shutdown().await;
    }
    Ok(())
}

proptest! {
    // Each case starts two engines on a fresh schema: a few dozen cases are what the
    // suite's time allows, and every one draws a new interleaving.
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn two_engines_never_admit_more_than_the_limit(
        limit in 1u64..300,
        bursts in prop::collection::vec(prop::collection::vec(any::<bool>(), 1..60), 1..12),
        midnights in prop::collection::vec(prop::bool::weighted(0.15), 0..12),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run_case(limit, bursts, midnights))?;
    }
}
