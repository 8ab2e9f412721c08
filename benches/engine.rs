//! Criterion benches of the embedder path (the `Engine` handle, no HTTP) on the embedded
//! store. Case names are `operation/scale/concurrency`; "scale" is the number of
//! registered agents, to show cost does not grow with the registry.
//!
//! `cargo bench --bench engine` (set `AGENTIDP_BENCH_SCALES=1,100000,1000000` for the
//! large registries; the default is `1,100000`).
//!
//! `quota/meter/*` is one counted call through the engine (the lease's atomic, the
//! analytics tally), with the ledger's refills amortized in it; `quota/grant/*` is one
//! refill's ledger round trip on its own (Redis at `AGENTIDP_BENCH_REDIS_URL`, default
//! `redis://127.0.0.1:6379`, when it answers).
//!
//! `issue_token` keeps 64 requests in flight on one task: their request paths share one
//! core, while the audit writer commits on its own thread, so its throughput compares
//! with `sign_bound`, one core signing and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agentidp_engine::families::audit::chain::Event;
use agentidp_engine::families::audit::{AuditStore, Commit};
use agentidp_engine::families::directory::secrets::SecretHasher;
use agentidp_engine::families::signing::keys::SigningAlg;
use agentidp_engine::families::tiers::redis::RedisLedger;
use agentidp_engine::families::tiers::{GrantRequest, QuotaStore};
use agentidp_engine::store::sqlite::SqliteStore;
use agentidp_engine::store::Migrate;
use agentidp_engine::{Call, Caller, ClientAuth, Engine, EngineConfig, Introspector, TokenRequest};
use agentidp_engine::{Outcome, SystemClock};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::{stream, StreamExt};
use tokio::runtime::Runtime;
use uuid::Uuid;

// The allocator the agentidp binary ships with: an embedder's choice, measured as served.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tokens per issue_token iteration, 64 of them in flight at a time.
const PER_ITER: usize = 1024;

/// Clients the benches draw from (warmed in the credential cache).
const SAMPLE: usize = 1000;

