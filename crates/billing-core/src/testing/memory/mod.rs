//! [`MemoryStore`]: every storage port in memory, with the contract of the database
//! adapter (`storage-seaorm`), so that a use case tested on it behaves the same on a
//! database.
//!
//! What a database gives and how it is kept here:
//! - **Tables** are the fields of one `State` behind a `std::sync::Mutex`, never held
//!   across an `.await` (a port method takes it, works and lets it go before it
//!   returns).
//! - **Transactions**: a write that touches several tables (a payment change with its
//!   history, audit, documents and messages; a user with their token…) works on a copy
//!   of the state that replaces it only if every step succeeded
//!   ([`MemoryStore::transaction`]), so a write that fails changes nothing, whichever
//!   step failed.
//! - **Constraints**: the same checks, in the same order, as the database's keys: a
//!   taken id or unique value is [`RepositoryError::Duplicate`] with the adapter's
//!   words, a reference to a row that does not exist (a foreign key) is
//!   [`RepositoryError::NotFound`], a conditional write on a version that moved is
//!   [`RepositoryError::Conflict`].
//! - **Precision**: payments are stored at the microsecond, the precision both engines
//!   keep (a [`PaymentCursor`](crate::payment::ports::PaymentCursor) is written in
//!   microseconds, so the payments table could not page through finer instants).
//!   Everything else is kept as given.
//! - **The sandbox's writer lock** is an async mutex: a writer waiting for it yields to
//!   the others instead of blocking the thread (see [`SandboxStore`]).
//!
//! [`SandboxStore`]: crate::gateway::SandboxStore

mod audit;
mod consultations;
mod inbox;
mod outbox;
mod payments;
mod practitioners;
mod sandbox;
mod sessions;
mod signin;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SubsecRound as _, Utc};

use crate::access::StaffUser;
use crate::audit::AuditEntry;
use crate::consultation::model::Consultation;
use crate::ids::{ConsultationId, EventId, PaymentId, PractitionerId, ServiceId, UserId};
use crate::outbox::Queued;
use crate::payment::model::Payment;
use crate::payment::ports::{HistoryEntry, IdempotencyRecord, PaymentRow};
use crate::practitioner::model::{Practitioner, Service};
use crate::practitioner::ports::OAuthStateRecord;
use crate::receipt::{DocumentDraft, DocumentNumber};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

use sandbox::SandboxState;

/// Every storage port in memory (see the module docs of [`testing`](super)).
///
/// Implements [`Storage`](crate::Storage) (every repository port, sessions included) and
/// [`SandboxStore`](crate::gateway::SandboxStore). Clones share the same data, like
/// several handles on one database: give one clone to the use cases and keep another
/// to look at what they wrote.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    sandbox: Arc<Mutex<SandboxState>>,
    /// The sandbox's one writer lock, held by an open
    /// [`SandboxWrite`](crate::gateway::SandboxWrite) until it commits or is dropped.
    sandbox_writer: Arc<futures_util::lock::Mutex<()>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The state, locked. A lock poisoned by a panicking test is taken all the same:
    /// every write replaces the state whole or not at all (see
    /// [`MemoryStore::transaction`]), so it is never left half-written.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the state.
    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.lock())
    }

    /// A write of several steps, all or nothing like a database transaction: `f` works
    /// on a copy of the state, which replaces it only if `f` succeeds. The steps are
    /// written in the order of `storage-seaorm`'s statements, so the first that fails
    /// gives the same error.
    fn transaction<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, RepositoryError>,
    ) -> Result<T, RepositoryError> {
        let mut state = self.lock();
        let mut draft = state.clone();
        let value = f(&mut draft)?;
        *state = draft;
        Ok(value)
    }
}

/// Every table. The `Vec`s are kept in insertion order, which is the order of the
/// database's sequence columns.
#[derive(Clone, Debug, Default)]
struct State {
    practitioners: BTreeMap<PractitionerId, Practitioner>,
    oauth_states: HashMap<TokenHash, OAuthStateRow>,
    services: BTreeMap<ServiceId, Service>,
    consultations: BTreeMap<ConsultationId, Consultation>,
    payments: BTreeMap<PaymentId, Payment>,
    history: Vec<HistoryEntry>,
    audit: Vec<AuditEntry>,
    documents: Vec<DocumentRow>,
    /// The last document number of each practitioner and year.
    document_counters: BTreeMap<(PractitionerId, i32), u32>,
    outbox: BTreeMap<uuid::Uuid, OutboxRow>,
    webhook_events: HashMap<EventId, WebhookRow>,
    idempotency_keys: HashMap<(String, String), IdempotencyRecord>,
    users: BTreeMap<UserId, UserRow>,
    sessions: HashMap<TokenHash, crate::session::SessionRecord>,
    links: HashMap<TokenHash, crate::invitation::LoginLink>,
    /// Second factors, by user.
    second_factors: HashMap<UserId, crate::second_factor::SecondFactorRecord>,
    /// Recovery codes: user, hash, spent.
    recovery_codes: Vec<(UserId, TokenHash, bool)>,
    /// OpenID identities and the user each signs in.
    identities: HashMap<crate::identity::Identity, UserId>,
    /// Failed sign-ins, oldest first.
    failed_sign_ins: Vec<(crate::throttle::ThrottleKey, DateTime<Utc>)>,
    staff_tokens: HashMap<TokenHash, TokenRow>,
}

