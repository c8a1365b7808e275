//! [`SessionRepository`]: sessions by hash, found only while the token they were
//! opened with is live (the database joins the two tables).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, micros};
use crate::access::StaffUser;
use crate::ids::UserId;
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;
use crate::session::{SessionRecord, SessionRepository};

impl State {
    /// The session and its user, if its sign-in token is still live.
    fn live_session(&self, id: &TokenHash) -> Option<(SessionRecord, StaffUser)> {
        let session = self.sessions.get(id)?;
        if let Some(credential) = &session.credential {
            self.staff_tokens.get(credential).filter(|t| !t.revoked)?;
        }
        let user = self.users.get(&session.user)?.user.clone();
        Some((session.clone(), user))
    }
}

#[async_trait]
impl SessionRepository for MemoryStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if s.sessions.contains_key(&session.id) {
                return Err(RepositoryError::Duplicate("session"));
            }
            let credential_known = session
                .credential
                .as_ref()
                .is_none_or(|c| s.staff_tokens.contains_key(c));
            if !s.users.contains_key(&session.user) || !credential_known {
                return Err(RepositoryError::NotFound);
            }
            let stored = SessionRecord {
                created_at: micros(session.created_at),
                last_seen_at: micros(session.last_seen_at),
                expires_at: micros(session.expires_at),
                ..session.clone()
            };
            s.sessions.insert(session.id.clone(), stored);
            Ok(())
        })
    }

    async fn find_session(
        &self,
        id: &TokenHash,
    ) -> Result<Option<(SessionRecord, StaffUser)>, RepositoryError> {
        Ok(self.read(|s| s.live_session(id)))
    }

    async fn touch_session(
        &self,
        id: &TokenHash,
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if let Some(session) = s.sessions.get_mut(id) {
                session.last_seen_at = micros(at);
            }
            Ok(())
        })
    }

    async fn end_session(&self, id: &TokenHash) -> Result<bool, RepositoryError> {
        self.transaction(|s| Ok(s.sessions.remove(id).is_some()))
    }

    async fn end_sessions(&self, user: UserId) -> Result<u64, RepositoryError> {
        self.transaction(|s| {
            let before = s.sessions.len();
            s.sessions.retain(|_, session| session.user != user);
            Ok(u64::try_from(before - s.sessions.len()).unwrap_or(u64::MAX))
        })
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        self.transaction(|s| {
            let before = s.sessions.len();
            s.sessions
                .retain(|_, session| session.expires_at > now && session.last_seen_at > idle_since);
            Ok(u64::try_from(before - s.sessions.len()).unwrap_or(u64::MAX))
        })
    }

    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, RepositoryError> {
        Ok(self.read(|s| {
            let mut open: Vec<SessionRecord> = s
                .sessions
                .values()
                .filter(|session| session.user == user)
                .filter_map(|session| s.live_session(&session.id).map(|(record, _)| record))
                .collect();
            open.sort_by(|a, b| {
                b.last_seen_at
                    .cmp(&a.last_seen_at)
                    .then(a.id.as_str().cmp(b.id.as_str()))
            });
            open
        }))
    }
}
