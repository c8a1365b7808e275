//! The use cases wired to their ports: what an embedder builds once and calls.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::BillingConfig;
use crate::consultation::day::DayService;
use crate::consultation::ports::ConsultationRepository;
use crate::consultation::service::{PatientService, SchedulingService};
use crate::gateway::{ConnectOnboarding, PaymentGateway, SandboxControl, WebhookVerifier};
use crate::identity::{IdentityProvider, OidcService};
use crate::invitation::{LinkRepository, TeamService};
use crate::outbox::{Mailer, OutboxRepository, OutboxService};
use crate::password::PasswordHasher;
use crate::payment::holds::HoldService;
use crate::payment::ledger::{Ledger, PaymentObserver};
use crate::payment::ports::{IdempotencyStore, PaymentRepository, WebhookInbox};
use crate::payment::service::{
    PaymentService, ReconcileService, ReportingService, SandboxService, WebhookService,
};
use crate::practitioner::ports::{OAuthStateRepository, PractitionerRepository, ServiceRepository};
use crate::practitioner::service::{CatalogueService, ConnectService};
use crate::receipt::{DocumentRenderer, DocumentService};
use crate::second_factor::{SecondFactorRepository, SecondFactorService};
use crate::session::{SessionRepository, SessionService};
use crate::staff::{StaffService, UserRepository};
use crate::system::{Clock, IdGenerator, PayLinkSigner, SecretGenerator, SystemClock};
use crate::throttle::FailedSignIns;
use crate::video::PassSigner;

/// Every port, once the builder has them all.
#[derive(Clone)]
pub(crate) struct Ports {
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) oauth_states: Arc<dyn OAuthStateRepository>,
    pub(crate) services: Arc<dyn ServiceRepository>,
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) payments: Arc<dyn PaymentRepository>,
    pub(crate) webhook_inbox: Arc<dyn WebhookInbox>,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) users: Arc<dyn UserRepository>,
    pub(crate) sessions: Arc<dyn SessionRepository>,
    pub(crate) links: Arc<dyn LinkRepository>,
    pub(crate) failed_sign_ins: Arc<dyn FailedSignIns>,
    pub(crate) second_factors: Arc<dyn SecondFactorRepository>,
    pub(crate) passwords: Arc<dyn PasswordHasher>,
    pub(crate) outbox: Arc<dyn OutboxRepository>,
    pub(crate) mailer: Option<Arc<dyn Mailer>>,
    pub(crate) identity: Option<Arc<dyn IdentityProvider>>,
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) gateway: Arc<dyn PaymentGateway>,
    pub(crate) renderer: Arc<dyn DocumentRenderer>,
    pub(crate) connect: Arc<dyn ConnectOnboarding>,
    pub(crate) webhook_verifier: Arc<dyn WebhookVerifier>,
    pub(crate) sandbox: Option<Arc<dyn SandboxControl>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) secrets: Arc<dyn SecretGenerator>,
    pub(crate) pay_links: Arc<dyn PayLinkSigner>,
    pub(crate) passes: Option<Arc<dyn PassSigner>>,
    pub(crate) observer: Option<Arc<dyn PaymentObserver>>,
}

/// Every storage port at once: what one database adapter implements (`storage-seaorm`'s
/// `Store` does). Implemented for any type that implements them all.
pub trait Storage:
    PractitionerRepository
    + OAuthStateRepository
    + ServiceRepository
    + ConsultationRepository
    + PaymentRepository
    + WebhookInbox
    + IdempotencyStore
    + UserRepository
    + SessionRepository
    + LinkRepository
    + FailedSignIns
    + SecondFactorRepository
    + OutboxRepository
    + AuditLog
{
}

impl<T> Storage for T where
    T: PractitionerRepository
        + OAuthStateRepository
        + ServiceRepository
        + ConsultationRepository
        + PaymentRepository
        + WebhookInbox
        + IdempotencyStore
        + UserRepository
        + SessionRepository
        + LinkRepository
        + FailedSignIns
        + SecondFactorRepository
        + OutboxRepository
        + AuditLog
{
}

