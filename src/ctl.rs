//! `agentidp ctl`: the admin CLI. It talks to a running server's HTTP API with a
//! credential, as Keycloak's kcadm or the hydra CLI do: no store access, so it works
//! against any node, near or remote, and is held to the same policy as every client.
//! Output is a table or a record for people, or the server's own JSON (`--json`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

#[derive(clap::Args)]
pub struct Ctl {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: CtlCommand,
}

/// Where the server is, who calls it, and how answers are printed.
#[derive(clap::Args)]
struct Connection {
    /// The server's base URL: the issuer, a node, or the load balancer in front.
    #[arg(long, env = "AGENTIDP_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// A JSON file holding `client_id` and `client_secret`: the file of `agentidp
    /// bootstrap --output` (its organization admin; add --platform for the platform
    /// admin), or one saved by `ctl credentials create --output`.
    #[arg(long, env = "AGENTIDP_CREDENTIALS", value_name = "FILE", global = true)]
    credentials: Option<PathBuf>,
    /// With --credentials naming a bootstrap file: act as its platform admin.
    #[arg(long, global = true)]
    platform: bool,
    /// The client id to authenticate with (instead of --credentials).
    #[arg(long, env = "AGENTIDP_CLIENT_ID", global = true)]
    client_id: Option<String>,
    /// Its secret. Prefer the variable or a file: a flag shows in the process list.
    #[arg(long, env = "AGENTIDP_CLIENT_SECRET", hide_env_values = true, global = true)]
    client_secret: Option<String>,
    /// An access token to call the API with, instead of getting one with a credential.
    #[arg(long, env = "AGENTIDP_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A PEM CA certificate to trust besides the system's (a self-signed server's).
    #[arg(long, env = "AGENTIDP_CACERT", value_name = "FILE", global = true)]
    cacert: Option<PathBuf>,
    /// Print the server's JSON (NDJSON for `audit export`) instead of tables.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum CtlCommand {
    /// Access tokens: get one with the credential, introspect, revoke.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Organizations (the platform admin's; an organization may read itself).
    #[command(subcommand, visible_alias = "orgs")]
    Organizations(OrgCmd),
    /// Agents of the caller's organization (or --org-id's, as platform admin).
    Agents {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: AgentCmd,
    },
    /// An agent's credentials.
    Credentials {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: CredentialCmd,
    },
    /// The audit trail: list, verify the hash chain, export it.
    Audit {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Signing keys (platform admin).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The organization's compliance report (or --org-id's, as platform admin).
    Compliance {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: ComplianceCmd,
    },
    /// The organization's Stripe subscription, and a checkout for a paid tier.
    Billing {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: BillingCmd,
    },
}

