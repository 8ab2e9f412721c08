//! The outbound HTTP adapter on reqwest, over rustls (the TLS stack the Vault client
//! already brings). The no-redirect client and its connection pool are built once; a
//! request that allows redirects gets a client of its own.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;

use super::{HttpClient, Method, OutboundRequest, OutboundResponse};
use crate::error::{EngineError, Result};

/// Outbound HTTP through reqwest.
pub struct ReqwestClient {
    direct: reqwest::Client,
    connect_timeout: Duration,
}

impl ReqwestClient {
    pub fn new() -> Result<Self> {
        let connect_timeout = Duration::from_secs(3);
        let direct = Self::build(reqwest::redirect::Policy::none(), connect_timeout)?;
        Ok(ReqwestClient { direct, connect_timeout })
    }

    fn build(redirects: reqwest::redirect::Policy, connect_timeout: Duration) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .redirect(redirects)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("agentidp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::internal(format!("outbound HTTP client: {e}")))
    }

    async fn exchange(&self, request: OutboundRequest) -> Result<OutboundResponse> {
        let client = match request.max_redirects {
            0 => self.direct.clone(),
            n => Self::build(reqwest::redirect::Policy::limited(n), self.connect_timeout)?,
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
