//! A toy family, built only for tests: it follows docs/architecture.md's "Adding a
//! capability" step by step, so the guide stays true. It keeps short notes (a key and a
//! text) in the store's settings, each written with its audit event.
//!
//! What it shows: pure rules (`rules.rs`), audited changes registered by the family
//! (`changes.rs`, applied by `sqlite.rs` and `postgres.rs`), verbs on the engine
//! (`handle.rs`), and a test through the engine on both backends. It needs no port of
//! its own (it reads through `SettingsStore`) and no migration (the settings table is
//! there), which a real family would add.

mod changes;
mod handle;
#[cfg(feature = "postgres")]
mod postgres;
mod rules;
mod sqlite;

pub use changes::NoteChange;

#[cfg(test)]
pub(crate) mod tests;
