//! [`UserRepository`]: staff users, their hashed tokens, and the practitioner created
//! with a practitioner's user.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, TokenRow, UserRow, micros};
use crate::access::{Role, StaffUser};
use crate::audit::AuditEntry;
use crate::contact::EmailAddress;
use crate::ids::UserId;
use crate::password::PasswordHash;
use crate::practitioner::model::Practitioner;
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;
use crate::staff::{StaffRecord, UserRepository};

impl State {
    /// Inserts a user and their first token. Inside a transaction only.
    fn insert_user(
        &mut self,
        user: &StaffUser,
        token: &TokenHash,
        created_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if self.users.contains_key(&user.id) {
            return Err(RepositoryError::Duplicate("user"));
        }
        // A practitioner's user refers to the practitioner.
        if let Role::Practitioner(p) = &user.role {
            self.practitioner_exists(*p)?;
        }
        self.users.insert(
            user.id,
            UserRow {
                user: user.clone(),
                created_at,
                login: None,
            },
        );
        self.insert_token(user.id, token, None, created_at)
    }

    /// Stores a live token of `user`. A hash stored before, even revoked, is
    /// [`RepositoryError::Duplicate`]: a revoked token never signs in again.
    fn insert_token(
        &mut self,
        user: UserId,
        token: &TokenHash,
        name: Option<&str>,
        created_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if self.staff_tokens.contains_key(token) {
            return Err(RepositoryError::Duplicate("token"));
        }
        self.staff_tokens.insert(
            token.clone(),
            TokenRow {
                user,
                revoked: false,
                name: name.map(str::to_owned),
                created_at: micros(created_at),
                last_used_at: None,
            },
        );
        Ok(())
    }

    fn user(&self, id: UserId) -> Result<StaffUser, RepositoryError> {
        self.users
            .get(&id)
            .map(|row| row.user.clone())
            .ok_or(RepositoryError::NotFound)
    }

