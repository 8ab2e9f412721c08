//! Retention and archives. Each organization keeps its audit events in the store for
//! its retention (its tier's, or the platform administrator's override); older ones are
//! written to archive segments and then removed, oldest first, in bounded batches.
//!
//! A segment is `DIR/<chain>/<first seq>-<last seq>.ndjson.gz` — the events exactly as
//! the API shows them, one per line, gzip — and its manifest beside it (`.json`): the
//! range, the hash before it and its last hash, the file's SHA-256, and a checkpoint
//! (typ `audit-checkpoint+jwt`) signed for its last event. The segment is on disk
//! (written, synced, renamed) before the store removes its events and moves the chain's
//! floor to its last event, in one transaction that holds only if the floor has not
//! moved meanwhile: a crash between the two leaves the events in the store, and the
//! next round writes the same segment again, over the first. Verification of what the
//! store holds starts at the floor; `agentidp audit verify-archive DIR` verifies the
//! segments offline and their link to the floor.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::chain::hex;
use super::checkpointer::{CheckpointClaims, CHECKPOINT_TYP};
use super::read::{Linker, Reader};
use super::record::Dictionary;
use super::{AuditStore, Checkpoint, RecordQuery};
use crate::families::signing::actor::Keys;
use crate::kernel::clock::Clock;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{rfc3339, AuditEvent};
use crate::kernel::tiers::TierTable;
use crate::runtime::actor::ChildSpec;

/// Where and how archiving runs.
#[derive(Debug, Clone)]
pub struct ArchiveSettings {
    /// Where segments are written; `None`: nothing is archived or removed.
    pub dir: Option<PathBuf>,
    /// Time between two rounds.
    pub every: Duration,
    /// Most events in one segment (and one removing transaction).
    pub batch: u32,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        ArchiveSettings { dir: None, every: Duration::from_secs(60), batch: 5_000 }
    }
}

/// A segment's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub chain: Uuid,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The hash of the event before `first_seq` (the genesis hash for the first).
    pub prev_hash: String,
    pub last_hash: String,
    pub events: u64,
    /// The segment file's name (beside the manifest) and its SHA-256.
    pub file: String,
    pub sha256: String,
    /// A checkpoint of `last_seq`, signed by the issuer's key.
    pub checkpoint: String,
    #[serde(with = "rfc3339")]
    pub created_at: i64,
}

#[derive(Clone)]
pub(crate) struct Deps {
    pub store: Arc<dyn AuditStore>,
    pub dict: Arc<Dictionary>,
    pub keys: Keys,
    pub clock: Arc<dyn Clock>,
    pub issuer: String,
    pub tiers: TierTable,
    pub settings: ArchiveSettings,
    pub archived: prometheus::IntCounter,
    /// Whether this process has removed what an earlier one left below a floor (a
    /// crash between moving a floor and removing the records under it).
    pub tidied: Arc<std::sync::atomic::AtomicBool>,
}

/// Register the archiver (only when a directory is configured).
pub(crate) fn child(deps: Deps) -> (ChildSpec, ()) {
    let every = deps.settings.every;
    crate::runtime::ticker::child("audit_archiver", every, deps, round)
}

fn round(deps: &Deps) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        if let Err(e) = archive_due(deps).await {
            tracing::warn!(error = %e, "audit archiving stopped for this round; trying again next tick");
        }
    })
}