struct Fixture {
    engine: Engine,
    org_id: Uuid,
    clients: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// An engine over a store holding `agents` agents, each with a client secret; the first
/// `SAMPLE` of them are returned (as `(client_id, secret)`) and warmed.
fn fixture(rt: &Runtime, agents: usize, alg: SigningAlg) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::embedded(dir.path());
    config.signing_alg = alg;
    let (org_id, agent_id) = rt.block_on(async {
        let engine = Engine::start(config.clone()).await.unwrap();
        let boot = engine.bootstrap().await.unwrap();
        engine.shutdown().await;
        (boot.org_id, boot.agent_id)
    });
    // Seed the registry in one SQLite transaction: through the API this would take hours.
    let conn = rusqlite::Connection::open(dir.path().join("agentidp.db")).unwrap();
    let key: Vec<u8> =
        conn.query_row("SELECT value FROM settings WHERE key = 'secret_hash_key'", [], |r| r.get(0)).unwrap();
    let hasher = SecretHasher::new(&key);
    let mut clients = Vec::new();
    conn.execute_batch("BEGIN").unwrap();
    // The first organization is on the free tier (1,000 calls a day): the bench measures
    // the path of an organization without a limit (still counted).
    conn.execute("UPDATE organizations SET tier = 'enterprise' WHERE id = ?1", rusqlite::params![org_id.to_string()])
        .unwrap();
    {
        let mut agent = conn
            .prepare("INSERT INTO agents (id, org_id, name, status, scopes, metadata, created_at, updated_at) VALUES (?1, ?2, ?3, 'active', '[\"agents:read\"]', '{}', 0, 0)")
            .unwrap();
        let mut cred = conn
            .prepare("INSERT INTO credentials (id, agent_id, org_id, client_id, kind, status, secret_prefix, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, 'client_secret', 'active', '', ?5, 0)")
            .unwrap();
        for i in 0..agents {
            let id = Uuid::now_v7().to_string();
            agent.execute(rusqlite::params![id, org_id.to_string(), format!("bench-{i}")]).unwrap();
            let client_id = format!("aidp_ci_bench{i}");
            let secret = format!("aidp_sk_bench-secret-{i}-{}", Uuid::now_v7().simple());
            cred.execute(rusqlite::params![
                Uuid::now_v7().to_string(),
                id,
                org_id.to_string(),
                client_id,
                hasher.hash(&secret)
            ])
            .unwrap();
            if clients.len() < SAMPLE {
                clients.push((client_id, secret));
            }
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    let _ = agent_id;
    let engine = rt.block_on(Engine::start(config)).unwrap();
    rt.block_on(async {
        for (id, secret) in &clients {
            engine
                .issue_token(TokenRequest::client_credentials(id, secret, None), &agentidp_engine::Origin::default())
                .await
                .unwrap();
        }
    });
    Fixture { engine, org_id, clients, _dir: dir }
}

fn scales() -> Vec<usize> {
    std::env::var("AGENTIDP_BENCH_SCALES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 100_000])
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("engine");
    group.sample_size(30).measurement_time(Duration::from_secs(5));

    for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
        for scale in scales() {
            let f = fixture(&rt, scale, alg);
            let name = format!("issue_token/{}", alg.as_str());
            let mut next = 0usize;
            // 64 requests in flight, as 64 connections keep them: each finished request is
            // replaced at once, so audit group commits overlap signing as under load. An
            // iteration is PER_ITER requests, so the drain at its end (the last commit,
            // with nothing left to sign meanwhile) is a small share of it.
            group.throughput(Throughput::Elements(PER_ITER as u64));
            group.bench_function(BenchmarkId::new(&name, format!("{scale}/64")), |b| {
                // The requests are built untimed: parsing them is the caller's work.
                b.to_async(&rt).iter_batched(
                    || {
                        next += PER_ITER;
                        (0..PER_ITER)
                            .map(|i| {
                                let (id, secret) = &f.clients[(next + i) % f.clients.len()];
                                TokenRequest::client_credentials(id, secret, None)
                            })
                            .collect::<Vec<_>>()
                    },
                    |reqs| {
                        let engine = f.engine.clone();
                        async move {
                            let origin = agentidp_engine::Origin::default();
                            stream::iter(reqs)
                                .map(|r| engine.issue_token(r, &origin))
                                .buffer_unordered(64)
                                .collect::<Vec<_>>()
                                .await
                        }
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
            if alg == SigningAlg::Es256 {
                let tokens: Vec<String> = rt.block_on(async {
                    let mut out = Vec::new();
                    for (id, secret) in f.clients.iter().take(64) {
                        let req = TokenRequest::client_credentials(id, secret, None);
                        out.push(
                            f.engine.issue_token(req, &agentidp_engine::Origin::default()).await.unwrap().access_token,
                        );
                    }
                    out
                });
                group.throughput(Throughput::Elements(1));
                group.bench_function(BenchmarkId::new("authenticate_bearer/cached", format!("{scale}/1")), |b| {
                    let mut i = 0;
                    b.to_async(&rt).iter(|| {
                        i += 1;
                        let engine = f.engine.clone();
                        let token = tokens[i % tokens.len()].clone();
                        async move { engine.authenticate(&token).await.unwrap() }
                    })
                });
                group.bench_function(BenchmarkId::new("authenticate_client/secret", format!("{scale}/1")), |b| {
                    let mut i = 0;
                    b.to_async(&rt).iter(|| {
                        i += 1;
                        let (id, secret) = f.clients[i % f.clients.len()].clone();
                        let engine = f.engine.clone();
                        async move {
                            let auth = ClientAuth::Secret { client_id: id, client_secret: secret };
                            engine.authenticate_client(&auth, &agentidp_engine::Origin::default()).await.unwrap()
                        }
                    })
                });
                group.bench_function(BenchmarkId::new("introspect", format!("{scale}/1")), |b| {
                    let mut i = 0;
                    b.to_async(&rt).iter(|| {
                        i += 1;
                        let (id, secret) = f.clients[i % tokens.len()].clone();
                        let token = tokens[i % tokens.len()].clone();
                        let engine = f.engine.clone();
                        async move {
                            let who = Introspector::Client(ClientAuth::Secret { client_id: id, client_secret: secret });
                            engine.introspect(who, &token, &agentidp_engine::Origin::default()).await.unwrap()
                        }
                    })
                });
                // The compliance report of the organization holding every agent, computed
                // (not served from its cache): its agents, credentials, DID keys, token
                // activity, delegations, webhooks, keys, usage and its whole audit chain.
                group.sample_size(10);
                group.bench_function(BenchmarkId::new("compliance_report", format!("{scale}/1")), |b| {
                    b.to_async(&rt).iter(|| {
                        let engine = f.engine.clone();
                        async move { engine.compute_report(f.org_id).await.unwrap() }
                    })
                });
                group.sample_size(30);
            }
            rt.block_on(f.engine.shutdown());
        }
    }
    quota(&rt, &mut group);
    delegation(&rt, &mut group);
    federation(&rt, &mut group);
    audit_append(&rt, &mut group);
    passwords(&rt, &mut group);
    signing_bound(&mut group);
    group.finish();
}

/// The raw bound the issue_token figures are a ratio of: one signature over a token's
/// `header.payload` with a key parsed once, on one core, and nothing else.
fn signing_bound(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    // As long as the signing input of an issued token (header, claims with a 3-scope grant).
    let input = vec![b'e'; 420];
    let rng = SystemRandom::new();
    let es256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let eddsa = Ed25519KeyPair::generate().unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("sign_bound/ES256", "1"), |b| b.iter(|| es256.sign(&rng, &input).unwrap()));
    group.bench_function(BenchmarkId::new("sign_bound/EdDSA", "1"), |b| b.iter(|| eddsa.sign(&input)));
}

/// The daily quota: a counted call on the lease path, for an unlimited organization and a
/// limited one (a limit too large to run out during the bench, so its leases refill ahead
/// of need every 1,000 calls, as a pro organization's do), and one ledger refill.
fn quota(rt: &Runtime, group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::embedded(dir.path());
    config.tiers.pro.calls_per_day = Some(1_000_000_000_000);
    let (engine, first, platform) = rt.block_on(async {
        let engine = Engine::start(config.clone()).await.unwrap();
        let boot = engine.bootstrap().await.unwrap();
        engine.shutdown().await;
        (engine, (boot.org_id, boot.agent_id), boot.platform_org_id)
    });
    drop(engine);
    let conn = rusqlite::Connection::open(dir.path().join("agentidp.db")).unwrap();
    conn.execute("UPDATE organizations SET tier = 'pro' WHERE id = ?1", rusqlite::params![first.0.to_string()])
        .unwrap();
    drop(conn);
    let engine = rt.block_on(Engine::start(config)).unwrap();
    let call = |org_id, agent_id| Call {
        caller: std::sync::Arc::new(Caller {
            agent_id,
            org_id,
            client_id: "aidp_ci_bench".into(),
            scope: "agents:read".into(),
            token_id: "bench".into(),
            expires_at: i64::MAX,
            jkt: None,
            delegation_id: None,
        }),
        request_id: None,
    };
    group.throughput(Throughput::Elements(1));
    for (name, call) in [("enterprise", call(platform, Uuid::now_v7())), ("pro", call(first.0, first.1))] {
        rt.block_on(engine.meter(&call)).unwrap();
        group.bench_function(BenchmarkId::new("quota/meter", name), |b| {
            b.to_async(rt).iter(|| engine.meter(&call));
        });
    }
    rt.block_on(engine.shutdown());

    let want = GrantRequest { want: 1000, limit: Some(1_000_000_000_000), owed: 0, seen: 0 };
    let today = agentidp_engine::Clock::now_ms(&SystemClock) / 86_400_000;
    let store = SqliteStore::open(dir.path()).unwrap();
    let org = Uuid::now_v7();
    group.bench_function(BenchmarkId::new("quota/grant", "sqlite"), |b| {
        b.to_async(rt).iter(|| store.grant_calls(org, today, want));
    });
    let url = std::env::var("AGENTIDP_BENCH_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let namespace = format!("bench-{}", Uuid::now_v7().simple());
    match rt.block_on(RedisLedger::connect(&url, &namespace, std::sync::Arc::new(SystemClock))) {
        Ok(ledger) if rt.block_on(ledger.grant_calls(org, today, want)).is_ok() => {
            group.bench_function(BenchmarkId::new("quota/grant", "redis"), |b| {
                b.to_async(rt).iter(|| ledger.grant_calls(org, today, want));
            });
        }
        _ => eprintln!("quota/grant/redis skipped: no Redis at {url}"),
    }
}

/// Delegation through the engine: making a hop (its link and audit event committed),
/// verifying a delegation token in both forms, and introspecting the same JWT beside
/// them (the issue's yardstick: the JWT form verifies at least as fast).
fn delegation(rt: &Runtime, group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use agentidp_engine::families::delegation::rules::DelegateRequest;
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(Engine::start(EngineConfig::embedded(dir.path()))).unwrap();
    let origin = agentidp_engine::Origin::default();
    let (a_call, b_id, admin_call) = rt.block_on(async {
        let boot = engine.bootstrap().await.unwrap();
        let token = |id: String, secret: String| {
            let engine = engine.clone();
            async move {
                let req = TokenRequest::client_credentials(&id, &secret, None);
                let token = engine.issue_token(req, &agentidp_engine::Origin::default()).await.unwrap().access_token;
                Call { caller: engine.authenticate(&token).await.unwrap(), request_id: None }
            }
        };
        let admin = token(boot.client_id.clone(), boot.client_secret.clone()).await;
        let mut made = Vec::new();
        for name in ["delegator", "delegatee"] {
            let new = serde_json::from_value(serde_json::json!({"name": name, "scopes": ["search:query"]})).unwrap();
            let agent = engine.create_agent(&admin, new).await.unwrap();
            let cred = engine.create_credential(&admin, None, agent.id, Default::default()).await.unwrap();
            made.push((agent.id, cred.credential.client_id, cred.client_secret.unwrap()));
        }
        let a = token(made[0].1.clone(), made[0].2.clone()).await;
        (a, made[1].0, admin)
    });
    let request = |format: &str| DelegateRequest {
        delegatee_id: b_id,
        scope: None,
        expires_in: Some(600),
        audience: None,
        max_depth: None,
        token_format: Some(format.into()),
    };
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("delegate", "jwt"), |b| {
        b.to_async(rt).iter(|| engine.delegate(&a_call, request("jwt")));
    });
    let jwt = rt.block_on(engine.delegate(&a_call, request("jwt"))).unwrap().token;
    let biscuit = rt.block_on(engine.delegate(&a_call, request("biscuit"))).unwrap().token;
    group.bench_function(BenchmarkId::new("verify_delegation", "jwt"), |b| {
        b.to_async(rt).iter(|| engine.verify_delegation(&admin_call, &jwt, None));
    });
    group.bench_function(BenchmarkId::new("verify_delegation", "biscuit"), |b| {
        b.to_async(rt).iter(|| engine.verify_delegation(&admin_call, &biscuit, None));
    });
    group.bench_function(BenchmarkId::new("introspect", "caller/delegation-jwt"), |b| {
        b.to_async(rt).iter(|| engine.introspect(Introspector::Caller(admin_call.clone()), &jwt, &origin));
    });
    rt.block_on(engine.shutdown());
}

/// A federation partner's JWT verified from a warm key snapshot (`/federation/verify`'s
/// path: the issuer index, the cheap checks, one ES256 verification, the subject's
/// agent looked up), beside introspecting one of our own tokens.
fn federation(rt: &Runtime, group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use agentidp_engine::families::signing::keys::SigningKey;
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig::embedded(dir.path());
    let issuer = config.issuer.clone();
    let engine = rt.block_on(Engine::start(config)).unwrap();
    let origin = agentidp_engine::Origin::default();
    let (partner_key, _) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
    let (admin, own) = rt.block_on(async {
        let boot = engine.bootstrap().await.unwrap();
        let req = TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None);
        let own = engine.issue_token(req, &origin).await.unwrap().access_token;
        let admin = Call { caller: engine.authenticate(&own).await.unwrap(), request_id: None };
        let new = serde_json::from_value(serde_json::json!({
            "issuer": "https://partner.example",
            "jwks": {"keys": [partner_key.jwk()]},
            "subject_mapping": {"kind": "table", "table": {"partner-agent": boot.agent_id}},
            "allowed_scopes": ["agents:read"],
        }))
        .unwrap();
        engine.create_partner(&admin, new).await.unwrap();
        (admin, own)
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let jwt = partner_key
        .sign(&serde_json::json!({
            "iss": "https://partner.example", "sub": "partner-agent", "aud": format!("{issuer}/api/v1/organizations/{}", admin.caller.org_id),
            "iat": now, "exp": now + 290, "jti": Uuid::now_v7().to_string(),
        }))
        .unwrap();
    assert!(rt.block_on(engine.verify_federated(&admin, &jwt)).unwrap().valid);
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("verify_federated", "warm"), |b| {
        b.to_async(rt).iter(|| engine.verify_federated(&admin, &jwt));
    });
    group.bench_function(BenchmarkId::new("introspect", "caller/own-token"), |b| {
        b.to_async(rt).iter(|| engine.introspect(Introspector::Caller(admin.clone()), &own, &origin));
    });
    // Our own token verified as if never seen (no verified-token cache): the key ring's
    // signature and claims check alone — what a partner JWT costs us at the least.
    let (key, pkcs8) = SigningKey::generate(SigningAlg::Es256, 0, 0).unwrap();
    let ring = agentidp_engine::families::signing::keys::KeyRing::new(
        vec![SigningKey::from_pkcs8(SigningAlg::Es256, &pkcs8, 0, 0).unwrap()],
        &issuer,
        900_000,
    )
    .unwrap();
    use agentidp_engine::families::tokens::claims::{build, AccessClaims, Grant};
    let grant = Grant { agent_id: Uuid::now_v7(), org_id: Uuid::now_v7(), client_id: "c", scopes: &[] };
    let token = key.sign(&build(&grant, &issuer, &issuer, now, 900, Uuid::now_v7())).unwrap();
    group.bench_function(BenchmarkId::new("own_token", "verify_uncached"), |b| {
        b.iter(|| ring.verify::<AccessClaims>(&token, now * 1000).unwrap());
    });
    rt.block_on(engine.shutdown());
}

/// The store's group commit on its own: 64 token-shaped events in one transaction, into
/// a chain that grows as the bench runs (as an organization's does under load).
fn audit_append(rt: &Runtime, group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    rt.block_on(store.migrate()).unwrap();
    let org = Some(Uuid::now_v7());
    let event = move || {
        let agent = Uuid::now_v7().to_string();
        Event::new(1_790_000_000_000, org, agent.clone(), "token.issue", Outcome::Success)
            .target("aidp_ci_0123456789abcdef")
            .request_id(Some(Uuid::now_v7().to_string()))
            .detail(&serde_json::json!({
                "grant_type": "client_credentials", "jti": Uuid::now_v7().to_string(), "scope": "agents:read",
                "exp": 1_790_000_300, "kid": "k-0123456789", "sub": agent, "aud": "agentidp", "dpop": false,
            }))
            .seal()
    };
    group.throughput(Throughput::Elements(64));
    group.bench_function(BenchmarkId::new("audit_append/sqlite", "64"), |b| {
        b.to_async(rt).iter_batched(
            || (0..64).map(|_| Commit::event(event())).collect::<Vec<_>>(),
            |events| store.append_audit(events),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// A sign-in's cost, bounded by argon2id by design: one hash (a new password, or a
/// rehash), one verification (every sign-in attempt, right, wrong or for no account),
/// at the default parameters.
fn passwords(rt: &Runtime, group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    use agentidp_engine::families::users::password::Hasher;
    let hasher = Hasher::new(Default::default()).unwrap();
    let stored = rt.block_on(hasher.hash("velvet quarry lantern mosaic".into())).unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("password/hash", "argon2id-19MiB-t2"), |b| {
        b.to_async(rt).iter(|| hasher.hash("velvet quarry lantern mosaic".into()))
    });
    group.bench_function(BenchmarkId::new("password/verify", "argon2id-19MiB-t2"), |b| {
        b.to_async(rt).iter(|| hasher.verify("velvet quarry lantern mosaics".into(), Some(stored.clone())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
