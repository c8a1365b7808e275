//! Teleconsultations (C3) and the patient's gate to the waiting room (C4).

use chrono::{DateTime, Duration, Utc};

use crate::contact::{DisplayName, EmailAddress};
use crate::ids::{ConsultationId, PractitionerId, UserId};
use crate::payment::model::{Lang, Operation, Payment, PaymentStatus};
use crate::secrets::TokenHash;

/// Who the consultation is with: a reference, never health data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientRef {
    /// The patient's name, as the practitioner typed it.
    pub display_name: DisplayName,
    /// Where the pay link and receipts are sent, if given.
    pub email: Option<EmailAddress>,
}

/// With or without online payment (the seeds' two kinds of teleconsultation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentMode {
    /// Third-party payer, free, or billed another way: the patient enters directly.
    None,
    /// The patient authorises a hold before entering; see the consultation's payment.
    Online,
}

impl PaymentMode {
    /// The stable name (`none`, `online`), stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentMode::None => "none",
            PaymentMode::Online => "online",
        }
    }
}

/// A scheduled teleconsultation. The pay token itself is shown once at scheduling;
/// only its hash is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consultation {
    /// The consultation's id.
    pub id: ConsultationId,
    /// The practitioner it is with.
    pub practitioner: PractitionerId,
    /// The patient it is with.
    pub patient: PatientRef,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// Whether the patient pays online before entering.
    pub payment_mode: PaymentMode,
    /// The service chosen at scheduling, by name, if any: what receipts say the act was.
    pub service: Option<DisplayName>,
    /// The patient's language: their e-mails and documents are in it.
    pub lang: Lang,
    /// The hash of the live pay link's token: the patient's only credential.
    pub pay_token_hash: TokenHash,
    /// Which generation of the consultation's pay link is live (see
    /// [`PayLinkSigner`](crate::system::PayLinkSigner)); reissuing moves it on.
    pub pay_link_generation: u32,
    /// The staff user who scheduled it (`None` when it was not a staff user).
    pub created_by: Option<UserId>,
    /// When it was scheduled.
    pub created_at: DateTime<Utc>,
    /// Scheduled, cancelled, or the patient did not come.
    pub status: ConsultationStatus,
    /// When the practitioner opened the consultation ("Démarrer la
    /// téléconsultation"): the patient's waiting room then offers to join.
    pub started_at: Option<DateTime<Utc>>,
    /// When the practice last moved it (see the cancellation policy: a move into the
    /// fee window leaves the patient a free cancellation).
    pub rescheduled_at: Option<DateTime<Utc>>,
}

/// Where a consultation stands on its day.
// Exhaustive on purpose: storage adapters persist each status with its data (date,
// who cancelled); a wildcard arm there would drop a new status's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsultationStatus {
    /// Ahead, or under way.
    Scheduled,
    /// Cancelled by the patient or the practice.
    Cancelled(Cancellation),
    /// The practitioner marked the patient absent.
    NoShow {
        /// When the practitioner marked it.
        at: DateTime<Utc>,
    },
}

impl ConsultationStatus {
    /// The stable name (`scheduled`, `cancelled`, `no_show`), stored.
    pub const fn as_str(&self) -> &'static str {
        match self {
            ConsultationStatus::Scheduled => "scheduled",
            ConsultationStatus::Cancelled(_) => "cancelled",
            ConsultationStatus::NoShow { .. } => "no_show",
        }
    }

    /// The patient missed it, or cancelled too late to be free of the policy's fee.
    pub const fn is_missed(&self) -> bool {
        matches!(
            self,
            ConsultationStatus::NoShow { .. }
                | ConsultationStatus::Cancelled(Cancellation { late: true, .. })
        )
    }
}

/// Who cancelled, when, and whether the policy's fee may apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancellation {
    /// Who cancelled.
    pub by: CancelledBy,
    /// When.
    pub at: DateTime<Utc>,
    /// The patient cancelled after the free window: the practitioner decides whether
    /// the policy's fee is charged. Never set for a cancellation by the practice.
    pub late: bool,
}

/// Who cancelled a consultation.
// Exhaustive on purpose: pages word each side's cancellation (by the practice, late
// or free for the patient); a wildcard arm there would misword a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelledBy {
    /// The patient, from their pay link.
    Patient,
    /// The practitioner or a secretary.
    Practice,
}

impl CancelledBy {
    /// The stable name (`patient`, `practice`), stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            CancelledBy::Patient => "patient",
            CancelledBy::Practice => "practice",
        }
    }
}

/// A consultation with its payment, as repositories return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsultationRecord {
    /// The consultation.
    pub consultation: Consultation,
    /// Its payment, when the consultation is paid online.
    pub payment: Option<Payment>,
}

impl ConsultationRecord {
    /// The waiting-room gate (C4): see [`PayAccess::can_enter`].
    pub fn can_enter(&self) -> bool {
        PayAccess::of(self).can_enter()
    }

    /// Is the consultation still ahead (or just started), as `open_after_start`
    /// allows?
    pub fn is_ahead(&self, now: DateTime<Utc>, open_after_start: Duration) -> bool {
        now < self.consultation.starts_at + open_after_start
    }
}

/// What the waiting-room gate reads of a consultation and its payment: the patient's
/// page polls it, so a store may read only these columns
/// ([`ConsultationRepository::pay_access`](super::ports::ConsultationRepository::pay_access)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayAccess {
    /// The consultation.
    pub consultation: ConsultationId,
    /// Scheduled, cancelled or missed.
    pub status: ConsultationStatus,
    /// Whether it is paid online.
    pub payment_mode: PaymentMode,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// When the practitioner started it, if they did.
    pub started_at: Option<DateTime<Utc>>,
    /// Its payment's part in the gate, when it has a payment.
    pub payment: Option<PaymentGate>,
}

