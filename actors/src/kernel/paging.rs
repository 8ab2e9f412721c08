//! Paging of the management API's listings: the page size a request may ask for, and
//! the opaque cursors (the last item's id) that walk a listing.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use uuid::Uuid;

use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::PageRequest;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

pub(crate) fn page_limit(page: &PageRequest) -> Result<u32> {
    match page.limit {
        None => Ok(DEFAULT_PAGE),
        Some(0) => Err(EngineError::invalid("limit", "must be at least 1")),
        Some(n) if n > MAX_PAGE => Err(EngineError::invalid("limit", format!("at most {MAX_PAGE}"))),
        Some(n) => Ok(n),
    }
}

pub(crate) fn decode_cursor(page: &PageRequest) -> Result<Option<Uuid>> {
    // An empty cursor is the first page, as the contract allows.
    page.cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| Uuid::from_slice(&b).ok())
                .ok_or_else(|| EngineError::invalid("cursor", "not a cursor this API returned"))
        })
        .transpose()
}

/// The cursor of the next page: present only when the page was full.
pub(crate) fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> Uuid) -> Option<String> {
    if items.len() < limit as usize {
        return None;
    }
    items.last().map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()))
}
