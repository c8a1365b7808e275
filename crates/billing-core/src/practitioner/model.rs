//! Practitioners, their Stripe link (C1, C12), their fee caps and services (C2).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::consultation::policy::{CancellationPolicy, MissedFee, PolicyError};
use crate::contact::DisplayName;
use crate::fees::FeeSchedule;
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::money::{Currency, Money, MoneyError};
use crate::practitioner::profile::Profile;

/// How often Stripe pays the account out.
// Exhaustive on purpose: storage adapters persist each interval (with its anchor); a
// wildcard arm there would drop a new one's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutInterval {
    /// Only when the practitioner asks, in their Stripe dashboard.
    Manual,
    /// Every day.
    Daily,
    /// `weekly_anchor`, e.g. "monday".
    Weekly(String),
    /// `monthly_anchor`, 1–31.
    Monthly(u8),
}

/// The payout schedule of a connected account (read-only here, C12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutSchedule {
    /// How often.
    pub interval: PayoutInterval,
    /// Days between a payment and its availability for payout.
    pub delay_days: Option<u32>,
}

/// What Stripe says about a connected account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSnapshot {
    /// The account (`acct_…`).
    pub id: ConnectedAccountId,
    /// Whether the account can take charges now: online payment needs it.
    pub charges_enabled: bool,
    /// Whether Stripe can pay the balance out to the practitioner's bank.
    pub payouts_enabled: bool,
    /// Whether the practitioner finished Stripe's onboarding form; a pending Account
    /// Links onboarding becomes linked when it is.
    pub details_submitted: bool,
    /// Stripe's `requirements.disabled_reason` when charges or payouts are off.
    pub disabled_reason: Option<String>,
    /// Stripe's `requirements.currently_due`: what the practitioner must still provide.
    pub currently_due: Vec<String>,
    /// The payout schedule, when Stripe reports it.
    pub payout_schedule: Option<PayoutSchedule>,
    /// The account's default currency, when Stripe reports it.
    pub default_currency: Option<Currency>,
    /// The account's country (ISO 3166-1 alpha-2, `FR`), when Stripe reports it.
    pub country: Option<String>,
}

/// Why a link was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeReason {
    /// The practitioner unlinked from ConsultPay.
    Unlinked,
    /// Stripe told us the practitioner disconnected the platform
    /// (`account.application.deauthorized`), or the account became unreachable.
    Deauthorized,
}

impl RevokeReason {
    /// The stable name (`unlinked`, `deauthorized`), stored and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Unlinked => "unlinked",
            RevokeReason::Deauthorized => "deauthorized",
        }
    }
}

/// How an account came to be linked: what unlinking it can undo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkVia {
    /// Connect OAuth: the practitioner granted the platform access to an account of
    /// theirs; unlinking revokes that grant (`deauthorize`).
    #[default]
    OAuth,
    /// Account Links: the platform created the (Standard) account and the practitioner
    /// completed its onboarding. There is no OAuth grant to revoke: unlinking stops
    /// ConsultPay from using it; the account stays the practitioner's, connected to
    /// the platform until they disconnect it in their Stripe dashboard.
    AccountLinks,
}

impl LinkVia {
    /// The stable name (`oauth`, `account_links`), stored and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkVia::OAuth => "oauth",
            LinkVia::AccountLinks => "account_links",
        }
    }
}

/// The practitioner's Stripe link. History (which account, when) is kept in the audit
/// trail; relinking is allowed from every state.
// Exhaustive on purpose: storage adapters persist each state field by field, and a
// wildcard arm there would drop a new state's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StripeLink {
    /// Never linked: online payment is not possible.
    Unlinked,
    /// Account Links onboarding under way: the account exists, details are missing.
    Pending {
        /// The account the platform created.
        account: ConnectedAccountId,
        /// When onboarding started.
        since: DateTime<Utc>,
    },
    /// Linked: online payment is possible when the account can take charges.
    Linked {
        /// The account, as Stripe last described it.
        account: AccountSnapshot,
        /// When it was linked (kept across refreshes).
        linked_at: DateTime<Utc>,
        /// When it was last read from Stripe.
        verified_at: DateTime<Utc>,
        /// How it was linked: what unlinking revokes.
        via: LinkVia,
    },
    /// The link was cut; the practitioner may link again (the same account or another).
    Revoked {
        /// The account that was linked.
        account: ConnectedAccountId,
        /// When the link was cut.
        at: DateTime<Utc>,
        /// Who cut it.
        reason: RevokeReason,
    },
}

