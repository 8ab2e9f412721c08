//! The way in, for people: the bootstrap makes the first organization's administrator a
//! person too (its organizations and agents are the directory's).

use serde_json::json;
use uuid::Uuid;

use super::store::{User, UserChange, UserStatus};
use crate::engine::Engine;
use crate::kernel::error::Result;
use crate::kernel::model::{BootstrapOutput, Outcome};

/// The email the bootstrap's administrator signs in with.
pub const BOOTSTRAP_ADMIN_EMAIL: &str = "admin@localhost";

impl Engine {
    /// On an empty store: the platform organization with its administrator, a first
    /// organization with an org-admin agent (each with a credential), and that
    /// organization's administrator as a person, `admin@localhost`, holding what the
    /// admin agent holds, with a generated password. The secrets are returned, stored
    /// nowhere in clear. `Conflict` if already done.
    pub async fn bootstrap(&self) -> Result<BootstrapOutput> {
        let mut out = self.bootstrap_directory().await?;
        let scopes = self.shared.policy.catalog.org_admin_scopes.clone();
        let (admin, password) = self.bootstrap_user(out.org_id, scopes).await?;
        out.admin_user_id = admin.id;
        out.admin_email = admin.email;
        out.admin_password = password;
        Ok(out)
    }

    /// The organization's administrator as a person (`admin@localhost`, holding what
    /// its admin agent holds), with a generated password; committed with its event.
    async fn bootstrap_user(&self, org_id: Uuid, scopes: Vec<String>) -> Result<(User, String)> {
        use base64::Engine as _;
        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(crate::families::directory::secrets::random_bytes::<18>()?);
        let password_hash = self.shared.passwords.hash(password.clone()).await?;
        let now = self.shared.now_ms();
        let user = User {
            id: Uuid::now_v7(),
            org_id,
            email: BOOTSTRAP_ADMIN_EMAIL.into(),
            name: "Administrator".into(),
            status: UserStatus::Active,
            scopes,
            has_password: true,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let event = self
            .event(Some(org_id), "bootstrap".into(), "user.create", Outcome::Success)
            .target(user.id)
            .detail(&json!({"email": user.email, "name": user.name, "scopes": user.scopes, "password": true}));
        let change = UserChange::InsertUser { user: user.clone(), password_hash: Some(password_hash) };
        self.commit(event, vec![change.into()], None).await?;
        Ok((user, password))
    }
}
