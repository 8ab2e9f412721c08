//! The `ctl` commands: each turns its arguments into API calls and prints the answer.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use super::client::{create_private, from_stdin_if_dash, json_arg, object, segment, text, Api, Output};
use super::{AgentCmd, AgentDetails, AuditCmd, BillingCmd, ComplianceCmd, CredentialCmd, Listing, OrgCmd, TokenCmd};

pub(super) async fn token(api: &Api, out: &Output, cmd: TokenCmd) -> anyhow::Result<()> {
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

pub(super) async fn organizations(api: &Api, out: &Output, cmd: OrgCmd) -> anyhow::Result<()> {
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
        OrgCmd::Usage { id } => {
            let id = match id {
                Some(id) => id,
                None => api.own_org_id().await?,
            };
            out.record(&api.call(Method::GET, &format!("{}/usage", path(&id)), &[], None).await?)
        }
    }
}

pub(super) async fn agents(api: &Api, out: &Output, org_id: Option<String>, cmd: AgentCmd) -> anyhow::Result<()> {
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
        AgentCmd::Create { name, details } => {
            let mut body = agent_body(Some(name), true, details)?;
            if let Some(org) = org_id {
                body["org_id"] = org.into();
            }
            out.record(&api.call(Method::POST, "/api/v1/agents", &[], Some(body)).await?)
        }
        AgentCmd::Update { id, name, details, no_scopes } => {
            let body = agent_body(name, no_scopes || !details.scopes.is_empty(), details)?;
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

/// An agent's JSON body of what was given (`scopes` only when `with_scopes`).
fn agent_body(name: Option<String>, with_scopes: bool, d: AgentDetails) -> anyhow::Result<Value> {
    Ok(object([
        ("name", name.map(Value::from)),
        ("scopes", with_scopes.then(|| json!(d.scopes))),
        ("description", d.description.map(Value::from)),
        ("metadata", d.metadata.as_deref().map(json_arg).transpose()?),
    ]))
}

pub(super) async fn credentials(
    api: &Api,
    out: &Output,
    org_id: Option<String>,
    cmd: CredentialCmd,
) -> anyhow::Result<()> {
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
        (Ok(mut issued), Some((mut file, path))) => {
            writeln!(file, "{issued}")?;
            file.sync_all()?;
            eprintln!("the credential is in {} (owner-only)", path.display());
            // The secret is in the file only: a terminal's scrollback, a CI log or a
            // pipe is no place for a second copy.
            if let Some(fields) = issued.as_object_mut() {
                fields.remove("client_secret");
            }
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

pub(super) async fn audit(api: &Api, out: &Output, org_id: Option<String>, cmd: AuditCmd) -> anyhow::Result<()> {
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

pub(super) async fn compliance(
    api: &Api,
    out: &Output,
    org_id: Option<String>,
    cmd: ComplianceCmd,
) -> anyhow::Result<()> {
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
            let checked = match report["agents_checked"].as_u64() {
                Some(1) => "1 agent".to_string(),
                Some(n) => format!("{n} agents"),
                None => format!("{} agents", text(&report["agents_checked"])),
            };
            println!("score {} of 100 ({checked} checked)\n", text(&report["score"]));
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

pub(super) async fn billing(api: &Api, out: &Output, org_id: Option<String>, cmd: BillingCmd) -> anyhow::Result<()> {
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

/// `audit verify --file [--checkpoints F --jwks F]`: the chain of an export checked
/// here, with no server — and, given them, against its signed checkpoints.
pub(super) fn verify_export(file: &Path, signed: Option<(&Path, &Path)>, out: &Output) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut check = ChainCheck::default();
    if let Some((checkpoints, jwks)) = signed {
        check.checkpoints = signed_checkpoints(checkpoints, jwks)?;
    }
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let event: Value =
            serde_json::from_str(line).map_err(|e| anyhow!("{} line {}: not JSON: {e}", file.display(), n + 1))?;
        check.feed(&event).map_err(|e| anyhow!("{} line {}: {e}", file.display(), n + 1))?;
    }
    check.report(out)
}

/// Read a saved page of checkpoints and verify each one's JWT with the saved JWKS: the
/// `(chain, seq, hash)` each vouches for.
fn signed_checkpoints(checkpoints: &Path, jwks: &Path) -> anyhow::Result<Vec<(String, i64, String)>> {
    let read = |path: &Path| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: not JSON: {e}", path.display()))
    };
    let (page, jwks) = (read(checkpoints)?, read(jwks)?);
    let items = page["items"].as_array().or(page.as_array()).ok_or_else(|| {
        anyhow!("{}: not a page of checkpoints (GET /api/v1/audit-events/checkpoints)", checkpoints.display())
    })?;
    items
        .iter()
        .map(|item| {
            let jwt = item["jwt"].as_str().ok_or_else(|| anyhow!("a checkpoint without its jwt"))?;
            let claims = agentidp_engine::kernel::jose::verify_with_jwks(jwt, &jwks, "audit-checkpoint+jwt")
                .map_err(|e| anyhow!("checkpoint {}: {e}", item["seq"]))?;
            match (claims["sub"].as_str(), claims["seq"].as_i64(), claims["hash"].as_str()) {
                (Some(chain), Some(seq), Some(hash)) => Ok((chain.to_string(), seq, hash.to_string())),
                _ => bail!("checkpoint {}: its claims lack sub, seq or hash", item["seq"]),
            }
        })
        .collect()
}

/// Verifies an exported chain with the engine's own rule, event by event, and against
/// the signed checkpoints it is given.
#[derive(Default)]
struct ChainCheck {
    verifier: agentidp_engine::families::audit::chain::ChainVerifier,
    org_id: Option<Value>,
    /// Signed (chain, seq, hash) the export must hold.
    checkpoints: Vec<(String, i64, String)>,
    /// Those it was seen to hold.
    held: usize,
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
        let chain = parsed.org_id.unwrap_or_default().to_string();
        for (c, seq, hash) in &self.checkpoints {
            if *seq == parsed.seq && *c == chain {
                if *hash != parsed.hash {
                    bail!("event {} is not the one checkpoint {seq} signed", parsed.id);
                }
                self.held += 1;
            }
        }
        Ok(())
    }

    fn report(self, out: &Output) -> anyhow::Result<()> {
        let v = &self.verifier;
        let missing = self.checkpoints.len() - self.held;
        let report = json!({
            "org_id": self.org_id.unwrap_or(Value::Null),
            "intact": v.first_broken.is_none() && missing == 0,
            "events_checked": v.checked,
            "first_broken_event": v.first_broken,
            "checkpoints_checked": self.checkpoints.len(),
        });
        if out.json {
            out.record(&report)?;
        } else {
            eprintln!(
                "{} events checked; the chain is {}",
                v.checked,
                if v.first_broken.is_none() && missing == 0 { "intact" } else { "BROKEN" }
            );
        }
        match v.first_broken {
            Some(id) => bail!("the audit chain is broken at event {id}"),
            None if missing > 0 => {
                bail!("the export lacks the event of {missing} signed checkpoint(s): events were removed")
            }
            None => Ok(()),
        }
    }
}