/// Archive and remove every chain's events older than its retention, a segment at a
/// time; how many events were archived.
pub(crate) async fn archive_due(deps: &Deps) -> Result<u64> {
    let Some(dir) = deps.settings.dir.clone() else { return Ok(0) };
    let now = deps.clock.now_ms();
    let mut archived = 0;
    let tidy = !deps.tidied.load(std::sync::atomic::Ordering::Acquire);
    for chain in deps.store.chain_retention().await? {
        if tidy {
            if let Some(ends) = deps.store.chain_ends(chain.chain).await? {
                remove_range(deps, chain.chain, 0, ends.floor_seq).await?;
            }
        }
        let keep = match chain.override_secs {
            Some(secs) => secs,
            None => {
                chain.tier.map_or(deps.tiers.free.audit_retention_secs, |t| deps.tiers.limits(t).audit_retention_secs)
            }
        };
        let Some(keep) = keep else { continue };
        let cutoff = now.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX).saturating_mul(1000));
        loop {
            let n = archive_segment(deps, &dir, chain.chain, cutoff).await?;
            archived += n;
            deps.archived.inc_by(n);
            if n < u64::from(deps.settings.batch) {
                break;
            }
        }
    }
    deps.tidied.store(true, std::sync::atomic::Ordering::Release);
    Ok(archived)
}

/// Archive (and remove) the oldest events of `chain` that occurred before `cutoff`, at
/// most a batch; how many.
async fn archive_segment(deps: &Deps, dir: &Path, chain: Uuid, cutoff: i64) -> Result<u64> {
    match write_due_segment(deps, dir, chain, cutoff).await? {
        Some((floor, manifest)) => remove_archived(deps, floor, &manifest).await,
        None => Ok(0),
    }
}

/// The second step: publish the segment's checkpoint, move the floor past it (if no
/// other node did first), then remove its events in short transactions; how many events
/// left the store.
async fn remove_archived(deps: &Deps, floor: i64, manifest: &Manifest) -> Result<u64> {
    let checkpoint = Checkpoint {
        chain: manifest.chain,
        seq: manifest.last_seq,
        hash: manifest.last_hash.clone(),
        created_at: manifest.created_at,
        jwt: manifest.checkpoint.clone(),
    };
    deps.store.insert_checkpoint(&checkpoint).await?;
    if !deps.store.move_floor(manifest.chain, floor, manifest.last_seq, &manifest.last_hash).await? {
        // Another node archived this range first, and its segment is this one.
        return Ok(0);
    }
    // What a crash leaves of this below the floor, the next process's first round removes.
    remove_range(deps, manifest.chain, floor, manifest.last_seq).await?;
    Ok(manifest.events)
}

/// Rows one removing transaction takes: on SQLite's one writer, well under a
/// millisecond, so that tokens' audit commits never queue long behind a segment.
const REMOVE_CHUNK: i64 = 512;