/// The four link states, for the API and storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkStatus {
    /// See [`StripeLink::Unlinked`].
    Unlinked,
    /// See [`StripeLink::Pending`].
    Pending,
    /// See [`StripeLink::Linked`].
    Linked,
    /// See [`StripeLink::Revoked`].
    Revoked,
}

impl LinkStatus {
    /// The stable name (`unlinked`, `pending`, `linked`, `revoked`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Unlinked => "unlinked",
            LinkStatus::Pending => "pending",
            LinkStatus::Linked => "linked",
            LinkStatus::Revoked => "revoked",
        }
    }
}

/// Why a change of the Stripe link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// There is no account to refresh or unlink (never linked, or already revoked).
    #[error("no Stripe account is linked")]
    NotLinked,
    /// Facts about another account than the linked one (a late event about a previous
    /// account): ignored.
    #[error("the event is about {got}, but the linked account is {expected}")]
    OtherAccount {
        /// The account of the link.
        expected: ConnectedAccountId,
        /// The account the facts are about.
        got: ConnectedAccountId,
    },
}

impl StripeLink {
    /// The link's state, without its data.
    pub fn status(&self) -> LinkStatus {
        match self {
            StripeLink::Unlinked => LinkStatus::Unlinked,
            StripeLink::Pending { .. } => LinkStatus::Pending,
            StripeLink::Linked { .. } => LinkStatus::Linked,
            StripeLink::Revoked { .. } => LinkStatus::Revoked,
        }
    }

    /// The account this link is (or was) about.
    pub fn account_id(&self) -> Option<&ConnectedAccountId> {
        match self {
            StripeLink::Unlinked => None,
            StripeLink::Pending { account, .. } | StripeLink::Revoked { account, .. } => {
                Some(account)
            }
            StripeLink::Linked { account, .. } => Some(&account.id),
        }
    }

    /// The account to charge on, if it can take charges now.
    pub fn chargeable_account(&self) -> Result<&ConnectedAccountId, ChargeBlocker> {
        match self {
            StripeLink::Linked { account, .. } if account.charges_enabled => Ok(&account.id),
            StripeLink::Linked { account, .. } => Err(ChargeBlocker::ChargesDisabled {
                reason: account.disabled_reason.clone(),
            }),
            _ => Err(ChargeBlocker::NotLinked),
        }
    }

    /// A successful Connect OAuth: linked to `account`, from any state.
    pub fn linked(account: AccountSnapshot, now: DateTime<Utc>) -> StripeLink {
        StripeLink::Linked {
            account,
            linked_at: now,
            verified_at: now,
            via: LinkVia::OAuth,
        }
    }

    /// A completed Account Links onboarding: linked to the account the platform made.
    pub fn onboarded(account: AccountSnapshot, now: DateTime<Utc>) -> StripeLink {
        StripeLink::Linked {
            account,
            linked_at: now,
            verified_at: now,
            via: LinkVia::AccountLinks,
        }
    }

    /// Whether unlinking has an OAuth grant to revoke (a pending onboarding has none).
    pub fn has_oauth_grant(&self) -> bool {
        matches!(
            self,
            StripeLink::Linked {
                via: LinkVia::OAuth,
                ..
            }
        )
    }

    /// Account Links onboarding started for `account`.
    pub fn onboarding(account: ConnectedAccountId, now: DateTime<Utc>) -> StripeLink {
        StripeLink::Pending {
            account,
            since: now,
        }
    }

    /// Fresh facts about the account (verify, `account.updated`). A pending account
    /// whose details are submitted becomes linked.
    pub fn refreshed(
        &self,
        snapshot: AccountSnapshot,
        now: DateTime<Utc>,
    ) -> Result<StripeLink, LinkError> {
        let current = self.account_id().ok_or(LinkError::NotLinked)?;
        if *current != snapshot.id {
            return Err(LinkError::OtherAccount {
                expected: current.clone(),
                got: snapshot.id,
            });
        }
        match self {
            StripeLink::Linked { linked_at, via, .. } => Ok(StripeLink::Linked {
                account: snapshot,
                linked_at: *linked_at,
                verified_at: now,
                via: *via,
            }),
            StripeLink::Pending { .. } if snapshot.details_submitted => {
                Ok(StripeLink::onboarded(snapshot, now))
            }
            StripeLink::Pending { .. } => Ok(self.clone()),
            StripeLink::Unlinked | StripeLink::Revoked { .. } => Err(LinkError::NotLinked),
        }
    }

