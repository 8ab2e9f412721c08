//! The users family's verbs: people of an organization, managed by its administrators
//! (`users:read`, `users:write`), and their sign-in. Each change returns once its row
//! and its audit event are durable.

use serde_json::json;
use uuid::Uuid;

use super::password::Verdict;
use super::rules;
use super::store::{NewUser, User, UserChange, UserPatch, UserRecord, UserStatus};
use crate::engine::{Call, Engine, Origin};
use crate::families::analytics::rules::Metric;
use crate::families::tokens::client_auth::Failed;
use crate::kernel::error::{EngineError, Result};
use crate::kernel::model::{Outcome, Page, PageRequest};
use crate::kernel::paging::{decode_cursor, next_cursor, page_limit};
use crate::kernel::privilege;

/// A sign-in that did not succeed, as the person is told: never which part was wrong.
pub const SIGN_IN_FAILED: &str = "the email or the password is not right";

/// What a list of users may be narrowed to.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub org_id: Option<Uuid>,
    /// Only users whose email contains this.
    pub email: Option<String>,
    pub page: PageRequest,
}

impl Engine {
    async fn user_record(&self, org_id: Uuid, id: Uuid) -> Result<UserRecord> {
        self.shared.store.get_user(org_id, id).await?.ok_or(EngineError::not_found("user"))
    }

    /// A caller changes only users who hold no management scope the caller lacks.
    fn check_user_not_stronger(&self, call: &Call, user: &User) -> Result<()> {
        let held = call.caller.scopes();
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        privilege::check_not_stronger(&user.scopes, &held, &self.shared.policy)
            .map_err(crate::families::directory::handle::refused)
    }