#[derive(clap::Subcommand)]
enum ComplianceCmd {
    /// The findings, most severe first, and the score.
    Report {
        /// Print the server's CSV (a row per finding and agent).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
    /// The findings that concern one agent.
    Agent { id: String },
}

#[derive(clap::Subcommand)]
enum BillingCmd {
    /// Tier, Stripe status, period end, cancellation, grace period.
    Subscription,
    /// A Stripe Checkout Session for a paid tier: prints the URL to pay at.
    Checkout {
        /// pro or enterprise.
        #[arg(long)]
        tier: String,
        #[arg(long, value_name = "URL")]
        success_url: String,
        #[arg(long, value_name = "URL")]
        cancel_url: String,
    },
}

#[derive(clap::Args)]
struct InOrg {
    /// Act in this organization (platform admin); the caller's own by default.
    #[arg(long, global = true, value_name = "UUID")]
    org_id: Option<String>,
}

#[derive(clap::Subcommand)]
enum TokenCmd {
    /// Get an access token (client_credentials). Prints the token alone, so
    /// `TOKEN=$(agentidp ctl token get)` works; --json prints the whole response.
    Get {
        /// Space-separated scopes to narrow the token to.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Ask the server whether a token is active, and what it says (RFC 7662).
    Introspect {
        /// The token; `-` reads it from standard input.
        token: String,
    },
    /// Revoke a token (RFC 7009).
    Revoke {
        /// The token; `-` reads it from standard input.
        token: String,
    },
}

#[derive(clap::Args)]
struct Listing {
    /// Follow every page, not only the first.
    #[arg(long)]
    all: bool,
    /// Items per page, 1 to 200.
    #[arg(long)]
    limit: Option<u32>,
    /// Start at this cursor (a listing's `next_cursor`).
    #[arg(long)]
    cursor: Option<String>,
}

#[derive(clap::Subcommand)]
enum OrgCmd {
    /// Organizations (platform admin), a page or --all.
    List {
        #[command(flatten)]
        listing: Listing,
    },
    /// One organization.
    Get { id: String },
    /// A new organization (platform admin).
    Create {
        name: String,
        /// free, pro or enterprise.
        #[arg(long)]
        tier: Option<String>,
    },
    /// Rename, or change the tier (platform admin).
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        tier: Option<String>,
    },
    /// Delete an organization (platform admin).
    Delete { id: String },
    /// Today's calls, agents and webhooks against the tier.
    Usage { id: String },
}

#[derive(clap::Subcommand)]
enum AgentCmd {
    /// Agents, a page or --all.
    List {
        #[command(flatten)]
        listing: Listing,
    },
    /// One agent.
    Get { id: String },
    /// A new agent; only a name is required.
    Create {
        name: String,
        /// A scope the agent may request (repeat for more).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// A JSON object of the organization's own.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// Change what is given; the rest stays.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The agent's scopes, replacing the old ones (repeat for more).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Remove every scope.
        #[arg(long, conflicts_with = "scopes")]
        no_scopes: bool,
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
    /// Suspend: its tokens stop working, it gets no new ones.
    Suspend { id: String },
    /// Undo a suspension.
    Reactivate { id: String },
    /// Delete an agent.
    Delete { id: String },
}

#[derive(clap::Subcommand)]
enum CredentialCmd {
    /// An agent's credentials (never their secrets).
    List { agent_id: String },
    /// A new client secret (shown once), or with --jwk a registered public key
    /// (private_key_jwt).
    Create {
        agent_id: String,
        /// A file holding the public JWK the agent signs its client assertions with.
        #[arg(long, value_name = "FILE")]
        jwk: Option<PathBuf>,
        /// Also write the credential (with its secret) to FILE, owner-only, never
        /// overwriting: usable as --credentials.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Replace a credential's secret (shown once).
    Rotate {
        agent_id: String,
        credential_id: String,
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Revoke a credential.
    Delete { agent_id: String, credential_id: String },
}

#[derive(clap::Subcommand)]
enum AuditCmd {
    /// Events, newest first.
    List {
        #[arg(long)]
        agent_id: Option<String>,
        #[arg(long)]
        action: Option<String>,
        /// success or failure.
        #[arg(long)]
        outcome: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        listing: Listing,
    },
    /// Verify the organization's hash chain on the server, or with --file an export
    /// here, with no server. Exits 1 when the chain is broken.
    Verify {
        /// An NDJSON file made by `audit export`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// The whole chain as NDJSON, oldest first, checked link by link as it is written.
    /// Exits 1 when the chain is broken.
    Export {
        /// Where to write it (never overwritten); standard output by default.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Subcommand)]
enum KeysCmd {
    /// Create the next signing key (published at once, signing after the
    /// pre-announcement delay).
    Rotate,
}

/// Run one `ctl` command.
pub async fn run(ctl: Ctl) -> anyhow::Result<()> {
    let out = Output { json: ctl.connection.json };
    // Offline verification needs no server and no credential.
    if let CtlCommand::Audit { action: AuditCmd::Verify { file: Some(file) }, .. } = &ctl.command {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut check = ChainCheck::default();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let event: Value =
                serde_json::from_str(line).map_err(|e| anyhow!("{} line {}: not JSON: {e}", file.display(), n + 1))?;
            check.feed(&event).map_err(|e| anyhow!("{} line {}: {e}", file.display(), n + 1))?;
        }
        return check.report(&out);
    }
    let api = Api::new(ctl.connection)?;
    match ctl.command {
        CtlCommand::Token(cmd) => token(&api, &out, cmd).await,
        CtlCommand::Organizations(cmd) => organizations(&api, &out, cmd).await,
        CtlCommand::Agents { org, action } => agents(&api, &out, org.org_id, action).await,
        CtlCommand::Credentials { org, action } => credentials(&api, &out, org.org_id, action).await,
        CtlCommand::Audit { org, action } => audit(&api, &out, org.org_id, action).await,
        CtlCommand::Compliance { org, action } => compliance(&api, &out, org.org_id, action).await,
        CtlCommand::Billing { org, action } => billing(&api, &out, org.org_id, action).await,
        CtlCommand::Keys(KeysCmd::Rotate) => {
            let key = api.call(reqwest::Method::POST, "/api/v1/keys/rotate", &[], None).await?;
            out.record(&key)
        }
    }
}

async fn token(api: &Api, out: &Output, cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Get { scope } => {
            let response = api.token_response(scope.as_deref()).await?;
            if out.json {
                return out.record(&response);
            }
            println!("{}", text(&response["access_token"]));
            Ok(())
        }
        TokenCmd::Introspect { token } => {
            let token = from_stdin_if_dash(token)?;
            let answer = api.oauth_form("/api/v1/oauth2/introspect", &[("token", &token)]).await?;
            out.record(&answer)
        }
        TokenCmd::Revoke { token } => {
            let token = from_stdin_if_dash(token)?;
            api.oauth_form("/api/v1/oauth2/revoke", &[("token", &token)]).await?;
            out.done("revoked")
        }
    }
}

async fn organizations(api: &Api, out: &Output, cmd: OrgCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let path = |id: &str| format!("/api/v1/organizations/{}", segment(id));
    match cmd {
        OrgCmd::List { listing } => {
            let page = api.list("/api/v1/organizations", Vec::new(), &listing).await?;
            out.table(&page, &[("ID", "id"), ("NAME", "name"), ("TIER", "tier"), ("CREATED", "created_at")])
        }
        OrgCmd::Get { id } => out.record(&api.call(Method::GET, &path(&id), &[], None).await?),
        OrgCmd::Create { name, tier } => {
            let body = object([("name", Some(json!(name))), ("tier", tier.map(Value::from))]);
            out.record(&api.call(Method::POST, "/api/v1/organizations", &[], Some(body)).await?)
        }
        OrgCmd::Update { id, name, tier } => {
            let body = object([("name", name.map(Value::from)), ("tier", tier.map(Value::from))]);
            out.record(&api.call(Method::PATCH, &path(&id), &[], Some(body)).await?)
        }
        OrgCmd::Delete { id } => {
            api.call(Method::DELETE, &path(&id), &[], None).await?;
            out.done(&format!("organization {id} deleted"))
        }
        OrgCmd::Usage { id } => out.record(&api.call(Method::GET, &format!("{}/usage", path(&id)), &[], None).await?),
    }
}

async fn agents(api: &Api, out: &Output, org_id: Option<String>, cmd: AgentCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let query: Vec<(&str, String)> = org_id.clone().map(|o| ("org_id", o)).into_iter().collect();
    let path = |id: &str| format!("/api/v1/agents/{}", segment(id));
    match cmd {
        AgentCmd::List { listing } => {
            let page = api.list("/api/v1/agents", query, &listing).await?;
            out.table(
                &page,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("STATUS", "status"),
                    ("SCOPES", "scopes"),
                    ("CREATED", "created_at"),
                ],
            )
        }
        AgentCmd::Get { id } => out.record(&api.call(Method::GET, &path(&id), &query, None).await?),
        AgentCmd::Create { name, scopes, description, metadata } => {
            let body = object([
                ("name", Some(json!(name))),
                ("scopes", Some(json!(scopes))),
                ("description", description.map(Value::from)),
                ("metadata", metadata.as_deref().map(json_arg).transpose()?),
                ("org_id", org_id.map(Value::from)),
            ]);
            out.record(&api.call(Method::POST, "/api/v1/agents", &[], Some(body)).await?)
        }
        AgentCmd::Update { id, name, description, scopes, no_scopes, metadata } => {
            let scopes = (no_scopes || !scopes.is_empty()).then(|| json!(scopes));
            let body = object([
                ("name", name.map(Value::from)),
                ("description", description.map(Value::from)),
                ("scopes", scopes),
                ("metadata", metadata.as_deref().map(json_arg).transpose()?),
            ]);
            out.record(&api.call(Method::PATCH, &path(&id), &query, Some(body)).await?)
        }
        AgentCmd::Suspend { id } => {
            out.record(&api.call(Method::POST, &format!("{}/suspend", path(&id)), &query, None).await?)
        }
        AgentCmd::Reactivate { id } => {
            out.record(&api.call(Method::POST, &format!("{}/reactivate", path(&id)), &query, None).await?)
        }
        AgentCmd::Delete { id } => {
            api.call(Method::DELETE, &path(&id), &query, None).await?;
            out.done(&format!("agent {id} deleted"))
        }
    }
}

async fn credentials(api: &Api, out: &Output, org_id: Option<String>, cmd: CredentialCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let query: Vec<(&str, String)> = org_id.map(|o| ("org_id", o)).into_iter().collect();
    let path = |agent: &str| format!("/api/v1/agents/{}/credentials", segment(agent));
    let (issued, output) = match cmd {
        CredentialCmd::List { agent_id } => {
            let items = api.call(Method::GET, &path(&agent_id), &query, None).await?;
            return out.table(
                &items,
                &[
                    ("ID", "id"),
                    ("CLIENT ID", "client_id"),
                    ("TYPE", "type"),
                    ("STATUS", "status"),
                    ("PREFIX", "secret_prefix"),
                    ("CREATED", "created_at"),
                ],
            );
        }
        CredentialCmd::Delete { agent_id, credential_id } => {
            let url = format!("{}/{}", path(&agent_id), segment(&credential_id));
            api.call(Method::DELETE, &url, &query, None).await?;
            return out.done(&format!("credential {credential_id} revoked"));
        }
        CredentialCmd::Create { agent_id, jwk, output } => {
            let body = match jwk {
                Some(file) => {
                    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                    let jwk = serde_json::from_str::<Value>(&text)
                        .map_err(|e| anyhow!("{} is not a JSON JWK: {e}", file.display()))?;
                    Some(json!({"type": "private_key_jwt", "jwk": jwk}))
                }
                None => None,
            };
            let file = output.as_deref().map(create_private).transpose()?;
            (api.call(Method::POST, &path(&agent_id), &query, body).await, file.zip(output))
        }
        CredentialCmd::Rotate { agent_id, credential_id, output } => {
            let url = format!("{}/{}/rotate", path(&agent_id), segment(&credential_id));
            let file = output.as_deref().map(create_private).transpose()?;
            (api.call(Method::POST, &url, &query, None).await, file.zip(output))
        }
    };
    match (issued, output) {
        (Ok(issued), Some((mut file, path))) => {
            writeln!(file, "{issued}")?;
            file.sync_all()?;
            eprintln!("the credential is in {} (owner-only)", path.display());
            out.record(&issued)
        }
        (Ok(issued), None) => {
            if issued.get("client_secret").is_some() && !out.json {
                eprintln!("the client secret is shown once; store it now");
            }
            out.record(&issued)
        }
        (Err(e), output) => {
            // The file was claimed first so that a secret never lacks a place to go;
            // nothing was issued, so it goes again.
            if let Some((_, path)) = output {
                let _ = std::fs::remove_file(path);
            }
            Err(e)
        }
    }
}

async fn audit(api: &Api, out: &Output, org_id: Option<String>, cmd: AuditCmd) -> anyhow::Result<()> {
    use reqwest::Method;
    let org: Vec<(&str, String)> = org_id.map(|o| ("org_id", o)).into_iter().collect();
    match cmd {
        AuditCmd::List { agent_id, action, outcome, since, until, listing } => {
            let mut query = org;
            for (name, value) in
                [("agent_id", agent_id), ("action", action), ("outcome", outcome), ("since", since), ("until", until)]
            {
                query.extend(value.map(|v| (name, v)));
            }
            let page = api.list("/api/v1/audit-events", query, &listing).await?;
            out.table(
                &page,
                &[
                    ("SEQ", "seq"),
                    ("TIME", "occurred_at"),
                    ("ACTION", "action"),
                    ("OUTCOME", "outcome"),
                    ("ACTOR", "actor"),
                    ("TARGET", "target"),
                ],
            )
        }
        AuditCmd::Verify { .. } => {
            let report = api.call(Method::GET, "/api/v1/audit-events/verify", &org, None).await?;
            out.record(&report)?;
            if report["intact"] != Value::Bool(true) {
                bail!("the audit chain is broken at event {}", text(&report["first_broken_event"]));
            }
            Ok(())
        }
        AuditCmd::Export { output } => {
            // The listing runs newest first; the chain is checked oldest first.
            let listing = Listing { all: true, limit: Some(200), cursor: None };
            let page = api.list("/api/v1/audit-events", org, &listing).await?;
            let events = page["items"].as_array().cloned().unwrap_or_default();
            let mut sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(create_private(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut check = ChainCheck::default();
            for event in events.iter().rev() {
                check.feed(event)?;
                writeln!(sink, "{event}")?;
            }
            sink.flush()?;
            drop(sink);
            // The report goes to stderr: stdout may be the export itself.
            check.report(&Output { json: false })
        }
    }
}

async fn compliance(api: &Api, out: &Output, org_id: Option<String>, cmd: ComplianceCmd) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = org_id.map(|o| ("org_id", o)).into_iter().collect();
    let findings = [("SEVERITY", "severity"), ("CHECK", "id"), ("TITLE", "title")];
    match cmd {
        ComplianceCmd::Report { csv } => {
            if csv {
                query.push(("format", "csv".into()));
            }
            let report = api.call(reqwest::Method::GET, "/api/v1/compliance/report", &query, None).await?;
            if csv {
                print!("{}", text(&report));
                return Ok(());
            }
            if out.json {
                return out.record(&report);
            }
            println!("score {} of 100 ({} agents checked)\n", text(&report["score"]), text(&report["agents_checked"]));
            out.table(&json!({"items": report["findings"]}), &findings)
        }
        ComplianceCmd::Agent { id } => {
            let path = format!("/api/v1/compliance/agents/{}", segment(&id));
            let view = api.call(reqwest::Method::GET, &path, &query, None).await?;
            if out.json {
                return out.record(&view);
            }
            out.table(&json!({"items": view["findings"]}), &findings)
        }
    }
}

async fn billing(api: &Api, out: &Output, org_id: Option<String>, cmd: BillingCmd) -> anyhow::Result<()> {
    let query: Vec<(&str, String)> = org_id.map(|o| ("org_id", o)).into_iter().collect();
    match cmd {
        BillingCmd::Subscription => {
            out.record(&api.call(reqwest::Method::GET, "/api/v1/billing/subscription", &query, None).await?)
        }
        BillingCmd::Checkout { tier, success_url, cancel_url } => {
            let body = json!({"tier": tier, "success_url": success_url, "cancel_url": cancel_url});
            let session =
                api.call(reqwest::Method::POST, "/api/v1/billing/checkout-session", &query, Some(body)).await?;
            if out.json {
                return out.record(&session);
            }
            eprintln!("pay at:");
            println!("{}", text(&session["url"]));
            Ok(())
        }
    }
}

/// Verifies an exported chain with the engine's own rule, event by event.
#[derive(Default)]
struct ChainCheck {
    verifier: agentidp_engine::domain::audit_chain::ChainVerifier,
    org_id: Option<Value>,
}

impl ChainCheck {
    fn feed(&mut self, event: &Value) -> anyhow::Result<()> {
        let parsed: agentidp_engine::AuditEvent =
            serde_json::from_value(event.clone()).map_err(|e| anyhow!("not an audit event: {e}"))?;
        let org = self.org_id.get_or_insert_with(|| event["org_id"].clone());
        if *org != event["org_id"] {
            bail!("event {} belongs to another organization's chain", parsed.id);
        }
        self.verifier.feed(&parsed);
        Ok(())
    }

    fn report(self, out: &Output) -> anyhow::Result<()> {
        let v = &self.verifier;
        let report = json!({
            "org_id": self.org_id.unwrap_or(Value::Null),
            "intact": v.first_broken.is_none(),
            "events_checked": v.checked,
            "first_broken_event": v.first_broken,
        });
        if out.json {
            out.record(&report)?;
        } else {
            eprintln!(
                "{} events checked; the chain is {}",
                v.checked,
                if v.first_broken.is_none() { "intact" } else { "BROKEN" }
            );
        }
        match v.first_broken {
            Some(id) => bail!("the audit chain is broken at event {id}"),
            None => Ok(()),
        }
    }
}

/// The HTTP side: one client, a bearer token obtained once.
struct Api {
    http: reqwest::Client,
    base: String,
    client: Option<(String, String)>,
    token: tokio::sync::OnceCell<String>,
}

impl Api {
    fn new(c: Connection) -> anyhow::Result<Api> {
        let base = c.server.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| anyhow!("--server {base:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--server {base:?} must be an http or https URL");
        }
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(path) = &c.cacert {
            let pem = std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| anyhow!("--cacert {} is not a PEM certificate: {e}", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = match (&c.credentials, c.client_id, c.client_secret) {
            (_, Some(id), Some(secret)) => Some((id, secret)),
            (Some(file), None, None) => Some(read_credentials(file, c.platform)?),
            (None, None, None) => None,
            (_, Some(_), None) | (_, None, Some(_)) => {
                bail!(
                    "give --client-id and --client-secret together (or AGENTIDP_CLIENT_ID and AGENTIDP_CLIENT_SECRET)"
                )
            }
        };
        let token = tokio::sync::OnceCell::new_with(c.token);
        if client.is_none() && !token.initialized() {
            bail!(
                "no credential: give --credentials FILE (e.g. the file of `agentidp bootstrap --output`), \
                 --client-id and --client-secret, or --token (or their AGENTIDP_* variables)"
            );
        }
        Ok(Api { http: builder.build()?, base, client, token })
    }

    fn client(&self) -> anyhow::Result<&(String, String)> {
        self.client.as_ref().ok_or_else(|| {
            anyhow!(
                "this needs a client credential (--credentials, or --client-id and --client-secret), not only a token"
            )
        })
    }

    async fn token_response(&self, scope: Option<&str>) -> anyhow::Result<Value> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|s| ("scope", s)));
        self.oauth_form("/api/v1/oauth2/token", &form).await
    }

    async fn bearer(&self) -> anyhow::Result<&str> {
        let token = self
            .token
            .get_or_try_init(|| async {
                let response = self.token_response(None).await?;
                response["access_token"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("the token endpoint answered without an access_token"))
            })
            .await?;
        Ok(token)
    }

    /// A form POST to an OAuth endpoint, authenticated as the client (client_secret_basic).
    async fn oauth_form(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let (id, secret) = self.client()?;
        // RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
        let enc = |s: &str| serde_urlencoded::to_string([("", s)]).map(|t| t[1..].to_string());
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(enc(id)?, Some(enc(secret)?))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form)?);
        self.send(request).await
    }

