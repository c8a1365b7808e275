//! The use cases' error: one vocabulary for every caller, each case with a stable
//! machine `code` that the HTTP adapter maps to a status in one place.
//!
//! One enum for all use cases (rather than one per use case) because the API promises
//! one set of problem codes; each variant keeps the typed cause it came from.

use crate::access::AccessDenied;
use crate::consultation::policy::PolicyError;
use crate::contact::ContactError;
use crate::fees::FeeError;
use crate::gateway::{GatewayError, WebhookError};
use crate::identity::IdentityError;
use crate::money::{Currency, Money, MoneyError};
use crate::payment::model::{Failure, TransitionError};
use crate::practitioner::model::{CapError, ChargeBlocker, PreferencesError};
use crate::receipt::RenderError;
use crate::repository::RepositoryError;
use crate::video::{DayError, SignError};

/// The gateway code of a refund the processor finished as failed or cancelled.
pub const REFUND_FAILED: &str = "refund_failed";

/// How a caller should treat an error, independent of transport.
// Exhaustive on purpose: the HTTP adapter maps every class to a status in one match;
// a wildcard arm there would answer a new class with a guessed status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// No credentials (HTTP 401).
    Unauthenticated,
    /// The caller may not do this (403).
    Forbidden,
    /// Nothing there, or nothing the caller may see (404).
    NotFound,
    /// The request is wrong; fix it and retry (400/422).
    Invalid,
    /// The request is right but the current state forbids it (409).
    Conflict,
    /// The card or the gateway refused (402).
    Refused,
    /// Something outside is down; retry later (502/503).
    Unavailable,
    /// Too many attempts: wait before trying again (429).
    Throttled,
}

