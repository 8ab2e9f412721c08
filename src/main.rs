//! The `agentidp` command: serve, migrate, bootstrap, keys, admin, backup, restore, and
//! `ctl`, the admin CLI of a running server.

use agentidp::config::Settings;
use agentidp_engine::{Engine, EngineError};
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "agentidp", version, about = "Identity provider for AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings read from the environment alone (the README's configuration table lists
/// them with the rest).
const ENVIRONMENT_ONLY: &str = "Environment only:
  AGENTIDP_LOG                  log filter, tracing env-filter syntax (one that does not parse is an
                                error) [default: info]
  VAULT_ADDR, VAULT_TOKEN       keep private keys and secrets in Vault (KV v2) instead of sealed in
                                the store
  AGENTIDP_VAULT_MOUNT          the KV v2 mount [default: secret]
  AGENTIDP_VAULT_PREFIX         the path prefix under the mount [default: agentidp]";

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (migrates the store; bootstraps an empty one).
    #[command(after_help = ENVIRONMENT_ONLY)]
    Serve {
        #[command(flatten)]
        settings: Settings,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        settings: Settings,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Operator commands with direct access to the store.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// The audit trail's archives.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Copy the embedded store to FILE while it serves (SQLite's online backup API). The
    /// master key is not in the copy: keep data_dir/master.key (or AGENTIDP_MASTER_KEY)
    /// with it. For PostgreSQL, use pg_dump (README, "Backup and restore").
    Backup {
        #[command(flatten)]
        settings: Settings,
        /// Where the copy goes; an existing file is never overwritten.
        file: std::path::PathBuf,
    },
    /// Make a backup the store of an empty data dir (whose master.key, or
    /// AGENTIDP_MASTER_KEY, must be the one of the store backed up).
    Restore {
        #[command(flatten)]
        settings: Settings,
        /// A file made by `agentidp backup`.
        file: std::path::PathBuf,
    },
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `agentidp completions bash > /etc/bash_completion.d/agentidp`.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages (agentidp.1 and one per subcommand) into DIR, or print
    /// agentidp.1 to standard output without --output-dir.
    Man {
        #[arg(long, value_name = "DIR")]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Administer a running server through its API with a credential: organizations,
    /// agents, credentials, tokens, audit, keys.
    Ctl(agentidp::ctl::Ctl),
    /// Create the first organization, its admin agent and the platform admin, and
    /// print their credentials once.
    Bootstrap {
        #[command(flatten)]
        settings: Settings,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Write the JSON to this file instead (created owner-only, 0600; an existing
        /// file is never overwritten, so re-running a quick start loses nothing).
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create the next signing key: published at once, signing after the
    /// pre-announcement delay; the current key stays published until its tokens expire.
    Rotate {
        #[command(flatten)]
        settings: Settings,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// The way back in after a lockout: reactivate the platform administrator (creating
    /// one if none is left), restore its scopes, and print a fresh client secret once.
    /// Audited as `admin.recover`. Works on a stopped store and beside running nodes,
    /// which pick the change up within a second.
    Recover {
        #[command(flatten)]
        settings: Settings,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Verify the archive segments in DIR offline — each file against its manifest's
    /// SHA-256, its events link by link, each segment starting where the one before ended
    /// and, with --jwks, each segment's checkpoint signed by a key in that JWKS — and
    /// that the store's events go on where the archive ends (unless --offline). Prints
    /// one JSON report per chain; exits non-zero if anything does not verify.
    VerifyArchive {
        #[command(flatten)]
        settings: Settings,
        /// The archive directory (the server's audit_archive_dir).
        dir: std::path::PathBuf,
        /// A JWKS saved from the server (GET /.well-known/jwks.json) to verify each
        /// segment's checkpoint against.
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// Do not open the store: check the archive alone.
        #[arg(long)]
        offline: bool,
    },
}

/// Logs to stderr: coloured only when stderr is a terminal (a file or a journal gets
/// plain text), filtered by `AGENTIDP_LOG` — a filter that does not parse is an error
/// naming the variable, not a silent fall-back to `info`.
fn init_logs(json: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = match std::env::var("AGENTIDP_LOG") {
        Ok(text) => EnvFilter::try_new(&text).map_err(|e| {
            anyhow::anyhow!("AGENTIDP_LOG={text:?} is not a log filter (e.g. info, or agentidp=debug,warn): {e}")
        })?,
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}

/// Panics go to the log as one record, not as the standard hook's raw text on stderr
/// (with `RUST_BACKTRACE` set, a whole stack trace): a supervised actor that panics is
/// restarted (the supervisor logs that too), and a fault drill (`POST
/// /api/v1/admin/faults/{actor}`) panics on purpose — a warning naming the actor, never a
/// backtrace. Any other panic is a bug: an error record with its place, and a backtrace
/// in a field only when `RUST_BACKTRACE` asks for one.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic without a message)");
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        // The engine's injected faults panic with "<actor>: fault injected".
        if let Some(actor) = message.strip_suffix(": fault injected") {
            tracing::warn!(actor, "fault drill: the actor failed on purpose; its supervisor restarts it");
            return;
        }
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!(panic = message, location, thread, %backtrace, "panicked");
        } else {
            tracing::error!(panic = message, location, thread, "panicked");
        }
    }));
}

fn print_bootstrap(out: &agentidp_engine::BootstrapOutput, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(out)?);
    } else {
        println!("AgentIdP bootstrapped. These secrets are shown once; store them now.\n");
        println!("  organization        {}", out.org_id);
        println!("  org admin client_id {}", out.client_id);
        println!("  org admin secret    {}", out.client_secret);
        println!("  platform client_id  {}", out.platform_client_id);
        println!("  platform secret     {}\n", out.platform_client_secret);
        println!("A person signs in to the organization as its administrator with:\n");
        println!("  email               {}", out.admin_email);
        println!("  password            {}\n", out.admin_password);
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}