    fn email_taken(email: &str) -> impl FnOnce(EngineError) -> EngineError + '_ {
        move |e| match e {
            EngineError::Conflict(_) => EngineError::Conflict(format!("a user with email {email:?} exists")),
            e => e,
        }
    }

    pub async fn create_user(&self, call: &Call, new: NewUser) -> Result<User> {
        let org_id = Self::target_org(call, new.org_id);
        self.authorize(call, "users.create", org_id)?;
        let email = rules::normalize_email(&new.email)?;
        let name = rules::check_name(&new.name)?;
        let scopes = self.check_grantable(call, new.scopes.as_deref().unwrap_or_default())?;
        let password = match new.password {
            Some(p) => Some(rules::check_password(&p, &[&email, &name])?),
            None => None,
        };
        if self.shared.store.get_org(org_id).await?.is_none() {
            return Err(EngineError::not_found("organization"));
        }
        let password_hash = match password {
            Some(p) => Some(self.shared.passwords.hash(p).await?),
            None => None,
        };
        let now = self.shared.now_ms();
        let user = User {
            id: Uuid::now_v7(),
            org_id,
            email,
            name,
            status: UserStatus::Active,
            scopes,
            has_password: password_hash.is_some(),
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        let event = self.call_event(
            call,
            org_id,
            "user.create",
            user.id,
            json!({"email": user.email, "name": user.name, "scopes": user.scopes, "password": user.has_password}),
        );
        let change = UserChange::InsertUser { user: user.clone(), password_hash };
        self.commit(event, vec![change.into()], None).await.map_err(Self::email_taken(&user.email))?;
        self.count(org_id, call.caller.agent_id, Metric::UsersCreated);
        Ok(user)
    }

    pub async fn list_users(&self, call: &Call, query: UserQuery) -> Result<Page<User>> {
        let org_id = Self::target_org(call, query.org_id);
        self.authorize(call, "users.list", org_id)?;
        let limit = page_limit(&query.page)?;
        if query.email.as_ref().is_some_and(|e| e.chars().count() > 254) {
            return Err(EngineError::invalid("email", "at most 254 characters"));
        }
        let email = query.email.map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty());
        let items = self.shared.store.list_users(org_id, email.as_deref(), decode_cursor(&query.page)?, limit).await?;
        let next_cursor = next_cursor(&items, limit, |u| u.id);
        Ok(Page { items, next_cursor })
    }

    pub async fn get_user(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<User> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "users.get", org_id)?;
        Ok(self.user_record(org_id, id).await?.user)
    }

    pub async fn update_user(&self, call: &Call, org: Option<Uuid>, id: Uuid, patch: UserPatch) -> Result<User> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "users.update", org_id)?;
        let mut user = self.user_record(org_id, id).await?.user;
        self.check_user_not_stronger(call, &user)?;
        if let Some(email) = patch.email {
            user.email = rules::normalize_email(&email)?;
        }
        if let Some(name) = patch.name {
            user.name = rules::check_name(&name)?;
        }
        if let Some(scopes) = patch.scopes {
            user.scopes = self.check_grantable(call, &scopes)?;
        }
        self.save_user(call, user, "user.update").await
    }

    pub async fn suspend_user(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<User> {
        self.set_user_status(call, org, id, UserStatus::Suspended, "users.suspend", "user.suspend").await
    }

    pub async fn reactivate_user(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<User> {
        self.set_user_status(call, org, id, UserStatus::Active, "users.reactivate", "user.reactivate").await
    }

    async fn set_user_status(
        &self,
        call: &Call,
        org: Option<Uuid>,
        id: Uuid,
        status: UserStatus,
        operation: &'static str,
        action: &str,
    ) -> Result<User> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, operation, org_id)?;
        let mut user = self.user_record(org_id, id).await?.user;
        self.check_user_not_stronger(call, &user)?;
        user.status = status;
        self.save_user(call, user, action).await
    }

    async fn save_user(&self, call: &Call, mut user: User, action: &str) -> Result<User> {
        user.updated_at = self.shared.now_ms();
        let detail = json!({"email": user.email, "name": user.name, "status": user.status, "scopes": user.scopes});
        let event = self.call_event(call, user.org_id, action, user.id, detail);
        self.commit(event, vec![UserChange::UpdateUser(user.clone()).into()], None)
            .await
            .map_err(Self::email_taken(&user.email))?;
        Ok(user)
    }

    pub async fn delete_user(&self, call: &Call, org: Option<Uuid>, id: Uuid) -> Result<()> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "users.delete", org_id)?;
        let user = self.user_record(org_id, id).await?.user;
        self.check_user_not_stronger(call, &user)?;
        let event = self.call_event(call, org_id, "user.delete", id, json!({"email": user.email}));
        self.commit(event, vec![UserChange::DeleteUser { org_id, id }.into()], None).await
    }

    /// An administrator sets a user's password (a reset: the user is told it out of band).
    pub async fn set_user_password(&self, call: &Call, org: Option<Uuid>, id: Uuid, password: &str) -> Result<User> {
        let org_id = Self::target_org(call, org);
        self.authorize(call, "users.password", org_id)?;
        let mut user = self.user_record(org_id, id).await?.user;
        self.check_user_not_stronger(call, &user)?;
        let password = rules::check_password(password, &[&user.email, &user.name])?;
        let password_hash = self.shared.passwords.hash(password).await?;
        let at = self.shared.now_ms();
        let event = self.call_event(call, org_id, "user.password.set", id, json!({"email": user.email}));
        self.commit(event, vec![UserChange::SetPassword { org_id, id, password_hash, at }.into()], None).await?;
        user.has_password = true;
        user.updated_at = at;
        Ok(user)
    }

    /// A person signs in to `org_id` with an email and a password: the user, or
    /// `InvalidToken` saying only [`SIGN_IN_FAILED`] (an unknown email costs the same
    /// time as a wrong password), `LockedOut` after too many failures for that email
    /// from that address, or from that address. Audited either way (`user.login`).
    pub async fn sign_in(&self, org_id: Uuid, email: &str, password: &str, origin: &Origin) -> Result<User> {
        let email = rules::normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        let address = origin.addr.map(|a| a.to_string());
        let key =
            crate::families::tokens::limits::client_lockout_key(&format!("user:{org_id}:{email}"), address.as_deref());
        self.refuse_if_locked(&key, address.as_deref(), "email", "sign-ins to this email")?;
        let found = self.shared.store.user_by_email(org_id, &email).await?;
        let stored = found.as_ref().and_then(|r| r.password_hash.clone());
        let verdict = self.shared.passwords.verify(password.to_string(), stored).await?;
        let active = found.as_ref().is_some_and(|r| r.user.status == UserStatus::Active);
        match (verdict, found) {
            (Verdict::Right(rehash), Some(record)) if active => {
                let at = self.shared.now_ms();
                let user = record.user;
                let event = self
                    .event(Some(org_id), user.id.to_string(), "user.login", Outcome::Success)
                    .target(user.id)
                    .request_id(origin.request_id.clone())
                    .detail(&json!({"email": user.email, "method": "password", "address": address}));
                let change = UserChange::LoggedIn { org_id, id: user.id, at, rehash };
                self.commit(event, vec![change.into()], None).await?;
                self.count(org_id, user.id, Metric::SignIns);
                Ok(User { last_login_at: Some(at), ..user })
            }
            (verdict, found) => {
                let reason = match (&verdict, &found) {
                    (_, None) => "no such user",
                    (Verdict::Wrong, Some(_)) => "wrong password",
                    (Verdict::Right(_), Some(_)) => "user suspended",
                };
                let actor = found.as_ref().map_or_else(|| email.chars().take(128).collect(), |r| r.user.id.to_string());
                let event = self
                    .event(Some(org_id), actor, "user.login", Outcome::Failure)
                    .request_id(origin.request_id.clone())
                    .detail(&json!({"email": email, "method": "password", "reason": reason, "address": address}));
                // A failure for a user is that user's event (bounded by the lockouts); one
                // for an email no one has is sampled, a few an address and window, so
                // that no one grows the organization's trail by spraying emails.
                if found.is_some() {
                    self.audit(event).await?;
                } else {
                    self.audit_sampled(event, address.as_deref()).await?;
                }
                if let Some(record) = &found {
                    self.count(org_id, record.user.id, Metric::SignInsFailed);
                }
                let failed = Failed { org: Some(org_id), claimed: &email, key: &key, kind: "email" };
                self.count_failure(failed, address.as_deref(), origin).await?;
                Err(EngineError::InvalidToken(SIGN_IN_FAILED.into()))
            }
        }
    }
}