    /// The link is cut (unlink by the practitioner, or deauthorisation at Stripe).
    pub fn revoked(
        &self,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<StripeLink, LinkError> {
        match self {
            StripeLink::Linked { .. } | StripeLink::Pending { .. } => Ok(StripeLink::Revoked {
                account: self.account_id().cloned().ok_or(LinkError::NotLinked)?,
                at: now,
                reason,
            }),
            StripeLink::Unlinked | StripeLink::Revoked { .. } => Err(LinkError::NotLinked),
        }
    }
}

/// Why a practitioner cannot take online payments now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChargeBlocker {
    /// No account is linked (or its onboarding is not finished, or it was revoked).
    #[error("no Stripe account is linked")]
    NotLinked,
    /// The account is linked but Stripe does not let it take charges yet.
    #[error("the Stripe account cannot take charges yet{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    ChargesDisabled {
        /// Stripe's `requirements.disabled_reason`, if it gave one.
        reason: Option<String>,
    },
}

/// Why preferences were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreferencesError {
    /// The default amount is above the maximum.
    #[error("the default amount {default} is above the maximum {maximum}")]
    DefaultAboveMaximum {
        /// The default amount asked for.
        default: Money,
        /// The maximum asked for.
        maximum: Money,
    },
    /// The cancellation policy's fixed fee is above the maximum.
    #[error("the missed-consultation fee {fee} is above the maximum {maximum}")]
    FeeAboveMaximum {
        /// The missed-consultation fee.
        fee: Money,
        /// The practitioner's maximum.
        maximum: Money,
    },
    /// An amount Stripe cannot charge, or amounts in different currencies.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The cancellation policy itself is invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// A practitioner's billing preferences (C2): the default amount per consultation,
/// the maximum that may be billed, and the fee schedule used for previews.
///
/// Invariants: one currency throughout; minimum charge ≤ default ≤ maximum ≤ Stripe's
/// maximum charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences {
    default_amount: Money,
    max_amount: Money,
    fee_schedule: FeeSchedule,
    statement: StatementText,
    cancellation: CancellationPolicy,
}

/// What the patient's bank statement, Stripe's receipts and the Stripe dashboard say
/// about a payment: only what the practitioner chose (C15). By default a neutral
/// "Téléconsultation" / "Teleconsultation" with the date, and the account's own
/// statement descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatementText {
    /// Replaces "Téléconsultation" / "Teleconsultation".
    pub label: Option<PaymentLabel>,
    /// Appended to the account's statement descriptor on the bank statement.
    pub descriptor_suffix: Option<DescriptorSuffix>,
}

/// The practitioner's name for a payment on receipts (1–60 printable characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentLabel(String);

/// Stripe's `statement_descriptor_suffix`: 1–22 characters of Latin letters, digits,
/// spaces and `. , - & /`, with at least one letter (Stripe cuts the whole descriptor
/// at 22 and refuses `< > \ ' " *`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorSuffix(String);

/// Why a label or a descriptor suffix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// See [`PaymentLabel`].
    #[error("the label must be 1 to 60 printable characters")]
    Label,
    /// See [`DescriptorSuffix`].
    #[error(
        "the statement descriptor suffix must be 1 to 22 Latin letters, digits, spaces or \
         . , - & /, with at least one letter"
    )]
    Suffix,
}

