//! The audit trail (C13): an append-only record of who did what and when.
//!
//! Entries are written by the repositories in the same transaction as the change
//! they describe (a payment transition and its entry commit together or not at all),
//! so the trail can be trusted to match the data.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::Actor;
use crate::ids::{EventId, PractitionerId, UserId};

/// Who caused an audited change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditActor {
    User(UserId),
    Patient,
    Stripe(Option<EventId>),
    System,
}

impl AuditActor {
    pub fn of(actor: &Actor) -> Self {
        match actor {
            Actor::Staff(u) => AuditActor::User(u.id),
            Actor::Patient { .. } => AuditActor::Patient,
            Actor::Stripe => AuditActor::Stripe(None),
            Actor::System | Actor::Anonymous => AuditActor::System,
        }
    }

    /// Stable text form: `user:<uuid>`, `patient`, `stripe:<evt_…>`, `stripe`, `system`.
    pub fn to_stored(&self) -> String {
        match self {
            AuditActor::User(id) => format!("user:{id}"),
            AuditActor::Patient => "patient".into(),
            AuditActor::Stripe(Some(evt)) => format!("stripe:{evt}"),
            AuditActor::Stripe(None) => "stripe".into(),
            AuditActor::System => "system".into(),
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "patient" => Some(AuditActor::Patient),
            "stripe" => Some(AuditActor::Stripe(None)),
            "system" => Some(AuditActor::System),
            _ => {
                if let Some(id) = s.strip_prefix("user:") {
                    id.parse().ok().map(AuditActor::User)
                } else if let Some(evt) = s.strip_prefix("stripe:") {
                    EventId::parse(evt)
                        .ok()
                        .map(|e| AuditActor::Stripe(Some(e)))
                } else {
                    None
                }
            }
        }
    }
}

/// What kind of thing happened. The text forms are stable (stored and exported).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditAction {
    StripeLinkStarted,
    StripeLinked,
    StripeVerified,
    StripeUnlinked,
    StripeDeauthorized,
    StripeAccountUpdated,
    PreferencesChanged,
    ProfileChanged,
    ServiceCreated,
    ServiceUpdated,
    Scheduled,
    ConsultationStarted,
    ConsultationCancelled,
    Rescheduled,
    NoShow,
    CheckoutStarted,
    Authorized,
    AuthorizationFailed,
    Validated,
    Released,
    Expired,
    Refunded,
    FeeReported,
    CardSaved,
    Reopened,
    AttemptEnded,
    HoldRenewalFailed,
    RefundUpdated,
    RefundFailed,
    Disputed,
    DisputeClosed,
    NeedsAttention,
    UserCreated,
    TokenRotated,
    TokensRevoked,
}

