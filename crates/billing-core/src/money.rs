//! Money: an exact decimal amount in an ISO 4217 currency.
//!
//! Amounts are [`rust_decimal::Decimal`] values always held at their currency's scale
//! (two decimals for EUR, none for JPY), so `25` and `25.00` are the same value and
//! display the same way. Integer minor units exist only to cross the Stripe boundary
//! ([`Money::to_minor`], [`Money::from_minor`]). Arithmetic across currencies is an error.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

/// An ISO 4217 currency ConsultPay can charge in, with what Stripe needs to know about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Currency {
    /// Euro.
    Eur,
    /// US dollar.
    Usd,
    /// Pound sterling.
    Gbp,
    /// Swiss franc.
    Chf,
    /// Canadian dollar.
    Cad,
    /// Australian dollar.
    Aud,
    /// Swedish krona.
    Sek,
    /// Danish krone.
    Dkk,
    /// Norwegian krone.
    Nok,
    /// Polish złoty.
    Pln,
    /// A zero-decimal currency: amounts have no minor unit.
    Jpy,
}

impl Currency {
    /// Every supported currency, in a stable order.
    pub const ALL: [Currency; 11] = [
        Currency::Eur,
        Currency::Usd,
        Currency::Gbp,
        Currency::Chf,
        Currency::Cad,
        Currency::Aud,
        Currency::Sek,
        Currency::Dkk,
        Currency::Nok,
        Currency::Pln,
        Currency::Jpy,
    ];

    /// The ISO 4217 alphabetic code, upper case ("EUR").
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Gbp => "GBP",
            Currency::Chf => "CHF",
            Currency::Cad => "CAD",
            Currency::Aud => "AUD",
            Currency::Sek => "SEK",
            Currency::Dkk => "DKK",
            Currency::Nok => "NOK",
            Currency::Pln => "PLN",
            Currency::Jpy => "JPY",
        }
    }

    /// The code as Stripe writes it (lower case, "eur").
    pub const fn stripe_code(self) -> &'static str {
        match self {
            Currency::Eur => "eur",
            Currency::Usd => "usd",
            Currency::Gbp => "gbp",
            Currency::Chf => "chf",
            Currency::Cad => "cad",
            Currency::Aud => "aud",
            Currency::Sek => "sek",
            Currency::Dkk => "dkk",
            Currency::Nok => "nok",
            Currency::Pln => "pln",
            Currency::Jpy => "jpy",
        }
    }

    /// Number of decimals of the minor unit (2 for EUR, 0 for JPY).
    pub const fn minor_units(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            _ => 2,
        }
    }

    /// Stripe's minimum charge amount in this currency, in minor units
    /// (<https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts>).
    pub const fn stripe_minimum_minor(self) -> i64 {
        match self {
            Currency::Eur | Currency::Usd | Currency::Chf | Currency::Cad | Currency::Aud => 50,
            Currency::Gbp => 30,
            Currency::Sek | Currency::Nok => 300,
            Currency::Dkk => 250,
            Currency::Pln => 200,
            Currency::Jpy => 50,
        }
    }

    /// The smallest amount Stripe will charge in this currency.
    pub fn minimum_charge(self) -> Money {
        Money::from_minor(self.stripe_minimum_minor(), self)
    }

    /// The largest amount Stripe will charge: eight digits in minor units.
    pub fn maximum_charge(self) -> Money {
        Money::from_minor(STRIPE_MAX_MINOR, self)
    }
}

/// Stripe's upper bound on a charge: at most eight digits in minor units.
pub const STRIPE_MAX_MINOR: i64 = 99_999_999;

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    /// Accepts the ISO code in either case ("EUR" or Stripe's "eur").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| MoneyError::UnknownCurrency(truncate_for_error(trimmed)))
    }
}

