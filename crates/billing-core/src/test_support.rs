//! Test support for the use-case tests: one mockall mock per port, a fixed clock,
//! counting id and secret generators, and builders for the aggregates in the states
//! the tests start from. The mocks only ever return values; nothing here stores.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use uuid::Uuid;

use crate::access::{Actor, Role, StaffUser};
use crate::audit::MockAuditLog;
use crate::billing::{Billing, Ports};
use crate::config::BillingConfig;
use crate::consultation::model::{
    Consultation, ConsultationRecord, PatientRef, PayAccess, PaymentMode,
};
use crate::consultation::ports::MockConsultationRepository;
use crate::contact::DisplayName;
use crate::error::BillingError;
use crate::fees::FeeSchedule;
use crate::gateway::{
    GatewayError, IntentSnapshot, IntentStatus, MockConnectOnboarding, MockPaymentGateway,
    MockSandboxControl, MockWebhookVerifier, SetupSnapshot, SetupStatus,
};
use crate::ids::{
    ConnectedAccountId, ConsultationId, CustomerId, DisputeId, EventId, PaymentId, PaymentIntentId,
    PaymentMethodId, PractitionerId, ServiceId, SetupIntentId, UserId,
};
use crate::money::{Currency, Money};
use crate::payment::model::{
    Applied, Dispute, DisputeStatus, Failure, IdempotencyKey, Operation, Payment, PaymentEvent,
    PaymentStatus, SavedCard,
};
use crate::payment::ports::{
    MockIdempotencyStore, MockPaymentRepository, MockWebhookInbox, PaymentRow,
};
use crate::practitioner::model::{
    AccountSnapshot, Practitioner, Preferences, RevokeReason, Service, StripeLink, TimeZone,
};
use crate::practitioner::ports::{
    MockOAuthStateRepository, MockPractitionerRepository, MockServiceRepository,
};
use crate::repository::RepositoryError;
use crate::secrets::PayToken;
use crate::staff::MockUserRepository;
use crate::system::{MockClock, MockIdGenerator, MockSecretGenerator};

pub(crate) const PUBLIC_URL: &str = "https://pay.example.org";

/// The time every test runs at.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

pub(crate) fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

pub(crate) fn config() -> BillingConfig {
    BillingConfig::new(PUBLIC_URL)
}

// ---- identifiers ----------------------------------------------------------------

/// The practitioner most tests act for.
pub(crate) const DR: PractitionerId = PractitionerId::from_uuid(Uuid::from_u128(1));
/// Another practitioner, whose data must look like nothing to `DR`'s staff.
pub(crate) const OTHER_DR: PractitionerId = PractitionerId::from_uuid(Uuid::from_u128(2));
/// A third practitioner, for secretaries who work for several.
pub(crate) const THIRD_DR: PractitionerId = PractitionerId::from_uuid(Uuid::from_u128(3));
pub(crate) const CONSULTATION: ConsultationId = ConsultationId::from_uuid(Uuid::from_u128(10));
pub(crate) const PAYMENT: PaymentId = PaymentId::from_uuid(Uuid::from_u128(20));
pub(crate) const SERVICE: ServiceId = ServiceId::from_uuid(Uuid::from_u128(30));
pub(crate) const SECRETARY: UserId = UserId::from_uuid(Uuid::from_u128(50));

pub(crate) fn account() -> ConnectedAccountId {
    ConnectedAccountId::parse("acct_1Estival").unwrap()
}

pub(crate) fn other_account() -> ConnectedAccountId {
    ConnectedAccountId::parse("acct_2Other").unwrap()
}

pub(crate) fn intent() -> PaymentIntentId {
    PaymentIntentId::parse("pi_3Hold").unwrap()
}

pub(crate) fn event_id() -> EventId {
    EventId::parse("evt_1Webhook").unwrap()
}

/// The n-th id the test id generator hands out (1-based).
pub(crate) fn generated_id(n: u64) -> Uuid {
    Uuid::from_u128(1000 + u128::from(n))
}