impl AuditAction {
    pub const ALL: [AuditAction; 35] = [
        AuditAction::StripeLinkStarted,
        AuditAction::StripeLinked,
        AuditAction::StripeVerified,
        AuditAction::StripeUnlinked,
        AuditAction::StripeDeauthorized,
        AuditAction::StripeAccountUpdated,
        AuditAction::PreferencesChanged,
        AuditAction::ProfileChanged,
        AuditAction::ServiceCreated,
        AuditAction::ServiceUpdated,
        AuditAction::Scheduled,
        AuditAction::ConsultationStarted,
        AuditAction::ConsultationCancelled,
        AuditAction::Rescheduled,
        AuditAction::NoShow,
        AuditAction::CheckoutStarted,
        AuditAction::Authorized,
        AuditAction::AuthorizationFailed,
        AuditAction::Validated,
        AuditAction::Released,
        AuditAction::Expired,
        AuditAction::Refunded,
        AuditAction::FeeReported,
        AuditAction::CardSaved,
        AuditAction::Reopened,
        AuditAction::AttemptEnded,
        AuditAction::HoldRenewalFailed,
        AuditAction::RefundUpdated,
        AuditAction::RefundFailed,
        AuditAction::Disputed,
        AuditAction::DisputeClosed,
        AuditAction::NeedsAttention,
        AuditAction::UserCreated,
        AuditAction::TokenRotated,
        AuditAction::TokensRevoked,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::StripeLinkStarted => "stripe.link_started",
            AuditAction::StripeLinked => "stripe.linked",
            AuditAction::StripeVerified => "stripe.verified",
            AuditAction::StripeUnlinked => "stripe.unlinked",
            AuditAction::StripeDeauthorized => "stripe.deauthorized",
            AuditAction::StripeAccountUpdated => "stripe.account_updated",
            AuditAction::PreferencesChanged => "preferences.changed",
            AuditAction::ProfileChanged => "profile.changed",
            AuditAction::ServiceCreated => "service.created",
            AuditAction::ServiceUpdated => "service.updated",
            AuditAction::Scheduled => "consultation.scheduled",
            AuditAction::ConsultationStarted => "consultation.started",
            AuditAction::ConsultationCancelled => "consultation.cancelled",
            AuditAction::Rescheduled => "consultation.rescheduled",
            AuditAction::NoShow => "consultation.no_show",
            AuditAction::CheckoutStarted => "payment.checkout_started",
            AuditAction::Authorized => "payment.authorized",
            AuditAction::AuthorizationFailed => "payment.authorization_failed",
            AuditAction::Validated => "payment.validated",
            AuditAction::Released => "payment.released",
            AuditAction::Expired => "payment.expired",
            AuditAction::Refunded => "payment.refunded",
            AuditAction::FeeReported => "payment.fee_reported",
            AuditAction::CardSaved => "payment.card_saved",
            AuditAction::Reopened => "payment.reopened",
            AuditAction::AttemptEnded => "payment.attempt_ended",
            AuditAction::HoldRenewalFailed => "payment.hold_renewal_failed",
            AuditAction::RefundUpdated => "payment.refund_updated",
            AuditAction::RefundFailed => "payment.refund_failed",
            AuditAction::Disputed => "payment.disputed",
            AuditAction::DisputeClosed => "payment.dispute_closed",
            AuditAction::NeedsAttention => "payment.needs_attention",
            AuditAction::UserCreated => "user.created",
            AuditAction::TokenRotated => "user.token_rotated",
            AuditAction::TokensRevoked => "user.tokens_revoked",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(())
    }
}

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub practitioner: PractitionerId,
    pub actor: AuditActor,
    pub action: AuditAction,
    /// The consultation, payment, service or user the action was about, if any.
    pub subject: Option<Uuid>,
    /// Human-readable particulars ("18.00 EUR", "acct_…"); never secrets or health data.
    pub detail: String,
}

impl AuditEntry {
    pub fn new(
        at: DateTime<Utc>,
        practitioner: PractitionerId,
        actor: AuditActor,
        action: AuditAction,
    ) -> Self {
        AuditEntry {
            at,
            practitioner,
            actor,
            action,
            subject: None,
            detail: String::new(),
        }
    }

    pub fn subject(mut self, id: Uuid) -> Self {
        self.subject = Some(id);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Reading (and, for facts not tied to another write, appending to) the trail.
#[cfg_attr(test, mockall::automock)]
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry on its own.
    async fn append(&self, entry: &AuditEntry) -> Result<(), crate::repository::RepositoryError>;

    /// The practitioner's most recent entries, newest first, at most `limit`.
    async fn recent(
        &self,
        practitioner: PractitionerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, crate::repository::RepositoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_stored_text() {
        for a in AuditAction::ALL {
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
        }
    }

    #[test]
    fn actors_round_trip_through_their_stored_text() {
        let actors = [
            AuditActor::User(UserId::from_uuid(Uuid::from_u128(5))),
            AuditActor::Patient,
            AuditActor::Stripe(Some(EventId::parse("evt_123").unwrap())),
            AuditActor::Stripe(None),
            AuditActor::System,
        ];
        for a in actors {
            assert_eq!(AuditActor::from_stored(&a.to_stored()), Some(a));
        }
    }
}
