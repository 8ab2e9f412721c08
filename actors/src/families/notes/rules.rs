//! What a note may be: pure, tested without a runtime.

use crate::kernel::error::{EngineError, Result};

/// The longest note, in characters.
pub const MAX_NOTE: usize = 200;

/// A note's key is 1–64 lowercase letters, digits or `-`; its text is 1–[`MAX_NOTE`]
/// characters.
pub fn check(key: &str, text: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > 64
        || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(EngineError::invalid("key", "1 to 64 lowercase letters, digits or '-'"));
    }
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_NOTE {
        return Err(EngineError::invalid("text", format!("1 to {MAX_NOTE} characters")));
    }
    Ok(())
}

/// Where a note is kept among the store's settings.
pub fn setting_key(key: &str) -> String {
    format!("note:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_has_a_plain_key_and_a_short_text() {
        assert!(check("groceries", "milk").is_ok());
        assert!(check("", "milk").is_err());
        assert!(check("Groceries", "milk").is_err());
        assert!(check("groceries", "").is_err());
        assert!(check("groceries", &"x".repeat(MAX_NOTE + 1)).is_err());
        assert!(check("groceries", &"é".repeat(MAX_NOTE)).is_ok());
    }
}
