//! The use cases wired to their ports: what an embedder builds once and calls.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::BillingConfig;
use crate::consultation::day::DayService;
use crate::consultation::ports::ConsultationRepository;
use crate::consultation::service::{PatientService, SchedulingService};
use crate::gateway::{ConnectOnboarding, PaymentGateway, SandboxControl, WebhookVerifier};
use crate::outbox::{Mailer, OutboxRepository, OutboxService};
use crate::payment::holds::HoldService;
use crate::payment::ledger::{Ledger, PaymentObserver};
use crate::payment::ports::{IdempotencyStore, PaymentRepository, WebhookInbox};
use crate::payment::service::{
    PaymentService, ReconcileService, ReportingService, SandboxService, WebhookService,
};
use crate::practitioner::ports::{OAuthStateRepository, PractitionerRepository, ServiceRepository};
use crate::practitioner::service::{CatalogueService, ConnectService};
use crate::receipt::{DocumentRenderer, DocumentService};
use crate::staff::{StaffService, UserRepository};
use crate::system::{Clock, IdGenerator, PayLinkSigner, SecretGenerator};
use crate::video::PassSigner;

/// Every port, as the embedding application provides them.
#[derive(Clone)]
pub struct Deps {
    pub practitioners: Arc<dyn PractitionerRepository>,
    pub oauth_states: Arc<dyn OAuthStateRepository>,
    pub services: Arc<dyn ServiceRepository>,
    pub consultations: Arc<dyn ConsultationRepository>,
    pub payments: Arc<dyn PaymentRepository>,
    pub webhook_inbox: Arc<dyn WebhookInbox>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub users: Arc<dyn UserRepository>,
    /// The e-mail outbox.
    pub outbox: Arc<dyn OutboxRepository>,
    /// Sends the outbox's e-mail; without one, messages stay queued (and visible).
    pub mailer: Option<Arc<dyn Mailer>>,
    pub audit: Arc<dyn AuditLog>,
    pub gateway: Arc<dyn PaymentGateway>,
    /// Turns receipts and credit notes into PDF files.
    pub renderer: Arc<dyn DocumentRenderer>,
    pub connect: Arc<dyn ConnectOnboarding>,
    pub webhook_verifier: Arc<dyn WebhookVerifier>,
    /// Present only in sandbox mode.
    pub sandbox: Option<Arc<dyn SandboxControl>>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGenerator>,
    pub secrets: Arc<dyn SecretGenerator>,
    /// Derives pay links (kept as hashes only) from the server's key.
    pub pay_links: Arc<dyn PayLinkSigner>,
    /// Signs passes to the video room; without one, the practitioner calls the
    /// patient and no pass is issued.
    pub passes: Option<Arc<dyn PassSigner>>,
    /// Told about every payment status change (e.g. metrics); optional.
    pub observer: Option<Arc<dyn PaymentObserver>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("sandbox", &self.sandbox.is_some())
            .finish_non_exhaustive()
    }
}

/// All use cases, grouped by who uses them. Cheap to clone.
#[derive(Clone)]
pub struct Billing {
    pub connect: ConnectService,
    pub catalogue: CatalogueService,
    pub scheduling: SchedulingService,
    pub patients: PatientService,
    /// The consultation's day for the practice: start, pass, cancel, reschedule,
    /// no-show.
    pub day: DayService,
    pub payments: PaymentService,
    pub reporting: ReportingService,
    pub webhooks: WebhookService,
    /// The background jobs (holds placed and renewed, reconciliation): run by the
    /// server periodically, by `consultpay reconcile`, and by the sandbox clock.
    pub reconcile: ReconcileService,
    pub staff: StaffService,
    /// Receipts and credit notes as files.
    pub documents: DocumentService,
    /// E-mail: delivery (a job), the staff's view, pay links sent again.
    pub outbox: OutboxService,
    /// Present only in sandbox mode.
    pub sandbox: Option<SandboxService>,
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

    pub fn new(deps: Deps, config: BillingConfig) -> Self {
        let ledger = Ledger {
            payments: deps.payments.clone(),
            consultations: deps.consultations.clone(),
            practitioners: deps.practitioners.clone(),
            ids: deps.ids.clone(),
            gateway: deps.gateway.clone(),
            clock: deps.clock.clone(),
            observer: deps.observer.clone(),
        };
        let connect = ConnectService {
            practitioners: deps.practitioners.clone(),
            oauth_states: deps.oauth_states.clone(),
            payments: deps.payments.clone(),
            audit: deps.audit.clone(),
            connect: deps.connect.clone(),
            clock: deps.clock.clone(),
            secrets: deps.secrets.clone(),
            config: config.clone(),
        };
        let webhooks = WebhookService {
            verifier: deps.webhook_verifier.clone(),
            inbox: deps.webhook_inbox.clone(),
            connect: connect.clone(),
            ledger: ledger.clone(),
        };
        let reconcile = ReconcileService {
            holds: HoldService {
                consultations: deps.consultations.clone(),
                practitioners: deps.practitioners.clone(),
                ledger: ledger.clone(),
                config: config.clone(),
            },
            ledger: ledger.clone(),
            outbox: deps.outbox.clone(),
            config: config.clone(),
        };
        let documents = DocumentService::new(deps.renderer.clone());
        let payments = PaymentService {
            consultations: deps.consultations.clone(),
            idempotency: deps.idempotency.clone(),
            ledger: ledger.clone(),
        };
        let outbox = OutboxService {
            outbox: deps.outbox.clone(),
            consultations: deps.consultations.clone(),
            practitioners: deps.practitioners.clone(),
            payments: deps.payments.clone(),
            documents: documents.clone(),
            links: deps.pay_links.clone(),
            mailer: deps.mailer.clone(),
            clock: deps.clock.clone(),
            ids: deps.ids.clone(),
            config: config.clone(),
        };
        Billing {
            catalogue: CatalogueService {
                practitioners: deps.practitioners.clone(),
                services: deps.services.clone(),
                clock: deps.clock.clone(),
                ids: deps.ids.clone(),
            },
            scheduling: SchedulingService {
                practitioners: deps.practitioners.clone(),
                services: deps.services.clone(),
                consultations: deps.consultations.clone(),
                idempotency: deps.idempotency.clone(),
                clock: deps.clock.clone(),
                ids: deps.ids.clone(),
                links: deps.pay_links.clone(),
                config: config.clone(),
            },
            patients: PatientService {
                consultations: deps.consultations.clone(),
                practitioners: deps.practitioners.clone(),
                ledger: ledger.clone(),
                payments: payments.clone(),
                passes: deps.passes.clone(),
                config: config.clone(),
            },
            day: DayService {
                consultations: deps.consultations.clone(),
                practitioners: deps.practitioners.clone(),
                payments: payments.clone(),
                passes: deps.passes.clone(),
                config: config.clone(),
            },
            payments,
            reporting: ReportingService {
                audit: deps.audit.clone(),
                ledger: ledger.clone(),
                config: config.clone(),
            },
            reconcile: reconcile.clone(),
            staff: StaffService::new(
                deps.users.clone(),
                deps.clock.clone(),
                deps.ids.clone(),
                deps.secrets.clone(),
                config.clone(),
            ),
            outbox: outbox.clone(),
            documents,
            sandbox: deps.sandbox.map(|sandbox| SandboxService {
                sandbox,
                webhooks: webhooks.clone(),
                jobs: reconcile,
                outbox: outbox.clone(),
            }),
            connect,
            webhooks,
            config,
            clock: deps.clock,
        }
    }
}
