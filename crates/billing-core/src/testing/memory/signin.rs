//! [`LinkRepository`] (invitation and reset links, used once), [`FailedSignIns`]
//! (the sign-in throttle's count) and [`SecondFactorRepository`] (one-time codes).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, micros};
use crate::access::StaffUser;
use crate::audit::AuditEntry;
use crate::ids::UserId;
use crate::invitation::{LinkRepository, LoginLink};
use crate::password::PasswordHash;
use crate::repository::RepositoryError;
use crate::second_factor::{SecondFactorRecord, SecondFactorRepository, TotpSecret};
use crate::secrets::TokenHash;
use crate::throttle::{FailedSignIns, ThrottleKey};

#[async_trait]
impl LinkRepository for MemoryStore {
    async fn create_link(
        &self,
        link: &LoginLink,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if s.links.contains_key(&link.id) {
                return Err(RepositoryError::Duplicate("link"));
            }
            if !s.users.contains_key(&link.user) {
                return Err(RepositoryError::NotFound);
            }
            let stored = LoginLink {
                created_at: micros(link.created_at),
                expires_at: micros(link.expires_at),
                ..link.clone()
            };
            s.links.insert(link.id.clone(), stored);
            s.append_audit(audit)
        })
    }

    async fn find_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(LoginLink, StaffUser)>, RepositoryError> {
        Ok(self.read(|s| {
            let link = s.links.get(id).filter(|l| l.expires_at > now)?;
            let user = s.users.get(&link.user)?.user.clone();
            Some((link.clone(), user))
        }))
    }

    async fn redeem_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        password: &PasswordHash,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError> {
        self.transaction(|s| {
            let link = s
                .links
                .remove(id)
                .filter(|l| l.expires_at > now)
                .ok_or(RepositoryError::NotFound)?;
            s.set_login(link.user, &link.email, password, audit)?;
            s.links.retain(|_, other| other.user != link.user);
            Ok(link)
        })
    }

    async fn redeem_link_for_identity(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        identity: &crate::identity::Identity,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError> {
        self.transaction(|s| {
            let link = s
                .links
                .remove(id)
                .filter(|l| l.expires_at > now)
                .ok_or(RepositoryError::NotFound)?;
            match s.identities.get(identity) {
                Some(owner) if *owner != link.user => {
                    return Err(RepositoryError::Duplicate("identity"));
                }
                _ => {}
            }
            s.identities.insert(identity.clone(), link.user);
            s.links.retain(|_, other| other.user != link.user);
            s.append_audit(audit)?;
            Ok(link)
        })
    }

    async fn purge_links(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.transaction(|s| {
            let before = s.links.len();
            s.links.retain(|_, link| link.expires_at > now);
            Ok(u64::try_from(before - s.links.len()).unwrap_or(u64::MAX))
        })
    }
}

#[async_trait]
impl FailedSignIns for MemoryStore {
    async fn record_failure(
        &self,
        keys: &[ThrottleKey],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.failed_sign_ins
                .extend(keys.iter().map(|k| (k.clone(), micros(at))));
            Ok(())
        })
    }

    async fn failures_since(
        &self,
        key: &ThrottleKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, RepositoryError> {
        Ok(self.read(|s| {
            let mut times: Vec<_> = s
                .failed_sign_ins
                .iter()
                .filter(|(k, at)| k == key && *at > since)
                .map(|(_, at)| *at)
                .collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            times
        }))
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.failed_sign_ins.retain(|(k, _)| k != key);
            Ok(())
        })
    }

    async fn purge_failures(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
        self.transaction(|s| {
            let count = s.failed_sign_ins.len();
            s.failed_sign_ins.retain(|(_, at)| *at > before);
            Ok(u64::try_from(count - s.failed_sign_ins.len()).unwrap_or(u64::MAX))
        })
    }
}

#[async_trait]
impl SecondFactorRepository for MemoryStore {
    async fn second_factor(
        &self,
        user: UserId,
    ) -> Result<Option<SecondFactorRecord>, RepositoryError> {
        Ok(self.read(|s| s.second_factors.get(&user).cloned()))
    }

    async fn begin_second_factor(
        &self,
        user: UserId,
        secret: &TotpSecret,
        _at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if !s.users.contains_key(&user) {
                return Err(RepositoryError::NotFound);
            }
            if s.second_factors.get(&user).is_some_and(|f| f.confirmed) {
                return Err(RepositoryError::Conflict);
            }
            s.second_factors.insert(
                user,
                SecondFactorRecord {
                    secret: secret.clone(),
                    confirmed: false,
                    last_step: None,
                },
            );
            Ok(())
        })
    }

    async fn confirm_second_factor(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        _at: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError> {
        self.transaction(|s| {
            let Some(factor) = s.second_factors.get_mut(&user).filter(|f| !f.confirmed) else {
                return Ok(false);
            };
            factor.confirmed = true;
            factor.last_step = Some(step);
            s.recovery_codes.retain(|(u, _, _)| *u != user);
            s.recovery_codes
                .extend(recovery.iter().map(|h| (user, h.clone(), false)));
            s.append_audit(audit)?;
            Ok(true)
        })
    }

    async fn use_step(&self, user: UserId, step: u64) -> Result<bool, RepositoryError> {
        self.transaction(|s| {
            let Some(factor) = s.second_factors.get_mut(&user).filter(|f| f.confirmed) else {
                return Ok(false);
            };
            if factor.last_step.is_some_and(|last| last >= step) {
                return Ok(false);
            }
            factor.last_step = Some(step);
            Ok(true)
        })
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        _at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.transaction(|s| {
            let unspent = s
                .recovery_codes
                .iter_mut()
                .find(|(u, h, spent)| *u == user && h == code && !*spent);
            Ok(unspent.map(|(_, _, spent)| *spent = true).is_some())
        })
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepositoryError> {
        Ok(self.read(|s| {
            let left = s
                .recovery_codes
                .iter()
                .filter(|(u, _, spent)| *u == user && !*spent)
                .count();
            u32::try_from(left).unwrap_or(u32::MAX)
        }))
    }

    async fn remove_second_factor(
        &self,
        user: UserId,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.second_factors.remove(&user);
            s.recovery_codes.retain(|(u, _, _)| *u != user);
            s.append_audit(audit)
        })
    }
}
