//! Stripe fee math (C7): a percentage plus a fixed amount, rounded half-up to the
//! minor unit.
//!
//! The fee shown before a capture is an *estimate* from the practitioner's schedule;
//! once Stripe reports the real fee (balance transaction) that one replaces it
//! ([`Fee::reported`]). Stripe keeps its fee when a payment is refunded, so the net of a
//! fully refunded payment is minus the fee.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::money::{Currency, Money, MoneyError};

/// The named price lists Stripe publishes for card payments in the EEA, plus the seeds'
/// historical 1.4 % + €0.25 which is the default.
// Exhaustive on purpose: the preferences form labels each preset; a wildcard arm
// there would offer a new one unnamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeePreset {
    /// 1.4 % + €0.25: the rate the seeds quote ("60 centimes on 25 euros").
    Default,
    /// Standard EEA cards: 1.5 % + €0.25.
    Standard,
    /// Premium EEA cards: 1.9 % + €0.25.
    Premium,
    /// UK cards: 2.5 % + €0.25.
    Uk,
    /// International cards: 3.25 % + €0.25.
    International,
}

impl FeePreset {
    /// Every preset, in a stable order (the order a picker lists them in).
    pub const ALL: [FeePreset; 5] = [
        FeePreset::Default,
        FeePreset::Standard,
        FeePreset::Premium,
        FeePreset::Uk,
        FeePreset::International,
    ];

    /// Stable identifier used in the API and storage.
    pub const fn id(self) -> &'static str {
        match self {
            FeePreset::Default => "default",
            FeePreset::Standard => "standard",
            FeePreset::Premium => "premium",
            FeePreset::Uk => "uk",
            FeePreset::International => "international",
        }
    }

    /// The percentage in hundredths of a percent (140 = 1.40 %).
    const fn basis_points(self) -> i64 {
        match self {
            FeePreset::Default => 140,
            FeePreset::Standard => 150,
            FeePreset::Premium => 190,
            FeePreset::Uk => 250,
            FeePreset::International => 325,
        }
    }

    /// The preset's schedule. The fixed part is 0.25 in `currency`'s major unit (Stripe
    /// quotes €0.25; other currencies are configured with a custom schedule).
    pub fn schedule(self, currency: Currency) -> FeeSchedule {
        let fixed_minor = match currency.minor_units() {
            0 => 25,
            _ => 25 * 10_i64.pow(currency.minor_units() - 2),
        };
        FeeSchedule {
            percent: Decimal::new(self.basis_points(), 2).normalize(),
            fixed: Money::from_minor(fixed_minor, currency),
            preset: Some(self),
        }
    }
}

impl fmt::Display for FeePreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for FeePreset {
    type Err = FeeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FeePreset::ALL
            .into_iter()
            .find(|p| p.id().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| FeeError::UnknownPreset(s.chars().take(32).collect()))
    }
}

/// Why a fee schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeeError {
    /// Not the id of a [`FeePreset`] ([`FeePreset::id`]); carries the text, cut to 32
    /// characters.
    #[error("'{0}' is not a fee schedule (default, standard, premium, uk, international)")]
    UnknownPreset(String),
    /// The percentage is negative, above 100, or has more than four decimals.
    #[error("the fee percentage must be between 0 and 100 with at most 4 decimals")]
    InvalidPercent,
    /// The schedule's fee on the currency's smallest charge is at least that charge
    /// (see [`FeeSchedule::ensure_positive_net`]).
    #[error(
        "this schedule's fee on the smallest charge ({smallest}) is {fee}: it would leave \
         nothing, or less than nothing, on small payments"
    )]
    LeavesNoNet {
        /// The currency's minimum charge ([`Currency::minimum_charge`]).
        smallest: Money,
        /// What the schedule would take on it.
        fee: Money,
    },
    /// The fixed part is negative ([`MoneyError::Negative`]) or an amount is in another
    /// currency than the schedule.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A fee schedule: `percent`% of the amount plus `fixed`, in one currency.
