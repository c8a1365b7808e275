//! Use cases of the practitioner's side: linking Stripe (C1, C12) and setting caps,
//! fee schedule and services (C2).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::access::{AccessDenied, Action, Actor, Role, authorize};
use crate::audit::{AuditAction, AuditActor, AuditEntry, AuditLog};
use crate::config::BillingConfig;
use crate::consultation::policy::{CancellationPolicy, MissedFee};
use crate::contact::DisplayName;
use crate::error::BillingError;
use crate::fees::{FeePreset, FeeSchedule};
use crate::gateway::{ConnectOnboarding, GatewayError};
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::money::{AmountInput, Currency};
use crate::payment::model::IdempotencyKey;
use crate::payment::ports::PaymentRepository;
use crate::practitioner::model::{
    AccountSnapshot, DescriptorSuffix, LinkError, LinkVia, PaymentLabel, Practitioner, Preferences,
    PreferencesError, RevokeReason, Service, StatementText, StripeLink,
};
use crate::practitioner::ports::{
    OAuthStateRecord, OAuthStateRepository, PractitionerRepository, ServiceRepository,
};
use crate::practitioner::profile::{Profile, ProfileInput};
use crate::repository::RepositoryError;
use crate::secrets::OAuthState;
use crate::system::{Clock, IdGenerator, SecretGenerator, now_micros};

/// How many times a use case re-reads and retries after losing a concurrent write.
pub(crate) const RETRIES: usize = 3;

/// What Stripe's OAuth callback brought back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OAuthCallback {
    /// The authorisation code, on success.
    pub code: Option<String>,
    /// The `state` ConsultPay sent, to match the callback with the practitioner who
    /// started linking.
    pub state: Option<String>,
    /// `access_denied` when the practitioner refused.
    pub error: Option<String>,
}

/// Linking, verifying and unlinking the practitioner's own Stripe account.
#[derive(Clone)]
pub struct ConnectService {
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) oauth_states: Arc<dyn OAuthStateRepository>,
    pub(crate) payments: Arc<dyn PaymentRepository>,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) connect: Arc<dyn ConnectOnboarding>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) secrets: Arc<dyn SecretGenerator>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for ConnectService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectService").finish_non_exhaustive()
    }
}

