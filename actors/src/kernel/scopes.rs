//! OAuth scopes: syntax (RFC 6749 §3.3), parsing of the space-delimited request form, and
//! the subset rule that every grant obeys.

use crate::kernel::error::{EngineError, Result};

pub const MAX_SCOPES: usize = 64;
pub const MAX_SCOPE_LEN: usize = 128;

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`
pub fn is_valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_LEN
        && s.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Validate and normalize (sort, de-duplicate) a list of scopes.
pub fn normalize(scopes: &[String]) -> Result<Vec<String>> {
    if scopes.len() > MAX_SCOPES {
        return Err(EngineError::invalid("scopes", format!("at most {MAX_SCOPES} scopes")));
    }
    if let Some(bad) = scopes.iter().find(|s| !is_valid_scope_token(s)) {
        return Err(EngineError::invalid("scopes", format!("{bad:?} is not a valid scope token")));
    }
    let mut out = scopes.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Parse a space-delimited scope parameter; `None` if any token is malformed.
pub fn parse_request(param: &str) -> Option<Vec<String>> {
    let tokens: Vec<String> = param.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
    normalize(&tokens).ok()
}

/// True when every scope in `requested` is in `allowed`.
pub fn is_subset(requested: &[String], allowed: &[String]) -> bool {
    requested.iter().all(|s| allowed.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_syntax_follows_rfc_6749() {
        assert!(is_valid_scope_token("agents:read"));
        assert!(!is_valid_scope_token("has space"));
        assert!(!is_valid_scope_token("quote\""));
        assert!(!is_valid_scope_token("back\\slash"));
        assert!(!is_valid_scope_token(""));
    }

    #[test]
    fn request_parsing_sorts_and_dedups() {
        assert_eq!(parse_request("b a  b").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert!(parse_request("ok bad\"").is_none());
        assert!(is_subset(&["a".into()], &["a".into(), "b".into()]));
        assert!(!is_subset(&["c".into()], &["a".into()]));
    }
}
