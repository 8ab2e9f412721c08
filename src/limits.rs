//! The HTTP server's limits: every one is a setting (README, configuration table), read
//! by the connection loop (`server.rs`) and by the routes (body timeouts, head caps).

use std::time::Duration;

/// Limits of the HTTP server; every one is a setting (README, configuration table).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// Browser origins allowed to call discovery, the JWKS, DID documents and the OAuth
    /// endpoints (CORS); `*` allows any. Empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            cors_origins: Vec::new(),
        }
    }
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