/// The n-th secret the test secret generator hands out (1-based): 43 URL-safe chars.
pub(crate) fn secret(n: u64) -> String {
    format!("s{n:0>42}")
}

// ---- actors -----------------------------------------------------------------------

pub(crate) fn practitioner_actor(id: PractitionerId) -> Actor {
    Actor::Staff(StaffUser {
        id: UserId::from_uuid(id.as_uuid()),
        name: "Dr".into(),
        role: Role::Practitioner(id),
    })
}

/// `DR` themself.
pub(crate) fn dr() -> Actor {
    practitioner_actor(DR)
}

pub(crate) fn other_dr() -> Actor {
    practitioner_actor(OTHER_DR)
}

pub(crate) fn secretary_of(practitioners: &[PractitionerId]) -> Actor {
    Actor::Staff(StaffUser {
        id: SECRETARY,
        name: "Accueil".into(),
        role: Role::Secretary(practitioners.iter().copied().collect::<BTreeSet<_>>()),
    })
}

/// `DR`'s secretary.
pub(crate) fn secretary() -> Actor {
    secretary_of(&[DR])
}

/// A secretary who works for someone else.
pub(crate) fn foreign_secretary() -> Actor {
    secretary_of(&[OTHER_DR])
}

pub(crate) fn patient() -> Actor {
    Actor::Patient {
        consultation: CONSULTATION,
    }
}

/// Everyone but `DR` and their secretary, with the code each must get for an action
/// only the practitioner may do.
pub(crate) fn outsiders() -> Vec<(&'static str, Actor, &'static str)> {
    vec![
        ("another practitioner", other_dr(), "not_found"),
        (
            "another practitioner's secretary",
            foreign_secretary(),
            "not_found",
        ),
        ("a patient", patient(), "not_found"),
        ("nobody signed in", Actor::Anonymous, "unauthenticated"),
    ]
}

// ---- practitioners ------------------------------------------------------------------

pub(crate) fn account_snapshot(id: ConnectedAccountId, charges_enabled: bool) -> AccountSnapshot {
    AccountSnapshot {
        id,
        charges_enabled,
        payouts_enabled: charges_enabled,
        details_submitted: true,
        disabled_reason: (!charges_enabled).then(|| "requirements.past_due".to_owned()),
        currently_due: vec![],
        payout_schedule: None,
        default_currency: Some(Currency::Eur),
        country: Some("FR".into()),
    }
}

/// Linked (a day ago) to `account()`, able to take charges.
pub(crate) fn linked() -> StripeLink {
    StripeLink::linked(account_snapshot(account(), true), now() - Duration::days(1))
}

pub(crate) fn revoked() -> StripeLink {
    StripeLink::Revoked {
        account: account(),
        at: now() - Duration::hours(1),
        reason: RevokeReason::Unlinked,
    }
}

/// The practitioner `id` at version 3 with `link` and the starting preferences
/// (25.00 EUR default and maximum).
pub(crate) fn practitioner_with(id: PractitionerId, link: StripeLink) -> Practitioner {
    let mut p = Practitioner::new(
        id,
        DisplayName::parse("Dr Estival").unwrap(),
        TimeZone::default(),
        Currency::Eur,
        now() - Duration::days(30),
    );
    p.link = link;
    p.version = 3;
    p
}

/// `DR`, linked.
pub(crate) fn practitioner() -> Practitioner {
    practitioner_with(DR, linked())
}

/// Preferences with `default` and `max` in EUR cents.
pub(crate) fn preferences(default: i64, max: i64) -> Preferences {
    Preferences::new(
        eur(default),
        eur(max),
        FeeSchedule::default_for(Currency::Eur),
    )
    .unwrap()
}

pub(crate) fn service(of: PractitionerId, price: i64, active: bool) -> Service {
    Service::restore(
        SERVICE,
        of,
        DisplayName::parse("Bilan").unwrap(),
        eur(price),
        active,
        now() - Duration::days(3),
        now() - Duration::days(3),
    )
}

