//! The notes family's verbs on the engine.

use uuid::Uuid;

use super::rules::{self, setting_key};
use super::NoteChange;
use crate::engine::Engine;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::Outcome;

impl Engine {
    /// Keep a note for `org_id`, audited as `note.put`.
    pub(crate) async fn put_note(&self, org_id: Uuid, key: &str, text: &str) -> Result<()> {
        rules::check(key, text)?;
        let event = self.event(Some(org_id), format!("org:{org_id}"), "note.put", Outcome::Success);
        let change = NoteChange::Put { key: key.to_string(), text: text.to_string() };
        self.commit(event, vec![change.into()], None).await
    }

    /// The note under `key`, if any.
    pub(crate) async fn note(&self, key: &str) -> Result<Option<String>> {
        match self.shared.store.setting(&setting_key(key)).await? {
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| EngineError::internal("a note is not UTF-8")),
            None => Ok(None),
        }
    }
}
