//! The HTTP side of `ctl` (one client, a bearer token obtained once, the server's
//! refusals in words) and how answers are printed.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Map, Value};

use super::{Connection, Listing};

/// The HTTP side: one client, a bearer token obtained once.
pub(super) struct Api {
    http: reqwest::Client,
    base: String,
    client: Option<(String, String)>,
    token: tokio::sync::OnceCell<String>,
}

impl Api {
    pub(super) fn new(c: Connection) -> anyhow::Result<Api> {
        let base = c.server.trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&base).map_err(|e| anyhow!("--server {base:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--server {base:?} must be an http or https URL");
        }
        // The credential goes as Basic and the token as Bearer: in clear text over
        // plain HTTP, which only the loopback interface keeps on this machine.
        if parsed.scheme() == "http" && !is_loopback(&parsed) && !c.insecure {
            bail!(
                "--server {base:?} is plain http to a host that is not loopback: the client secret and the \
                 access token would cross the network in clear text. Use https (with --cacert for a \
                 self-signed server), or pass --insecure if this network is trusted"
            );
        }
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(path) = &c.cacert {
            let pem = std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
            builder = builder.tls_backend_preconfigured(super::tls::client_config(&pem, path)?);
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

    pub(super) async fn token_response(&self, scope: Option<&str>) -> anyhow::Result<Value> {
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

    /// The caller's own organization: the `org_id` claim of its access token (RFC 9068
    /// tokens are JWTs; the server checked the signature when it issued or will check it
    /// when it gets it back, so the claims are only read here).
    pub(super) async fn own_org_id(&self) -> anyhow::Result<String> {
        use base64::Engine as _;
        let token = self.bearer().await?;
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|part| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        match claims.as_ref().and_then(|c| c["org_id"].as_str()) {
            Some(org) => Ok(org.to_string()),
            None => bail!("the access token names no organization: give the organization's id"),
        }
    }

    /// A form POST to an OAuth endpoint, authenticated as the client (client_secret_basic).
    pub(super) async fn oauth_form(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
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
    pub(super) async fn call(
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
    pub(super) async fn list(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        listing: &Listing,
    ) -> anyhow::Result<Value> {
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
pub(super) struct Output {
    pub json: bool,
}

impl Output {
    /// One object: its JSON, or a field per line.
    pub(super) fn record(&self, value: &Value) -> anyhow::Result<()> {
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
    pub(super) fn table(&self, page: &Value, columns: &[(&str, &str)]) -> anyhow::Result<()> {
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
    pub(super) fn done(&self, what: &str) -> anyhow::Result<()> {
        if self.json {
            println!("{{}}");
        }
        eprintln!("{what}");
        Ok(())
    }
}

/// A value as a table cell: strings bare, lists space-separated, absent as `-`.
pub(super) fn text(value: &Value) -> String {
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
pub(super) fn object<const N: usize>(fields: [(&str, Option<Value>); N]) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect::<Map<_, _>>())
}

pub(super) fn json_arg(text: &str) -> anyhow::Result<Value> {
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

pub(super) fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

pub(super) fn from_stdin_if_dash(token: String) -> anyhow::Result<String> {
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

/// Whether a URL names this machine's loopback interface: `localhost`, 127.0.0.0/8 or
/// ::1. Anything else, even a name that happens to resolve to loopback, is not.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
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