    /// A management call with the bearer token; a 204 is `null`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            url = format!("{url}?{}", serde_urlencoded::to_string(query)?);
        }
        let mut request = self.http.request(method, url).bearer_auth(self.bearer().await?);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        self.send(request).await
    }

    /// One page of a listing, or every page with `--all`, as `{"items", "next_cursor"}`.
    async fn list(&self, path: &str, mut query: Vec<(&str, String)>, listing: &Listing) -> anyhow::Result<Value> {
        query.extend(listing.limit.map(|l| ("limit", l.to_string())));
        let mut cursor = listing.cursor.clone();
        let mut items = Vec::new();
        loop {
            let mut q = query.clone();
            q.extend(cursor.take().map(|c| ("cursor", c)));
            let mut page = self.call(reqwest::Method::GET, path, &q, None).await?;
            if let Some(Value::Array(more)) = page.get_mut("items").map(Value::take) {
                items.extend(more);
            }
            cursor = page["next_cursor"].as_str().map(str::to_string);
            if !listing.all || cursor.is_none() {
                return Ok(json!({"items": items, "next_cursor": cursor}));
            }
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.send().await.map_err(|e| anyhow!("cannot reach {}: {}", self.base, chain(&e)))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| anyhow!("reading the answer of {}: {e}", self.base))?;
        // JSON, or text as it came (the compliance report's CSV).
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if status.is_success() {
            return Ok(body);
        }
        // The OAuth error form (RFC 6749 §5.2), or a problem (RFC 9457).
        let reason = match (&body["error"], &body["title"]) {
            (Value::String(error), _) => match body["error_description"].as_str() {
                Some(description) => format!("{error}: {description}"),
                None => error.clone(),
            },
            (_, Value::String(title)) => match body["detail"].as_str() {
                Some(detail) => format!("{title}: {detail}"),
                None => title.clone(),
            },
            _ => String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        };
        bail!("{} {}", status.as_u16(), reason)
    }
}

