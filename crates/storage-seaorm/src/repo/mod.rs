//! The repository ports of `billing-core`, implemented on [`Store`](crate::Store).
//!
//! Each module implements one port (or a few small ones). Writes that go together
//! (a change, its history rows, its audit entries) share one transaction; concurrent
//! writers are told apart by conditional updates (`WHERE id = ? AND version = ?` and
//! the number of rows affected), never by locks taken in this process.
//!
//! Inside a transaction every statement goes through the transaction handle, never
//! through the pool: on a one-connection pool (`sqlite::memory:`) the pool would wait
//! for the very connection the transaction holds.

mod audit;
mod consultations;
mod documents;
mod inbox;
mod outbox;
pub(crate) mod payments;
mod practitioners;
mod sandbox;
mod second_factor;
mod sessions;
mod signin;
mod users;

use billing_core::audit::AuditEntry;
use billing_core::repository::RepositoryError;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};

use crate::convert::audit_row;
use crate::entity::audit_entry;
use crate::store::{unavailable, write_error};

/// Appends audit entries. An entry about a practitioner that does not exist is refused
/// by the foreign key (→ `NotFound`), which undoes the surrounding transaction.
pub(crate) async fn append_audit<C: ConnectionTrait>(
    db: &C,
    entries: &[AuditEntry],
) -> Result<(), RepositoryError> {
    if entries.is_empty() {
        return Ok(());
    }
    audit_entry::Entity::insert_many(entries.iter().map(audit_row))
        .exec_without_returning(db)
        .await
        .map_err(|e| write_error(e, "audit entry"))?;
    Ok(())
}

/// The one row a unique key names, read with `.all()` and this instead of `.one()`:
/// `.one()` binds `LIMIT ?`, and SQLite expires a prepared statement whose LIMIT is a
/// bound parameter each time it is bound, so every call re-prepared it (a third of
/// the server's CPU on the patient's access check). A unique key needs no LIMIT.
pub(crate) fn unique<T>(rows: Vec<T>) -> Option<T> {
    debug_assert!(rows.len() <= 1, "a unique key matched {} rows", rows.len());
    rows.into_iter().next()
}