/// Why an amount or a currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The input was empty, or only whitespace.
    #[error("the amount is empty")]
    Empty,
    /// The text is not an amount: only digits with at most one `.` or `,` and digits
    /// after it are accepted (no sign, exponent or thousands separator). For
    /// [`Money`]'s `FromStr`, the text is not "`<decimal> <currency code>`". Carries the
    /// offending text, cut to 32 characters.
    #[error("'{0}' is not an amount: write digits with an optional decimal point or comma")]
    InvalidFormat(String),
    /// The input starts with a minus sign (or a fee schedule's fixed part is negative).
    #[error("the amount must not be negative")]
    Negative,
    /// More decimals than the currency's minor unit has. Nothing is ever rounded
    /// silently: "25.001" EUR is refused, "25.000" is accepted.
    #[error("{currency} amounts have at most {max} decimals")]
    TooManyDecimals {
        /// The currency the amount was meant in.
        currency: Currency,
        /// How many decimals it allows ([`Currency::minor_units`]).
        max: u32,
    },
    /// The amount does not fit in `i64` minor units, the typed text is longer than 24
    /// characters, or a sum, difference or product overflowed.
    #[error("the amount is too large")]
    Overflow,
    /// Not the code of a supported [`Currency`]; carries the text, cut to 32 characters.
    #[error("'{0}' is not a supported currency")]
    UnknownCurrency(String),
    /// Two amounts in different currencies were combined or compared (or an amount was
    /// given to a schedule or a payment in another currency).
    #[error("cannot combine {left} and {right} amounts")]
    CurrencyMismatch {
        /// The currency of the amount operated on (`self`, or the amount given).
        left: Currency,
        /// The currency of the other operand (the schedule's, the payment's).
        right: Currency,
    },
    /// Less than Stripe accepts to charge in the currency
    /// ([`Currency::minimum_charge`]).
    #[error("the minimum charge is {minimum}")]
    BelowMinimumCharge {
        /// The smallest chargeable amount (0.50 EUR, 0.30 GBP, …).
        minimum: Money,
    },
    /// More than Stripe accepts to charge: eight digits in minor units
    /// ([`Currency::maximum_charge`]).
    #[error("the maximum charge is {maximum}")]
    AboveMaximumCharge {
        /// The largest chargeable amount (999 999.99 EUR).
        maximum: Money,
    },
}

/// Longest user input we echo back in an error message.
const MAX_ECHO: usize = 32;
/// Longest amount text we try to parse; anything longer cannot be a real price.
const MAX_INPUT_LEN: usize = 24;

fn truncate_for_error(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

/// The grammar of a typed amount: digits, optionally one `.` or `,` and more digits.
fn parse_decimal_input(input: &str) -> Result<Decimal, MoneyError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(MoneyError::Empty);
    }
    if s.starts_with('-') {
        return Err(MoneyError::Negative);
    }
    if s.len() > MAX_INPUT_LEN {
        return Err(MoneyError::Overflow);
    }
    let (int_part, frac_part) = match s.find(['.', ',']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(MoneyError::InvalidFormat(truncate_for_error(s)));
    }
    let canonical = match frac_part {
        Some(frac) => format!("{int_part}.{frac}"),
        None => int_part.to_owned(),
    };
    Decimal::from_str_exact(&canonical).map_err(|_| MoneyError::Overflow)
}

/// An amount typed by a user whose currency is settled later (by the payment or the
/// practitioner it applies to). If the user named a currency it must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmountInput {
    value: Decimal,
    currency: Option<Currency>,
}

impl AmountInput {
    /// Reads what a person typed, with the same grammar as [`Money::parse`]: "25",
    /// "25.00" or "25,00". `currency` is the one they named, if any; the scale is
    /// checked later, by [`AmountInput::in_currency`].
    ///
    /// # Errors
    ///
    /// [`MoneyError::Empty`], [`MoneyError::Negative`], [`MoneyError::InvalidFormat`],
    /// or [`MoneyError::Overflow`] for text longer than 24 characters.
    pub fn parse(text: &str, currency: Option<Currency>) -> Result<Self, MoneyError> {
        Ok(AmountInput {
            value: parse_decimal_input(text)?,
            currency,
        })
    }

    /// A stable text form: "25", "25.0" and "25,00" give the same.
    pub fn canonical(&self) -> String {
        let currency = self.currency.map(|c| c.code()).unwrap_or("");
        format!("{}{currency}", self.value.normalize())
    }

