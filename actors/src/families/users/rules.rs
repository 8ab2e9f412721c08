//! The rules of people's records, pure: how an email is normalized, what a password
//! must be (NIST SP 800-63B-4 §3.1.1.2), and what a user may hold.

use unicode_normalization::UnicodeNormalization;

use crate::kernel::error::{EngineError, Result};
pub use crate::kernel::names::check_name;

/// A password used alone (no second factor yet) is at least 15 characters
/// (SP 800-63B-4 §3.1.1.2: "SHALL be a minimum of 15 characters" for single-factor use).
pub const MIN_PASSWORD: usize = 15;
/// And at most this many (the standard asks for at least 64).
pub const MAX_PASSWORD: usize = 256;
/// Most characters of an email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

/// An email address as stored and compared: trimmed, NFC, lowercased. One address per
/// organization. Refused unless it has one `@` with a non-empty local part and a
/// dotted-or-`localhost` domain, no spaces or control characters.
pub fn normalize_email(email: &str) -> Result<String> {
    let email: String = email.trim().nfc().collect::<String>().to_lowercase();
    let bad = |why: &str| Err(EngineError::invalid("email", why.to_string()));
    if email.is_empty() || email.chars().count() > MAX_EMAIL {
        return bad(&format!("must be an email address of 3 to {MAX_EMAIL} characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not hold spaces or control characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return bad("must hold an @") };
    if local.is_empty() || local.contains('@') || domain.is_empty() {
        return bad("must be local@domain");
    }
    let labels_ok = domain.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if !labels_ok || !(domain.contains('.') || domain == "localhost") {
        return bad("its domain is not a host name");
    }
    Ok(email)
}

/// A LIKE pattern (escape `\\`) matching what contains `fragment` literally.
pub(crate) fn contains_pattern(fragment: &str) -> String {
    format!("%{}%", fragment.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// A new password, NFKC-normalized (SP 800-63B-4 §3.1.1.2: the same password typed on
/// any keyboard is the same password), or why not: its length, or that it is common,
/// guessable, or made of the user's own email or name. No composition rules.
pub fn check_password(password: &str, context: &[&str]) -> Result<String> {
    let password: String = password.nfkc().collect();
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(EngineError::invalid(
            "password",
            format!("the password must be at least {MIN_PASSWORD} characters (a passphrase of a few words is easy to remember)"),
        ));
    }
    if n > MAX_PASSWORD {
        return Err(EngineError::invalid(
            "password",
            format!("the password must be at most {MAX_PASSWORD} characters"),
        ));
    }
    // zxcvbn matches it against lists of common and breached passwords, words, names
    // and keyboard patterns, and against the user's own details; a password made
    // mostly of those is refused (score below 3: guessable in under ~10^8 tries).
    let estimate = zxcvbn::zxcvbn(&password, context);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "it is made of common words or patterns".into());
        return Err(EngineError::invalid("password", format!("the password is too easy to guess: {hint}")));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_must_look_like_addresses() {
        assert_eq!(normalize_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        assert_eq!(normalize_email("root@localhost").unwrap(), "root@localhost");
        for bad in ["", "ada", "@example.com", "ada@", "ada@example", "a b@example.com", "ada@-x.com", "ada@x..com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_follow_sp_800_63b_length_and_blocklist_not_composition() {
        // Long enough and not guessable: accepted, whatever it is made of.
        assert!(check_password("velvet quarry lantern mosaic", &[]).is_ok());
        assert!(check_password("ÿ".repeat(15).as_str(), &[]).is_err(), "a repeated character is guessable");
        assert!(check_password("sixteen-lowercase-and-dashes-qz", &[]).is_ok(), "no composition rules");
        for (bad, why) in [
            ("short one", "at least 15"),
            ("passwordpassword", "guess"),
            ("123456789012345", "guess"),
            ("qwertyuiopasdfgh", "guess"),
        ] {
            let e = check_password(bad, &[]).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // Made of the user's own details.
        assert!(check_password("ada.lovelace@example.com", &["ada.lovelace@example.com", "Ada Lovelace"]).is_err());
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1), &[]).is_err());
        // NFKC: the full-width form is the same password.
        assert_eq!(check_password("ｖｅｌｖｅｔ ｑｕａｒｒｙ ｌａｎｔｅｒｎ", &[]).unwrap(), "velvet quarry lantern");
    }
}
