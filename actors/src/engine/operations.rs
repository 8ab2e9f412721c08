//! Operating the engine: readiness (what `/ready` reports), fault injection (the
//! resilience tests' and operators' drills), and the store's backup and restore — the
//! front-end reaches storage only through these.

use std::time::Duration;

use std::path::Path;

use super::{supervisor, Call, Engine};
use crate::config::EngineConfig;
use crate::kernel::error::{EngineError, Result};

/// How long a readiness check waits for one dependency.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// What `/ready` reports: each dependency up or not, and actors being restarted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub store: bool,
    pub store_kind: &'static str,
    pub coordinator: bool,
    pub coordinator_kind: &'static str,
    pub restarting: Vec<&'static str>,
}

impl Readiness {
    /// What is wrong, one sentence each, naming the setting to look at.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.store {
            out.push(match self.store_kind {
                "PostgreSQL" => "PostgreSQL (DATABASE_URL) is not answering".to_string(),
                _ => "the SQLite store (data_dir) is not answering".to_string(),
            });
        }
        if !self.coordinator {
            out.push("Redis (REDIS_URL) is not answering".to_string());
        }
        for actor in &self.restarting {
            out.push(format!("the engine's {actor} is restarting"));
        }
        out
    }
}
/// What `/health` reports: whether the node is alive in a sense a restart of the
/// process could change — its supervisor runs and no actor is crash-looping (failed more
/// often than its restart budget allows within the last window; the supervisor restarts
/// it with backoff meanwhile).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Liveness {
    pub supervisor: bool,
    pub crash_looping: Vec<&'static str>,
}

impl Liveness {
    /// What is wrong, one sentence each; empty when the node is live.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.supervisor {
            out.push("the engine's supervisor has stopped".to_string());
        }
        for actor in &self.crash_looping {
            out.push(format!("the engine's {actor} is crash-looping (restarted with backoff)"));
        }
        out
    }
}

impl Engine {
    /// Whether the node is live (see [`Liveness`]); no I/O, a few atomic reads.
    pub fn liveness(&self) -> Liveness {
        let supervisor = matches!(self.supervisor.get_status(), ractor::ActorStatus::Running);
        let crash_looping = self.shared.children.iter().filter(|c| c.is_crash_looping()).map(|c| c.name).collect();
        Liveness { supervisor, crash_looping }
    }

    /// The registered actors' names: what [`Engine::inject_fault`] takes, and the
    /// `actor` label of `agentidp_actor_restarts_total`.
    pub fn actor_names(&self) -> Vec<&'static str> {
        self.shared.children.iter().map(|c| c.name).collect()
    }

    /// Run one round of the janitor now (its actor runs one every `janitor.every`): what
    /// each sweep removed, by name. For operators' drills and tests.
    pub async fn sweep(&self) -> Vec<(&'static str, u64)> {
        self.shared.janitor.round().await
    }

    /// Make the named supervised actor fail on purpose; its supervisor restarts it. For
    /// resilience tests and operator drills. `NotFound` if no actor has that name.
    pub fn inject_fault(&self, actor: &str) -> Result<()> {
        let index =
            self.shared.children.iter().position(|c| c.name == actor).ok_or_else(|| EngineError::not_found("actor"))?;
        self.supervisor
            .send_message(supervisor::Msg::InjectFault(index))
            .map_err(|_| EngineError::Unavailable("engine supervisor is not running".into()))
    }

    /// An operator's fault drill on a live node: the platform administrator makes the
    /// named actor (one of [`Engine::actor_names`]) fail, to rehearse a restart. Audited
    /// (as `engine.fault_injected`) before it happens.
    pub async fn drill_fault(&self, call: &Call, actor: &str) -> Result<()> {
        self.shared.policy.authorize("engine.inject_fault", &call.caller.scope, false)?;
        if self.shared.children.find(actor).is_none() {
            return Err(EngineError::not_found("actor"));
        }
        let event = self.call_event(call, call.caller.org_id, "engine.fault_injected", actor, serde_json::json!({}));
        self.audit(event).await?;
        self.inject_fault(actor)
    }

    /// Whether the store and coordinator answer and every actor is running; the error
    /// says which is not, in an operator's words.
    pub async fn ready(&self) -> Result<()> {
        let report = self.readiness().await;
        match report.problems().first() {
            None => Ok(()),
            Some(problem) => Err(EngineError::Unavailable(problem.clone())),
        }
    }

    /// Check every dependency at once, each bounded by [`READY_CHECK_TIMEOUT`], so the
    /// answer comes within about a second whatever is down.
    pub async fn readiness(&self) -> Readiness {
        let bounded =
            |check| async move { matches!(tokio::time::timeout(READY_CHECK_TIMEOUT, check).await, Ok(Ok(()))) };
        let (store, coordinator) = tokio::join!(bounded(self.shared.store.ping()), bounded(self.shared.coord.ping()));
        let restarting = self.shared.children.iter().filter(|c| !c.is_running()).map(|c| c.name).collect();
        Readiness {
            store,
            store_kind: if self.shared.config.database_url.is_some() { "PostgreSQL" } else { "SQLite" },
            coordinator,
            coordinator_kind: if self.shared.config.redis_url.is_some() { "Redis" } else { "in-process" },
            restarting,
        }
    }
}