/// A payment's part in the waiting-room gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentGate {
    /// The payment's status.
    pub status: PaymentStatus,
    /// A release of the hold is in flight.
    pub releasing: bool,
}

impl PaymentGate {
    /// The gate's part of `p`.
    pub fn of(p: &Payment) -> Self {
        PaymentGate {
            status: p.status(),
            releasing: p
                .pending()
                .is_some_and(|op| op.operation == Operation::Release),
        }
    }
}

impl PayAccess {
    /// The gate's part of `record`.
    pub fn of(record: &ConsultationRecord) -> Self {
        let c = &record.consultation;
        PayAccess {
            consultation: c.id,
            status: c.status,
            payment_mode: c.payment_mode,
            starts_at: c.starts_at,
            started_at: c.started_at,
            payment: record.payment.as_ref().map(PaymentGate::of),
        }
    }

    /// The waiting-room gate (C4): the patient may enter iff the consultation needs no
    /// payment, or the hold is in place (and not being released), or the act was
    /// captured (and not entirely refunded). A card saved for a hold placed later
    /// does not open it.
    pub fn can_enter(&self) -> bool {
        if self.status != ConsultationStatus::Scheduled {
            return false;
        }
        match (self.payment_mode, self.payment) {
            (PaymentMode::None, _) => true,
            (PaymentMode::Online, Some(p)) => match p.status {
                PaymentStatus::Authorized => !p.releasing,
                PaymentStatus::Captured | PaymentStatus::PartiallyRefunded => true,
                _ => false,
            },
            (PaymentMode::Online, None) => false,
        }
    }

    /// Is the consultation still ahead (or just started), as `open_after_start`
    /// allows?
    pub fn is_ahead(&self, now: DateTime<Utc>, open_after_start: Duration) -> bool {
        now < self.starts_at + open_after_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::FeeSchedule;
    use crate::ids::PaymentId;
    use crate::money::{Currency, Money};
    use crate::payment::model::{Applied, PaymentEvent};
    use crate::secrets::PayToken;
    use chrono::TimeZone;
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
    }

    fn record(mode: PaymentMode, events: &[PaymentEvent]) -> ConsultationRecord {
        let consultation = Consultation {
            id: ConsultationId::from_uuid(Uuid::from_u128(1)),
            practitioner: PractitionerId::from_uuid(Uuid::from_u128(2)),
            patient: PatientRef {
                display_name: DisplayName::parse("M. Martin").unwrap(),
                email: None,
            },
            starts_at: now(),
            payment_mode: mode,
            service: None,
            lang: Lang::Fr,
            pay_token_hash: PayToken::from_random(&"a".repeat(43)).hash(),
            pay_link_generation: 0,
            created_by: None,
            created_at: now(),
            status: ConsultationStatus::Scheduled,
            started_at: None,
            rescheduled_at: None,
        };
        let payment = (mode == PaymentMode::Online).then(|| {
            let mut p = Payment::new(
                PaymentId::from_uuid(Uuid::from_u128(3)),
                consultation.id,
                consultation.practitioner,
                Money::from_minor(2500, Currency::Eur),
                FeeSchedule::default_for(Currency::Eur),
                now(),
            )
            .unwrap();
            for e in events {
                if let Applied::Changed { payment, .. } = p.apply(e, now()).unwrap() {
                    p = *payment;
                }
            }
            p
        });
        ConsultationRecord {
            consultation,
            payment,
        }
    }

    fn hold() -> PaymentEvent {
        PaymentEvent::HoldPlaced {
            amount: Money::from_minor(2500, Currency::Eur),
            capture_before: None,
        }
    }

    fn capture(minor: i64) -> PaymentEvent {
        PaymentEvent::Captured {
            amount: Money::from_minor(minor, Currency::Eur),
            fee: None,
        }
    }

    #[test]
    fn the_gate_opens_without_payment_or_once_the_hold_is_in_place() {
        let table: Vec<(&str, ConsultationRecord, bool)> = vec![
            ("no payment needed", record(PaymentMode::None, &[]), true),
            (
                "nothing authorised yet",
                record(PaymentMode::Online, &[]),
                false,
            ),
            (
                "hold in place",
                record(PaymentMode::Online, &[hold()]),
                true,
            ),
            (
                "captured",
                record(PaymentMode::Online, &[hold(), capture(1800)]),
                true,
            ),
            (
                "released",
                record(PaymentMode::Online, &[hold(), PaymentEvent::Released]),
                false,
            ),
            (
                "expired",
                record(PaymentMode::Online, &[hold(), PaymentEvent::Expired]),
                false,
            ),
            (
                "fully refunded",
                record(
                    PaymentMode::Online,
                    &[
                        hold(),
                        capture(1800),
                        PaymentEvent::Refunded {
                            total: Money::from_minor(1800, Currency::Eur),
                        },
                    ],
                ),
                false,
            ),
        ];
        for (case, record, expected) in table {
            assert_eq!(record.can_enter(), expected, "{case}");
        }
    }

    #[test]
    fn a_cancelled_or_missed_consultation_closes_the_gate_even_with_a_hold() {
        let cancelled = ConsultationStatus::Cancelled(Cancellation {
            by: CancelledBy::Patient,
            at: now(),
            late: true,
        });
        for status in [cancelled, ConsultationStatus::NoShow { at: now() }] {
            for mode in [PaymentMode::None, PaymentMode::Online] {
                let mut r = record(mode, &[hold()]);
                r.consultation.status = status;
                assert!(!r.can_enter(), "{status:?} {mode:?}");
            }
        }
    }
}
