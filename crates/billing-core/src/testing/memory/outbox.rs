//! [`OutboxRepository`]: messages queued once per `dedupe` key (also inside other
//! writes), claimed by a lease so that concurrent claimers never share one, and
//! settled only by their claimer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, OutboxRow, State, count};
use crate::ids::PractitionerId;
use crate::outbox::{Delivery, Message, OutboxRepository, Queued};
use crate::repository::RepositoryError;

/// The longest error text kept, in characters (as the adapter keeps it).
const MAX_ERROR_CHARS: usize = 1000;

impl OutboxRow {
    /// Pending, due at `now`, and not leased to anyone (never claimed, or the claim
    /// ran out before `now`).
    fn claimable(&self, now: DateTime<Utc>) -> bool {
        self.queued.delivery == Delivery::Pending
            && self.queued.next_attempt_at <= now
            && self.claimed_until.is_none_or(|until| until < now)
    }

    /// Still pending and claimed by `claim`: the only condition under which a claimer
    /// may settle the message.
    fn held_by(&self, claim: &str) -> bool {
        self.queued.delivery == Delivery::Pending && self.claimed_by.as_deref() == Some(claim)
    }

    /// Counts an attempt and frees the lease.
    fn attempted(&mut self) {
        self.queued.attempts = self.queued.attempts.saturating_add(1);
        self.claimed_by = None;
        self.claimed_until = None;
    }
}

impl State {
    /// Queues the messages whose `dedupe` key is new (pending, due at once) and
    /// returns how many. A message about a practitioner that does not exist is
    /// [`RepositoryError::NotFound`], a message id already stored
    /// [`RepositoryError::Duplicate`]. Inside a transaction only.
    pub(super) fn enqueue(&mut self, messages: &[Message]) -> Result<u64, RepositoryError> {
        let mut queued = 0;
        for message in messages {
            if self
                .outbox
                .values()
                .any(|row| row.queued.message.dedupe == message.dedupe)
            {
                continue;
            }
            if self.outbox.contains_key(&message.id) {
                return Err(RepositoryError::Duplicate("message"));
            }
            self.practitioner_exists(message.practitioner)?;
            let row = OutboxRow {
                queued: Queued {
                    message: message.clone(),
                    delivery: Delivery::Pending,
                    attempts: 0,
                    next_attempt_at: message.created_at,
                    last_error: None,
                },
                claimed_by: None,
                claimed_until: None,
            };
            self.outbox.insert(message.id, row);
            queued += 1;
        }
        Ok(queued)
    }
}

#[async_trait]
impl OutboxRepository for MemoryStore {
    async fn enqueue(&self, messages: &[Message]) -> Result<u64, RepositoryError> {
        self.transaction(|s| s.enqueue(messages))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError> {
        self.transaction(|s| {
            let mut due: Vec<&mut OutboxRow> = s
                .outbox
                .values_mut()
                .filter(|row| row.claimable(now))
                .collect();
            due.sort_by_key(|row| (row.queued.next_attempt_at, row.queued.message.id));
            Ok(due
                .into_iter()
                .take(count(limit))
                .map(|row| {
                    row.claimed_by = Some(claim.to_owned());
                    row.claimed_until = Some(lease_until);
                    row.queued.clone()
                })
                .collect())
        })
    }

    async fn mark_sent(
        &self,
        id: uuid::Uuid,
        claim: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        self.transaction(|s| match s.outbox.get_mut(&id) {
            Some(row) if row.held_by(claim) => {
                row.attempted();
                row.queued.delivery = Delivery::Sent { at };
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn attempt_failed(
        &self,
        id: uuid::Uuid,
        claim: &str,
        at: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
    ) -> Result<bool, RepositoryError> {
        self.transaction(|s| match s.outbox.get_mut(&id) {
            Some(row) if row.held_by(claim) => {
                row.attempted();
                row.queued.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
                match retry_at {
                    Some(next) => row.queued.next_attempt_at = next,
                    None => row.queued.delivery = Delivery::Failed { at },
                }
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn recent(
        &self,
        practitioners: &[PractitionerId],
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError> {
        Ok(self.read(|s| {
            let mut found: Vec<&Queued> = s
                .outbox
                .values()
                .map(|row| &row.queued)
                .filter(|q| practitioners.contains(&q.message.practitioner))
                .collect();
            found.sort_by_key(|q| std::cmp::Reverse((q.message.created_at, q.message.id)));
            found.into_iter().take(count(limit)).cloned().collect()
        }))
    }
}