// ---- payments -----------------------------------------------------------------------

/// Applies `event` strictly and returns the changed payment.
pub(crate) fn step(p: &Payment, event: PaymentEvent) -> Payment {
    match p.apply(&event, now()).unwrap() {
        Applied::Changed { payment, .. } => *payment,
        other => panic!("{event:?} did not change the payment: {other:?}"),
    }
}

/// A 25.00 EUR payment of `DR`'s consultation, as scheduled: no account, no intent.
pub(crate) fn scheduled_payment() -> Payment {
    Payment::new(
        PAYMENT,
        CONSULTATION,
        DR,
        eur(2500),
        FeeSchedule::default_for(Currency::Eur),
        now() - Duration::days(2),
    )
    .unwrap()
}

/// Checkout started: the intent exists on `account()`, nothing authorised yet.
pub(crate) fn incomplete() -> Payment {
    scheduled_payment()
        .checkout_started(account(), Some(intent()), None, now() - Duration::days(2))
        .unwrap()
}

pub(crate) fn hold(capture_before: Option<DateTime<Utc>>) -> PaymentEvent {
    PaymentEvent::HoldPlaced {
        amount: eur(2500),
        capture_before,
    }
}

/// 25.00 EUR on hold, capturable for six more days.
pub(crate) fn authorized() -> Payment {
    step(&incomplete(), hold(Some(now() + Duration::days(6))))
}

/// A hold whose capture deadline has passed.
pub(crate) fn lapsed() -> Payment {
    step(&incomplete(), hold(Some(now() - Duration::hours(1))))
}

pub(crate) fn captured(amount: i64) -> Payment {
    step(
        &authorized(),
        PaymentEvent::Captured {
            amount: eur(amount),
            fee: None,
        },
    )
}

pub(crate) fn refunded(captured_amount: i64, total: i64) -> Payment {
    step(
        &captured(captured_amount),
        PaymentEvent::Refunded { total: eur(total) },
    )
}

pub(crate) fn released() -> Payment {
    step(&authorized(), PaymentEvent::Released)
}

/// `p` with `operation` recorded as in flight under its derived key.
pub(crate) fn pending(p: &Payment, operation: Operation, key: IdempotencyKey) -> Payment {
    p.begin(operation, key, now()).unwrap().unwrap()
}

/// `p` with a capture of `amount` in flight (a timeout or a crash left it there).
pub(crate) fn pending_capture(p: &Payment, amount: i64) -> Payment {
    pending(
        p,
        Operation::Capture {
            amount: eur(amount),
        },
        IdempotencyKey::capture(p.id(), p.intent().unwrap_or(&intent()), &eur(amount)).unwrap(),
    )
}

pub(crate) fn row(payment: Payment) -> PaymentRow {
    PaymentRow {
        payment,
        patient: DisplayName::parse("M. Martin").unwrap(),
        starts_at: now() - Duration::days(1),
    }
}

pub(crate) fn declined() -> Failure {
    Failure {
        code: Some("card_declined".into()),
        decline_code: Some("insufficient_funds".into()),
        message: "Your card has insufficient funds.".into(),
    }
}

// ---- consultations ------------------------------------------------------------------

/// The patient's pay token for `CONSULTATION`.
pub(crate) fn pay_token() -> PayToken {
    PayToken::from_random("pAyT0kEnpAyT0kEnpAyT0kEnpAyT0kEnpAyT0kEn123")
}