/// A port [`BillingBuilder::build`] needed and was not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("billing-core needs the {0} port: give it to the builder")]
pub struct MissingPort(pub &'static str);

/// Builds [`Billing`] from its ports: [`Billing::builder`].
///
/// Required: every storage port (at once with [`BillingBuilder::storage`], or one by
/// one), the gateway's three ports ([`payment_gateway`](Self::payment_gateway),
/// [`connect`](Self::connect), [`webhook_verifier`](Self::webhook_verifier)), a
/// [`renderer`](Self::renderer), [`ids`](Self::ids), [`secrets`](Self::secrets),
/// [`pay_links`](Self::pay_links) and [`passwords`](Self::passwords). Defaulted: the [`clock`](Self::clock) (the
/// system's). Optional: the [`mailer`](Self::mailer) (without one, e-mail stays
/// queued), the [`sandbox`](Self::sandbox), video [`passes`](Self::passes) and a payment
/// [`observer`](Self::observer). A port added to a later version is either defaulted
/// or named by [`MissingPort`], never a compile error in the embedder's code.
#[must_use]
pub struct BillingBuilder {
    config: BillingConfig,
    given: Given,
}

/// The ports given so far.
#[derive(Default)]
struct Given {
    practitioners: Option<Arc<dyn PractitionerRepository>>,
    oauth_states: Option<Arc<dyn OAuthStateRepository>>,
    services: Option<Arc<dyn ServiceRepository>>,
    consultations: Option<Arc<dyn ConsultationRepository>>,
    payments: Option<Arc<dyn PaymentRepository>>,
    webhook_inbox: Option<Arc<dyn WebhookInbox>>,
    idempotency: Option<Arc<dyn IdempotencyStore>>,
    users: Option<Arc<dyn UserRepository>>,
    sessions: Option<Arc<dyn SessionRepository>>,
    links: Option<Arc<dyn LinkRepository>>,
    failed_sign_ins: Option<Arc<dyn FailedSignIns>>,
    second_factors: Option<Arc<dyn SecondFactorRepository>>,
    passwords: Option<Arc<dyn PasswordHasher>>,
    outbox: Option<Arc<dyn OutboxRepository>>,
    audit: Option<Arc<dyn AuditLog>>,
    payment_gateway: Option<Arc<dyn PaymentGateway>>,
    connect: Option<Arc<dyn ConnectOnboarding>>,
    webhook_verifier: Option<Arc<dyn WebhookVerifier>>,
    renderer: Option<Arc<dyn DocumentRenderer>>,
    ids: Option<Arc<dyn IdGenerator>>,
    secrets: Option<Arc<dyn SecretGenerator>>,
    pay_links: Option<Arc<dyn PayLinkSigner>>,
    clock: Option<Arc<dyn Clock>>,
    mailer: Option<Arc<dyn Mailer>>,
    identity_provider: Option<Arc<dyn IdentityProvider>>,
    sandbox: Option<Arc<dyn SandboxControl>>,
    passes: Option<Arc<dyn PassSigner>>,
    observer: Option<Arc<dyn PaymentObserver>>,
}

impl std::fmt::Debug for BillingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillingBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One setter per port: `$name(port)` stores `Some(port)`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $port:ty;)+) => {$(
        $(#[$doc])*
        pub fn $name(mut self, port: Arc<$port>) -> Self {
            self.given.$name = Some(port);
            self
        }
    )+};
}

impl BillingBuilder {
    fn new(config: BillingConfig) -> Self {
        BillingBuilder {
            config,
            given: Given::default(),
        }
    }

