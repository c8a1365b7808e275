//! The practice's cancellation and no-show policy: what the hold is for when the
//! patient cancels late or does not come.

use chrono::{DateTime, Duration, Utc};

use crate::format;
use crate::money::{Money, MoneyError};
use crate::payment::model::Lang;

/// What a missed consultation (no-show, or a cancellation after the free window)
/// costs the patient. Never more than the hold.
// Exhaustive on purpose: storage adapters persist each kind of fee with its amount;
// a wildcard arm there would drop a new kind's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissedFee {
    /// Nothing: a missed consultation releases the hold.
    None,
    /// A fixed amount (or the hold, if that is less).
    Fixed(Money),
    /// The whole hold.
    FullHold,
}

impl MissedFee {
    /// The stable name (`none`, `fixed`, `full_hold`), stored.
    pub const fn kind(&self) -> &'static str {
        match self {
            MissedFee::None => "none",
            MissedFee::Fixed(_) => "fixed",
            MissedFee::FullHold => "full_hold",
        }
    }
}

/// Free cancellation until some hours before the start, then the missed fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancellationPolicy {
    free_hours: u32,
    fee: MissedFee,
}

impl Default for CancellationPolicy {
    /// Free until 24 hours before; no fee (a practice opts in to charging).
    fn default() -> Self {
        CancellationPolicy {
            free_hours: Self::DEFAULT_FREE_HOURS,
            fee: MissedFee::None,
        }
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The free window is longer than [`CancellationPolicy::MAX_FREE_HOURS`].
    #[error("the free cancellation window must be 0 to {max} hours", max = CancellationPolicy::MAX_FREE_HOURS)]
    Window,
    /// The fixed fee is not chargeable.
    #[error("the missed-consultation fee: {0}")]
    Fee(MoneyError),
}

impl CancellationPolicy {
    /// Free cancellation until 24 hours before the start, by default.
    pub const DEFAULT_FREE_HOURS: u32 = 24;
    /// A month: longer would outlast any hold.
    pub const MAX_FREE_HOURS: u32 = 720;

    /// A policy; a fixed fee must be chargeable (the currency's minimum charge or
    /// more). That it is in the practice's currency and under its maximum is checked
    /// with the preferences.
    pub fn new(free_hours: u32, fee: MissedFee) -> Result<Self, PolicyError> {
        if free_hours > Self::MAX_FREE_HOURS {
            return Err(PolicyError::Window);
        }
        if let MissedFee::Fixed(m) = fee {
            m.ensure_chargeable().map_err(PolicyError::Fee)?;
        }
        Ok(CancellationPolicy { free_hours, fee })
    }

    /// Cancelling is free until this many hours before the start.
    pub fn free_hours(&self) -> u32 {
        self.free_hours
    }

    /// What a missed consultation costs.
    pub fn fee(&self) -> MissedFee {
        self.fee
    }

    /// Is cancelling at `now` free of the fee for a consultation starting at
    /// `starts_at`? Always, when the policy has no fee.
    pub fn is_free(&self, starts_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.fee == MissedFee::None
            || now <= starts_at - Duration::hours(i64::from(self.free_hours))
    }

    /// What a missed consultation held for `held` costs: `None` when nothing is
    /// charged. Never more than the hold.
    /// A fixed fee in another currency than the hold (the practice changed currency
    /// since) is no fee at all.
    pub fn fee_for(&self, held: Money) -> Option<Money> {
        match self.fee {
            MissedFee::None => None,
            MissedFee::Fixed(fee) => capped(fee, held),
            MissedFee::FullHold => Some(held),
        }
    }