/// `CONSULTATION` of `DR`, tomorrow, with `payment` (online) or without (none).
pub(crate) fn record(payment: Option<Payment>) -> ConsultationRecord {
    ConsultationRecord {
        consultation: Consultation {
            id: CONSULTATION,
            practitioner: DR,
            patient: PatientRef {
                display_name: DisplayName::parse("M. Martin").unwrap(),
                email: None,
            },
            starts_at: now() + Duration::days(1),
            payment_mode: if payment.is_some() {
                PaymentMode::Online
            } else {
                PaymentMode::None
            },
            service: None,
            lang: crate::payment::model::Lang::Fr,
            pay_token_hash: pay_token().hash(),
            pay_link_generation: 0,
            created_by: None,
            created_at: now() - Duration::days(2),
            status: crate::consultation::model::ConsultationStatus::Scheduled,
            started_at: None,
            rescheduled_at: None,
        },
        payment,
    }
}

// ---- gateway ------------------------------------------------------------------------

/// The intent of `PAYMENT` in `status`, for 25.00 EUR, with nothing captured.
pub(crate) fn snapshot(status: IntentStatus) -> IntentSnapshot {
    IntentSnapshot {
        id: intent(),
        status,
        amount: eur(2500),
        amount_capturable: eur(0),
        amount_received: eur(0),
        amount_refunded: eur(0),
        capture_before: None,
        fee: None,
        last_error: None,
        cancellation_reason: None,
        payment: Some(PAYMENT),
        client_secret: None,
        refunds: None,
        saved_card: None,
    }
}

/// The hold in place (`payment_intent.amount_capturable_updated`).
pub(crate) fn hold_snapshot() -> IntentSnapshot {
    IntentSnapshot {
        amount_capturable: eur(2500),
        capture_before: Some(now() + Duration::days(7)),
        ..snapshot(IntentStatus::RequiresCapture)
    }
}

/// `amount` captured (`payment_intent.succeeded`).
pub(crate) fn succeeded_snapshot(amount: i64) -> IntentSnapshot {
    IntentSnapshot {
        amount_received: eur(amount),
        ..snapshot(IntentStatus::Succeeded)
    }
}

/// Cancelled, for `reason` (`automatic` when the hold lapsed).
pub(crate) fn canceled_snapshot(reason: &str) -> IntentSnapshot {
    IntentSnapshot {
        cancellation_reason: Some(reason.into()),
        ..snapshot(IntentStatus::Canceled)
    }
}

/// A dispute of 18.00 EUR for fraud, evidence due in a week; with `transactions` > 0
/// the funds (18.00) and Stripe's fee (15.00) are withdrawn.
pub(crate) fn dispute(status: DisputeStatus, transactions: u32) -> Dispute {
    Dispute {
        id: DisputeId::parse("dp_1Chargeback").unwrap(),
        amount: eur(1800),
        reason: "fraudulent".into(),
        status,
        evidence_due_by: Some(now() + Duration::days(7)),
        withdrawn: eur(if transactions > 0 { 1800 } else { 0 }),
        fee: eur(if transactions > 0 { 1500 } else { 0 }),
        transactions,
    }
}

/// The patient's card saved on `account()`.
pub(crate) fn saved_card() -> SavedCard {
    SavedCard {
        customer: CustomerId::parse("cus_1Patient").unwrap(),
        payment_method: PaymentMethodId::parse("pm_1Card").unwrap(),
    }
}

/// The card saving of `PAYMENT`'s checkout in setup mode, done.
pub(crate) fn setup_snapshot() -> SetupSnapshot {
    SetupSnapshot {
        id: SetupIntentId::parse("seti_1Save").unwrap(),
        status: SetupStatus::Succeeded,
        saved_card: Some(saved_card()),
        last_error: None,
        payment: Some(PAYMENT),
    }
}

pub(crate) fn timeout() -> GatewayError {
    GatewayError::Unavailable {
        message: "timed out".into(),
    }
}

pub(crate) fn storage_down() -> RepositoryError {
    RepositoryError::unavailable(std::io::Error::other("database is down"))
}