impl PaymentLabel {
    /// A label from what the practitioner typed (trimmed).
    ///
    /// # Errors
    ///
    /// [`StatementError::Label`] if it is empty, longer than 60 characters, or has
    /// control characters.
    pub fn parse(text: &str) -> Result<Self, StatementError> {
        let t = text.trim();
        let count = t.chars().count();
        if count == 0 || count > 60 || t.chars().any(char::is_control) {
            return Err(StatementError::Label);
        }
        Ok(PaymentLabel(t.to_owned()))
    }
    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DescriptorSuffix {
    /// A suffix from what the practitioner typed (trimmed).
    ///
    /// # Errors
    ///
    /// [`StatementError::Suffix`] if it is empty, longer than 22 characters, has a
    /// character outside Latin letters, digits, spaces and `. , - & /`, or has no letter.
    pub fn parse(text: &str) -> Result<Self, StatementError> {
        let t = text.trim();
        let allowed = |c: char| c.is_ascii_alphanumeric() || " .,-&/".contains(c);
        if t.is_empty()
            || t.len() > 22
            || !t.chars().all(allowed)
            || !t.chars().any(|c| c.is_ascii_alphabetic())
        {
            return Err(StatementError::Suffix);
        }
        Ok(DescriptorSuffix(t.to_owned()))
    }
    /// The suffix, as sent to Stripe.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Preferences {
    /// Preferences with the default statement text and cancellation policy.
    ///
    /// # Errors
    ///
    /// [`PreferencesError::Money`] if the amounts and the schedule are not in one
    /// currency or an amount is not chargeable (below the minimum charge, above
    /// Stripe's maximum); [`PreferencesError::DefaultAboveMaximum`].
    pub fn new(
        default_amount: Money,
        max_amount: Money,
        fee_schedule: FeeSchedule,
    ) -> Result<Self, PreferencesError> {
        let currency = default_amount.currency();
        for other in [max_amount.currency(), fee_schedule.currency()] {
            if other != currency {
                return Err(MoneyError::CurrencyMismatch {
                    left: currency,
                    right: other,
                }
                .into());
            }
        }
        default_amount.ensure_chargeable()?;
        max_amount.ensure_chargeable()?;
        if default_amount.amount() > max_amount.amount() {
            return Err(PreferencesError::DefaultAboveMaximum {
                default: default_amount,
                maximum: max_amount,
            });
        }
        Ok(Preferences {
            default_amount,
            max_amount,
            fee_schedule,
            statement: StatementText::default(),
            cancellation: CancellationPolicy::default(),
        })
    }

    /// The same preferences with this cancellation policy, whose fixed fee must be in
    /// the preferences' currency and at most their maximum.
    pub fn with_cancellation(
        mut self,
        policy: CancellationPolicy,
    ) -> Result<Self, PreferencesError> {
        if let MissedFee::Fixed(fee) = policy.fee() {
            if fee.currency() != self.currency() {
                return Err(MoneyError::CurrencyMismatch {
                    left: self.currency(),
                    right: fee.currency(),
                }
                .into());
            }
            if fee.amount() > self.max_amount.amount() {
                return Err(PreferencesError::FeeAboveMaximum {
                    fee,
                    maximum: self.max_amount,
                });
            }
        }
        self.cancellation = policy;
        Ok(self)
    }

    /// The same preferences with what statements and receipts say.
    pub fn with_statement(mut self, statement: StatementText) -> Self {
        self.statement = statement;
        self
    }

    /// The seeds' starting point: 25.00 per consultation, which is also the maximum,
    /// with the default fee schedule.
    pub fn starting(currency: Currency) -> Self {
        let amount = Money::from_minor(25 * 10_i64.pow(currency.minor_units()), currency);
        Preferences {
            default_amount: amount,
            max_amount: amount,
            fee_schedule: FeeSchedule::default_for(currency),
            statement: StatementText::default(),
            cancellation: CancellationPolicy::default(),
        }
    }

    /// The currency the practitioner bills in.
    pub fn currency(&self) -> Currency {
        self.default_amount.currency()
    }
    /// The cap of a consultation scheduled without an amount or a service.
    pub fn default_amount(&self) -> Money {
        self.default_amount
    }
    /// The most a consultation may be billed: no cap, service price or fee is above it.
    pub fn max_amount(&self) -> Money {
        self.max_amount
    }
    /// The schedule fee previews and estimates use.
    pub fn fee_schedule(&self) -> &FeeSchedule {
        &self.fee_schedule
    }
    /// What bank statements, receipts and the Stripe dashboard say about a payment.
    pub fn statement(&self) -> &StatementText {
        &self.statement
    }
    /// Free cancellation window and missed-consultation fee.
    pub fn cancellation(&self) -> &CancellationPolicy {
        &self.cancellation
    }

    /// The cap of a consultation (C3): the explicit amount if given, else the
    /// service's price, else the default — never above the maximum, never below the
    /// minimum charge, always in the practitioner's currency.
    pub fn pick_cap(
        &self,
        explicit: Option<Money>,
        service: Option<&Service>,
    ) -> Result<Money, CapError> {
        let cap = match (explicit, service) {
            (Some(amount), _) => amount,
            (None, Some(service)) if !service.active() => return Err(CapError::ServiceInactive),
            (None, Some(service)) => service.price(),
            (None, None) => self.default_amount,
        };
        if cap.currency() != self.currency() {
            return Err(CapError::CurrencyMismatch {
                expected: self.currency(),
                got: cap.currency(),
            });
        }
        cap.ensure_chargeable().map_err(CapError::Money)?;
        if cap.amount() > self.max_amount.amount() {
            return Err(CapError::AboveMaximum {
                requested: cap,
                maximum: self.max_amount,
            });
        }
        Ok(cap)
    }
}

/// Why a consultation's cap (or a service's price) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapError {
    /// Above the practitioner's maximum.
    #[error("{requested} is above the maximum of {maximum}")]
    AboveMaximum {
        /// The amount asked for.
        requested: Money,
        /// The practitioner's maximum ([`Preferences::max_amount`]).
        maximum: Money,
    },
    /// Not in the practitioner's currency.
    #[error("the amount must be in {expected}, not {got}")]
    CurrencyMismatch {
        /// The practitioner's currency.
        expected: Currency,
        /// The amount's currency.
        got: Currency,
    },
    /// The service was withdrawn from the catalogue.
    #[error("this service is no longer offered")]
    ServiceInactive,
    /// An amount Stripe cannot charge (below the minimum, above the maximum charge).
    #[error(transparent)]
    Money(MoneyError),
}

