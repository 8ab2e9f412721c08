//! The outbound HTTP port: how the engine calls other servers (a partner's JWKS, a
//! webhook subscriber). Domain code and actors see only [`HttpClient`]; the adapter
//! ([`reqwest::ReqwestClient`]) is the one place a client library is used. Every request
//! is bounded: a total timeout, a cap on the response body (read as it streams, so a
//! huge answer is cut off, not buffered), and no redirects unless the request allows
//! them — a JWKS URL that redirects elsewhere is a finding, not a convenience.
//!
//! The engine crate holds no HTTP *server*; `scripts/check-structure` enforces that on
//! `cargo tree`.

pub mod destinations;
pub mod reqwest;

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::kernel::error::Result;
pub use destinations::Destinations;

/// One outbound request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The whole exchange — connect, send, and read the body — within this.
    pub timeout: Duration,
    /// The most body bytes accepted; past it the request fails.
    pub max_response_bytes: usize,
    /// Redirects followed (0: a 3xx is answered as it is).
    pub max_redirects: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl OutboundRequest {
    /// A GET with the defaults: 5 s, 1 MiB, no redirects.
    pub fn get(url: impl Into<String>) -> Self {
        OutboundRequest {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(5),
            max_response_bytes: 1 << 20,
            max_redirects: 0,
        }
    }

    /// A POST of `body` with the same defaults.
    pub fn post(url: impl Into<String>, body: Vec<u8>) -> Self {
        OutboundRequest { method: Method::Post, body, ..OutboundRequest::get(url) }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The answer, whatever its status.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What fails an outbound request: a transport failure, a timeout, an oversized body, a
/// bad URL. (A 4xx or 5xx answer is a response, not an error.)
#[async_trait]
pub trait HttpClient: Send + Sync + 'static {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse>;
}

/// How host names become addresses: the system resolver, or one a test or embedder
/// injects (to see what a guarded client does when a name's answer changes).
#[async_trait]
pub trait Resolver: std::fmt::Debug + Send + Sync + 'static {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver.
#[derive(Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// `host`'s addresses, if every one is allowed by `destinations`. (One refused address
/// refuses the name: a name answering both a public and a private address is an attack.)
pub async fn allowed_addresses(
    destinations: Destinations,
    resolver: &dyn Resolver,
    host: &str,
) -> std::io::Result<Vec<IpAddr>> {
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let ips = resolver.resolve(host).await?;
    if ips.is_empty() {
        return Err(refused(format!("{host} has no address")));
    }
    if let Some(bad) = ips.iter().find(|ip| !destinations.allows(**ip)) {
        return Err(refused(format!("{host} resolves to {bad}, which is not a public address")));
    }
    Ok(ips)
}

/// Check `url` as a guarded client does before it connects: its form and literal
/// address, and every address its name resolves to now. The refusal says why.
pub async fn check_destination(
    destinations: Destinations,
    resolver: &dyn Resolver,
    url: &str,
) -> std::result::Result<(), String> {
    let parsed = destinations.check_url(url)?;
    if let Some(url::Host::Domain(host)) = parsed.host() {
        allowed_addresses(destinations, resolver, host).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