/// Print for people or for scripts.
#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// One object: its JSON, or a field per line.
    fn record(&self, value: &Value) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            writeln!(stdout, "{}", serde_json::to_string_pretty(value)?)?;
            return Ok(());
        }
        let Some(fields) = value.as_object() else {
            writeln!(stdout, "{}", text(value))?;
            return Ok(());
        };
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, field) in fields {
            writeln!(stdout, "{key:<width$}  {}", text(field))?;
        }
        Ok(())
    }

    /// A listing (`{"items": […]}` or an array): its JSON, or aligned columns with the
    /// cursor of the next page on stderr.
    fn table(&self, page: &Value, columns: &[(&str, &str)]) -> anyhow::Result<()> {
        if self.json {
            return self.record(page);
        }
        let items = page.get("items").unwrap_or(page).as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> =
            items.iter().map(|item| columns.iter().map(|(_, key)| text(&item[*key])).collect()).collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, (head, _))| rows.iter().map(|r| r[i].chars().count()).chain([head.len()]).max().unwrap_or(0))
            .collect();
        let mut stdout = std::io::stdout().lock();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            out
        };
        writeln!(stdout, "{}", line(columns.iter().map(|(h, _)| *h).collect()))?;
        for row in &rows {
            writeln!(stdout, "{}", line(row.iter().map(String::as_str).collect()))?;
        }
        if let Some(cursor) = page["next_cursor"].as_str() {
            eprintln!("more: --cursor {cursor} (or --all)");
        }
        Ok(())
    }

    /// An act with no body to show: a line on stderr, `{}` for scripts.
    fn done(&self, what: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{{}}");
        }
        eprintln!("{what}");
        Ok(())
    }
}

