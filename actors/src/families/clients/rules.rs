//! The rules of applications (OAuth clients of the authorization code grant), pure:
//! their redirect URIs (OAuth 2.1 §2.3.1, RFC 8252 for native apps), how a redirect is
//! matched, their authentication methods and grant types.

use crate::kernel::error::{EngineError, Result};

pub const MAX_REDIRECT_URI: usize = 1024;
pub const MAX_REDIRECT_URIS: usize = 20;

/// How a client authenticates at the token endpoint.
pub const AUTH_METHODS: &[&str] = &["none", "client_secret_basic", "client_secret_post", "private_key_jwt"];
/// The grants an application may use.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

/// Whether `host` is a loopback IP literal (RFC 8252 §7.3; `localhost` is not: its
/// resolution is not the client's to control).
fn loopback_ip(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        _ => false,
    }
}

/// A redirect URI as registered: absolute; `https`, or `http` on a loopback IP literal
/// (a native app's loopback redirect), or a private-use scheme in reverse-domain form
/// (`com.example.app:/callback`, RFC 8252 §7.1); no fragment, no wildcard, no user info.
pub fn check_redirect_uri(uri: &str) -> Result<String> {
    let bad = |why: &str| Err(EngineError::invalid("redirect_uris", format!("{uri:?} {why}")));
    if uri.is_empty() || uri.len() > MAX_REDIRECT_URI {
        return bad(&format!("must be an absolute URI of at most {MAX_REDIRECT_URI} characters"));
    }
    if uri.contains('#') {
        return bad("must not have a fragment");
    }
    if uri.contains('*') {
        return bad("must not hold a wildcard: redirect URIs match exactly");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not hold spaces or control characters");
    }
    let Ok(url) = url::Url::parse(uri) else { return bad("must be an absolute URI") };
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry user information");
    }
    match url.scheme() {
        "https" if url.host_str().is_some_and(|h| !h.is_empty()) => {}
        "http" if loopback_ip(&url) => {}
        "http" => return bad("may use http only on a loopback IP (127.0.0.1 or [::1])"),
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" => {
            return bad("has a scheme no redirect may use")
        }
        scheme if scheme.contains('.') => {}
        _ => return bad("must be https, http on a loopback IP, or a private-use scheme like com.example.app"),
    }
    Ok(uri.to_string())
}

/// Whether a redirect URI a request names matches a registered one: exactly, except
/// that a loopback redirect may name any port (RFC 8252 §7.3).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(reg), Ok(req)) = (url::Url::parse(registered), url::Url::parse(requested)) else { return false };
    reg.scheme() == "http"
        && req.scheme() == "http"
        && loopback_ip(&reg)
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
}

/// A client's grant types: known ones, sorted, at least one; `refresh_token` only with
/// `authorization_code`; the code grant needs a redirect URI, and `none` (a public
/// client) cannot use `client_credentials`.
pub fn check_grants(grants: &[String], method: &str, redirects: usize) -> Result<Vec<String>> {
    let bad = |why: String| Err(EngineError::invalid("grant_types", why));
    if grants.is_empty() {
        return bad("name at least one grant type".into());
    }
    if let Some(g) = grants.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return bad(format!("{g:?} is not one of {}", GRANT_TYPES.join(", ")));
    }
    let mut grants = grants.to_vec();
    grants.sort();
    grants.dedup();
    let has = |g: &str| grants.iter().any(|x| x == g);
    if has("refresh_token") && !has("authorization_code") {
        return bad("refresh_token comes only with authorization_code".into());
    }
    if has("authorization_code") && redirects == 0 {
        return Err(EngineError::invalid(
            "redirect_uris",
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if has("client_credentials") && method == "none" {
        return bad("a public client (token_endpoint_auth_method none) cannot use client_credentials".into());
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_or_private_use_and_match_exactly() {
        for good in [
            "https://app.example.com/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect",
            "https://app.example.com/cb?x=1",
        ] {
            assert_eq!(check_redirect_uri(good).unwrap(), good);
        }
        for bad in [
            "",
            "/callback",
            "http://app.example.com/cb",
            "http://localhost/cb",
            "https://app.example.com/cb#frag",
            "https://*.example.com/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "https://user:pw@app.example.com/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad:?}");
        }
        let reg = "https://app.example.com/callback";
        assert!(redirect_matches(reg, reg));
        for other in [
            "https://app.example.com/callback/",
            "https://app.example.com/callbacK",
            "https://app.example.com/callback?x",
        ] {
            assert!(!redirect_matches(reg, other), "{other}");
        }
        // A loopback redirect: any port, nothing else.
        assert!(redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb2"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://[::1]:51234/cb"));
        assert!(!redirect_matches("http://127.0.0.1/cb", "http://127.0.0.1.evil.example/cb"));
    }

    #[test]
    fn grant_types_are_known_and_consistent() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            check_grants(&s(&["refresh_token", "authorization_code"]), "none", 1).unwrap(),
            s(&["authorization_code", "refresh_token"])
        );
        assert!(check_grants(&s(&["implicit"]), "none", 1).is_err());
        assert!(check_grants(&s(&["password"]), "client_secret_basic", 1).is_err());
        assert!(check_grants(&s(&["refresh_token"]), "none", 1).is_err());
        assert!(check_grants(&s(&["authorization_code"]), "none", 0).is_err());
        assert!(check_grants(&s(&["client_credentials"]), "none", 0).is_err());
        assert!(check_grants(&s(&[]), "none", 1).is_err());
    }
}