/// The stable problem code of a result that must be an error.
pub(crate) fn code<T: std::fmt::Debug>(result: Result<T, BillingError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

/// Pay links derived in the open: `pay_l{consultation}g{generation}`.
pub(crate) use crate::testing::OpenPayLinks as TestLinks;

/// The link `TestLinks` gives `consultation` at `generation`.
pub(crate) fn derived_link(consultation: ConsultationId, generation: u32) -> PayToken {
    use crate::system::PayLinkSigner;
    TestLinks.pay_token(consultation, generation)
}

// ---- wiring -----------------------------------------------------------------------

/// One mock per port. Set expectations on the fields, then [`Mocks::build`]. A port
/// called without an expectation panics, so "nothing else happened" is checked for
/// free; `.times(n)` and `.never()` say it where it is the point.
pub(crate) struct Mocks {
    pub(crate) now: DateTime<Utc>,
    pub(crate) practitioners: MockPractitionerRepository,
    pub(crate) oauth_states: MockOAuthStateRepository,
    pub(crate) services: MockServiceRepository,
    pub(crate) consultations: MockConsultationRepository,
    pub(crate) payments: MockPaymentRepository,
    pub(crate) webhook_inbox: MockWebhookInbox,
    pub(crate) idempotency: MockIdempotencyStore,
    pub(crate) audit: MockAuditLog,
    pub(crate) gateway: MockPaymentGateway,
    pub(crate) connect: MockConnectOnboarding,
    pub(crate) webhook_verifier: MockWebhookVerifier,
    pub(crate) outbox: crate::outbox::MockOutboxRepository,
    pub(crate) renderer: crate::receipt::MockDocumentRenderer,
    /// Set to send e-mail (none: messages stay queued).
    pub(crate) mailer: Option<crate::outbox::MockMailer>,
    /// Set for sandbox mode (the sandbox service exists only with it).
    pub(crate) sandbox: Option<MockSandboxControl>,
    /// Set to sign passes to the video room (none: no platform).
    pub(crate) passes: Option<crate::video::MockPassSigner>,
}

impl Mocks {
    pub(crate) fn new() -> Self {
        Mocks {
            now: now(),
            practitioners: MockPractitionerRepository::new(),
            oauth_states: MockOAuthStateRepository::new(),
            services: MockServiceRepository::new(),
            consultations: MockConsultationRepository::new(),
            payments: MockPaymentRepository::new(),
            webhook_inbox: MockWebhookInbox::new(),
            idempotency: MockIdempotencyStore::new(),
            audit: MockAuditLog::new(),
            gateway: MockPaymentGateway::new(),
            connect: MockConnectOnboarding::new(),
            webhook_verifier: MockWebhookVerifier::new(),
            outbox: crate::outbox::MockOutboxRepository::new(),
            renderer: crate::receipt::MockDocumentRenderer::new(),
            mailer: None,
            sandbox: None,
            passes: None,
        }
    }

    pub(crate) fn build(self) -> Billing {
        self.build_observed(None)
    }

    /// Like [`Mocks::build`], with a payment observer.
    pub(crate) fn build_with_observer(
        self,
        observer: Arc<dyn crate::payment::ledger::PaymentObserver>,
    ) -> Billing {
        self.build_observed(Some(observer))
    }

    fn build_observed(
        self,
        observer: Option<Arc<dyn crate::payment::ledger::PaymentObserver>>,
    ) -> Billing {
        let mut clock = MockClock::new();
        let at = self.now;
        clock.expect_now().returning(move || at);
        let mut ids = MockIdGenerator::new();
        let issued = AtomicU64::new(0);
        ids.expect_new_id()
            .returning(move || generated_id(issued.fetch_add(1, Ordering::SeqCst) + 1));
        let mut secrets = MockSecretGenerator::new();
        let issued = AtomicU64::new(0);
        secrets
            .expect_secret()
            .returning(move || secret(issued.fetch_add(1, Ordering::SeqCst) + 1));
        Billing::from_ports(
            Ports {
                practitioners: Arc::new(self.practitioners),
                oauth_states: Arc::new(self.oauth_states),
                services: Arc::new(self.services),
                consultations: Arc::new(self.consultations),
                payments: Arc::new(self.payments),
                webhook_inbox: Arc::new(self.webhook_inbox),
                idempotency: Arc::new(self.idempotency),
                users: Arc::new(MockUserRepository::new()),
                sessions: Arc::new(crate::session::MockSessionRepository::new()),
                links: Arc::new(crate::invitation::MockLinkRepository::new()),
                failed_sign_ins: Arc::new(crate::throttle::MockFailedSignIns::new()),
                second_factors: Arc::new(crate::second_factor::MockSecondFactorRepository::new()),
                passwords: Arc::new(crate::password::MockPasswordHasher::new()),
                outbox: Arc::new(self.outbox),
                mailer: self
                    .mailer
                    .map(|m| Arc::new(m) as Arc<dyn crate::outbox::Mailer>),
                identity: None,
                audit: Arc::new(self.audit),
                gateway: Arc::new(self.gateway),
                renderer: Arc::new(self.renderer),
                connect: Arc::new(self.connect),
                webhook_verifier: Arc::new(self.webhook_verifier),
                sandbox: self
                    .sandbox
                    .map(|s| Arc::new(s) as Arc<dyn crate::gateway::SandboxControl>),
                clock: Arc::new(clock),
                ids: Arc::new(ids),
                secrets: Arc::new(secrets),
                pay_links: Arc::new(TestLinks),
                passes: self
                    .passes
                    .map(|p| Arc::new(p) as Arc<dyn crate::video::PassSigner>),
                observer,
            },
            config(),
        )
    }

    /// The payment repository answers `states`, one per read, in order (what another
    /// writer, or our own earlier write, left there), then the last one to every
    /// further read.
    pub(crate) fn payment_reads(&mut self, states: &[Payment]) {
        let Some((last, first)) = states.split_last() else {
            return;
        };
        for p in first {
            let p = p.clone();
            self.payments
                .expect_get()
                .times(1)
                .returning(move |_| Ok(p.clone()));
        }
        self.payment_is(last);
    }

    /// The payment repository answers `p` to every read.
    pub(crate) fn payment_is(&mut self, p: &Payment) {
        let p = p.clone();
        self.payments.expect_get().returning(move |_| Ok(p.clone()));
    }

    /// The practitioner repository answers `p` to every read of its id.
    pub(crate) fn practitioner_is(&mut self, p: &Practitioner) {
        let p = p.clone();
        let id = p.id;
        self.practitioners
            .expect_get()
            .withf(move |asked| *asked == id)
            .returning(move |_| Ok(p.clone()));
    }

    /// What a receipt, a credit note or an e-mail is drafted from: `DR` and
    /// `CONSULTATION` (for tests whose payment is held, captured or refunded).
    pub(crate) fn documents_readable(&mut self) {
        self.practitioner_is(&practitioner());
        let r = record(Some(authorized()));
        self.consultations
            .expect_get()
            .withf(|id| *id == CONSULTATION)
            .returning(move |_| Ok(r.clone()));
    }

    /// The consultation repository answers `r` to reads by id and by pay token.
    pub(crate) fn consultation_is(&mut self, r: &ConsultationRecord) {
        let by_id = r.clone();
        self.consultations
            .expect_get()
            .returning(move |_| Ok(by_id.clone()));
        let by_token = r.clone();
        let hash = r.consultation.pay_token_hash.clone();
        self.consultations
            .expect_find_by_pay_token()
            .withf(move |h| *h == hash)
            .returning(move |_| Ok(by_token.clone()));
        let gate = PayAccess::of(r);
        let hash = r.consultation.pay_token_hash.clone();
        self.consultations
            .expect_pay_access()
            .withf(move |h| *h == hash)
            .returning(move |_| Ok(gate.clone()));
    }
}

/// The status a written payment ends in, for `withf` checks.
pub(crate) fn is(p: &Payment, status: PaymentStatus) -> bool {
    p.status() == status
}