impl Engine {
    /// `agentidp backup`: copy the embedded store of `config` to the new file `dest`
    /// (owner-only) while it serves. The master key is not in it. PostgreSQL is backed up
    /// with its own tools, so a configuration with a database URL is refused.
    pub async fn backup(config: &EngineConfig, dest: &Path) -> Result<()> {
        if config.database_url.is_some() {
            return Err(EngineError::invalid(
                "database_url",
                "agentidp backup copies the embedded store; for PostgreSQL use pg_dump",
            ));
        }
        let (dir, dest) = (config.data_dir.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || crate::store::sqlite::backup(&dir, &dest))
            .await
            .map_err(|e| EngineError::internal(format!("backup task: {e}")))?
    }

    /// `agentidp restore`: make the backup `src` the embedded store of `config`, whose
    /// data directory must hold none yet, then migrate it; returns the schema version.
    pub async fn restore(config: &EngineConfig, src: &Path) -> Result<u32> {
        if config.database_url.is_some() {
            return Err(EngineError::invalid(
                "database_url",
                "agentidp restore fills an embedded store; for PostgreSQL use pg_restore or psql",
            ));
        }
        let (src, dir) = (src.to_path_buf(), config.data_dir.clone());
        tokio::task::spawn_blocking(move || crate::store::sqlite::restore(&src, &dir))
            .await
            .map_err(|e| EngineError::internal(format!("restore task: {e}")))??;
        Engine::migrate(config).await
    }

    /// Where the store of `config` is, for logs: `PostgreSQL (host:port/db)` or
    /// `SQLite (dir)`; never a password.
    pub fn describe_store(config: &EngineConfig) -> String {
        match &config.database_url {
            #[cfg(feature = "postgres")]
            Some(url) => format!("PostgreSQL ({})", crate::store::postgres::PostgresStore::describe(url)),
            #[cfg(not(feature = "postgres"))]
            Some(_) => "PostgreSQL (not in this build)".to_string(),
            None => format!("SQLite ({})", config.data_dir.display()),
        }
    }

    /// The coordinator of `config`, for logs: `Redis (host:port)` or in-process.
    pub fn describe_coordinator(config: &EngineConfig) -> String {
        match &config.redis_url {
            #[cfg(feature = "redis")]
            Some(url) => format!("Redis ({})", crate::runtime::coord::redis::RedisCoordinator::describe(url)),
            #[cfg(not(feature = "redis"))]
            Some(_) => "Redis (not in this build)".to_string(),
            None => "in-process (one node)".to_string(),
        }
    }
}