/// Remove the archived records of `chain` in `(after, upto]`, a chunk a transaction.
async fn remove_range(deps: &Deps, chain: Uuid, after: i64, upto: i64) -> Result<()> {
    let mut from = after;
    while from < upto {
        let to = upto.min(from.saturating_add(REMOVE_CHUNK));
        deps.store.remove_archived(chain, from, to).await?;
        from = to;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// The first step: write the segment of the oldest events due (durably); the floor it
/// starts after and its manifest, or `None` if nothing is due.
async fn write_due_segment(deps: &Deps, dir: &Path, chain: Uuid, cutoff: i64) -> Result<Option<(i64, Manifest)>> {
    let store = deps.store.as_ref();
    let Some(ends) = store.chain_ends(chain).await? else { return Ok(None) };
    let query = RecordQuery { after: ends.floor_seq, ..Default::default() };
    // The oldest record first, alone: a chain with nothing due (most, most rounds) costs
    // one row's read, not a batch's.
    let oldest = store.audit_records(chain, &query, 1).await?;
    if oldest.first().is_none_or(|r| super::record::id_millis(&r.id) >= cutoff.saturating_add(60_000)) {
        return Ok(None);
    }
    let mut rows = store.audit_records(chain, &query, deps.settings.batch).await?;
    // Ids carry their event's time (those of the first layout within a moment of it):
    // what is surely too young is not decoded, let alone linked.
    let young = rows.iter().position(|r| super::record::id_millis(&r.id) >= cutoff.saturating_add(60_000));
    rows.truncate(young.unwrap_or(rows.len()));
    if rows.is_empty() {
        return Ok(None);
    }
    // Decoded a slice at a time: a runtime worker is never held for long.
    let reader = Reader { store, dict: &deps.dict };
    let mut decoded = Vec::with_capacity(rows.len());
    for slice in rows.chunks(256) {
        decoded.extend(reader.decode(chain, slice).await?);
        tokio::task::yield_now().await;
    }
    // Linking (a hash an event), the JSON and the compression off the runtime's workers.
    let (floor_seq, floor_hash) = (ends.floor_seq, ends.floor_hash.clone());
    let segment = crate::runtime::background::run("audit-archive", move || {
        encode_segment(chain, floor_seq, &floor_hash, &rows, decoded, cutoff)
    })
    .await??;
    let Some(mut manifest) = segment.0 else { return Ok(None) };
    let now = deps.clock.now_ms();
    let claims = CheckpointClaims {
        iss: deps.issuer.clone(),
        sub: chain.to_string(),
        seq: manifest.last_seq,
        hash: manifest.last_hash.clone(),
        iat: now / 1000,
    };
    manifest.checkpoint = deps.keys.ring()?.signing_key(now).sign_typed(CHECKPOINT_TYP, &claims)?;
    manifest.created_at = now;
    let chain_dir = dir.join(chain.to_string());
    let bytes = segment.1;
    let manifest = tokio::task::spawn_blocking(move || write_segment(&chain_dir, manifest, bytes))
        .await
        .map_err(|e| EngineError::internal(format!("archive writer: {e}")))??;
    Ok(Some((ends.floor_seq, manifest)))
}

/// Link the decoded records from the floor, keep those that occurred before `cutoff`
/// (oldest first, up to the first young one, or one that does not decode or hold), and
/// compress them as NDJSON: the segment's manifest (less its checkpoint) and bytes.
/// Blocking.
fn encode_segment(
    chain: Uuid,
    floor_seq: i64,
    floor_hash: &str,
    rows: &[super::record::StoredRecord],
    decoded: Vec<Option<super::chain::Event>>,
    cutoff: i64,
) -> Result<(Option<Manifest>, Vec<u8>)> {
    let io = |e: std::io::Error| EngineError::Unavailable(format!("audit archive compression: {e}"));
    let mut linker = Linker::after(floor_seq, floor_hash);
    let mut ndjson: Vec<u8> = Vec::with_capacity(rows.len() * 400);
    let mut range: Option<(i64, String, i64, String)> = None;
    let mut events = 0u64;
    for (row, event) in rows.iter().zip(decoded) {
        if event.as_ref().is_none_or(|e| e.occurred_at >= cutoff) {
            if event.is_none() {
                tracing::error!(%chain, event = %row.id, "an audit record does not decode: not archiving past it");
            }
            break;
        }
        let linked = match linker.link(row, event) {
            Some(linked) if linked.holds => linked.event,
            _ => {
                tracing::error!(%chain, event = %row.id, "the audit chain is broken here: not archiving past it");
                break;
            }
        };
        serde_json::to_writer(&mut ndjson, &linked).map_err(EngineError::internal)?;
        ndjson.push(b'\n');
        events += 1;
        let (first_seq, prev_hash) = match range.take() {
            Some((first, prev, _, _)) => (first, prev),
            None => (linked.seq, linked.prev_hash.clone()),
        };
        range = Some((first_seq, prev_hash, linked.seq, linked.hash));
    }
    // Compressed in one call (flate2 prepares its output buffer on every write: token by
    // token, that was most of the archiver's time), at level 1: the archive is written
    // as fast as tokens are issued, on the same cores.
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(ndjson.len() / 4), flate2::Compression::fast());
    gz.write_all(&ndjson).map_err(io)?;
    let bytes = gz.finish().map_err(io)?;
    let manifest = range.map(|(first_seq, prev_hash, last_seq, last_hash)| Manifest {
        chain,
        first_seq,
        last_seq,
        prev_hash,
        last_hash,
        events,
        file: format!("{first_seq:020}-{last_seq:020}.ndjson.gz"),
        sha256: String::new(),
        checkpoint: String::new(),
        created_at: 0,
    });
    Ok((manifest, bytes))
}

/// Write a segment and its manifest: each to a temporary name, synced, then renamed, and
/// the directory synced. Blocking.
fn write_segment(dir: &Path, mut manifest: Manifest, bytes: Vec<u8>) -> Result<Manifest> {
    let io = |what: &str, e: std::io::Error| EngineError::Unavailable(format!("audit archive {what}: {e}"));
    std::fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    manifest.sha256 = hex(digest::digest(&digest::SHA256, &bytes).as_ref());
    let json = serde_json::to_vec_pretty(&manifest).map_err(EngineError::internal)?;
    let stem = manifest.file.trim_end_matches(".ndjson.gz").to_string();
    for (name, content) in [(manifest.file.clone(), bytes), (format!("{stem}.json"), json)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp).map_err(|e| io(&name, e))?;
        file.write_all(&content).map_err(|e| io(&name, e))?;
        file.sync_all().map_err(|e| io(&name, e))?;
        std::fs::rename(&tmp, dir.join(&name)).map_err(|e| io(&name, e))?;
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("directory sync", e))?;
    Ok(manifest)
}

