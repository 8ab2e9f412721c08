//! Criterion benches of the embedder path (the engine handle, no HTTP), on the embedded
//! store. Cases are named `verb/scale/concurrency`.
//!
//! `cargo bench --bench engine`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentidp_engine::{Engine, EngineConfig, TokenRequest};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (engine, boot) = rt.block_on(async {
        let engine = Engine::start(EngineConfig::embedded(dir.path())).await.unwrap();
        let boot = engine.bootstrap().await.unwrap();
        (engine, boot)
    });
    let request = TokenRequest::client_credentials(&boot.client_id, &boot.client_secret, None);

    let mut group = c.benchmark_group("issue_token");
    group.throughput(Throughput::Elements(1));
    group.bench_function("es256/1/1", |b| {
        b.to_async(&rt).iter(|| async { engine.issue_token(request.clone(), None).await.unwrap() })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("es256/1/64", |b| {
        b.to_async(&rt).iter(|| async { join_all((0..64).map(|_| engine.issue_token(request.clone(), None))).await })
    });
    group.finish();

    let token = rt.block_on(engine.issue_token(request.clone(), None)).unwrap().access_token;
    c.bench_function("authenticate/cached/1", |b| {
        b.to_async(&rt).iter(|| async { engine.authenticate(&token).await.unwrap() })
    });

    rt.block_on(engine.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