    /// Every storage port from one adapter (a later setter of one port overrides it).
    pub fn storage<S: Storage + 'static>(self, store: Arc<S>) -> Self {
        self.practitioners(store.clone())
            .oauth_states(store.clone())
            .services(store.clone())
            .consultations(store.clone())
            .payments(store.clone())
            .webhook_inbox(store.clone())
            .idempotency(store.clone())
            .users(store.clone())
            .sessions(store.clone())
            .links(store.clone())
            .failed_sign_ins(store.clone())
            .second_factors(store.clone())
            .outbox(store.clone())
            .audit(store)
    }

    setters! {
        /// Practitioners, their Stripe link, caps and profile.
        practitioners: dyn PractitionerRepository;
        /// OAuth `state`s of Stripe Connect, consumed once.
        oauth_states: dyn OAuthStateRepository;
        /// The practitioners' services (acts and their prices).
        services: dyn ServiceRepository;
        /// Consultations with their payment and pay token.
        consultations: dyn ConsultationRepository;
        /// Payments, their history, the payments table.
        payments: dyn PaymentRepository;
        /// Stripe events already seen (webhooks applied once).
        webhook_inbox: dyn WebhookInbox;
        /// `Idempotency-Key`s of the API.
        idempotency: dyn IdempotencyStore;
        /// Staff users and their tokens.
        users: dyn UserRepository;
        /// Dashboard sessions.
        sessions: dyn SessionRepository;
        /// Invitation and password-reset links.
        links: dyn LinkRepository;
        /// Failed sign-ins, for the throttle.
        failed_sign_ins: dyn FailedSignIns;
        /// One-time-code second factors and recovery codes.
        second_factors: dyn SecondFactorRepository;
        /// Hashes and checks staff passwords (Argon2id in the server).
        passwords: dyn PasswordHasher;
        /// The e-mail outbox.
        outbox: dyn OutboxRepository;
        /// The audit trail.
        audit: dyn AuditLog;
        /// Holds, captures, releases, refunds at the processor.
        payment_gateway: dyn PaymentGateway;
        /// Linking a practitioner's Stripe account.
        connect: dyn ConnectOnboarding;
        /// Checks the processor's webhook signatures.
        webhook_verifier: dyn WebhookVerifier;
        /// Turns receipts and credit notes into files (PDF).
        renderer: dyn DocumentRenderer;
        /// New ids (UUIDs).
        ids: dyn IdGenerator;
        /// New secrets (tokens, OAuth states).
        secrets: dyn SecretGenerator;
        /// Derives pay links from the server's key (they are stored as hashes only).
        pay_links: dyn PayLinkSigner;
        /// Sends the outbox's e-mail; without one, messages stay queued (and visible).
        mailer: dyn Mailer;
        /// An OpenID Connect provider staff may sign in with; without one, they sign
        /// in with e-mail and password only.
        identity_provider: dyn IdentityProvider;
        /// The processor's sandbox controls (pages, test clock); sandbox mode only.
        sandbox: dyn SandboxControl;
        /// Signs passes to the video room; without one, the practitioner calls the
        /// patient and no pass is issued.
        passes: dyn PassSigner;
        /// Told about every payment status change (e.g. metrics).
        observer: dyn PaymentObserver;
    }

    /// The domain's time (default: the system's; in sandbox mode, the sandbox's test
    /// clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.given.clock = Some(clock);
        self
    }

    /// The use cases, or the first required port that is missing.
    pub fn build(self) -> Result<Billing, MissingPort> {
        fn required<T: ?Sized>(
            port: Option<Arc<T>>,
            name: &'static str,
        ) -> Result<Arc<T>, MissingPort> {
            port.ok_or(MissingPort(name))
        }
        let given = self.given;
        let ports = Ports {
            practitioners: required(given.practitioners, "practitioners")?,
            oauth_states: required(given.oauth_states, "oauth_states")?,
            services: required(given.services, "services")?,
            consultations: required(given.consultations, "consultations")?,
            payments: required(given.payments, "payments")?,
            webhook_inbox: required(given.webhook_inbox, "webhook_inbox")?,
            idempotency: required(given.idempotency, "idempotency")?,
            users: required(given.users, "users")?,
            sessions: required(given.sessions, "sessions")?,
            links: required(given.links, "links")?,
            failed_sign_ins: required(given.failed_sign_ins, "failed_sign_ins")?,
            second_factors: required(given.second_factors, "second_factors")?,
            passwords: required(given.passwords, "passwords")?,
            outbox: required(given.outbox, "outbox")?,
            audit: required(given.audit, "audit")?,
            gateway: required(given.payment_gateway, "payment_gateway")?,
            connect: required(given.connect, "connect")?,
            webhook_verifier: required(given.webhook_verifier, "webhook_verifier")?,
            renderer: required(given.renderer, "renderer")?,
            ids: required(given.ids, "ids")?,
            secrets: required(given.secrets, "secrets")?,
            pay_links: required(given.pay_links, "pay_links")?,
            clock: given.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            mailer: given.mailer,
            identity: given.identity_provider,
            sandbox: given.sandbox,
            passes: given.passes,
            observer: given.observer,
        };
        Ok(Billing::from_ports(ports, self.config))
    }
}