///
/// The percentage part is rounded half-up to the minor unit before the fixed part is
/// added; a zero amount costs nothing.
///
/// ```
/// use billing_core::fees::{FeePreset, FeeSchedule};
/// use billing_core::money::{Currency, Money, MoneyError};
///
/// let eur = |s| Money::parse(s, Currency::Eur);
/// let schedule = FeeSchedule::default_for(Currency::Eur); // 1.4 % + 0.25 €
/// assert_eq!(schedule.preset(), Some(FeePreset::Default));
///
/// // 25.00 × 1.4 % = 0.35, + 0.25 = 0.60: the practitioner receives 24.40.
/// let estimate = schedule.estimate(&eur("25.00")?)?;
/// assert_eq!(estimate.fee, eur("0.60")?);
/// assert_eq!(estimate.net, eur("24.40")?);
///
/// // Half-up: 7.50 × 1.4 % = 0.105 → 0.11 (not the banker's 0.10), + 0.25.
/// assert_eq!(schedule.fee(&eur("7.50")?)?, eur("0.36")?);
/// // And below half, down: 18.00 × 1.4 % = 0.252 → 0.25, + 0.25.
/// assert_eq!(schedule.fee(&eur("18.00")?)?, eur("0.50")?);
///
/// // A schedule prices its own currency only.
/// let dollars = Money::parse("25", Currency::Usd)?;
/// assert!(matches!(
///     schedule.estimate(&dollars),
///     Err(MoneyError::CurrencyMismatch { .. })
/// ));
/// # Ok::<(), MoneyError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeeSchedule {
    percent: Decimal,
    fixed: Money,
    preset: Option<FeePreset>,
}

impl FeeSchedule {
    /// A custom schedule. `percent` is in percent (1.4 means 1.4 %), 0 ≤ percent ≤ 100,
    /// with at most four decimals; `fixed` must not be negative.
    pub fn custom(percent: Decimal, fixed: Money) -> Result<Self, FeeError> {
        if percent.is_sign_negative()
            || percent > Decimal::ONE_HUNDRED
            || percent.normalize().scale() > 4
        {
            return Err(FeeError::InvalidPercent);
        }
        if fixed.is_negative() {
            return Err(FeeError::Money(MoneyError::Negative));
        }
        Ok(FeeSchedule {
            percent: percent.normalize(),
            fixed,
            preset: None,
        }
        .with_matching_preset())
    }

    fn with_matching_preset(mut self) -> Self {
        self.preset = FeePreset::ALL.into_iter().find(|p| {
            let s = p.schedule(self.fixed.currency());
            s.percent == self.percent && s.fixed == self.fixed
        });
        self
    }

    /// The default schedule (1.4 % + 0.25) in `currency`.
    pub fn default_for(currency: Currency) -> Self {
        FeePreset::Default.schedule(currency)
    }

    /// The percentage part, in percent (1.4 means 1.4 %), normalised (`1.40` is `1.4`).
    pub fn percent(&self) -> Decimal {
        self.percent
    }

    /// The fixed part, added to every non-zero charge; it sets the schedule's currency.
    pub fn fixed(&self) -> Money {
        self.fixed
    }

    /// The only currency this schedule prices amounts in.
    pub fn currency(&self) -> Currency {
        self.fixed.currency()
    }

    /// The preset this schedule equals, if any.
    pub fn preset(&self) -> Option<FeePreset> {
        self.preset
    }

    /// Stripe's fee on `amount`: `amount × percent / 100`, rounded half-up to the
    /// minor unit, plus the fixed part. Zero amounts cost nothing (nothing is charged).
    pub fn fee(&self, amount: &Money) -> Result<Money, MoneyError> {
        if amount.currency() != self.currency() {
            return Err(MoneyError::CurrencyMismatch {
                left: amount.currency(),
                right: self.currency(),
            });
        }
        if amount.is_zero() {
            return Ok(Money::zero(amount.currency()));
        }
        let rate = self
            .percent
            .checked_div(Decimal::ONE_HUNDRED)
            .ok_or(MoneyError::Overflow)?;
        amount.mul_rounded(rate)?.checked_add(&self.fixed)
    }

    /// What the practitioner receives: `amount − fee(amount)`.
    pub fn net(&self, amount: &Money) -> Result<Money, MoneyError> {
        amount.checked_sub(&self.fee(amount)?)
    }

    /// Refuses a schedule that takes all of a small payment: its fee on the currency's
    /// smallest charge must stay below it, so every chargeable amount keeps a
    /// positive net (the fee grows slower than the amount). Stripe's own schedules
    /// pass; a custom fixed part above the smallest charge does not.
    pub fn ensure_positive_net(&self) -> Result<(), FeeError> {
        let smallest = self.currency().minimum_charge();
        let fee = self.fee(&smallest)?;
        if fee.amount() >= smallest.amount() {
            return Err(FeeError::LeavesNoNet { smallest, fee });
        }
        Ok(())
    }

