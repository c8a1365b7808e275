//! Payments in each state, made through the domain's own transitions
//! ([`Payment::apply`]), so a payment built here is one the state machine can reach.
//!
//! ```
//! use billing_core::testing::build::PaymentBuilder;
//! use billing_core::{Currency, Money, PaymentStatus};
//!
//! let p = PaymentBuilder::new(Money::from_minor(2_500, Currency::Eur))
//!     .in_state(PaymentStatus::Captured);
//! assert_eq!(p.status(), PaymentStatus::Captured);
//! // The usual capture is three quarters of the hold: 18.75 of 25.00.
//! assert_eq!(p.captured().map(|m| m.to_string()), Some("18.75 EUR".to_owned()));
//! ```

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use uuid::Uuid;

use crate::fees::FeeSchedule;
use crate::ids::{
    ConnectedAccountId, ConsultationId, CustomerId, DisputeId, PaymentId, PaymentIntentId,
    PaymentMethodId, PractitionerId,
};
use crate::money::Money;
use crate::payment::model::{
    Applied, Dispute, DisputeStatus, Failure, Payment, PaymentEvent, PaymentStatus, SavedCard,
};

/// The instant builders use unless told otherwise: 2 November 2026, 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The card a saved-card payment holds (`cus_1Saved`, `pm_1Saved`).
pub fn saved_card() -> SavedCard {
    SavedCard {
        customer: CustomerId::parse("cus_1Saved")
            .unwrap_or_else(|_| unreachable!("a well-formed customer id")),
        payment_method: PaymentMethodId::parse("pm_1Saved")
            .unwrap_or_else(|_| unreachable!("a well-formed payment method id")),
    }
}

/// A declined card, as Stripe reports it.
pub fn declined() -> Failure {
    Failure {
        code: Some("card_declined".into()),
        decline_code: Some("insufficient_funds".into()),
        message: "Your card has insufficient funds.".into(),
    }
}

/// A dispute of `amount` whose funds and Stripe's 15.00 fee were withdrawn, with
/// evidence due a week after `at`.
pub fn dispute(amount: Money, status: DisputeStatus, at: DateTime<Utc>) -> Dispute {
    Dispute {
        id: DisputeId::parse("dp_1Stored").unwrap_or_else(|_| unreachable!("a well-formed id")),
        amount,
        reason: "fraudulent".into(),
        status,
        evidence_due_by: Some(at + Duration::days(7)),
        withdrawn: amount,
        fee: Money::from_minor(1500, amount.currency()),
        transactions: 1,
    }
}

/// The usual events that take a new payment of `amount` to `status`, oldest first: a
/// hold of the whole amount, a capture of three quarters of it (rounded down to the
/// minor unit), a full or a one-third refund, a dispute of the capture, …
pub fn events_to(status: PaymentStatus, amount: Money, at: DateTime<Utc>) -> Vec<PaymentEvent> {
    let currency = amount.currency();
    let minor = amount.to_minor().unwrap_or(0);
    let captured = Money::from_minor(minor * 3 / 4, currency);
    let hold = PaymentEvent::HoldPlaced {
        amount,
        capture_before: Some(at + Duration::days(7)),
    };
    let capture = PaymentEvent::Captured {
        amount: captured,
        fee: None,
    };
    match status {
        PaymentStatus::Incomplete => vec![],
        PaymentStatus::Authorized => vec![hold],
        PaymentStatus::Captured => vec![hold, capture],
        PaymentStatus::Released => vec![hold, PaymentEvent::Released],
        PaymentStatus::Expired => vec![hold, PaymentEvent::Expired],
        PaymentStatus::Failed => vec![PaymentEvent::AuthorizationFailed(declined())],
        PaymentStatus::Refunded => vec![hold, capture, PaymentEvent::Refunded { total: captured }],
        PaymentStatus::PartiallyRefunded => vec![
            hold,
            capture,
            PaymentEvent::Refunded {
                total: Money::from_minor(minor * 3 / 4 / 3, currency),
            },
        ],
        PaymentStatus::CardSaved => vec![PaymentEvent::CardSaved(saved_card())],
        PaymentStatus::Disputed => vec![
            hold,
            capture,
            PaymentEvent::Disputed(dispute(captured, DisputeStatus::NeedsResponse, at)),
        ],
        PaymentStatus::DisputeLost => vec![
            hold,
            capture,
            PaymentEvent::Disputed(dispute(captured, DisputeStatus::Lost, at)),
        ],
    }
}

