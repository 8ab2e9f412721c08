//! `agentidp ctl`: the admin CLI. It talks to a running server's HTTP API with a
//! credential, as Keycloak's kcadm or the hydra CLI do: no store access, so it works
//! against any node, near or remote, and is held to the same policy as every client.
//! Output is a table or a record for people, or the server's own JSON (`--json`).

mod client;
mod commands;
mod tls;
mod users;

use std::path::PathBuf;

pub use client::create_private;
use client::{Api, Output};

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
    /// A PEM certificate to trust besides the system's: a CA, or a self-signed server's
    /// own certificate (such as `openssl req -x509` makes).
    #[arg(long, env = "AGENTIDP_CACERT", value_name = "FILE", global = true)]
    cacert: Option<PathBuf>,
    /// Allow a plain `http://` --server that is not loopback. Without it such a server
    /// is refused: the client secret and the bearer token would cross the network in
    /// clear text. (It does not relax certificate checks of an https server.)
    #[arg(long, global = true)]
    insecure: bool,
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
    /// People of the caller's organization (or --org-id's, as platform admin).
    Users {
        #[command(flatten)]
        org: InOrg,
        #[command(subcommand)]
        action: users::UserCmd,
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
    /// Today's calls, agents and webhooks against the tier: the caller's own
    /// organization's, or ID's (platform admin).
    Usage { id: Option<String> },
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
        #[command(flatten)]
        details: AgentDetails,
    },
    /// Change what is given; the rest stays.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        details: AgentDetails,
        /// Remove every scope.
        #[arg(long, conflicts_with = "scopes")]
        no_scopes: bool,
    },
    /// Suspend: its tokens stop working, it gets no new ones.
    Suspend { id: String },
    /// Undo a suspension.
    Reactivate { id: String },
    /// Delete an agent.
    Delete { id: String },
}

/// What `agents create` and `agents update` may set besides the name.
#[derive(clap::Args)]
struct AgentDetails {
    /// A scope the agent may request (repeat for more); on update, they replace the old ones.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    #[arg(long)]
    description: Option<String>,
    /// A JSON object of the organization's own.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
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
    /// here, with no server (and with --checkpoints and --jwks, against the signed
    /// checkpoints too). Exits 1 when the chain is broken.
    Verify {
        /// An NDJSON file made by `audit export`.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The chain's signed checkpoints: what `GET /api/v1/audit-events/checkpoints`
        /// answers (its `items`). Each must verify with --jwks and be held by the export.
        #[arg(long, value_name = "FILE", requires_all = ["file", "jwks"])]
        checkpoints: Option<PathBuf>,
        /// The issuer's JWK Set (`/.well-known/jwks.json`), saved.
        #[arg(long, value_name = "FILE", requires = "checkpoints")]
        jwks: Option<PathBuf>,
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
    if let CtlCommand::Audit { action: AuditCmd::Verify { file: Some(file), checkpoints, jwks }, .. } = &ctl.command {
        return commands::verify_export(file, checkpoints.as_deref().zip(jwks.as_deref()), &out);
    }
    let api = Api::new(ctl.connection)?;
    match ctl.command {
        CtlCommand::Token(cmd) => commands::token(&api, &out, cmd).await,
        CtlCommand::Organizations(cmd) => commands::organizations(&api, &out, cmd).await,
        CtlCommand::Agents { org, action } => commands::agents(&api, &out, org.org_id, action).await,
        CtlCommand::Users { org, action } => users::users(&api, &out, org.org_id, action).await,
        CtlCommand::Credentials { org, action } => commands::credentials(&api, &out, org.org_id, action).await,
        CtlCommand::Audit { org, action } => commands::audit(&api, &out, org.org_id, action).await,
        CtlCommand::Compliance { org, action } => commands::compliance(&api, &out, org.org_id, action).await,
        CtlCommand::Billing { org, action } => commands::billing(&api, &out, org.org_id, action).await,
        CtlCommand::Keys(KeysCmd::Rotate) => {
            let key = api.call(reqwest::Method::POST, "/api/v1/keys/rotate", &[], None).await?;
            out.record(&key)
        }
    }
}