/// A value as a table cell: strings bare, lists space-separated, absent as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(text).collect::<Vec<_>>().join(" ")
        }
        other => other.to_string(),
    }
}

/// A JSON object of the fields that were given.
fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect::<Map<_, _>>())
}

fn json_arg(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("--metadata is not JSON: {e}"))
}

/// What may not stand in a path segment as typed (RFC 3986 §3.3): an odd id is then a
/// 4xx about that id, never another route.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

fn from_stdin_if_dash(token: String) -> anyhow::Result<String> {
    if token != "-" {
        return Ok(token);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    match text.trim() {
        "" => bail!("no token on standard input"),
        token => Ok(token.to_string()),
    }
}

fn read_credentials(path: &Path, platform: bool) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading --credentials {}", path.display()))?;
    let file: Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("--credentials {} is not JSON: {e}", path.display()))?;
    let (id, secret) =
        if platform { ("platform_client_id", "platform_client_secret") } else { ("client_id", "client_secret") };
    match (file[id].as_str(), file[secret].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_string(), secret.to_string())),
        _ => bail!("--credentials {} has no {id} and {secret}", path.display()),
    }
}

/// Create `path` for secrets: new (never overwriting what may be the only copy of
/// earlier ones), owner-only.
pub fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow!(
            "{} exists and was left as it is (it may hold credentials issued earlier); use it, or name \
             another file; nothing was changed",
            path.display()
        ),
        _ => anyhow!("cannot create {}: {e}", path.display()),
    })
}

/// An error with its causes, on one line (reqwest hides the useful part in `source`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