/// Builds a [`Payment`] and takes it to a state: ids 1 (practitioner), 10
/// (consultation) and 20 (payment) unless set, Stripe's default fee schedule, created
/// at [`t0`], its checkout started on `acct_1Estival` with intent `pi_1Estival` one
/// minute later, and each next event a minute after the previous one.
#[derive(Clone, Debug)]
pub struct PaymentBuilder {
    id: PaymentId,
    consultation: ConsultationId,
    practitioner: PractitionerId,
    amount: Money,
    at: DateTime<Utc>,
}

impl PaymentBuilder {
    /// A payment of `amount` (the most the consultation may cost: the hold).
    pub fn new(amount: Money) -> Self {
        PaymentBuilder {
            id: PaymentId::from_uuid(Uuid::from_u128(20)),
            consultation: ConsultationId::from_uuid(Uuid::from_u128(10)),
            practitioner: PractitionerId::from_uuid(Uuid::from_u128(1)),
            amount,
            at: t0(),
        }
    }

    /// Its id.
    pub fn id(mut self, id: PaymentId) -> Self {
        self.id = id;
        self
    }

    /// The consultation it pays for.
    pub fn consultation(mut self, id: ConsultationId) -> Self {
        self.consultation = id;
        self
    }

    /// The practitioner it is for.
    pub fn practitioner(mut self, id: PractitionerId) -> Self {
        self.practitioner = id;
        self
    }

    /// When it is created.
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }

    /// The payment in `status`, through [`events_to`].
    ///
    /// # Panics
    /// If the amount cannot be charged (zero, negative, or beyond Stripe's maximum):
    /// builders are for tests, where that is the test's mistake.
    pub fn in_state(self, status: PaymentStatus) -> Payment {
        let fees = FeeSchedule::default_for(self.amount.currency());
        let created = Payment::new(
            self.id,
            self.consultation,
            self.practitioner,
            self.amount,
            fees,
            self.at,
        )
        .unwrap_or_else(|e| panic!("a payment of {} cannot be built: {e}", self.amount));
        let mut at = self.at + Duration::minutes(1);
        let account = ConnectedAccountId::parse("acct_1Estival")
            .unwrap_or_else(|_| unreachable!("a well-formed account id"));
        let intent = PaymentIntentId::parse("pi_1Estival")
            .unwrap_or_else(|_| unreachable!("a well-formed intent id"));
        let mut payment = created
            .checkout_started(account, Some(intent), None, at)
            .unwrap_or_else(|e| panic!("a new payment starts its checkout: {e}"));
        for event in events_to(status, self.amount, at) {
            at += Duration::minutes(1);
            payment = step(&payment, &event, at);
        }
        payment
    }
}

/// `p` after `event` at `at`.
///
/// # Panics
/// If `event` does not change `p`: a builder step that does nothing is a mistake in
/// the test that asked for it.
pub fn step(p: &Payment, event: &PaymentEvent, at: DateTime<Utc>) -> Payment {
    match p.apply(event, at) {
        Ok(Applied::Changed { payment, .. }) => *payment,
        Ok(other) => panic!(
            "{event:?} changes nothing on a {} payment: {other:?}",
            p.status()
        ),
        Err(e) => panic!("{event:?} is refused on a {} payment: {e}", p.status()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn every_status_can_be_built() {
        for status in PaymentStatus::ALL {
            let p = PaymentBuilder::new(Money::from_minor(2_500, Currency::Eur)).in_state(status);
            assert_eq!(p.status(), status);
        }
    }
}
