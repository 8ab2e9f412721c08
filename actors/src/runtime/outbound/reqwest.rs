//! The outbound HTTP adapter on reqwest, over rustls (the TLS stack the Vault client
//! already brings). The no-redirect client and its connection pool are built once; a
//! request that allows redirects gets a client of its own.
//!
//! A *guarded* client ([`ReqwestClient::guarded`]) connects only to the addresses its
//! [`Destinations`] allow: it resolves every name itself and hands the connector only
//! the addresses that passed, so the connection goes to an address that was checked
//! (no second lookup an attacker's DNS could answer differently). It uses no proxy and
//! follows no redirect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::kernel::error::{EngineError, Result};
use crate::runtime::outbound::Destinations;
use crate::runtime::outbound::{HttpClient, Method, OutboundRequest, OutboundResponse, Resolver};

/// Outbound HTTP through reqwest.
pub struct ReqwestClient {
    direct: reqwest::Client,
    connect_timeout: Duration,
    /// A guarded client's rules (it never follows redirects).
    guard: Option<Guard>,
}

#[derive(Clone)]
struct Guard {
    destinations: Destinations,
    resolver: Arc<dyn Resolver>,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let allowed =
                crate::runtime::outbound::allowed_addresses(guard.destinations, guard.resolver.as_ref(), &host).await?;
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

impl ReqwestClient {
    pub fn new() -> Result<Self> {
        let connect_timeout = Duration::from_secs(3);
        let direct = Self::build(reqwest::redirect::Policy::none(), connect_timeout, None)?;
        Ok(ReqwestClient { direct, connect_timeout, guard: None })
    }

    /// A client that connects only where `destinations` allow, resolving names with
    /// `resolver`; no proxy, no redirects.
    pub fn guarded(destinations: Destinations, resolver: Arc<dyn Resolver>) -> Result<Self> {
        let connect_timeout = Duration::from_secs(3);
        let guard = Guard { destinations, resolver };
        let direct = Self::build(reqwest::redirect::Policy::none(), connect_timeout, Some(&guard))?;
        Ok(ReqwestClient { direct, connect_timeout, guard: Some(guard) })
    }

    fn build(
        redirects: reqwest::redirect::Policy,
        connect_timeout: Duration,
        guard: Option<&Guard>,
    ) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .redirect(redirects)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("agentidp/", env!("CARGO_PKG_VERSION")));
        if let Some(guard) = guard {
            builder = builder.no_proxy().dns_resolver(Arc::new(guard.clone()));
        }
        builder.build().map_err(|e| EngineError::internal(format!("outbound HTTP client: {e}")))
    }

    async fn exchange(&self, request: OutboundRequest) -> Result<OutboundResponse> {
        if let Some(guard) = &self.guard {
            // A literal address never reaches the resolver: the URL check covers it.
            guard.destinations.check_url(&request.url).map_err(|why| {
                EngineError::Unavailable(format!("outbound request to {} refused: {why}", request.url))
            })?;
        }
        let client = match (request.max_redirects, &self.guard) {
            (0, _) | (_, Some(_)) => self.direct.clone(),
            (n, None) => Self::build(reqwest::redirect::Policy::limited(n), self.connect_timeout, None)?,
        };
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut builder = client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if request.method == Method::Post {
            builder = builder.body(request.body);
        }
        let response = builder.send().await.map_err(|e| unavailable(&request.url, &e))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
            .collect();
        if response.content_length().is_some_and(|n| n > request.max_response_bytes as u64) {
            return Err(too_large(&request.url, request.max_response_bytes));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| unavailable(&request.url, &e))?;
            if body.len() + chunk.len() > request.max_response_bytes {
                return Err(too_large(&request.url, request.max_response_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(OutboundResponse { status, headers, body })
    }
}

fn unavailable(url: &str, e: &reqwest::Error) -> EngineError {
    // A guarded client's refusal is the most useful thing to say: find it in the chain.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return EngineError::Unavailable(format!("outbound request to {url} refused: {io}"));
            }
        }
        source = cause.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_builder() {
        "is not a usable URL"
    } else {
        "failed"
    };
    EngineError::Unavailable(format!("outbound request to {url} {what}"))
}

fn too_large(url: &str, cap: usize) -> EngineError {
    EngineError::Unavailable(format!("the answer from {url} is larger than {cap} bytes"))
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse> {
        let (url, timeout) = (request.url.clone(), request.timeout);
        tokio::time::timeout(timeout, self.exchange(request))
            .await
            .map_err(|_| EngineError::Unavailable(format!("outbound request to {url} timed out after {timeout:?}")))?
    }
}