/// An IANA time zone name, e.g. `Europe/Paris`: dates are shown in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(Tz);

/// Text that is not an IANA time zone name; carries it, cut to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IANA time zone such as Europe/Paris")]
pub struct UnknownTimeZone(pub String);

impl TimeZone {
    /// The `chrono-tz` zone, to convert times with.
    pub fn tz(&self) -> Tz {
        self.0
    }
    /// The IANA name (`Europe/Paris`).
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(chrono_tz::Europe::Paris)
    }
}

impl FromStr for TimeZone {
    type Err = UnknownTimeZone;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<Tz>()
            .map(TimeZone)
            .map_err(|_| UnknownTimeZone(s.chars().take(64).collect()))
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A practitioner: who is paid, in which time zone, through which Stripe account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Practitioner {
    /// The practitioner's id, also their staff user's id.
    pub id: PractitionerId,
    /// The name patients and receipts see.
    pub name: DisplayName,
    /// Where dates shown to the practitioner and their patients are in.
    pub time_zone: TimeZone,
    /// Their Stripe link.
    pub link: StripeLink,
    /// Amounts, fee schedule, statement text and cancellation policy.
    pub preferences: Preferences,
    /// Who the practitioner is on notes d'honoraires.
    pub profile: Profile,
    /// Incremented by every change; repositories write conditionally on it.
    pub version: i64,
    /// When the practitioner was added.
    pub created_at: DateTime<Utc>,
    /// When the practitioner last changed.
    pub updated_at: DateTime<Utc>,
}

impl Practitioner {
    /// A new practitioner: unlinked, with the starting preferences in `currency`
    /// ([`Preferences::starting`]) and an empty profile.
    pub fn new(
        id: PractitionerId,
        name: DisplayName,
        time_zone: TimeZone,
        currency: Currency,
        now: DateTime<Utc>,
    ) -> Self {
        Practitioner {
            id,
            name,
            time_zone,
            link: StripeLink::Unlinked,
            preferences: Preferences::starting(currency),
            profile: Profile::default(),
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// The same practitioner with `link`, version incremented.
    pub fn with_link(&self, link: StripeLink, now: DateTime<Utc>) -> Practitioner {
        Practitioner {
            link,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// The same practitioner with `profile`, version incremented.
    pub fn with_profile(&self, profile: Profile, now: DateTime<Utc>) -> Practitioner {
        Practitioner {
            profile,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// The same practitioner with `preferences`, version incremented.
    pub fn with_preferences(&self, preferences: Preferences, now: DateTime<Utc>) -> Practitioner {
        Practitioner {
            preferences,
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }
}

/// A priced service of the practitioner's catalogue ("Account Services").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    id: ServiceId,
    practitioner: PractitionerId,
    name: DisplayName,
    price: Money,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Service {
    /// A new active service. Its price must be chargeable and within the
    /// practitioner's maximum.
    pub fn new(
        id: ServiceId,
        practitioner: PractitionerId,
        name: DisplayName,
        price: Money,
        preferences: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<Self, CapError> {
        preferences.pick_cap(Some(price), None)?;
        Ok(Service {
            id,
            practitioner,
            name,
            price,
            active: true,
            created_at: now,
            updated_at: now,
        })
    }

    /// Rebuilds a stored service.
    pub fn restore(
        id: ServiceId,
        practitioner: PractitionerId,
        name: DisplayName,
        price: Money,
        active: bool,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Self {
        Service {
            id,
            practitioner,
            name,
            price,
            active,
            created_at,
            updated_at,
        }
    }

    /// Applies a change; a new price is checked like a new service's.
    pub fn updated(
        &self,
        name: Option<DisplayName>,
        price: Option<Money>,
        active: Option<bool>,
        preferences: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<Service, CapError> {
        if let Some(p) = price {
            preferences.pick_cap(Some(p), None)?;
        }
        Ok(Service {
            name: name.unwrap_or_else(|| self.name.clone()),
            price: price.unwrap_or(self.price),
            active: active.unwrap_or(self.active),
            updated_at: now,
            ..self.clone()
        })
    }

    /// The service's id.
    pub fn id(&self) -> ServiceId {
        self.id
    }
    /// Whose catalogue it is in.
    pub fn practitioner(&self) -> PractitionerId {
        self.practitioner
    }
    /// Its name, as patients and receipts see it.
    pub fn name(&self) -> &DisplayName {
        &self.name
    }
    /// What a consultation for this service is capped at.
    pub fn price(&self) -> Money {
        self.price
    }
    /// Whether it is still offered (a withdrawn service is kept for past consultations).
    pub fn active(&self) -> bool {
        self.active
    }
    /// When it was created.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When it last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use uuid::Uuid;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::Eur)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
    }

    fn prefs(default: i64, max: i64) -> Preferences {
        Preferences::new(
            eur(default),
            eur(max),
            FeeSchedule::default_for(Currency::Eur),
        )
        .unwrap()
    }

    fn service(price: i64, active: bool) -> Service {
        Service::restore(
            ServiceId::from_uuid(Uuid::from_u128(1)),
            PractitionerId::from_uuid(Uuid::from_u128(2)),
            DisplayName::parse("Téléconsultation").unwrap(),
            eur(price),
            active,
            now(),
            now(),
        )
    }

    fn snapshot(id: &str, charges: bool) -> AccountSnapshot {
        AccountSnapshot {
            id: ConnectedAccountId::parse(id).unwrap(),
            charges_enabled: charges,
            payouts_enabled: charges,
            details_submitted: charges,
            disabled_reason: (!charges).then(|| "requirements.past_due".to_owned()),
            currently_due: vec![],
            payout_schedule: None,
            default_currency: Some(Currency::Eur),
            country: Some("FR".into()),
        }
    }

    #[test]
    fn preferences_keep_default_between_minimum_and_maximum() {
        assert!(
            Preferences::new(
                eur(2500),
                eur(2500),
                FeeSchedule::default_for(Currency::Eur)
            )
            .is_ok()
        );
        assert!(matches!(
            Preferences::new(
                eur(3000),
                eur(2500),
                FeeSchedule::default_for(Currency::Eur)
            ),
            Err(PreferencesError::DefaultAboveMaximum { .. })
        ));
        assert!(matches!(
            Preferences::new(eur(49), eur(2500), FeeSchedule::default_for(Currency::Eur)),
            Err(PreferencesError::Money(
                MoneyError::BelowMinimumCharge { .. }
            ))
        ));
        assert!(matches!(
            Preferences::new(
                eur(2500),
                Money::from_minor(5000, Currency::Usd),
                FeeSchedule::default_for(Currency::Eur)
            ),
            Err(PreferencesError::Money(MoneyError::CurrencyMismatch { .. }))
        ));
    }

    #[test]
    fn the_cap_is_explicit_else_service_else_default_never_above_the_maximum() {
        let p = prefs(2500, 4000);
        assert_eq!(p.pick_cap(None, None), Ok(eur(2500)));
        assert_eq!(p.pick_cap(None, Some(&service(3500, true))), Ok(eur(3500)));
        assert_eq!(
            p.pick_cap(Some(eur(1800)), Some(&service(3500, true))),
            Ok(eur(1800))
        );
        assert_eq!(
            p.pick_cap(Some(eur(4001)), None),
            Err(CapError::AboveMaximum {
                requested: eur(4001),
                maximum: eur(4000)
            })
        );
        assert!(matches!(
            p.pick_cap(None, Some(&service(4500, true))),
            Err(CapError::AboveMaximum { .. })
        ));
        assert_eq!(
            p.pick_cap(None, Some(&service(3000, false))),
            Err(CapError::ServiceInactive)
        );
        assert!(matches!(
            p.pick_cap(Some(eur(10)), None),
            Err(CapError::Money(MoneyError::BelowMinimumCharge { .. }))
        ));
        assert!(matches!(
            p.pick_cap(Some(Money::from_minor(1000, Currency::Usd)), None),
            Err(CapError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn a_link_goes_linked_revoked_and_back() {
        let linked = StripeLink::linked(snapshot("acct_1", true), now());
        assert_eq!(linked.status(), LinkStatus::Linked);
        assert!(linked.chargeable_account().is_ok());
        let revoked = linked.revoked(RevokeReason::Unlinked, now()).unwrap();
        assert_eq!(revoked.status(), LinkStatus::Revoked);
        assert_eq!(revoked.account_id().map(|a| a.as_str()), Some("acct_1"));
        assert_eq!(revoked.chargeable_account(), Err(ChargeBlocker::NotLinked));
        assert_eq!(
            revoked.revoked(RevokeReason::Unlinked, now()),
            Err(LinkError::NotLinked)
        );
        let relinked = StripeLink::linked(snapshot("acct_2", true), now());
        assert_eq!(relinked.account_id().map(|a| a.as_str()), Some("acct_2"));
    }

    #[test]
    fn an_account_that_cannot_take_charges_says_why() {
        let link = StripeLink::linked(snapshot("acct_1", false), now());
        assert_eq!(
            link.chargeable_account(),
            Err(ChargeBlocker::ChargesDisabled {
                reason: Some("requirements.past_due".into())
            })
        );
    }

    #[test]
    fn a_pending_account_becomes_linked_once_its_details_are_submitted() {
        let pending = StripeLink::onboarding(ConnectedAccountId::parse("acct_1").unwrap(), now());
        let still = pending.refreshed(snapshot("acct_1", false), now()).unwrap();
        assert_eq!(still.status(), LinkStatus::Pending);
        let done = pending.refreshed(snapshot("acct_1", true), now()).unwrap();
        assert_eq!(done.status(), LinkStatus::Linked);
    }

    #[test]
    fn facts_about_another_account_are_refused() {
        let linked = StripeLink::linked(snapshot("acct_1", true), now());
        assert!(matches!(
            linked.refreshed(snapshot("acct_2", true), now()),
            Err(LinkError::OtherAccount { .. })
        ));
        assert_eq!(
            StripeLink::Unlinked.refreshed(snapshot("acct_2", true), now()),
            Err(LinkError::NotLinked)
        );
    }

    #[test]
    fn services_are_priced_within_the_maximum() {
        let p = prefs(2500, 4000);
        let id = ServiceId::from_uuid(Uuid::from_u128(1));
        let pid = PractitionerId::from_uuid(Uuid::from_u128(2));
        let name = DisplayName::parse("Bilan").unwrap();
        assert!(Service::new(id, pid, name.clone(), eur(4000), &p, now()).is_ok());
        assert!(Service::new(id, pid, name.clone(), eur(4001), &p, now()).is_err());
        let s = Service::new(id, pid, name, eur(3000), &p, now()).unwrap();
        let off = s.updated(None, None, Some(false), &p, now()).unwrap();
        assert!(!off.active());
        assert_eq!(off.price(), eur(3000));
        assert!(s.updated(None, Some(eur(5000)), None, &p, now()).is_err());
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            "Europe/Paris".parse::<TimeZone>().unwrap().name(),
            "Europe/Paris"
        );
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
    }
}