    /// The policy in the patient's words, for a hold of `hold`: shown before they pay
    /// and kept with the payment as what they accepted.
    pub fn statement(&self, hold: Money, lang: Lang) -> String {
        let hours = self.free_hours;
        match (self.fee_for(hold), lang) {
            (None, Lang::Fr) => {
                "Vous pouvez annuler à tout moment depuis ce lien : en cas d'annulation ou \
                 d'absence, rien n'est débité."
                    .to_owned()
            }
            (None, Lang::En) => "You can cancel at any time from this link: if you cancel or \
                 miss the consultation, nothing is charged."
                .to_owned(),
            (Some(fee), Lang::Fr) => format!(
                "Annulation gratuite jusqu'à {hours} h avant le rendez-vous. En cas d'absence \
                 non excusée ou d'annulation moins de {hours} h avant, {} pourront être débités.",
                format::money(&fee, Lang::Fr)
            ),
            (Some(fee), Lang::En) => format!(
                "Free cancellation up to {hours} h before the appointment. If you miss it or \
                 cancel less than {hours} h before, {} may be charged.",
                format::money(&fee, Lang::En)
            ),
        }
    }
}

/// `fee`, at most `held`; `None` when they are not in one currency.
fn capped(fee: Money, held: Money) -> Option<Money> {
    (fee.currency() == held.currency()).then(|| {
        if fee.amount() < held.amount() {
            fee
        } else {
            held
        }
    })
}

/// The policy the patient accepted when they authorised the payment: its exact text,
/// when, and what it lets the practice charge. A later change of policy does not
/// change what this patient agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedTerms {
    /// The policy's text as the patient read it, in their language.
    pub text: String,
    /// When they accepted it (when they started paying).
    pub at: DateTime<Utc>,
    /// What a missed consultation costs (`None`: nothing), at most the hold.
    pub fee: Option<Money>,
    /// Free cancellation until this many hours before the start.
    pub free_hours: u32,
}

impl AcceptedTerms {
    /// `policy` as shown in `lang` for a hold of `hold`, accepted at `at`.
    pub fn of(policy: &CancellationPolicy, hold: Money, lang: Lang, at: DateTime<Utc>) -> Self {
        AcceptedTerms {
            text: policy.statement(hold, lang),
            at,
            fee: policy.fee_for(hold),
            free_hours: policy.free_hours(),
        }
    }

    /// Is cancelling at `now` free of the fee?
    pub fn is_free(&self, starts_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.fee.is_none() || now <= starts_at - Duration::hours(i64::from(self.free_hours))
    }

    /// The fee for a missed consultation still held for `held`.
    pub fn fee_for(&self, held: Money) -> Option<Money> {
        self.fee
            .map(|f| if f.amount() < held.amount() { f } else { held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::TimeZone;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::Eur)
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 14, 30, 0).unwrap()
    }

    #[test]
    fn the_fee_never_exceeds_the_hold() {
        let fixed = CancellationPolicy::new(24, MissedFee::Fixed(eur(2000))).unwrap();
        assert_eq!(fixed.fee_for(eur(2500)), Some(eur(2000)));
        assert_eq!(fixed.fee_for(eur(1500)), Some(eur(1500)));
        let full = CancellationPolicy::new(24, MissedFee::FullHold).unwrap();
        assert_eq!(full.fee_for(eur(2500)), Some(eur(2500)));
        assert_eq!(CancellationPolicy::default().fee_for(eur(2500)), None);
        let in_chf = Money::from_minor(2500, Currency::Chf);
        assert_eq!(fixed.fee_for(in_chf), None, "never in another currency");
    }

    #[test]
    fn cancelling_is_free_until_the_window_closes_or_when_nothing_is_charged() {
        let p = CancellationPolicy::new(24, MissedFee::FullHold).unwrap();
        assert!(p.is_free(start(), start() - Duration::hours(24)));
        assert!(!p.is_free(
            start(),
            start() - Duration::hours(24) + Duration::seconds(1)
        ));
        let none = CancellationPolicy::new(24, MissedFee::None).unwrap();
        assert!(none.is_free(start(), start() - Duration::minutes(5)));
    }

    #[test]
    fn a_policy_is_bounded_and_its_fee_chargeable() {
        assert_eq!(
            CancellationPolicy::new(721, MissedFee::None),
            Err(PolicyError::Window)
        );
        assert!(matches!(
            CancellationPolicy::new(24, MissedFee::Fixed(eur(10))),
            Err(PolicyError::Fee(_))
        ));
    }

    #[test]
    fn the_statement_names_the_window_and_the_amount_in_the_patients_language() {
        let p = CancellationPolicy::new(24, MissedFee::Fixed(eur(2500))).unwrap();
        assert_eq!(
            p.statement(eur(3000), Lang::Fr),
            "Annulation gratuite jusqu'à 24 h avant le rendez-vous. En cas d'absence non \
             excusée ou d'annulation moins de 24 h avant, 25,00\u{a0}€ pourront être débités."
        );
        assert!(
            p.statement(eur(2000), Lang::En)
                .ends_with("cancel less than 24 h before, €20.00 may be charged.")
        );
        assert!(
            CancellationPolicy::default()
                .statement(eur(2500), Lang::Fr)
                .contains("rien n'est débité")
        );
    }
}