/// All use cases, grouped by who uses them. Cheap to clone.
#[derive(Clone)]
pub struct Billing {
    /// Linking, verifying and unlinking practitioners' Stripe accounts (C1, C12).
    pub connect: ConnectService,
    /// Preferences, profile and priced services (C2).
    pub catalogue: CatalogueService,
    /// Scheduling consultations and their pay links (C3).
    pub scheduling: SchedulingService,
    /// The patient's side: pay page, checkout, waiting-room gate, pass (C4).
    pub patients: PatientService,
    /// The consultation's day for the practice: start, pass, cancel, reschedule,
    /// no-show.
    pub day: DayService,
    /// Validating the act, releasing and refunding (C5, C6, C11).
    pub payments: PaymentService,
    /// The payments table, ageing holds and the audit trail (C8, C10, C13).
    pub reporting: ReportingService,
    /// Stripe's webhooks (C9, C15).
    pub webhooks: WebhookService,
    /// The background jobs (holds placed and renewed, reconciliation): run by the
    /// server periodically, by `consultpay reconcile`, and by the sandbox clock.
    pub reconcile: ReconcileService,
    /// Staff users: authentication, creation, tokens.
    pub staff: StaffService,
    /// Dashboard sessions: sign in (throttled), sign out (everywhere), timeouts.
    pub sessions: SessionService,
    /// Invitations, password links, a practitioner's team.
    pub team: TeamService,
    /// Sign-in with an OpenID Connect provider (when one is configured).
    pub oidc: OidcService,
    /// One-time codes at sign-in: set up, confirm, turn off.
    pub second_factor: SecondFactorService,
    /// Receipts and credit notes as files.
    pub documents: DocumentService,
    /// E-mail: delivery (a job), the staff's view, pay links sent again.
    pub outbox: OutboxService,
    /// Present only in sandbox mode.
    pub sandbox: Option<SandboxService>,
    /// The settings the use cases were built with.
    pub config: BillingConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("sandbox", &self.sandbox.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Billing {
    /// The domain's time (microseconds): in sandbox mode, the test clock's.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        crate::system::now_micros(self.clock.as_ref())
    }

    /// A builder of the use cases from their ports (see [`BillingBuilder`]).
    pub fn builder(config: BillingConfig) -> BillingBuilder {
        BillingBuilder::new(config)
    }

    pub(crate) fn from_ports(deps: Ports, config: BillingConfig) -> Self {
        let ledger = Ledger::new(
            deps.payments.clone(),
            deps.consultations.clone(),
            deps.practitioners.clone(),
            deps.gateway.clone(),
            deps.ids.clone(),
            deps.clock.clone(),
        )
        .with_observer(deps.observer.clone());
        let connect = ConnectService::new(
            deps.practitioners.clone(),
            deps.oauth_states.clone(),
            deps.payments.clone(),
            deps.audit.clone(),
            deps.connect.clone(),
            deps.clock.clone(),
            deps.secrets.clone(),
            config.clone(),
        );
        let webhooks = WebhookService::new(
            deps.webhook_verifier.clone(),
            deps.webhook_inbox.clone(),
            connect.clone(),
            ledger.clone(),
        );
        let holds = HoldService::new(
            deps.consultations.clone(),
            deps.practitioners.clone(),
            ledger.clone(),
            config.clone(),
        );
        let reconcile =
            ReconcileService::new(holds, ledger.clone(), deps.outbox.clone(), config.clone());
        let documents = DocumentService::new(deps.renderer.clone());
        let payments = PaymentService::new(
            deps.consultations.clone(),
            deps.idempotency.clone(),
            ledger.clone(),
        );
        let outbox = OutboxService::new(
            deps.outbox.clone(),
            deps.consultations.clone(),
            deps.practitioners.clone(),
            deps.payments.clone(),
            documents.clone(),
            deps.pay_links.clone(),
            deps.clock.clone(),
            deps.ids.clone(),
            config.clone(),
        )
        .with_mailer(deps.mailer.clone())
        .with_password_links(deps.users.clone(), deps.links.clone(), deps.secrets.clone());
        let sessions = SessionService::new(
            deps.users.clone(),
            deps.sessions.clone(),
            deps.failed_sign_ins.clone(),
            deps.second_factors.clone(),
            deps.passwords.clone(),
            deps.clock.clone(),
            deps.secrets.clone(),
            config.clone(),
        );
        Billing {
            catalogue: CatalogueService::new(
                deps.practitioners.clone(),
                deps.services.clone(),
                deps.clock.clone(),
                deps.ids.clone(),
            ),
            scheduling: SchedulingService::new(
                deps.practitioners.clone(),
                deps.services.clone(),
                deps.consultations.clone(),
                deps.idempotency.clone(),
                deps.clock.clone(),
                deps.ids.clone(),
                deps.pay_links.clone(),
                config.clone(),
            ),
            patients: PatientService::new(
                deps.consultations.clone(),
                deps.practitioners.clone(),
                ledger.clone(),
                payments.clone(),
                deps.passes.clone(),
                config.clone(),
            ),
            day: DayService::new(
                deps.consultations.clone(),
                deps.practitioners.clone(),
                payments.clone(),
                deps.passes.clone(),
                config.clone(),
            ),
            payments,
            reporting: ReportingService::new(deps.audit.clone(), ledger, config.clone()),
            reconcile: reconcile.clone(),
            staff: StaffService::new(
                deps.users.clone(),
                deps.clock.clone(),
                deps.ids.clone(),
                deps.secrets.clone(),
                config.clone(),
            ),
            sessions: sessions.clone(),
            second_factor: SecondFactorService::new(
                deps.second_factors.clone(),
                deps.users.clone(),
                deps.clock.clone(),
                deps.secrets.clone(),
            ),
            oidc: OidcService::new(
                deps.identity.clone(),
                deps.users.clone(),
                deps.links.clone(),
                sessions,
                deps.clock.clone(),
            ),
            team: TeamService::new(
                deps.users.clone(),
                deps.links.clone(),
                deps.outbox.clone(),
                deps.passwords.clone(),
                deps.clock.clone(),
                deps.ids.clone(),
                deps.secrets.clone(),
                config.clone(),
            ),
            outbox: outbox.clone(),
            documents,
            sandbox: deps
                .sandbox
                .map(|sandbox| SandboxService::new(sandbox, webhooks.clone(), reconcile, outbox)),
            connect,
            webhooks,
            config,
            clock: deps.clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_names_the_first_missing_port() {
        let err = Billing::builder(BillingConfig::new("https://pay.example.org"))
            .build()
            .unwrap_err();
        assert_eq!(err, MissingPort("practitioners"));
        assert_eq!(
            err.to_string(),
            "billing-core needs the practitioners port: give it to the builder"
        );
    }
}
