//! Typed identifiers: our own (UUIDs, generated through the
//! [`IdGenerator`](crate::system::IdGenerator) port) and Stripe's (prefixed strings,
//! validated on the way in so a `pi_…` can never be used where an `acct_…` is meant).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind} id")]
#[non_exhaustive]
pub struct InvalidId {
    /// What the id was meant to be ("payment", "Stripe account", …).
    pub kind: &'static str,
    /// The text refused, cut to 64 characters.
    pub value: String,
}

fn invalid(kind: &'static str, value: &str) -> InvalidId {
    InvalidId {
        kind,
        value: value.chars().take(64).collect(),
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID (from the [`IdGenerator`](crate::system::IdGenerator), or
            /// read back from storage).
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The UUID, as stored.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| invalid($kind, s))
            }
        }

        serde_as_text!($name);
    };
}

uuid_id!(
    /// A practitioner (who owns a Stripe link, preferences, services and payments).
    PractitionerId,
    "practitioner"
);
uuid_id!(
    /// A staff user (practitioner or secretary) who signs in with a token.
    UserId,
    "user"
);
uuid_id!(
    /// A priced service of a practitioner's catalogue.
    ServiceId,
    "service"
);
uuid_id!(
    /// A scheduled teleconsultation.
    ConsultationId,
    "consultation"
);
uuid_id!(
    /// The payment of a consultation with online payment.
    PaymentId,
    "payment"
);

macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, [$($prefix:literal),+]) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts `prefix_` followed by 1–250 ASCII letters, digits or `_`.
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                let valid = [$($prefix),+].iter().any(|p| {
                    s.strip_prefix(p).is_some_and(|rest| {
                        !rest.is_empty()
                            && rest.len() <= 250
                            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                });
                if valid { Ok(Self(s.to_owned())) } else { Err(invalid($kind, s)) }
            }

            /// The id as Stripe wrote it, prefix included.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        serde_as_text!($name);
    };
}

stripe_id!(
    /// A Stripe connected account (`acct_…`): the practitioner's own account.
    ConnectedAccountId,
    "Stripe account",
    ["acct_"]
);
stripe_id!(
    /// A Stripe PaymentIntent (`pi_…`): one per payment.
    PaymentIntentId,
    "PaymentIntent",
    ["pi_"]
);
stripe_id!(
    /// A Stripe Checkout Session (`cs_test_…`, `cs_live_…`).
    CheckoutSessionId,
    "Checkout Session",
    ["cs_"]
);
stripe_id!(
    /// A Stripe refund (`re_…`, or `pyr_…` for some payment methods).
    RefundId,
    "refund",
    ["re_", "pyr_"]
);
stripe_id!(
    /// A Stripe Customer (`cus_…`) on the practitioner's account: what a saved card
    /// belongs to.
    CustomerId,
    "Customer",
    ["cus_"]
);
stripe_id!(
    /// A Stripe PaymentMethod (`pm_…`, or `card_…` / `src_…` for older cards): the
    /// patient's card saved for holds placed later.
    PaymentMethodId,
    "PaymentMethod",
    ["pm_", "card_", "src_"]
);
stripe_id!(
    /// A Stripe SetupIntent (`seti_…`): the card saved without charging it.
    SetupIntentId,
    "SetupIntent",
    ["seti_"]
);
stripe_id!(
    /// A Stripe dispute (`dp_…`, or `du_…` for some payment methods).
    DisputeId,
    "dispute",
    ["dp_", "du_"]
);
stripe_id!(
    /// A Stripe event (`evt_…`), the unit of webhook de-duplication.
    EventId,
    "event",
    ["evt_"]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_ids_check_their_prefix() {
        assert!(ConnectedAccountId::parse("acct_1GOVXuEdeEjkOh7w").is_ok());
        assert!(ConnectedAccountId::parse("pi_1GOVXuEdeEjkOh7w").is_err());
        assert!(ConnectedAccountId::parse("acct_").is_err());
        assert!(ConnectedAccountId::parse("acct_x y").is_err());
        assert!(RefundId::parse("pyr_123").is_ok());
        assert!(CheckoutSessionId::parse("cs_test_a1b2").is_ok());
    }

    #[test]
    fn uuid_ids_parse_and_display_the_same_text() {
        let id: PaymentId = "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap();
        assert_eq!(id.to_string(), "0190b1a4-7c1e-7d3a-9f00-1234567890ab");
        let err = "nope".parse::<PaymentId>().unwrap_err();
        assert_eq!(err.kind, "payment");
    }
}