/// An OAuth state; a consumed one is kept, so that it is never consumed again.
#[derive(Clone, Debug)]
struct OAuthStateRow {
    record: OAuthStateRecord,
    consumed: bool,
}

/// A numbered receipt or credit note.
#[derive(Clone, Debug)]
struct DocumentRow {
    number: DocumentNumber,
    draft: DocumentDraft,
}

/// A queued message with its delivery and its claim.
#[derive(Clone, Debug)]
struct OutboxRow {
    queued: Queued,
    claimed_by: Option<String>,
    claimed_until: Option<DateTime<Utc>>,
}

/// A webhook event seen, and how it was processed.
#[derive(Clone, Debug)]
struct WebhookRow {
    processed: bool,
}

/// A staff user and when they were created.
#[derive(Clone, Debug)]
struct UserRow {
    user: StaffUser,
    created_at: DateTime<Utc>,
    /// The e-mail and password hash the user signs in with, once set.
    login: Option<(crate::contact::EmailAddress, crate::password::PasswordHash)>,
}

/// A staff token (by hash); a revoked one is kept, so its hash is never reused.
#[derive(Clone, Debug)]
struct TokenRow {
    user: UserId,
    revoked: bool,
    name: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

impl State {
    /// The foreign key to a practitioner: [`RepositoryError::NotFound`] if there is no
    /// such practitioner.
    fn practitioner_exists(&self, id: PractitionerId) -> Result<(), RepositoryError> {
        if self.practitioners.contains_key(&id) {
            Ok(())
        } else {
            Err(RepositoryError::NotFound)
        }
    }

    /// Appends audit entries; one about a practitioner that does not exist is
    /// [`RepositoryError::NotFound`]. Inside a transaction only.
    fn append_audit(&mut self, entries: &[AuditEntry]) -> Result<(), RepositoryError> {
        for entry in entries {
            self.practitioner_exists(entry.practitioner)?;
        }
        self.audit.extend_from_slice(entries);
        Ok(())
    }

    /// The consultation's payment, if it has one.
    fn payment_of(&self, consultation: ConsultationId) -> Option<&Payment> {
        self.payments
            .values()
            .find(|p| p.consultation() == consultation)
    }

    /// A payment with what the payments table shows of its consultation.
    fn payment_row(&self, payment: &Payment) -> Result<PaymentRow, RepositoryError> {
        let consultation = self
            .consultations
            .get(&payment.consultation())
            .ok_or_else(|| {
                RepositoryError::Corrupt(format!("payment {}: consultation missing", payment.id()))
            })?;
        Ok(PaymentRow {
            payment: payment.clone(),
            patient: consultation.patient.display_name.clone(),
            starts_at: consultation.starts_at,
        })
    }
}

/// The precision both database engines keep.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// A `limit` of a port as a number of items.
fn count(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    //! The conformance suite, every case on a fresh store.

    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt as _;

    use super::MemoryStore;
    use crate::testing::conformance::{self, Case};

    /// Runs every case on a fresh store; returns the names of those that failed.
    fn failures(cases: Vec<Case<MemoryStore>>) -> Vec<&'static str> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        let mut failed = Vec::new();
        for case in &cases {
            let run = AssertUnwindSafe(case.run(MemoryStore::new())).catch_unwind();
            if runtime.block_on(run).is_err() {
                failed.push(case.name);
            }
        }
        println!(
            "{} of {} cases pass",
            cases.len() - failed.len(),
            cases.len()
        );
        failed
    }

    #[test]
    fn the_memory_store_passes_every_storage_case() {
        let failed = failures(conformance::storage_cases::<MemoryStore>());
        assert!(failed.is_empty(), "failed: {failed:#?}");
    }

    #[test]
    fn the_memory_store_passes_every_sandbox_case() {
        let failed = failures(conformance::sandbox_cases::<MemoryStore>());
        assert!(failed.is_empty(), "failed: {failed:#?}");
    }

    #[test]
    fn clones_share_one_store() {
        use crate::payment::ports::WebhookInbox;
        let store = MemoryStore::new();
        let clone = store.clone();
        let id = crate::ids::EventId::parse("evt_shared").expect("an event id");
        let at = chrono::DateTime::UNIX_EPOCH;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            assert_eq!(store.processed(&id).await.ok(), Some(false));
            assert!(
                store
                    .record_processed(&id, "x", at, at, "applied")
                    .await
                    .is_ok()
            );
            assert_eq!(clone.processed(&id).await.ok(), Some(true));
        });
    }
}
