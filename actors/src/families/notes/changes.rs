//! The notes family's change: written in the audit writer's group commit with its event.

#[derive(Debug, Clone)]
pub enum NoteChange {
    /// Keep `text` under `key`, replacing what was there.
    Put { key: String, text: String },
}

crate::store::applied_by_adapters!(NoteChange);
