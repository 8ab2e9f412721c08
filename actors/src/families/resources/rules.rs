//! The rules of resource servers, pure: what an identifier may be (RFC 8707 §2) and
//! what a token for one may carry.

use crate::kernel::error::{EngineError, Result};

/// Most characters of an identifier.
pub const MAX_IDENTIFIER: usize = 512;
/// The bounds of a resource's own token lifetime, seconds.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=86_400;

/// An identifier as stored and compared: an absolute `https` URI (or `http` on a
/// loopback host, for development), with a host, no fragment (RFC 8707 §2: "MUST NOT
/// include a fragment") and no query (it "SHOULD NOT": one resource, one URI), no
/// user info. Compared exactly, as clients send it.
pub fn check_identifier(identifier: &str) -> Result<String> {
    let bad = |why: &str| Err(EngineError::invalid("identifier", why.to_string()));
    if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER {
        return bad(&format!("must be an absolute URI of at most {MAX_IDENTIFIER} characters"));
    }
    let Ok(url) = url::Url::parse(identifier) else { return bad("must be an absolute URI") };
    let loopback = matches!(url.host(), Some(url::Host::Ipv4(a)) if a.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(a)) if a.is_loopback())
        || url.host_str() == Some("localhost");
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return bad("must be an https URI (http only on a loopback host)"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad("must name a host");
    }
    if identifier.contains('#') {
        return bad("must not have a fragment (RFC 8707)");
    }
    if url.query().is_some() {
        return bad("must not have a query");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry user information");
    }
    if identifier.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not hold spaces or control characters");
    }
    Ok(identifier.to_string())
}

/// The scopes a token for a resource carries: those `requested` (all the client holds
/// when it names none) that the resource offers and the client holds. A requested
/// scope the resource does not offer is the client's error (`Err` names it).
pub fn scopes_for(
    requested: Option<&[String]>,
    held: &[String],
    offered: &[String],
) -> std::result::Result<Vec<String>, String> {
    match requested {
        None => Ok(held.iter().filter(|s| offered.contains(s)).cloned().collect()),
        Some(requested) => {
            if let Some(bad) = requested.iter().find(|s| !offered.contains(s)) {
                return Err(format!("the resource does not offer scope {bad:?}"));
            }
            Ok(requested.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_absolute_https_uris_without_fragment_or_query() {
        for good in [
            "https://mcp.example.com/mcp",
            "https://api.example.com",
            "http://127.0.0.1:8787/mcp",
            "http://localhost:3000",
        ] {
            assert_eq!(check_identifier(good).unwrap(), good);
        }
        for bad in [
            "",
            "mcp.example.com",
            "/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#x",
            "https://mcp.example.com/mcp?tenant=1",
            "https://user:pw@mcp.example.com/",
            "urn:example:resource",
            "ftp://example.com/",
        ] {
            assert!(check_identifier(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_for_a_resource_carries_only_scopes_it_offers() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (held, offered) =
            (s(&["mail:read", "mail:send", "agents:read"]), s(&["mail:read", "mail:send", "files:read"]));
        assert_eq!(scopes_for(None, &held, &offered).unwrap(), s(&["mail:read", "mail:send"]));
        assert_eq!(scopes_for(Some(&s(&["mail:read"])), &held, &offered).unwrap(), s(&["mail:read"]));
        assert!(scopes_for(Some(&s(&["agents:read"])), &held, &offered).unwrap_err().contains("agents:read"));
    }
}
