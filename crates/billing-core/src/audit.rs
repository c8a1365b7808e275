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
// Exhaustive on purpose: the payment history names each actor in words; a wildcard
// arm there would misname a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditActor {
    /// A signed-in staff user (practitioner or secretary).
    User(UserId),
    /// The patient, through their pay link.
    Patient,
    /// Stripe, through a webhook (with its event id when known).
    Stripe(Option<EventId>),
    /// ConsultPay itself or its operator: jobs, reconciliation, the command line (and
    /// anonymous requests).
    System,
}

impl AuditActor {
    /// Who `actor` is in the trail (anonymous requests count as the system).
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

    /// Reads [`AuditActor::to_stored`]'s form back; `None` if it is not one.
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
#[non_exhaustive]
pub enum AuditAction {
    /// `stripe.link_started`: Connect OAuth or Account Links onboarding began.
    StripeLinkStarted,
    /// `stripe.linked`: a Stripe account was linked (OAuth callback, or onboarding done).
    StripeLinked,
    /// `stripe.verified`: the account was re-read from Stripe on request.
    StripeVerified,
    /// `stripe.unlinked`: the practitioner unlinked their account.
    StripeUnlinked,
    /// `stripe.deauthorized`: the practitioner disconnected the platform at Stripe, or the
    /// account became unreachable.
    StripeDeauthorized,
    /// `stripe.account_updated`: Stripe reported a change of the account
    /// (`account.updated`).
    StripeAccountUpdated,
    /// `preferences.changed`: amounts, fee schedule, statement text or cancellation policy.
    PreferencesChanged,
    /// `profile.changed`: what notes d'honoraires say about the practitioner.
    ProfileChanged,
    /// `service.created`.
    ServiceCreated,
    /// `service.updated`: renamed, repriced, withdrawn or offered again.
    ServiceUpdated,
    /// `consultation.scheduled`.
    Scheduled,
    /// `consultation.started`: the practitioner started the teleconsultation.
    ConsultationStarted,
    /// `consultation.cancelled`, by the practitioner or the patient.
    ConsultationCancelled,
    /// `consultation.rescheduled`.
    Rescheduled,
    /// `consultation.no_show`: the patient did not come.
    NoShow,
    /// `payment.checkout_started`: the patient opened the payment page.
    CheckoutStarted,
    /// `payment.authorized`: a hold was placed (or renewed).
    Authorized,
    /// `payment.authorization_failed`.
    AuthorizationFailed,
    /// `payment.validated`: the act was validated and the amount captured.
    Validated,
    /// `payment.released`.
    Released,
    /// `payment.expired`: the hold lapsed.
    Expired,
    /// `payment.refunded`: part or all of the capture was refunded.
    Refunded,
    /// `payment.fee_reported`: Stripe's real fee replaced the estimate.
    FeeReported,
    /// `payment.card_saved`: the card was saved for a hold placed later.
    CardSaved,
    /// `payment.reopened`: a lapsed payment was opened to pay again.
    Reopened,
    /// `payment.attempt_ended`: an unpaid attempt was closed by the gateway.
    AttemptEnded,
    /// `payment.hold_renewal_failed`: the saved card refused a renewed hold.
    HoldRenewalFailed,
    /// `payment.refund_updated`: a refund moved on without changing the refunded total.
    RefundUpdated,
    /// `payment.refund_failed`: a refund failed or was cancelled; its amount came back.
    RefundFailed,
    /// `payment.disputed`: a dispute opened (or moved on while open).
    Disputed,
    /// `payment.dispute_closed`: won, lost, or an inquiry closed.
    DisputeClosed,
    /// `payment.needs_attention`: reconciliation found something for a person to look at.
    NeedsAttention,
    /// `user.created`: a practitioner or a secretary was added.
    UserCreated,
    /// `user.token_rotated`: a user's sign-in token was replaced.
    TokenRotated,
    /// `user.tokens_revoked`: a user's tokens were revoked.
    TokensRevoked,
    /// `user.password_set`: a user's sign-in e-mail and password were set.
    PasswordSet,
    /// `user.link_issued`: an invitation or password-reset link was made for a user.
    LinkIssued,
    /// `user.identity_linked`: an OpenID identity was linked to a user (by a link).
    IdentityLinked,
    /// `user.second_factor_enabled`: a user turned on one-time codes at sign-in.
    SecondFactorEnabled,
    /// `user.second_factor_disabled`: a user turned them off.
    SecondFactorDisabled,
    /// `user.token_created`: a user made a personal access token (its name).
    TokenCreated,
    /// `user.token_revoked`: a user revoked one of their tokens.
    TokenRevoked,
}

impl AuditAction {
    /// Every action, in declaration order.
    pub const ALL: [AuditAction; 42] = [
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
        AuditAction::PasswordSet,
        AuditAction::LinkIssued,
        AuditAction::IdentityLinked,
        AuditAction::SecondFactorEnabled,
        AuditAction::SecondFactorDisabled,
        AuditAction::TokenCreated,
        AuditAction::TokenRevoked,
    ];

    /// The stable text form (`payment.validated`, …), stored and exported.
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
            AuditAction::PasswordSet => "user.password_set",
            AuditAction::LinkIssued => "user.link_issued",
            AuditAction::IdentityLinked => "user.identity_linked",
            AuditAction::SecondFactorEnabled => "user.second_factor_enabled",
            AuditAction::SecondFactorDisabled => "user.second_factor_disabled",
            AuditAction::TokenCreated => "user.token_created",
            AuditAction::TokenRevoked => "user.token_revoked",
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
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The practitioner whose trail it belongs to.
    pub practitioner: PractitionerId,
    /// Who did it.
    pub actor: AuditActor,
    /// What was done.
    pub action: AuditAction,
    /// The consultation, payment, service or user the action was about, if any.
    pub subject: Option<Uuid>,
    /// Human-readable particulars ("18.00 EUR", "acct_…"); never secrets or health data.
    pub detail: String,
}

impl AuditEntry {
    /// An entry without subject or detail (add them with [`AuditEntry::subject`] and
    /// [`AuditEntry::detail`]).
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

    /// The same entry about `id` (a consultation, payment, service or user).
    pub fn subject(mut self, id: Uuid) -> Self {
        self.subject = Some(id);
        self
    }

    /// The same entry with particulars; never secrets or health data.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// Reading (and, for facts not tied to another write, appending to) the trail.
///
/// # Contract
///
/// - **Append-only.** Entries are never changed or removed.
/// - An entry about a practitioner that does not exist is
///   [`RepositoryError::NotFound`](crate::repository::RepositoryError::NotFound), and
///   nothing is written.
/// - Entries read back equal (`==`) to what was written, per practitioner, newest
///   first; entries with the same time come back in reverse order of writing.
/// - Entries written with another change (a payment's [`ChangeLog`]) are in that
///   change's transaction: the trail never tells of a change that did not commit.
///
/// [`ChangeLog`]: crate::payment::ports::ChangeLog
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