/// Why a use case failed. [`BillingError::code`] is the stable problem code and
/// [`BillingError::class`] how to treat it (the HTTP status); [`Display`](std::fmt::Display)
/// is a message for people, in English.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// The caller is not signed in, may not do this, or may not see the thing.
    #[error(transparent)]
    Access(#[from] AccessDenied),
    /// No such thing; carries what was looked for (`"payment"`, `"consultation"`, …).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The amount was refused (format, decimals, zero, below Stripe's minimum charge,
    /// …).
    #[error("invalid amount: {0}")]
    InvalidAmount(MoneyError),
    /// An amount in another currency than the one it is for.
    #[error("expected an amount in {expected}, got {got}")]
    CurrencyMismatch {
        /// The currency of the practitioner, payment or schedule.
        expected: Currency,
        /// The currency of the amount given.
        got: Currency,
    },
    /// More than the hold (a capture) or than what is left to refund (a refund).
    #[error("{requested} is above the hold of {held}")]
    AmountAboveCap {
        /// The amount asked for.
        requested: Money,
        /// The most it may be: the hold, or what may still be refunded.
        held: Money,
    },
    /// A validation below the minimum charge; validating 0 releases the hold instead.
    #[error(
        "{requested} is below the minimum charge of {minimum}: release the hold instead \
         (validate 0)"
    )]
    CaptureBelowMinimum {
        /// The amount validated.
        requested: Money,
        /// The currency's minimum charge.
        minimum: Money,
    },
    /// Above the practitioner's maximum (a cap, a price, a fee).
    #[error("{requested} is above the maximum of {maximum}")]
    AmountAboveMaximum {
        /// The amount asked for.
        requested: Money,
        /// The practitioner's maximum.
        maximum: Money,
    },
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Validation {
        /// The field, as the API names it (`email`, `starts_at`, …).
        field: &'static str,
        /// What is wrong with it, for people.
        message: String,
    },
    /// The practitioner cannot take online payments now.
    #[error("no Stripe account that can take charges is linked: {0}")]
    StripeNotLinked(ChargeBlocker),
    /// The payment's state forbids this (refund before capture, another operation in
    /// flight, a concurrent refund, …).
    #[error(transparent)]
    PaymentState(TransitionError),
    /// Another request changed the same thing first; reload and retry.
    #[error("modified concurrently; reload and retry")]
    Conflict,
    /// Linking while an account is linked: unlink first.
    #[error("a Stripe account is already linked: unlink it first")]
    StripeAlreadyLinked,
    /// The OAuth callback's `state` is unknown, expired or already used.
    #[error("the Stripe link request is invalid, expired or already used")]
    OAuthStateInvalid,
    /// The practitioner declined the link on Stripe's consent page.
    #[error("the Stripe link was refused at Stripe")]
    OAuthDenied,
    /// Unlinking (without `force`) is refused while payments still depend on the account.
    #[error("{count} payment(s) still hold money or have an operation in flight")]
    OutstandingHolds {
        /// How many payments hold money, have a saved card for a later hold, or an
        /// operation in flight.
        count: u64,
    },
    /// The card was declined, or its authentication failed.
    #[error("the card was declined: {}", .0.message)]
    Declined(Failure),
    /// The `Idempotency-Key` was used before with a different request.
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` has not finished yet.
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyKeyInFlight,
    /// A webhook delivery was refused (signature, body, or no secret configured).
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The payment has no receipt yet (it is not captured).
    #[error("no receipt has been issued for this payment (it is not captured)")]
    ReceiptNotIssued,
    /// A document could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The consultation's day refuses this now (no pass before the hold, too early,
    /// over, cancelled…).
    #[error(transparent)]
    Day(#[from] DayError),
    /// The pass to the video room could not be signed.
    #[error(transparent)]
    Pass(SignError),
    /// Too many failed sign-ins for this account or from this address: wait.
    #[error("too many failed sign-ins: try again in {} minute(s)", minutes_up(*.retry_after))]
    TooManyAttempts {
        /// How long until a sign-in is tried again.
        retry_after: chrono::Duration,
    },
    /// An OpenID Connect sign-in failed.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// A password could not be hashed (the hasher's failure).
    #[error(transparent)]
    Hashing(#[from] crate::password::HashError),
    /// The payment processor refused or could not answer (a declined card is
    /// [`BillingError::Declined`] instead).
    #[error("payment gateway: {0}")]
    Gateway(GatewayError),
    /// Storage failed (a [`RepositoryError::Conflict`] is [`BillingError::Conflict`]
    /// instead).
    #[error("storage: {0}")]
    Storage(RepositoryError),
}

impl BillingError {
    /// The stable problem code (`application/problem+json`'s `code`).
    pub fn code(&self) -> &'static str {
        match self {
            BillingError::Access(AccessDenied::Unauthenticated) => "unauthenticated",
            BillingError::Access(AccessDenied::Forbidden) => "forbidden",
            BillingError::Access(AccessDenied::NotFound) | BillingError::NotFound(_) => "not_found",
            BillingError::InvalidAmount(MoneyError::BelowMinimumCharge { .. }) => {
                "below_minimum_charge"
            }
            BillingError::InvalidAmount(_) => "invalid_amount",
            BillingError::CurrencyMismatch { .. } => "currency_mismatch",
            BillingError::AmountAboveCap { .. } => "amount_above_cap",
            BillingError::CaptureBelowMinimum { .. } => "capture_below_minimum",
            BillingError::AmountAboveMaximum { .. } => "amount_above_maximum",
            BillingError::Validation { .. } => "validation_failed",
            BillingError::StripeNotLinked(ChargeBlocker::NotLinked) => "stripe_not_linked",
            BillingError::StripeNotLinked(ChargeBlocker::ChargesDisabled { .. }) => {
                "charges_disabled"
            }
            BillingError::PaymentState(TransitionError::ConcurrentRefund) => "refund_in_progress",
            BillingError::PaymentState(_) => "payment_state_conflict",
            BillingError::Conflict => "concurrent_modification",
            BillingError::StripeAlreadyLinked => "stripe_already_linked",
            BillingError::OAuthStateInvalid => "oauth_state_invalid",
            BillingError::OAuthDenied => "oauth_access_denied",
            BillingError::OutstandingHolds { .. } => "outstanding_holds",
            BillingError::Declined(_) => "card_declined",
            BillingError::IdempotencyKeyReused => "idempotency_key_reused",
            BillingError::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            BillingError::Webhook(WebhookError::NotConfigured) => "webhook_not_configured",
            BillingError::Webhook(_) => "webhook_signature_invalid",
            BillingError::Gateway(GatewayError::InvalidGrant { .. }) => "oauth_code_invalid",
            BillingError::Gateway(GatewayError::AccountUnavailable { .. }) => {
                "stripe_account_unavailable"
            }
            BillingError::Gateway(GatewayError::NotConfigured(_)) => "gateway_not_configured",
            BillingError::Gateway(GatewayError::UnexpectedState { .. }) => "payment_state_conflict",
            // The gateway does not know the payment's object (a sandbox restarted, or
            // an account in another mode): retrying will not help, unlike an outage.
            BillingError::Gateway(GatewayError::NotFound { .. }) => "gateway_object_missing",
            BillingError::Gateway(GatewayError::IdempotencyConflict) => "idempotency_key_reused",
            BillingError::Gateway(GatewayError::Declined(_)) => "card_declined",
            BillingError::Gateway(GatewayError::InvalidRequest { code: Some(c), .. })
                if c == REFUND_FAILED =>
            {
                "refund_failed"
            }
            BillingError::Gateway(_) => "gateway_unavailable",
            BillingError::ReceiptNotIssued => "receipt_not_issued",
            BillingError::Day(d) => d.code(),
            BillingError::Pass(_) => "pass_unavailable",
            BillingError::Hashing(_) => "password_unavailable",
            BillingError::TooManyAttempts { .. } => "sign_in_throttled",
            BillingError::Identity(IdentityError::NotConfigured) => "oidc_not_configured",
            BillingError::Identity(IdentityError::Unavailable(_)) => "oidc_unavailable",
            BillingError::Identity(IdentityError::NotLinked) => "oidc_not_linked",
            BillingError::Identity(_) => "oidc_rejected",
            BillingError::Render(_) => "document_unavailable",
            BillingError::Storage(_) => "storage_unavailable",
        }
    }

    /// How a caller should treat the error, whatever the transport.
    pub fn class(&self) -> ErrorClass {
        match self {
            BillingError::Access(AccessDenied::Unauthenticated) => ErrorClass::Unauthenticated,
            BillingError::Access(AccessDenied::Forbidden) => ErrorClass::Forbidden,
            BillingError::Access(AccessDenied::NotFound) | BillingError::NotFound(_) => {
                ErrorClass::NotFound
            }
            BillingError::InvalidAmount(_)
            | BillingError::CurrencyMismatch { .. }
            | BillingError::AmountAboveCap { .. }
            | BillingError::CaptureBelowMinimum { .. }
            | BillingError::AmountAboveMaximum { .. }
            | BillingError::Validation { .. }
            | BillingError::OAuthStateInvalid
            | BillingError::OAuthDenied
            | BillingError::IdempotencyKeyReused
            | BillingError::Webhook(_) => ErrorClass::Invalid,
            BillingError::StripeNotLinked(_)
            | BillingError::PaymentState(_)
            | BillingError::Conflict
            | BillingError::StripeAlreadyLinked
            | BillingError::OutstandingHolds { .. }
            | BillingError::IdempotencyKeyInFlight
            | BillingError::ReceiptNotIssued => ErrorClass::Conflict,
            BillingError::Declined(_) | BillingError::Day(DayError::PaymentRequired) => {
                ErrorClass::Refused
            }
            BillingError::Day(_) => ErrorClass::Conflict,
            BillingError::Gateway(g) => match g {
                GatewayError::Declined(_) => ErrorClass::Refused,
                GatewayError::InvalidRequest { code: Some(c), .. } if c == REFUND_FAILED => {
                    ErrorClass::Refused
                }
                GatewayError::InvalidGrant { .. } => ErrorClass::Invalid,
                GatewayError::UnexpectedState { .. }
                | GatewayError::IdempotencyConflict
                | GatewayError::NotFound { .. }
                | GatewayError::AccountUnavailable { .. } => ErrorClass::Conflict,
                GatewayError::InvalidRequest { .. }
                | GatewayError::RateLimited
                | GatewayError::Authentication
                | GatewayError::Unavailable { .. }
                | GatewayError::NotConfigured(_) => ErrorClass::Unavailable,
            },
            BillingError::TooManyAttempts { .. } => ErrorClass::Throttled,
            BillingError::Identity(
                IdentityError::NotConfigured | IdentityError::Unavailable(_),
            ) => ErrorClass::Unavailable,
            BillingError::Identity(_) => ErrorClass::Unauthenticated,
            BillingError::Storage(_)
            | BillingError::Render(_)
            | BillingError::Pass(_)
            | BillingError::Hashing(_) => ErrorClass::Unavailable,
        }
    }

    pub(crate) fn validation(field: &'static str, err: impl std::fmt::Display) -> Self {
        BillingError::Validation {
            field,
            message: err.to_string(),
        }
    }
}

/// Whole minutes, rounded up: "try again in 1 minute" rather than in 0.
pub fn minutes_up(d: chrono::Duration) -> i64 {
    (d.num_seconds().max(0) + 59) / 60
}

impl From<RepositoryError> for BillingError {
    fn from(e: RepositoryError) -> Self {
        match e {
            RepositoryError::Conflict => BillingError::Conflict,
            other => BillingError::Storage(other),
        }
    }
}

impl From<GatewayError> for BillingError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Declined(f) => BillingError::Declined(f),
            other => BillingError::Gateway(other),
        }
    }
}

impl From<MoneyError> for BillingError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::CurrencyMismatch { left, right } => BillingError::CurrencyMismatch {
                expected: right,
                got: left,
            },
            other => BillingError::InvalidAmount(other),
        }
    }
}

impl From<TransitionError> for BillingError {
    fn from(e: TransitionError) -> Self {
        match e {
            TransitionError::AboveHold { requested, held } => {
                BillingError::AmountAboveCap { requested, held }
            }
            TransitionError::AmountNotPositive => BillingError::InvalidAmount(MoneyError::Negative),
            TransitionError::AboveRefundable {
                requested,
                refundable,
            } => BillingError::AmountAboveCap {
                requested,
                held: refundable,
            },
            TransitionError::CaptureBelowMinimum { requested, minimum } => {
                BillingError::CaptureBelowMinimum { requested, minimum }
            }
            TransitionError::Money(m) => m.into(),
            other => BillingError::PaymentState(other),
        }
    }
}

impl From<CapError> for BillingError {
    fn from(e: CapError) -> Self {
        match e {
            CapError::AboveMaximum { requested, maximum } => {
                BillingError::AmountAboveMaximum { requested, maximum }
            }
            CapError::CurrencyMismatch { expected, got } => {
                BillingError::CurrencyMismatch { expected, got }
            }
            CapError::ServiceInactive => {
                BillingError::validation("service_id", "this service is no longer offered")
            }
            CapError::Money(m) => m.into(),
        }
    }
}

impl From<PreferencesError> for BillingError {
    fn from(e: PreferencesError) -> Self {
        match e {
            PreferencesError::DefaultAboveMaximum { default, maximum } => {
                BillingError::AmountAboveMaximum {
                    requested: default,
                    maximum,
                }
            }
            PreferencesError::FeeAboveMaximum { fee, maximum } => {
                BillingError::AmountAboveMaximum {
                    requested: fee,
                    maximum,
                }
            }
            PreferencesError::Money(m) => m.into(),
            PreferencesError::Policy(PolicyError::Fee(m)) => m.into(),
            PreferencesError::Policy(p @ PolicyError::Window) => {
                BillingError::validation("free_cancellation_hours", p)
            }
        }
    }
}

impl From<FeeError> for BillingError {
    fn from(e: FeeError) -> Self {
        match e {
            FeeError::Money(m) => m.into(),
            other => BillingError::validation("fee_schedule", other),
        }
    }
}

impl From<crate::practitioner::model::StatementError> for BillingError {
    fn from(e: crate::practitioner::model::StatementError) -> Self {
        use crate::practitioner::model::StatementError;
        let field = match e {
            StatementError::Label => "payment_label",
            StatementError::Suffix => "statement_descriptor_suffix",
        };
        BillingError::validation(field, e)
    }
}

impl From<ContactError> for BillingError {
    fn from(e: ContactError) -> Self {
        let field = match e {
            ContactError::InvalidEmail(_) => "email",
            _ => "name",
        };
        BillingError::validation(field, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_capture_amount_is_an_invalid_amount_not_a_state_conflict() {
        let e: BillingError = TransitionError::AmountNotPositive.into();
        assert_eq!(e.code(), "invalid_amount");
        assert_eq!(e.class(), ErrorClass::Invalid);
    }

    #[test]
    fn storage_conflicts_become_concurrent_modification() {
        let e: BillingError = RepositoryError::Conflict.into();
        assert_eq!(e.code(), "concurrent_modification");
        assert_eq!(e.class(), ErrorClass::Conflict);
    }

    #[test]
    fn declines_from_the_gateway_are_refusals() {
        let e: BillingError = GatewayError::Declined(Failure {
            code: Some("card_declined".into()),
            decline_code: None,
            message: "declined".into(),
        })
        .into();
        assert_eq!(e.code(), "card_declined");
        assert_eq!(e.class(), ErrorClass::Refused);
    }

    #[test]
    fn an_object_the_gateway_does_not_know_is_a_conflict_not_an_outage() {
        let missing: BillingError = GatewayError::NotFound {
            message: "No such payment_intent".into(),
        }
        .into();
        assert_eq!(missing.code(), "gateway_object_missing");
        assert_eq!(missing.class(), ErrorClass::Conflict);
        let down: BillingError = GatewayError::Unavailable {
            message: "timeout".into(),
        }
        .into();
        assert_eq!(down.code(), "gateway_unavailable");
        assert_eq!(down.class(), ErrorClass::Unavailable);
    }
}