/// Errors are an operator's to read: one line with its causes, never a stack backtrace
/// (whatever `RUST_BACKTRACE` says), and exit status 1.
fn main() -> std::process::ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| exit_naming_the_variable(e));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// clap names the flag of a value it cannot parse even when the value came from the
/// environment; an operator who never typed that flag is told the variable instead.
fn exit_naming_the_variable(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if !matches!(e.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        e.exit()
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.split_whitespace().next().unwrap_or_default().trim_start_matches('-'),
        _ => e.exit(),
    };
    let command = <Settings as clap::Args>::augment_args(Cli::command());
    let argv: Vec<String> = std::env::args().collect();
    let Some(id) = command.get_arguments().find(|a| a.get_long() == Some(flag)).map(|a| a.get_id().to_string()) else {
        e.exit()
    };
    match agentidp::config::clap_origin(&command, &id, &argv) {
        Some(origin) if !origin.to_string().starts_with("--") => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            eprintln!("error: {origin}={value:?} is not a valid value{cause}");
            std::process::exit(2)
        }
        _ => e.exit(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Ctl(ctl) => agentidp::ctl::run(ctl).await?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "agentidp", &mut std::io::stdout());
        }
        Command::Man { output_dir } => {
            use clap::CommandFactory;
            let command = Cli::command();
            match output_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                    clap_mangen::generate_to(command, &dir)
                        .with_context(|| format!("writing into {}", dir.display()))?;
                    eprintln!("man pages written to {}", dir.display());
                }
                None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
            }
        }
        Command::Serve { settings } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            log_panics();
            for warning in &resolved.warnings {
                tracing::warn!("{warning}");
            }
            let listener = tokio::net::TcpListener::bind(resolved.listen)
                .await
                .with_context(|| format!("binding {}", resolved.listen))?;
            let engine = Engine::start(resolved.engine).await?;
            match engine.bootstrap().await {
                Ok(out) => print_bootstrap(&out, false)?,
                Err(EngineError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let mut limits = resolved.http;
            agentidp::limits::fit_connection_cap(&mut limits);
            let config = engine.config();
            let store = Engine::describe_store(config);
            let coordinator = Engine::describe_coordinator(config);
            tracing::info!(
                version = env!("CARGO_PKG_VERSION"),
                listen = %resolved.listen,
                tls = limits.tls.is_some(),
                issuer = %config.issuer,
                store = %store,
                coordinator = %coordinator,
                max_connections = limits.max_connections,
                "serving"
            );
            agentidp::serve_with(listener, engine, limits, shutdown_signal()).await?;
            tracing::info!("stopped: every request answered, the audit trail and analytics written");
        }
        Command::Backup { settings, file } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            let engine = &resolved.engine;
            anyhow::ensure!(
                engine.database_url.is_none(),
                "agentidp backup copies the embedded store; for PostgreSQL use pg_dump (README, \"Backup and restore\")"
            );
            Engine::backup(engine, &file).await?;
            let key = if engine.master_key.is_some() {
                "AGENTIDP_MASTER_KEY".to_string()
            } else {
                engine.data_dir.join("master.key").display().to_string()
            };
            eprintln!(
                "backed up to {}. It does not hold the master key: keep {key} with it, or its signing keys \
                 and secrets cannot be unsealed",
                file.display()
            );
        }
        Command::Restore { settings, file } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            let engine = &resolved.engine;
            anyhow::ensure!(engine.database_url.is_none(), "agentidp restore fills an embedded store; for PostgreSQL use pg_restore or psql (README, \"Backup and restore\")");
            anyhow::ensure!(
                engine.master_key.is_some() || engine.data_dir.join("master.key").exists(),
                "put the backed-up store's master key in {} (or set AGENTIDP_MASTER_KEY) first: without it the \
                 restored signing keys cannot be unsealed",
                engine.data_dir.join("master.key").display()
            );
            let version = Engine::restore(engine, &file).await?;
            eprintln!("restored {} into {} (schema at version {version})", file.display(), engine.data_dir.display());
        }
        Command::Migrate { settings } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            let version = Engine::migrate(&resolved.engine).await?;
            println!("schema at version {version}");
        }
        Command::Keys { action: KeysAction::Rotate { settings } } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            let engine = Engine::start(resolved.engine).await?;
            let result = engine.rotate_keys(None).await;
            engine.shutdown().await;
            let key = result?;
            println!("{}", serde_json::to_string(&key)?);
        }
        Command::Bootstrap { settings, json, output } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            // The file is claimed before anything changes: an existing one is refused
            // untouched, and the credentials never exist without a place to go.
            let file = output.as_deref().map(agentidp::ctl::create_private).transpose()?;
            let result = match Engine::start(resolved.engine).await {
                Ok(engine) => {
                    let result = engine.bootstrap().await;
                    engine.shutdown().await;
                    result
                }
                Err(e) => Err(e),
            };
            if result.is_err() {
                if let Some(path) = &output {
                    let _ = std::fs::remove_file(path);
                }
            }
            match result {
                Ok(out) => match (file, &output) {
                    (Some(mut file), Some(path)) => {
                        use std::io::Write;
                        writeln!(file, "{}", serde_json::to_string(&out)?)?;
                        file.sync_all()?;
                        eprintln!("bootstrapped: the credentials are in {} (owner-only); keep it safe", path.display());
                    }
                    _ => print_bootstrap(&out, json)?,
                },
                Err(EngineError::Conflict(msg)) => anyhow::bail!(
                    "{msg}; nothing was changed. The credentials were printed when it was bootstrapped; \
                     if they are lost, `agentidp admin recover` issues a fresh platform-admin credential"
                ),
                Err(e) => return Err(e.into()),
            }
        }
        Command::Audit { action: AuditAction::VerifyArchive { settings, dir, jwks, offline } } => {
            let jwks = jwks
                .map(|path| -> anyhow::Result<serde_json::Value> {
                    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_slice(&text).with_context(|| format!("{} is not a JWKS", path.display()))
                })
                .transpose()?;
            let mut reports = agentidp_engine::families::audit::archive::verify_archive(&dir, jwks.as_ref())?;
            if !offline {
                let resolved = settings.resolve()?;
                init_logs(resolved.log_json)?;
                let engine = Engine::start(resolved.engine).await?;
                for report in &mut reports {
                    let floor = engine.audit_floor(report.chain).await;
                    match floor {
                        Ok(Some((seq, hash))) if (seq, &hash) == (report.last_seq, &report.last_hash) => {}
                        Ok(Some((seq, _))) => report.problems.push(format!(
                            "the store's events go on after {seq}, not after the archive's last event {}",
                            report.last_seq
                        )),
                        Ok(None) => report.problems.push("the store holds no such chain".into()),
                        Err(e) => report.problems.push(format!("the store could not be read: {e}")),
                    }
                    report.intact = report.problems.is_empty();
                }
                engine.shutdown().await;
            }
            for report in &reports {
                println!("{}", serde_json::to_string(report)?);
            }
            anyhow::ensure!(reports.iter().all(|r| r.intact), "the archive does not verify");
            anyhow::ensure!(!reports.is_empty(), "{} holds no archived chain", dir.display());
        }
        Command::Admin { action: AdminAction::Recover { settings, json } } => {
            let resolved = settings.resolve()?;
            init_logs(resolved.log_json)?;
            let engine = Engine::start(resolved.engine).await?;
            let result = engine.recover_platform_admin().await;
            engine.shutdown().await;
            let out = result?;
            if json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                println!("Platform administrator recovered. This secret is shown once; store it now.\n");
                println!("  organization {}", out.org_id);
                println!("  agent        {}{}", out.agent_id, if out.created { " (new)" } else { "" });
                println!("  client_id    {}", out.client_id);
                println!("  secret       {}\n", out.client_secret);
            }
        }
    }
    Ok(())
}