    /// Fee and net together, for previews (C7): [`FeeSchedule::fee`] and what is left.
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`] if `amount` is not in the schedule's currency;
    /// [`MoneyError::Overflow`] only for amounts far beyond what Stripe charges.
    pub fn estimate(&self, amount: &Money) -> Result<FeeEstimate, MoneyError> {
        let fee = self.fee(amount)?;
        Ok(FeeEstimate {
            fee,
            net: amount.checked_sub(&fee)?,
        })
    }
}

/// A fee preview: what Stripe keeps and what the practitioner receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeeEstimate {
    /// What Stripe keeps: [`FeeSchedule::fee`] of the amount.
    pub fee: Money,
    /// What the practitioner receives: the amount minus `fee` (positive for every
    /// chargeable amount when the schedule passes [`FeeSchedule::ensure_positive_net`]).
    pub net: Money,
}

/// The fee recorded on a payment: an estimate until Stripe reports the real one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fee {
    /// The fee, in the payment's currency.
    pub amount: Money,
    /// Whether `amount` is an estimate or Stripe's own figure.
    pub source: FeeSource,
}

/// Where a recorded [`Fee`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FeeSource {
    /// Computed from the practitioner's fee schedule.
    Estimated,
    /// Read from Stripe's balance transaction; never replaced by an estimate.
    Reported,
}

impl Fee {
    /// A fee computed from the practitioner's schedule, until Stripe reports its own.
    pub fn estimated(amount: Money) -> Self {
        Fee {
            amount,
            source: FeeSource::Estimated,
        }
    }

    /// The fee Stripe reported (balance transaction); [`Fee::merge`] never lets an
    /// estimate replace it.
    pub fn reported(amount: Money) -> Self {
        Fee {
            amount,
            source: FeeSource::Reported,
        }
    }

    /// Keeps a reported fee over an estimate: a late estimate never overwrites what
    /// Stripe said.
    pub fn merge(current: Option<Fee>, incoming: Fee) -> Fee {
        match current {
            Some(existing)
                if existing.source == FeeSource::Reported
                    && incoming.source == FeeSource::Estimated =>
            {
                existing
            }
            _ => incoming,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::Eur).unwrap()
    }

    #[test]
    fn the_default_schedule_matches_the_seeds_table() {
        let schedule = FeeSchedule::default_for(Currency::Eur);
        let table = [
            ("25.00", "0.60", "24.40"),
            ("18.00", "0.50", "17.50"),
            ("0.50", "0.26", "0.24"),
            ("100.00", "1.65", "98.35"),
        ];
        for (amount, fee, net) in table {
            let est = schedule.estimate(&eur(amount)).unwrap();
            assert_eq!(est.fee, eur(fee), "fee of {amount}");
            assert_eq!(est.net, eur(net), "net of {amount}");
        }
    }

    #[test]
    fn a_schedule_that_would_take_a_whole_small_payment_is_refused() {
        for currency in Currency::ALL {
            for preset in FeePreset::ALL {
                assert_eq!(
                    preset.schedule(currency).ensure_positive_net(),
                    Ok(()),
                    "{preset:?} in {currency}"
                );
            }
        }
        let fixed_above = FeeSchedule::custom(Decimal::ONE, eur("0.60")).unwrap();
        assert!(matches!(
            fixed_above.ensure_positive_net(),
            Err(FeeError::LeavesNoNet { .. })
        ));
        let all_of_it = FeeSchedule::custom(Decimal::ONE_HUNDRED, eur("0.00")).unwrap();
        assert!(all_of_it.ensure_positive_net().is_err());
    }

    proptest! {
        #[test]
        fn a_schedule_with_a_positive_net_on_the_smallest_charge_keeps_one_on_every_amount(
            percent_bp in 0u32..=6_000,
            fixed_minor in 0i64..40,
            amount_minor in 50i64..=99_999_999,
        ) {
            let schedule = FeeSchedule::custom(
                Decimal::new(i64::from(percent_bp), 2),
                Money::from_minor(fixed_minor, Currency::Eur),
            ).unwrap();
            prop_assume!(schedule.ensure_positive_net().is_ok());
            let est = schedule.estimate(&Money::from_minor(amount_minor, Currency::Eur)).unwrap();
            prop_assert!(est.net.is_positive(), "{schedule:?} on {amount_minor}: {est:?}");
        }
    }

    #[test]
    fn presets_carry_stripes_eea_prices() {
        let amount = eur("100.00");
        let table = [
            (FeePreset::Default, "1.65"),
            (FeePreset::Standard, "1.75"),
            (FeePreset::Premium, "2.15"),
            (FeePreset::Uk, "2.75"),
            (FeePreset::International, "3.50"),
        ];
        for (preset, fee) in table {
            let s = preset.schedule(Currency::Eur);
            assert_eq!(s.fee(&amount).unwrap(), eur(fee), "{preset}");
            assert_eq!(s.preset(), Some(preset));
            assert_eq!(preset.id().parse::<FeePreset>(), Ok(preset));
        }
    }

    #[test]
    fn a_custom_schedule_equal_to_a_preset_is_recognised() {
        let s = FeeSchedule::custom(Decimal::new(15, 1), eur("0.25")).unwrap();
        assert_eq!(s.preset(), Some(FeePreset::Standard));
        let s = FeeSchedule::custom(Decimal::new(29, 1), eur("0.30")).unwrap();
        assert_eq!(s.preset(), None);
    }

    #[test]
    fn invalid_schedules_are_refused() {
        assert_eq!(
            FeeSchedule::custom(Decimal::new(-1, 0), eur("0.25")),
            Err(FeeError::InvalidPercent)
        );
        assert_eq!(
            FeeSchedule::custom(Decimal::new(101, 0), eur("0.25")),
            Err(FeeError::InvalidPercent)
        );
        assert_eq!(
            FeeSchedule::custom(Decimal::new(123_456, 5), eur("0.25")),
            Err(FeeError::InvalidPercent)
        );
    }

    #[test]
    fn fee_in_another_currency_is_refused() {
        let s = FeeSchedule::default_for(Currency::Eur);
        assert!(matches!(
            s.fee(&Money::from_minor(100, Currency::Usd)),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn zero_decimal_currencies_get_a_whole_fixed_fee() {
        let s = FeeSchedule::default_for(Currency::Jpy);
        assert_eq!(s.fixed().to_minor(), Ok(25));
        // 5000 × 1.4 % = 70, + 25
        assert_eq!(
            s.fee(&Money::from_minor(5000, Currency::Jpy))
                .unwrap()
                .to_minor(),
            Ok(95)
        );
    }

    #[test]
    fn a_reported_fee_is_never_replaced_by_an_estimate() {
        let reported = Fee::reported(eur("0.61"));
        let estimate = Fee::estimated(eur("0.60"));
        assert_eq!(Fee::merge(Some(reported), estimate), reported);
        assert_eq!(Fee::merge(Some(estimate), reported), reported);
        assert_eq!(Fee::merge(None, estimate), estimate);
    }

    fn any_preset() -> impl Strategy<Value = FeePreset> {
        proptest::sample::select(FeePreset::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn fee_plus_net_is_the_amount(minor in 0i64..100_000_000, preset in any_preset()) {
            let s = preset.schedule(Currency::Eur);
            let amount = Money::from_minor(minor, Currency::Eur);
            let est = s.estimate(&amount).unwrap();
            prop_assert_eq!(est.fee.checked_add(&est.net).unwrap(), amount);
        }

        #[test]
        fn fee_is_monotone_in_the_amount(a in 1i64..100_000_000, b in 1i64..100_000_000, preset in any_preset()) {
            let s = preset.schedule(Currency::Eur);
            let (lo, hi) = (a.min(b), a.max(b));
            let f_lo = s.fee(&Money::from_minor(lo, Currency::Eur)).unwrap().to_minor().unwrap();
            let f_hi = s.fee(&Money::from_minor(hi, Currency::Eur)).unwrap().to_minor().unwrap();
            prop_assert!(f_lo <= f_hi);
        }

        #[test]
        fn fee_is_exact_integer_arithmetic(minor in 1i64..100_000_000, bp in 0i64..10_000) {
            // Reference: half-up rounding of minor × bp / 10_000, in integers.
            let s = FeeSchedule::custom(Decimal::new(bp, 2), Money::from_minor(25, Currency::Eur)).unwrap();
            let numerator = i128::from(minor) * i128::from(bp);
            let expected = (numerator * 2 + 10_000) / 20_000 + 25;
            let fee = s.fee(&Money::from_minor(minor, Currency::Eur)).unwrap().to_minor().unwrap();
            prop_assert_eq!(i128::from(fee), expected);
        }
    }
}
