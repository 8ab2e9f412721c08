//! The HTTP server's limits: every one is a setting (README, configuration table), read
//! by the connection loop (`server.rs`) and by the routes (body timeouts, head caps).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Limits of the HTTP server; every one is a setting (README, configuration table).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// A connection whose peer takes none of a pending response for this long is closed
    /// (the timer restarts whenever the peer takes some).
    pub write_timeout: Duration,
    pub max_header_bytes: usize,
    /// Browser origins allowed to call discovery, the JWKS, DID documents and the OAuth
    /// endpoints (CORS); `*` allows any. Empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS with this certificate chain and key (`--tls-cert`, `--tls-key`);
    /// `None`: plain HTTP (behind a TLS-terminating proxy, or on loopback).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            cors_origins: Vec::new(),
            tls: None,
        }
    }
}

/// The TLS configuration of a PEM certificate chain and private key (PKCS#8, PKCS#1 or
/// SEC1), HTTP/1.1 over ALPN.
/// Each file comes with where its path was given, which errors name.
pub fn tls_config(
    (cert, cert_from): (PathBuf, impl std::fmt::Display),
    (key, key_from): (PathBuf, impl std::fmt::Display),
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{cert_from} {}: not a readable PEM certificate chain", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{cert_from} {}: no certificate in the file", cert.display());
    let private = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("{key_from} {}: not a readable PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .with_context(|| format!("{cert_from} and {key_from} do not make a usable pair"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Raise the soft open-files limit to the hard one and lower `max_connections` to fit
/// under it (with room for the store's and the coordinator's sockets and files).
pub fn fit_connection_cap(limits: &mut HttpLimits) {
    if let Ok(files) = rlimit::increase_nofile_limit(u64::MAX) {
        let room = files.saturating_sub(256).max(64) as usize;
        if limits.max_connections > room {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_files_limit = files,
                "max_connections lowered to fit the open-files limit"
            );
            limits.max_connections = room;
        }
    }
}