    /// The amount in `currency`, refusing another named currency or too many decimals.
    pub fn in_currency(&self, currency: Currency) -> Result<Money, MoneyError> {
        match self.currency {
            Some(named) if named != currency => Err(MoneyError::CurrencyMismatch {
                left: named,
                right: currency,
            }),
            _ => Money::new(self.value, currency),
        }
    }
}

/// An exact amount of money in a currency, held at the currency's scale.
///
/// Invariant: `amount.scale() == currency.minor_units()` and the amount fits in `i64`
/// minor units. The amount may be negative only as the result of arithmetic (a net
/// after refunds); user input never is.
///
/// ```
/// use billing_core::money::{Currency, Money, MoneyError};
/// use billing_core::rust_decimal::Decimal;
///
/// // What a person types: a point or a comma, at most the currency's decimals.
/// let price = Money::parse("25,00", Currency::Eur)?;
/// assert_eq!(price, Money::parse("25", Currency::Eur)?);
/// assert_eq!(price.to_string(), "25.00 EUR");
/// assert_eq!(price.to_minor()?, 2500); // cents, what Stripe is sent
/// assert!(matches!(
///     Money::parse("25.001", Currency::Eur),
///     Err(MoneyError::TooManyDecimals { max: 2, .. })
/// ));
/// assert_eq!(Money::parse("-5", Currency::Eur), Err(MoneyError::Negative));
///
/// // Arithmetic is exact, checked, and never mixes currencies.
/// let refunded = Money::parse("7.50", Currency::Eur)?;
/// assert_eq!(price.checked_sub(&refunded)?.to_string(), "17.50 EUR");
/// assert!(refunded.checked_sub(&price)?.is_negative());
/// let dollar = Money::from_minor(100, Currency::Usd);
/// assert!(matches!(
///     price.checked_add(&dollar),
///     Err(MoneyError::CurrencyMismatch { .. })
/// ));
///
/// // A product is rounded half away from zero to the minor unit:
/// // 0.35 × 10 % = 0.035 → 0.04, and 18.00 × 1.4 % = 0.252 → 0.25.
/// let ten_percent = Decimal::new(1, 1);
/// let eur = |s| Money::parse(s, Currency::Eur);
/// assert_eq!(eur("0.35")?.mul_rounded(ten_percent)?, eur("0.04")?);
/// assert_eq!(eur("18")?.mul_rounded(Decimal::new(14, 3))?, eur("0.25")?);
///
/// // Zero-decimal currencies have no minor unit.
/// assert_eq!(Money::parse("500", Currency::Jpy)?.to_minor()?, 500);
/// # Ok::<(), MoneyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Money::from_minor(0, currency)
    }

    /// An amount from integer minor units (cents for EUR, yen for JPY).
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money {
            amount: Decimal::new(minor, currency.minor_units()),
            currency,
        }
    }

    /// An exact decimal amount. Fails if it has more decimals than the currency allows
    /// (no silent rounding) or does not fit in `i64` minor units.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let scale = currency.minor_units();
        let normalized = amount.normalize();
        if normalized.scale() > scale {
            return Err(MoneyError::TooManyDecimals {
                currency,
                max: scale,
            });
        }
        let mut amount = normalized;
        amount.rescale(scale);
        let money = Money { amount, currency };
        money.to_minor()?;
        Ok(money)
    }

    /// Parses what a person types: "25", "25.00" or "25,00". Refuses signs, exponents,
    /// thousands separators, more decimals than the currency has, and empty input.
    pub fn parse(input: &str, currency: Currency) -> Result<Self, MoneyError> {
        Money::new(parse_decimal_input(input)?, currency)
    }

    /// The amount in integer minor units, checked for overflow.
    pub fn to_minor(&self) -> Result<i64, MoneyError> {
        let mut scaled = self.amount;
        scaled.rescale(self.currency.minor_units());
        let mantissa = scaled.mantissa();
        i64::try_from(mantissa).map_err(|_| MoneyError::Overflow)
    }

    /// The decimal amount at the currency's scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The amount's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Exactly zero (in any currency, `0.00` and `0` are the same).
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Strictly above zero.
    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    /// Strictly below zero (only a computed amount can be: a net after refunds).
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other`.
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`] if the currencies differ, [`MoneyError::Overflow`]
    /// if the sum does not fit in `i64` minor units.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(sum, self.currency)
    }

    /// `self - other`, which may be negative.
    ///
    /// # Errors
    ///
    /// [`MoneyError::CurrencyMismatch`] if the currencies differ, [`MoneyError::Overflow`]
    /// if the difference does not fit in `i64` minor units.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let diff = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(diff, self.currency)
    }

    /// Compares two amounts of the same currency.
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// `self * rate`, rounded half away from zero (half-up for the non-negative amounts
    /// fees are computed on) to the currency's minor unit.
    pub fn mul_rounded(&self, rate: Decimal) -> Result<Money, MoneyError> {
        let product = self.amount.checked_mul(rate).ok_or(MoneyError::Overflow)?;
        let rounded = product.round_dp_with_strategy(
            self.currency.minor_units(),
            RoundingStrategy::MidpointAwayFromZero,
        );
        Money::new(rounded, self.currency)
    }

    /// Checks that Stripe can charge this amount: at least the currency's minimum and at
    /// most eight digits in minor units.
    pub fn ensure_chargeable(&self) -> Result<(), MoneyError> {
        let minor = self.to_minor()?;
        if minor < self.currency.stripe_minimum_minor() {
            return Err(MoneyError::BelowMinimumCharge {
                minimum: self.currency.minimum_charge(),
            });
        }
        if minor > STRIPE_MAX_MINOR {
            return Err(MoneyError::AboveMaximumCharge {
                maximum: self.currency.maximum_charge(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Money {
    /// "25.00 EUR": the machine form used in logs and errors; pages format per locale.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Reads the machine form [`Display`](fmt::Display) writes: "25.00 EUR", "-3.10 eur".
/// Unlike [`Money::parse`] (user input) the amount may be negative.
impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (amount, currency) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| MoneyError::InvalidFormat(truncate_for_error(s)))?;
        let amount = Decimal::from_str(amount)
            .map_err(|_| MoneyError::InvalidFormat(truncate_for_error(amount)))?;
        Money::new(amount, currency.parse()?)
    }
}

serde_as_text!(Currency, Money);

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({} {})", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(s: &str) -> Money {
        Money::parse(s, Currency::Eur).expect("valid test amount")
    }

    #[test]
    fn user_input_forms_parse_to_the_same_amount() {
        for input in ["25", "25.00", "25,00", " 25.0 ", "025"] {
            let m = Money::parse(input, Currency::Eur).expect(input);
            assert_eq!(m.to_minor(), Ok(2500), "{input}");
            assert_eq!(m.amount().to_string(), "25.00", "{input}");
        }
    }

    #[test]
    fn bad_user_input_gets_a_typed_error() {
        let cases: &[(&str, MoneyError)] = &[
            ("", MoneyError::Empty),
            ("   ", MoneyError::Empty),
            (
                "25.001",
                MoneyError::TooManyDecimals {
                    currency: Currency::Eur,
                    max: 2,
                },
            ),
            ("-1", MoneyError::Negative),
            ("1e3", MoneyError::InvalidFormat("1e3".into())),
            ("+5", MoneyError::InvalidFormat("+5".into())),
            ("1,000.00", MoneyError::InvalidFormat("1,000.00".into())),
            ("25.", MoneyError::InvalidFormat("25.".into())),
            (".5", MoneyError::InvalidFormat(".5".into())),
            ("NaN", MoneyError::InvalidFormat("NaN".into())),
            ("١٢", MoneyError::InvalidFormat("١٢".into())),
            ("99999999999999999999999999", MoneyError::Overflow),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Money::parse(input, Currency::Eur).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn an_amount_input_takes_the_currency_it_is_used_in() {
        let input = AmountInput::parse("18,00", None).unwrap();
        assert_eq!(input.in_currency(Currency::Eur), Ok(eur("18")));
        assert!(matches!(
            AmountInput::parse("18", Some(Currency::Usd))
                .unwrap()
                .in_currency(Currency::Eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            AmountInput::parse("18.5", None)
                .unwrap()
                .in_currency(Currency::Jpy),
            Err(MoneyError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn equal_inputs_have_one_canonical_form() {
        let a = AmountInput::parse("25", None).unwrap();
        let b = AmountInput::parse("25,00", None).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(
            a.canonical(),
            AmountInput::parse("25", Some(Currency::Usd))
                .unwrap()
                .canonical()
        );
    }

    #[test]
    fn zero_decimal_currencies_refuse_decimals() {
        assert_eq!(
            Money::parse("500", Currency::Jpy).unwrap().to_minor(),
            Ok(500)
        );
        assert_eq!(
            Money::parse("500.5", Currency::Jpy),
            Err(MoneyError::TooManyDecimals {
                currency: Currency::Jpy,
                max: 0
            })
        );
        // Trailing zeros carry no information and are accepted.
        assert_eq!(
            Money::parse("500.00", Currency::Jpy).unwrap().to_minor(),
            Ok(500)
        );
    }

    #[test]
    fn trailing_zero_decimals_beyond_the_scale_are_accepted() {
        assert_eq!(eur("25.000").to_minor(), Ok(2500));
    }

    #[test]
    fn currencies_parse_in_either_case() {
        assert_eq!("eur".parse::<Currency>(), Ok(Currency::Eur));
        assert_eq!("JPY".parse::<Currency>(), Ok(Currency::Jpy));
        assert!(matches!(
            "XXX".parse::<Currency>(),
            Err(MoneyError::UnknownCurrency(_))
        ));
    }

    #[test]
    fn arithmetic_across_currencies_is_refused() {
        let usd = Money::from_minor(100, Currency::Usd);
        assert_eq!(
            eur("1").checked_add(&usd),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::Eur,
                right: Currency::Usd
            })
        );
    }

    #[test]
    fn stripe_charge_bounds_are_enforced() {
        assert!(eur("0.50").ensure_chargeable().is_ok());
        assert!(matches!(
            eur("0.49").ensure_chargeable(),
            Err(MoneyError::BelowMinimumCharge { .. })
        ));
        assert!(eur("999999.99").ensure_chargeable().is_ok());
        assert!(matches!(
            eur("1000000.00").ensure_chargeable(),
            Err(MoneyError::AboveMaximumCharge { .. })
        ));
        assert!(
            Money::parse("50", Currency::Jpy)
                .unwrap()
                .ensure_chargeable()
                .is_ok()
        );
    }

    #[test]
    fn display_keeps_the_currency_scale() {
        assert_eq!(eur("12.5").to_string(), "12.50 EUR");
        assert_eq!(
            Money::from_minor(5000, Currency::Jpy).to_string(),
            "5000 JPY"
        );
    }

    #[test]
    fn half_up_rounding_of_products() {
        let m = eur("0.50");
        let rate = Decimal::new(14, 3); // 1.4 %
        assert_eq!(m.mul_rounded(rate).unwrap().to_minor(), Ok(1)); // 0.007 → 0.01
        let m = eur("18.00");
        assert_eq!(m.mul_rounded(rate).unwrap().to_minor(), Ok(25)); // 0.252 → 0.25
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn minor_units_round_trip(minor in -10_000_000_000_000i64..10_000_000_000_000, cur in any_currency()) {
            let m = Money::from_minor(minor, cur);
            prop_assert_eq!(m.to_minor(), Ok(minor));
            let text = m.amount().to_string();
            if minor >= 0 {
                prop_assert_eq!(Money::parse(&text, cur), Ok(m));
            }
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,40}") {
            let _ = Money::parse(&s, Currency::Eur);
        }

        #[test]
        fn parsed_amounts_are_never_negative_and_keep_scale(int in 0u64..1_000_000_000, frac in 0u32..100) {
            let m = Money::parse(&format!("{int},{frac:02}"), Currency::Eur).unwrap();
            prop_assert!(!m.is_negative());
            prop_assert_eq!(m.amount().scale(), 2);
            prop_assert_eq!(m.to_minor().unwrap(), i64::try_from(int).unwrap() * 100 + i64::from(frac));
        }

        #[test]
        fn addition_then_subtraction_is_identity(a in 0i64..1_000_000_000, b in 0i64..1_000_000_000) {
            let x = Money::from_minor(a, Currency::Eur);
            let y = Money::from_minor(b, Currency::Eur);
            prop_assert_eq!(x.checked_add(&y).unwrap().checked_sub(&y).unwrap(), x);
        }
    }
}