/// What `verify-archive` found for one chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainArchiveReport {
    pub chain: Uuid,
    pub segments: usize,
    pub events: u64,
    /// The last archived event (`seq`, hash).
    pub last_seq: i64,
    pub last_hash: String,
    /// Every segment whole, linked to the one before, its events intact, its checkpoint
    /// signed (when a JWKS was given).
    pub intact: bool,
    pub problems: Vec<String>,
}

/// Verify every segment under `dir` offline: each file against its manifest's SHA-256,
/// its events link by link from the hash before it to its last hash, each segment
/// starts where the one before ended (the first at the chain's first event), and — with
/// `jwks` — each manifest's checkpoint is signed by a key in it for that last event.
pub fn verify_archive(dir: &Path, jwks: Option<&serde_json::Value>) -> Result<Vec<ChainArchiveReport>> {
    let io = |p: &Path, e: std::io::Error| EngineError::invalid("archive", format!("{}: {e}", p.display()));
    let mut reports = Vec::new();
    let mut chains: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    chains.sort();
    for chain_dir in chains {
        let Some(chain) = chain_dir.file_name().and_then(|n| n.to_str()).and_then(|n| Uuid::parse_str(n).ok()) else {
            continue;
        };
        let mut manifests: Vec<PathBuf> = std::fs::read_dir(&chain_dir)
            .map_err(|e| io(&chain_dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        manifests.sort();
        let mut report = ChainArchiveReport {
            chain,
            segments: 0,
            events: 0,
            last_seq: 0,
            last_hash: super::chain::GENESIS.to_string(),
            intact: true,
            problems: Vec::new(),
        };
        for path in manifests {
            let name = path.display().to_string();
            let manifest: Manifest = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(m) => m,
                Err(e) => {
                    report.problems.push(format!("{name}: not a manifest ({e})"));
                    continue;
                }
            };
            report.segments += 1;
            if manifest.first_seq != report.last_seq + 1 || manifest.prev_hash != report.last_hash {
                report.problems.push(format!(
                    "{name}: starts at {} after {}, but the archive before it ends at {} (a segment is missing, \
                     repeated or altered)",
                    manifest.first_seq, manifest.prev_hash, report.last_seq
                ));
            }
            if let Err(problem) = verify_segment(&chain_dir, &manifest, jwks) {
                report.problems.push(format!("{name}: {problem}"));
            }
            report.events += manifest.events;
            report.last_seq = manifest.last_seq;
            report.last_hash = manifest.last_hash.clone();
        }
        report.intact = report.problems.is_empty();
        reports.push(report);
    }
    Ok(reports)
}

/// One segment against its manifest.
fn verify_segment(dir: &Path, m: &Manifest, jwks: Option<&serde_json::Value>) -> std::result::Result<(), String> {
    use std::io::BufRead;
    let bytes = std::fs::read(dir.join(&m.file)).map_err(|e| format!("{}: {e}", m.file))?;
    if hex(digest::digest(&digest::SHA256, &bytes).as_ref()) != m.sha256 {
        return Err(format!("{} does not have the SHA-256 its manifest names", m.file));
    }
    let mut verifier = super::chain::ChainVerifier::after(m.first_seq - 1, &m.prev_hash);
    let mut last: Option<(i64, String)> = None;
    for line in std::io::BufReader::new(flate2::read::GzDecoder::new(bytes.as_slice())).lines() {
        let line = line.map_err(|e| format!("{}: {e}", m.file))?;
        let event: AuditEvent = serde_json::from_str(&line).map_err(|e| format!("{}: {e}", m.file))?;
        verifier.feed(&event);
        last = Some((event.seq, event.hash));
    }
    if let Some(broken) = verifier.first_broken {
        return Err(format!("event {broken} does not verify"));
    }
    if verifier.checked != m.events || last != Some((m.last_seq, m.last_hash.clone())) {
        return Err(format!(
            "holds {} events, not the {} its manifest names up to {}",
            verifier.checked, m.events, m.last_seq
        ));
    }
    if let Some(jwks) = jwks {
        let claims = crate::kernel::jose::verify_with_jwks(&m.checkpoint, jwks, CHECKPOINT_TYP)
            .and_then(|c| serde_json::from_value::<CheckpointClaims>(c).map_err(|e| e.to_string()))
            .map_err(|e| format!("its checkpoint does not verify against the JWKS: {e}"))?;
        if claims.seq != m.last_seq || claims.hash != m.last_hash || claims.sub != m.chain.to_string() {
            return Err("its checkpoint vouches for another event".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::engine::Engine;

    /// Issue 37, item 3 and 6: a crash between writing a segment and removing its events
    /// loses nothing and duplicates nothing — the next round writes the same segment again
    /// and removes the events once; the archive and the store verify together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_between_writing_and_removing_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mut config in crate::families::notes::tests::configs(dir.path()).await {
            let clock = Arc::new(crate::kernel::clock::ManualClock::default());
            config.clock = clock.clone();
            let archive = dir.path().join(format!("archive-{}", Uuid::now_v7()));
            config.archive = ArchiveSettings { dir: Some(archive.clone()), every: Duration::from_secs(3600), batch: 4 };
            let engine = Engine::start(config).await.expect("start");
            let org = Uuid::now_v7();
            for n in 0..10 {
                engine.put_note(org, &format!("n{n}"), "x").await.expect("put");
            }
            // Ten events old enough; the eleventh is not.
            clock.advance(Duration::from_secs(91 * 86_400));
            engine.put_note(org, "young", "x").await.expect("put");
            let deps = &engine.shared.archiver;
            let cutoff = clock.now_ms() - 90 * 86_400 * 1000;

            // The crash: the first segment is written, its events are still in the store.
            let (floor, manifest) =
                write_due_segment(deps, &archive, org, cutoff).await.expect("write").expect("a segment is due");
            assert_eq!((floor, manifest.first_seq, manifest.last_seq), (0, 1, 4));

            // The next rounds archive everything due, the first segment again among it.
            assert_eq!(engine.archive_audit().await.expect("archive"), 10);
            let reports = verify_archive(&archive, None).expect("verify");
            assert_eq!(reports.len(), 1, "{reports:?}");
            let report = &reports[0];
            assert!(report.intact, "{report:?}");
            assert_eq!((report.segments, report.events, report.last_seq), (3, 10, 10), "{report:?}");
            assert_eq!(engine.audit_floor(org).await.expect("floor"), Some((10, report.last_hash.clone())));
            // What the store holds verifies from there: the young event alone.
            let chain = engine.verify_chain(Some(org), true).await.expect("verify");
            assert!(chain.intact, "{chain:?}");
            assert_eq!(chain.events_checked, 1);
            assert_eq!(engine.archive_audit().await.expect("archive"), 0, "nothing is archived twice");
            engine.shutdown().await;
        }
    }
}