    fn live_tokens(&self, user: UserId) -> u64 {
        let live = self
            .staff_tokens
            .values()
            .filter(|t| t.user == user && !t.revoked)
            .count();
        u64::try_from(live).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create_practitioner(
        &self,
        p: &Practitioner,
        token: &TokenHash,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let user = StaffUser {
            id: UserId::from_uuid(p.id.as_uuid()),
            name: p.name.as_str().to_owned(),
            role: Role::Practitioner(p.id),
        };
        self.transaction(|s| {
            if s.practitioners.contains_key(&p.id) {
                return Err(RepositoryError::Duplicate("practitioner"));
            }
            s.practitioners.insert(p.id, p.clone());
            s.insert_user(&user, token, p.created_at)?;
            s.append_audit(std::slice::from_ref(audit))
        })
    }

    async fn create_secretary(
        &self,
        user: &StaffUser,
        token: &TokenHash,
        created_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.insert_user(user, token, created_at)?;
            if let Role::Secretary(works_for) = &user.role {
                for p in works_for {
                    s.practitioner_exists(*p)?;
                }
            }
            s.append_audit(std::slice::from_ref(audit))
        })
    }

    async fn find_by_token(&self, token: &TokenHash) -> Result<Option<StaffUser>, RepositoryError> {
        Ok(self.read(|s| {
            let live = s.staff_tokens.get(token).filter(|t| !t.revoked)?;
            s.users.get(&live.user).map(|row| row.user.clone())
        }))
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        let users = self.read(|s| s.users.len());
        Ok(u64::try_from(users).unwrap_or(u64::MAX))
    }

    async fn get_user(&self, id: UserId) -> Result<StaffUser, RepositoryError> {
        self.read(|s| s.user(id))
    }

    async fn list_users(&self) -> Result<Vec<StaffRecord>, RepositoryError> {
        Ok(self.read(|s| {
            let mut rows: Vec<&UserRow> = s.users.values().collect();
            rows.sort_by_key(|row| (row.created_at, row.user.id));
            rows.into_iter()
                .map(|row| StaffRecord {
                    user: row.user.clone(),
                    created_at: row.created_at,
                    live_tokens: s.live_tokens(row.user.id),
                })
                .collect()
        }))
    }

    async fn replace_tokens(
        &self,
        user: UserId,
        replacement: Option<TokenHash>,
        at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<u64, RepositoryError> {
        self.transaction(|s| {
            if !s.users.contains_key(&user) {
                return Err(RepositoryError::NotFound);
            }
            let mut revoked = 0;
            for token in s.staff_tokens.values_mut() {
                if token.user == user && !token.revoked {
                    token.revoked = true;
                    revoked += 1;
                }
            }
            s.sessions.retain(|_, session| session.user != user);
            match &replacement {
                Some(hash) => s.insert_token(user, hash, None, at)?,
                // Locked out: no password signs them in either.
                None => {
                    if let Some(row) = s.users.get_mut(&user) {
                        row.login = None;
                    }
                    s.links.retain(|_, link| link.user != user);
                    s.identities.retain(|_, owner| *owner != user);
                }
            }
            s.append_audit(audit)?;
            Ok(revoked)
        })
    }

    async fn set_login(
        &self,
        user: UserId,
        email: &EmailAddress,
        password: &PasswordHash,
        _at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| s.set_login(user, email, password, audit))
    }

    async fn add_token(
        &self,
        user: UserId,
        token: &crate::staff::AccessToken,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if !s.users.contains_key(&user) {
                return Err(RepositoryError::NotFound);
            }
            s.insert_token(user, &token.id, token.name.as_deref(), token.created_at)?;
            s.append_audit(audit)
        })
    }

    async fn tokens_of(
        &self,
        user: UserId,
    ) -> Result<Vec<crate::staff::AccessToken>, RepositoryError> {
        Ok(self.read(|s| {
            let mut live: Vec<_> = s
                .staff_tokens
                .iter()
                .filter(|(_, t)| t.user == user && !t.revoked)
                .map(|(hash, t)| crate::staff::AccessToken {
                    id: hash.clone(),
                    name: t.name.clone(),
                    created_at: t.created_at,
                    last_used_at: t.last_used_at,
                })
                .collect();
            live.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then_with(|| a.id.as_str().cmp(b.id.as_str()))
            });
            live
        }))
    }

    async fn revoke_token(
        &self,
        user: UserId,
        token: &TokenHash,
        _at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError> {
        self.transaction(|s| {
            let Some(row) = s
                .staff_tokens
                .get_mut(token)
                .filter(|t| t.user == user && !t.revoked)
            else {
                return Ok(false);
            };
            row.revoked = true;
            s.append_audit(audit)?;
            Ok(true)
        })
    }

    async fn touch_token(
        &self,
        token: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if let Some(row) = s.staff_tokens.get_mut(token) {
                row.last_used_at = Some(micros(at));
            }
            Ok(())
        })
    }

    async fn find_by_identity(
        &self,
        identity: &crate::identity::Identity,
    ) -> Result<Option<StaffUser>, RepositoryError> {
        Ok(self.read(|s| {
            let user = s.identities.get(identity)?;
            s.users.get(user).map(|row| row.user.clone())
        }))
    }

    async fn find_login(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(StaffUser, PasswordHash)>, RepositoryError> {
        Ok(self.read(|s| {
            s.users.values().find_map(|row| match &row.login {
                Some((e, hash)) if e == email => Some((row.user.clone(), hash.clone())),
                _ => None,
            })
        }))
    }
}

impl State {
    /// [`UserRepository::set_login`]'s steps, inside a transaction.
    pub(super) fn set_login(
        &mut self,
        user: UserId,
        email: &EmailAddress,
        password: &PasswordHash,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        if !self.users.contains_key(&user) {
            return Err(RepositoryError::NotFound);
        }
        let taken = self
            .users
            .values()
            .any(|row| row.user.id != user && row.login.as_ref().is_some_and(|(e, _)| e == email));
        if taken {
            return Err(RepositoryError::Duplicate("email"));
        }
        if let Some(row) = self.users.get_mut(&user) {
            row.login = Some((email.clone(), password.clone()));
        }
        self.sessions.retain(|_, session| session.user != user);
        self.append_audit(audit)
    }
}
