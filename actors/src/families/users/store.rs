//! The users family's store port, its records and its changes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::kernel::error::Result;
use crate::kernel::model::{present, rfc3339, Millis};

/// A user is active or suspended, as an agent is (the same two states, their names
/// and their parsing).
pub type UserStatus = crate::kernel::model::AgentStatus;

/// A person, a member of one organization.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Normalized (trimmed, NFC, lowercase); unique in the organization.
    pub email: String,
    pub name: String,
    pub status: UserStatus,
    /// What the user holds: management scopes when they operate AgentIdP (as an agent's
    /// are granted: never more than the granting caller holds), and the scopes they may
    /// consent to for their own data.
    pub scopes: Vec<String>,
    /// Whether a password is set (a user without one signs in another way, or not yet).
    pub has_password: bool,
    #[serde(with = "rfc3339::option")]
    pub last_login_at: Option<Millis>,
    #[serde(with = "rfc3339")]
    pub created_at: Millis,
    #[serde(with = "rfc3339")]
    pub updated_at: Millis,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    /// For the platform administrator: the organization (else the caller's).
    #[serde(default, deserialize_with = "present")]
    pub org_id: Option<Uuid>,
}

/// `PATCH /api/v1/users/{id}`: what is present changes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
}

/// A user with the hash of their password (never leaves the engine).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: Option<String>,
}

/// What the engine reads of users. (They change only with their audit event.)
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<UserRecord>>;
    async fn user_by_email(&self, org_id: Uuid, email: &str) -> Result<Option<UserRecord>>;
    /// Users of `org_id` after `after` (id order), at most `limit`; with `email`, only
    /// those whose address contains it.
    async fn list_users(&self, org_id: Uuid, email: Option<&str>, after: Option<Uuid>, limit: u32)
        -> Result<Vec<User>>;
    /// Users of `org_id`, and how many of them are suspended.
    async fn count_users(&self, org_id: Uuid) -> Result<(u64, u64)>;
}

#[derive(Debug, Clone)]
pub enum UserChange {
    /// `Conflict` if the organization has a user with that email.
    InsertUser {
        user: User,
        password_hash: Option<String>,
    },
    /// Email, name, status, scopes, `updated_at`; `NotFound` if gone, `Conflict` if the
    /// new email is taken.
    UpdateUser(User),
    SetPassword {
        org_id: Uuid,
        id: Uuid,
        password_hash: String,
        at: Millis,
    },
    /// A sign-in: `last_login_at`, and the hash when it was remade under new parameters.
    LoggedIn {
        org_id: Uuid,
        id: Uuid,
        at: Millis,
        rehash: Option<String>,
    },
    DeleteUser {
        org_id: Uuid,
        id: Uuid,
    },
}

crate::store::applied_by_adapters!(UserChange);