impl ConnectService {
    /// Linking and unlinking practitioners' Stripe accounts (C1), from the ports it
    /// uses: the practitioners and their OAuth `state`s, the payments (what is still
    /// open when an account goes), the audit trail, the processor's Connect side, the
    /// clock and the source of `state` secrets.
    // One argument per port the use case calls: grouping them would only hide which.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        practitioners: Arc<dyn PractitionerRepository>,
        oauth_states: Arc<dyn OAuthStateRepository>,
        payments: Arc<dyn PaymentRepository>,
        audit: Arc<dyn AuditLog>,
        connect: Arc<dyn ConnectOnboarding>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn SecretGenerator>,
        config: BillingConfig,
    ) -> Self {
        ConnectService {
            practitioners,
            oauth_states,
            payments,
            audit,
            connect,
            clock,
            secrets,
            config,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        now_micros(self.clock.as_ref())
    }

    async fn load(
        &self,
        actor: &Actor,
        action: Action,
        id: PractitionerId,
    ) -> Result<Practitioner, BillingError> {
        authorize(actor, action, id)?;
        match self.practitioners.get(id).await {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("practitioner")),
            other => Ok(other?),
        }
    }

    /// Re-reads the practitioner and applies `change` until the conditional write wins.
    async fn update_link<F>(
        &self,
        id: PractitionerId,
        audit: AuditEntry,
        change: F,
    ) -> Result<Practitioner, BillingError>
    where
        F: Fn(&Practitioner) -> Result<Option<StripeLink>, BillingError> + Send + Sync,
    {
        for _ in 0..RETRIES {
            let current = self.practitioners.get(id).await?;
            let Some(link) = change(&current)? else {
                return Ok(current);
            };
            let next = current.with_link(link, self.now());
            match self
                .practitioners
                .update(&next, current.version, &audit)
                .await
            {
                Ok(()) => return Ok(next),
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// Starts Connect OAuth: a single-use, expiring `state` bound to the practitioner,
    /// and the consent URL to send them to.
    pub async fn start_oauth(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<String, BillingError> {
        self.load(actor, Action::LinkStripe, id).await?;
        let now = self.now();
        let state = OAuthState::from_random(&self.secrets.secret());
        let url = self
            .connect
            .authorize_url(&state, &self.config.oauth_redirect_uri())?;
        self.oauth_states
            .insert(&OAuthStateRecord {
                hash: state.hash(),
                practitioner: id,
                created_at: now,
                expires_at: now + self.config.oauth_state_ttl,
            })
            .await?;
        self.audit
            .append(
                &AuditEntry::new(
                    now,
                    id,
                    AuditActor::of(actor),
                    AuditAction::StripeLinkStarted,
                )
                .detail("oauth"),
            )
            .await?;
        Ok(url)
    }

    /// Finishes Connect OAuth for the practitioner signed in on the browser that comes
    /// back from Stripe. Nobody signed in is refused before the state is looked at (so
    /// the practitioner can sign in and retry). Otherwise the state is consumed first,
    /// whatever happens next, so it can never be replayed, and a state issued to
    /// anyone else than the signed-in practitioner is refused: an authorize URL sent to
    /// somebody else cannot link their Stripe account to its issuer.
    pub async fn complete_oauth(
        &self,
        callback: &OAuthCallback,
        session: &Actor,
    ) -> Result<PractitionerId, BillingError> {
        let now = self.now();
        let Actor::Staff(user) = session else {
            return Err(BillingError::Access(AccessDenied::Unauthenticated));
        };
        let state = callback
            .state
            .as_deref()
            .and_then(|s| OAuthState::parse(s).ok())
            .ok_or(BillingError::OAuthStateInvalid)?;
        let record = match self.oauth_states.consume(&state.hash()).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::OAuthStateInvalid),
            other => other?,
        };
        if record.expires_at <= now {
            return Err(BillingError::OAuthStateInvalid);
        }
        if user.role != Role::Practitioner(record.practitioner) {
            return Err(BillingError::OAuthStateInvalid);
        }
        if callback.error.is_some() {
            return Err(BillingError::OAuthDenied);
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 255)
            .ok_or_else(|| BillingError::validation("code", "missing authorisation code"))?;
        let account = self.connect.exchange_code(code).await?;
        let snapshot = self.connect.retrieve_account(&account).await?;
        self.ensure_not_linked_elsewhere(&account, record.practitioner)
            .await?;
        let audit = AuditEntry::new(
            now,
            record.practitioner,
            AuditActor::of(session),
            AuditAction::StripeLinked,
        )
        .detail(account.as_str());
        self.update_link(record.practitioner, audit, |_| {
            Ok(Some(StripeLink::linked(snapshot.clone(), now)))
        })
        .await?;
        Ok(record.practitioner)
    }

    async fn ensure_not_linked_elsewhere(
        &self,
        account: &ConnectedAccountId,
        practitioner: PractitionerId,
    ) -> Result<(), BillingError> {
        match self.practitioners.find_by_account(account).await? {
            Some(other)
                if other.id != practitioner
                    && matches!(
                        other.link,
                        StripeLink::Linked { .. } | StripeLink::Pending { .. }
                    ) =>
            {
                Err(BillingError::validation(
                    "account",
                    "this Stripe account is already linked to another practitioner",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Starts Account Links onboarding (Stripe's path for new platforms): creates the
    /// connected account if needed and returns the onboarding URL.
    pub async fn start_onboarding(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<String, BillingError> {
        let practitioner = self.load(actor, Action::LinkStripe, id).await?;
        let account = match &practitioner.link {
            // The account this onboarding made: Stripe may still ask for details
            // (charges disabled until then). A new link continues it; nothing else
            // changes.
            StripeLink::Linked {
                account,
                via: LinkVia::AccountLinks,
                ..
            } => {
                return Ok(self
                    .connect
                    .account_link(
                        &account.id,
                        &self.config.onboarding_return_url("refresh"),
                        &self.config.onboarding_return_url("return"),
                    )
                    .await?);
            }
            // A new account would replace the working one (and strand its holds):
            // unlinking comes first, and says what still holds money.
            StripeLink::Linked { .. } => return Err(BillingError::StripeAlreadyLinked),
            StripeLink::Pending { account, .. } => account.clone(),
            _ => {
                let key = IdempotencyKey::for_practitioner(id, "account", practitioner.version);
                self.connect.create_account(id, &key).await?
            }
        };
        let now = self.now();
        let audit = AuditEntry::new(
            now,
            id,
            AuditActor::of(actor),
            AuditAction::StripeLinkStarted,
        )
        .detail(format!("account_link {account}"));
        let pending_account = account.clone();
        self.update_link(id, audit, move |current| {
            Ok(match &current.link {
                StripeLink::Linked { .. } => return Err(BillingError::StripeAlreadyLinked),
                StripeLink::Pending { account, .. } if *account == pending_account => None,
                _ => Some(StripeLink::onboarding(pending_account.clone(), now)),
            })
        })
        .await?;
        Ok(self
            .connect
            .account_link(
                &account,
                &self.config.onboarding_return_url("refresh"),
                &self.config.onboarding_return_url("return"),
            )
            .await?)
    }

    /// The link as stored (practitioner and their secretaries).
    pub async fn status(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<StripeLink, BillingError> {
        Ok(self.load(actor, Action::ViewStripeLink, id).await?.link)
    }

    /// Re-reads the account from Stripe ("verify pairing"). An account Stripe no longer
    /// lets us reach is marked revoked.
    pub async fn verify(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<StripeLink, BillingError> {
        let practitioner = self.load(actor, Action::VerifyStripe, id).await?;
        let account =
            practitioner
                .link
                .account_id()
                .cloned()
                .ok_or(BillingError::StripeNotLinked(
                    crate::practitioner::model::ChargeBlocker::NotLinked,
                ))?;
        let now = self.now();
        match self.connect.retrieve_account(&account).await {
            Ok(snapshot) => {
                let audit =
                    AuditEntry::new(now, id, AuditActor::of(actor), AuditAction::StripeVerified)
                        .detail(format!(
                            "{account} charges_enabled={}",
                            snapshot.charges_enabled
                        ));
                let next = self
                    .update_link(id, audit, |p| {
                        match p.link.refreshed(snapshot.clone(), now) {
                            Ok(link) => Ok(Some(link)),
                            Err(LinkError::NotLinked) => Err(BillingError::StripeNotLinked(
                                crate::practitioner::model::ChargeBlocker::NotLinked,
                            )),
                            Err(e) => Err(BillingError::validation("account", e)),
                        }
                    })
                    .await?;
                Ok(next.link)
            }
            Err(GatewayError::AccountUnavailable { .. }) => {
                let audit = AuditEntry::new(
                    now,
                    id,
                    AuditActor::of(actor),
                    AuditAction::StripeDeauthorized,
                )
                .detail(account.as_str());
                let next = self
                    .update_link(id, audit, |p| {
                        Ok(p.link.revoked(RevokeReason::Deauthorized, now).ok())
                    })
                    .await?;
                Ok(next.link)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Unlinks (OAuth deauthorize). The Stripe account itself is untouched; the history
    /// is kept. Refused while payments still hold money, unless `force`.
    pub async fn unlink(
        &self,
        actor: &Actor,
        id: PractitionerId,
        force: bool,
    ) -> Result<StripeLink, BillingError> {
        let practitioner = self.load(actor, Action::UnlinkStripe, id).await?;
        let account = match &practitioner.link {
            StripeLink::Linked { .. } | StripeLink::Pending { .. } => practitioner
                .link
                .account_id()
                .cloned()
                .ok_or(BillingError::NotFound("stripe link"))?,
            _ => {
                return Err(BillingError::StripeNotLinked(
                    crate::practitioner::model::ChargeBlocker::NotLinked,
                ));
            }
        };
        let open = self.payments.open_holds(id).await?;
        if open > 0 && !force {
            return Err(BillingError::OutstandingHolds { count: open });
        }
        // Only an OAuth link has a grant to revoke; an account made for Account Links
        // stays the practitioner's and connected to the platform at Stripe (they can
        // disconnect it there): ConsultPay just stops using it.
        if practitioner.link.has_oauth_grant() {
            match self.connect.deauthorize(&account).await {
                Ok(()) | Err(GatewayError::AccountUnavailable { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let now = self.now();
        let audit = AuditEntry::new(now, id, AuditActor::of(actor), AuditAction::StripeUnlinked)
            .detail(account.as_str());
        let next = self
            .update_link(id, audit, |p| {
                Ok(p.link.revoked(RevokeReason::Unlinked, now).ok())
            })
            .await?;
        Ok(next.link)
    }

    /// `account.updated`: refreshes the link of whoever it belongs to (so the
    /// dashboard is current without pressing verify). Returns whether anything
    /// changed, `None` when no practitioner has that account.
    pub(crate) async fn account_updated(
        &self,
        snapshot: &AccountSnapshot,
        actor: AuditActor,
    ) -> Result<Option<bool>, BillingError> {
        let Some(practitioner) = self.practitioners.find_by_account(&snapshot.id).await? else {
            return Ok(None);
        };
        let now = self.now();
        let audit = AuditEntry::new(
            now,
            practitioner.id,
            actor,
            AuditAction::StripeAccountUpdated,
        )
        .detail(format!(
            "{} charges_enabled={}",
            snapshot.id, snapshot.charges_enabled
        ));
        let before = practitioner.version;
        let next = self
            .update_link(practitioner.id, audit, |p| {
                Ok(p.link.refreshed(snapshot.clone(), now).ok())
            })
            .await?;
        Ok(Some(next.version != before))
    }

    /// `account.application.deauthorized`: the practitioner disconnected us at Stripe.
    pub(crate) async fn account_deauthorized(
        &self,
        account: &ConnectedAccountId,
        actor: AuditActor,
    ) -> Result<Option<bool>, BillingError> {
        let Some(practitioner) = self.practitioners.find_by_account(account).await? else {
            return Ok(None);
        };
        let now = self.now();
        let audit = AuditEntry::new(now, practitioner.id, actor, AuditAction::StripeDeauthorized)
            .detail(account.as_str());
        let before = practitioner.version;
        let next = self
            .update_link(practitioner.id, audit, |p| {
                if p.link.account_id() != Some(account) {
                    return Ok(None);
                }
                Ok(p.link.revoked(RevokeReason::Deauthorized, now).ok())
            })
            .await?;
        Ok(Some(next.version != before))
    }
}

/// A fee schedule as chosen in the preferences form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeeScheduleInput {
    /// One of Stripe's published price lists, in the preferences' currency.
    Preset(FeePreset),
    /// A schedule of the practitioner's own (see [`FeeSchedule::custom`]).
    Custom {
        /// The percentage, in percent (1.4 means 1.4 %).
        percent: Decimal,
        /// The fixed part, as typed.
        fixed: AmountInput,
    },
}

impl FeeScheduleInput {
    /// The schedule in `currency`.
    ///
    /// # Errors
    ///
    /// A custom schedule that is invalid, in another currency, or that would take all of
    /// a small payment ([`FeeSchedule::ensure_positive_net`]).
    pub fn resolve(&self, currency: Currency) -> Result<FeeSchedule, BillingError> {
        match self {
            FeeScheduleInput::Preset(p) => Ok(p.schedule(currency)),
            FeeScheduleInput::Custom { percent, fixed } => {
                let schedule = FeeSchedule::custom(*percent, fixed.in_currency(currency)?)?;
                schedule.ensure_positive_net()?;
                Ok(schedule)
            }
        }
    }
}

/// New preferences as typed by the practitioner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreferencesInput {
    /// The currency the practitioner bills in; every amount is read in it.
    pub currency: Currency,
    /// The default cap of a consultation.
    pub default_amount: AmountInput,
    /// The most a consultation may be billed.
    pub max_amount: AmountInput,
    /// The schedule used for fee previews and estimates.
    pub fee_schedule: FeeScheduleInput,
    /// What receipts call the payment; `None` keeps the current one, `""` restores
    /// the default ("Téléconsultation").
    pub payment_label: Option<String>,
    /// The bank statement's descriptor suffix; `None` keeps it, `""` removes it.
    pub statement_descriptor_suffix: Option<String>,
    /// The cancellation and no-show policy; `None` keeps the current one.
    pub cancellation: Option<CancellationInput>,
}

/// A cancellation policy as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancellationInput {
    /// Free cancellation until this many hours before the start.
    pub free_hours: u32,
    /// The fee of a missed consultation (no-show or late cancellation).
    pub fee: MissedFeeInput,
}

/// A missed-consultation fee as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissedFeeInput {
    /// No fee: a missed consultation's hold is released.
    None,
    /// A fixed fee, as typed, captured from the hold.
    Fixed(AmountInput),
    /// The whole hold is captured.
    FullHold,
}

impl CancellationInput {
    /// The policy in `currency`.
    ///
    /// # Errors
    ///
    /// A fixed fee that is not a valid amount in `currency`, or a policy
    /// [`CancellationPolicy::new`] refuses.
    pub fn resolve(&self, currency: Currency) -> Result<CancellationPolicy, BillingError> {
        let fee = match &self.fee {
            MissedFeeInput::None => MissedFee::None,
            MissedFeeInput::Fixed(a) => MissedFee::Fixed(a.in_currency(currency)?),
            MissedFeeInput::FullHold => MissedFee::FullHold,
        };
        Ok(CancellationPolicy::new(self.free_hours, fee).map_err(PreferencesError::from)?)
    }
}

/// A replacement of an optional text setting: `None` keeps, empty clears.
fn replaced<T: Clone, E>(
    current: &Option<T>,
    input: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, E> {
    match input.map(str::trim) {
        None => Ok(current.clone()),
        Some("") => Ok(None),
        Some(text) => parse(text).map(Some),
    }
}

/// A change to a service; absent fields are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePatch {
    /// A new name.
    pub name: Option<String>,
    /// A new price (checked like a new service's).
    pub amount: Option<AmountInput>,
    /// Withdraw (`false`) or offer again (`true`).
    pub active: Option<bool>,
}

/// Caps, fee schedule and priced services.
#[derive(Clone)]
pub struct CatalogueService {
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) services: Arc<dyn ServiceRepository>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
}

impl std::fmt::Debug for CatalogueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogueService").finish_non_exhaustive()
    }
}

impl CatalogueService {
    /// A practitioner's services (acts and prices). Ports: practitioners, services,
    /// the clock and ids.
    pub fn new(
        practitioners: Arc<dyn PractitionerRepository>,
        services: Arc<dyn ServiceRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        CatalogueService {
            practitioners,
            services,
            clock,
            ids,
        }
    }

    async fn load(
        &self,
        actor: &Actor,
        action: Action,
        id: PractitionerId,
    ) -> Result<Practitioner, BillingError> {
        authorize(actor, action, id)?;
        match self.practitioners.get(id).await {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("practitioner")),
            other => Ok(other?),
        }
    }

    /// The practitioner as the dashboard shows them (name, time zone, preferences).
    pub async fn practitioner(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<Practitioner, BillingError> {
        self.load(actor, Action::ViewPreferences, id).await
    }

    /// The practitioner's preferences (staff of the practitioner, secretaries included).
    pub async fn preferences(
        &self,
        actor: &Actor,
        id: PractitionerId,
    ) -> Result<Preferences, BillingError> {
        Ok(self
            .load(actor, Action::ViewPreferences, id)
            .await?
            .preferences)
    }

    /// Replaces the preferences (practitioner only). Payments already scheduled keep the
    /// cap and fee schedule they were created with.
    pub async fn set_preferences(
        &self,
        actor: &Actor,
        id: PractitionerId,
        input: &PreferencesInput,
    ) -> Result<Preferences, BillingError> {
        let loaded = self.load(actor, Action::EditPreferences, id).await?;
        let currency = input.currency;
        let known = loaded.preferences.statement();
        let statement = StatementText {
            label: replaced(
                &known.label,
                input.payment_label.as_deref(),
                PaymentLabel::parse,
            )?,
            descriptor_suffix: replaced(
                &known.descriptor_suffix,
                input.statement_descriptor_suffix.as_deref(),
                DescriptorSuffix::parse,
            )?,
        };
        let prefs = Preferences::new(
            input.default_amount.in_currency(currency)?,
            input.max_amount.in_currency(currency)?,
            input.fee_schedule.resolve(currency)?,
        )?
        .with_statement(statement);
        let policy = match &input.cancellation {
            Some(c) => c.resolve(currency)?,
            None => *loaded.preferences.cancellation(),
        };
        let prefs = prefs.with_cancellation(policy)?;
        for _ in 0..RETRIES {
            let current = self.practitioners.get(id).await?;
            let now = now_micros(self.clock.as_ref());
            let audit = AuditEntry::new(
                now,
                id,
                AuditActor::of(actor),
                AuditAction::PreferencesChanged,
            )
            .detail(format!(
                "default {} max {} fees {}% + {}",
                prefs.default_amount(),
                prefs.max_amount(),
                prefs.fee_schedule().percent(),
                prefs.fee_schedule().fixed()
            ));
            let next = current.with_preferences(prefs.clone(), now);
            match self
                .practitioners
                .update(&next, current.version, &audit)
                .await
            {
                Ok(()) => return Ok(prefs),
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// Replaces the practitioner's professional identity (practitioner only). Receipts
    /// already issued keep the identity they print.
    pub async fn set_profile(
        &self,
        actor: &Actor,
        id: PractitionerId,
        input: &ProfileInput,
    ) -> Result<Profile, BillingError> {
        self.load(actor, Action::EditPreferences, id).await?;
        let profile =
            Profile::parse(input).map_err(|(field, e)| BillingError::validation(field, e))?;
        for _ in 0..RETRIES {
            let current = self.practitioners.get(id).await?;
            let now = now_micros(self.clock.as_ref());
            let audit =
                AuditEntry::new(now, id, AuditActor::of(actor), AuditAction::ProfileChanged);
            let next = current.with_profile(profile.clone(), now);
            match self
                .practitioners
                .update(&next, current.version, &audit)
                .await
            {
                Ok(()) => return Ok(profile),
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// The practitioner's services by name; withdrawn ones only if `include_inactive`.
    pub async fn services(
        &self,
        actor: &Actor,
        id: PractitionerId,
        include_inactive: bool,
    ) -> Result<Vec<Service>, BillingError> {
        self.load(actor, Action::ViewServices, id).await?;
        Ok(self.services.list(id, include_inactive).await?)
    }

    /// Adds a service to the practitioner's catalogue (practitioner only). `amount` is
    /// read in the practitioner's currency.
    ///
    /// # Errors
    ///
    /// [`BillingError::Validation`] for the name, [`BillingError::InvalidAmount`] for a
    /// price that is not chargeable, [`BillingError::AmountAboveMaximum`] for one above the
    /// practitioner's maximum.
    pub async fn create_service(
        &self,
        actor: &Actor,
        id: PractitionerId,
        name: &str,
        amount: &AmountInput,
    ) -> Result<Service, BillingError> {
        let practitioner = self.load(actor, Action::ManageServices, id).await?;
        let now = now_micros(self.clock.as_ref());
        let prefs = &practitioner.preferences;
        let service = Service::new(
            ServiceId::from_uuid(self.ids.new_id()),
            id,
            DisplayName::parse(name)?,
            amount.in_currency(prefs.currency())?,
            prefs,
            now,
        )?;
        let audit = AuditEntry::new(now, id, AuditActor::of(actor), AuditAction::ServiceCreated)
            .subject(service.id().as_uuid())
            .detail(format!("{} {}", service.name(), service.price()));
        self.services.create(&service, &audit).await?;
        Ok(service)
    }

    /// Looks a service up for `action`; another practitioner's service is not found.
    pub async fn service(
        &self,
        actor: &Actor,
        id: ServiceId,
        action: Action,
    ) -> Result<Service, BillingError> {
        let service = match self.services.get(id).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("service")),
            other => other?,
        };
        authorize(actor, action, service.practitioner())?;
        Ok(service)
    }

    /// Renames, reprices, withdraws or offers a service again (practitioner only);
    /// absent fields of `patch` are kept.
    pub async fn update_service(
        &self,
        actor: &Actor,
        id: ServiceId,
        patch: &ServicePatch,
    ) -> Result<Service, BillingError> {
        let service = self.service(actor, id, Action::ManageServices).await?;
        let practitioner = self.practitioners.get(service.practitioner()).await?;
        let prefs = &practitioner.preferences;
        let now = now_micros(self.clock.as_ref());
        let name = patch.name.as_deref().map(DisplayName::parse).transpose()?;
        let price = patch
            .amount
            .map(|a| a.in_currency(prefs.currency()))
            .transpose()?;
        let updated = service.updated(name, price, patch.active, prefs, now)?;
        let audit = AuditEntry::new(
            now,
            service.practitioner(),
            AuditActor::of(actor),
            AuditAction::ServiceUpdated,
        )
        .subject(id.as_uuid())
        .detail(format!(
            "{} {}{}",
            updated.name(),
            updated.price(),
            if updated.active() { "" } else { " (inactive)" }
        ));
        self.services.update(&updated, &audit).await?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests;