/// Ends a write transaction: commits it if `result` is a success, rolls it back now
/// (rather than when the handle is dropped) if not.
pub(crate) async fn finish<T>(
    txn: DatabaseTransaction,
    result: Result<T, RepositoryError>,
) -> Result<T, RepositoryError> {
    match result {
        Ok(value) => {
            txn.commit().await.map_err(unavailable)?;
            Ok(value)
        }
        Err(err) => {
            // The error that made us roll back is the one worth reporting; a failed
            // rollback is finished by the pool when the connection comes back.
            let _ = txn.rollback().await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Stored data broken behind the adapter's back (by hand, by another tool) is
    //! reported as `Corrupt` by every read, never a panic.

    use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
    use billing_core::consultation::model::{
        Consultation, ConsultationRecord, PatientRef, PaymentMode,
    };
    use billing_core::consultation::ports::ConsultationRepository;
    use billing_core::contact::DisplayName;
    use billing_core::fees::FeeSchedule;
    use billing_core::ids::{ConsultationId, PaymentId, PractitionerId};
    use billing_core::money::{Currency, Money};
    use billing_core::payment::model::Payment;
    use billing_core::payment::ports::{PaymentQuery, PaymentRepository, PaymentScope};
    use billing_core::practitioner::model::{Practitioner, TimeZone};
    use billing_core::practitioner::ports::PractitionerRepository;
    use billing_core::repository::RepositoryError;
    use billing_core::secrets::PayToken;
    use billing_core::staff::UserRepository;
    use chrono::{TimeZone as _, Utc};
    use sea_orm::ConnectionTrait;
    use uuid::Uuid;

    use crate::Store;

    async fn store_with_a_payment() -> (Store, PractitionerId, ConsultationId, PaymentId) {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let pid = PractitionerId::from_uuid(Uuid::from_u128(1));
        let p = Practitioner::new(
            pid,
            DisplayName::parse("Dr Estival").unwrap(),
            TimeZone::default(),
            Currency::Eur,
            now,
        );
        let audit = AuditEntry::new(now, pid, AuditActor::System, AuditAction::UserCreated);
        let token = PayToken::from_random(&"s".repeat(43)).hash();
        store.create_practitioner(&p, &token, &audit).await.unwrap();
        let cid = ConsultationId::from_uuid(Uuid::from_u128(2));
        let payment = Payment::new(
            PaymentId::from_uuid(Uuid::from_u128(3)),
            cid,
            pid,
            Money::from_minor(2_500, Currency::Eur),
            FeeSchedule::default_for(Currency::Eur),
            now,
        )
        .unwrap();
        let record = ConsultationRecord {
            consultation: Consultation {
                id: cid,
                practitioner: pid,
                patient: PatientRef {
                    display_name: DisplayName::parse("M. Martin").unwrap(),
                    email: None,
                },
                starts_at: now,
                payment_mode: PaymentMode::Online,
                service: None,
                lang: billing_core::Lang::Fr,
                pay_token_hash: PayToken::from_random(&"p".repeat(43)).hash(),
                pay_link_generation: 0,
                created_by: None,
                created_at: now,
                status: billing_core::consultation::model::ConsultationStatus::Scheduled,
                started_at: None,
                rescheduled_at: None,
            },
            payment: Some(payment.clone()),
        };
        store.create(&record, &audit, &[]).await.unwrap();
        (store, pid, cid, payment.id())
    }

    #[tokio::test]
    async fn a_stored_payment_that_breaks_an_invariant_is_corrupt_on_every_read() {
        let breakages = [
            "UPDATE payments SET status = 'lost'",
            "UPDATE payments SET currency = 'XXX'",
            "UPDATE payments SET status = 'captured'",
            "UPDATE payments SET authorized_minor = 100, captured_minor = 200, status = 'captured'",
            "UPDATE payments SET refunded_minor = -1",
            "UPDATE payments SET fee_minor = 10",
            "UPDATE payments SET pending_operation = 'capture'",
            "UPDATE payments SET fee_rate_ppm = 2000000",
            "UPDATE payments SET intent = 'acct_not_an_intent'",
        ];
        for sql in breakages {
            let (store, pid, cid, id) = store_with_a_payment().await;
            store.db.execute_unprepared(sql).await.unwrap();
            let corrupt = |r: Result<(), RepositoryError>| {
                assert!(
                    matches!(r, Err(RepositoryError::Corrupt(_))),
                    "{sql}: {r:?}"
                );
            };
            corrupt(PaymentRepository::get(&store, id).await.map(drop));
            corrupt(ConsultationRepository::get(&store, cid).await.map(drop));
            let query = PaymentQuery {
                scope: PaymentScope::Practitioners(vec![pid]),
                statuses: vec![],
                from: None,
                to: None,
                after: None,
                limit: 50,
                totals: true,
            };
            let listed = store.list(&query).await;
            assert!(
                matches!(listed, Err(RepositoryError::Corrupt(_))),
                "{sql}: {listed:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_stored_practitioner_that_breaks_an_invariant_is_corrupt() {
        let breakages = [
            "UPDATE practitioners SET name = ''",
            "UPDATE practitioners SET time_zone = 'Mars/Olympus'",
            "UPDATE practitioners SET default_amount_minor = 10",
            "UPDATE practitioners SET link_status = 'linked'",
            "UPDATE practitioners SET link_status = 'pending', link_account = 'pi_1', link_since = created_at",
        ];
        for sql in breakages {
            let (store, pid, _, _) = store_with_a_payment().await;
            store.db.execute_unprepared(sql).await.unwrap();
            let read = PractitionerRepository::get(&store, pid).await;
            assert!(
                matches!(read, Err(RepositoryError::Corrupt(_))),
                "{sql}: {read:?}"
            );
        }
    }
}
