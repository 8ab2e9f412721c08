//! Display names, the same rule for every record that has one: trimmed, 1 to 128
//! printable characters.

use crate::kernel::error::{EngineError, Result};

pub const MAX_NAME: usize = 128;

/// A name as stored, or why not (naming the field `name`).
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(EngineError::invalid("name", format!("must be 1 to {MAX_NAME} printable characters")));
    }
    Ok(name.to_string())
}
