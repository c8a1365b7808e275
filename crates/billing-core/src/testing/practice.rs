//! [`Practice`]: every use case wired on the test kit, with a practitioner whose Stripe
//! account is linked, ready to schedule and hold consultations.

use std::sync::Arc;

use chrono::Duration;

use super::{
    FakeGateway, FastHasher, FixedClock, MemoryStore, OpenPayLinks, SequentialIds,
    SequentialSecrets, TextRenderer, build,
};
use crate::access::Actor;
use crate::billing::{Billing, BillingBuilder};
use crate::config::BillingConfig;
use crate::consultation::service::{PaymentChoice, ScheduleRequest, Scheduled};

/// What can stop a [`Practice`] from opening or holding a consultation: a use case's
/// error, or a port missing from a customised builder.
pub type PracticeError = Box<dyn std::error::Error + Send + Sync>;
use crate::ids::PractitionerId;
use crate::money::AmountInput;
use crate::payment::model::Lang;
use crate::system::Clock as _;

/// A practice on the test kit: [`Billing`] on a [`MemoryStore`] and a [`FakeGateway`],
/// at [`build::t0`] on a [`FixedClock`], with Dr Estival signed in (`dr`) and her
/// Stripe account linked through Connect.
///
/// ```
/// use billing_core::money::AmountInput;
/// use billing_core::testing::{Practice, block_on};
/// use billing_core::PaymentStatus;
///
/// block_on(async {
///     let practice = Practice::open().await?;
///     let held = practice.held_consultation("25,00").await?;
///     // After the session the act is validated at 18,00 €: only that is captured.
///     let payment = practice
///         .billing
///         .payments
///         .validate(&practice.dr, held.record.consultation.id, &AmountInput::parse("18,00", None)?)
///         .await?;
///     assert_eq!(payment.status(), PaymentStatus::Captured);
///     assert_eq!(payment.fee().map(|f| f.amount.to_string()).as_deref(), Some("0.50 EUR"));
///     Ok::<_, billing_core::testing::PracticeError>(())
/// })?;
/// # Ok::<_, billing_core::testing::PracticeError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Practice {
    /// Every use case.
    pub billing: Billing,
    /// The store behind every storage port (unless replaced with [`Practice::open_with`]).
    pub store: Arc<MemoryStore>,
    /// The processor: script it, play the patient, read its calls.
    pub gateway: Arc<FakeGateway>,
    /// The time every use case and the gateway read.
    pub clock: Arc<FixedClock>,
    /// The ids every use case makes.
    pub ids: Arc<SequentialIds>,
    /// Dr Estival.
    pub practitioner: PractitionerId,
    /// Dr Estival, signed in.
    pub dr: Actor,
}

impl Practice {
    /// The practice, wired on the test kit alone.
    pub async fn open() -> Result<Practice, PracticeError> {
        Practice::open_with(|builder| builder).await
    }

    /// The practice, with `customize` given the builder once every port of the test
    /// kit is set: replace a port with your own adapter there (a later setter
    /// overrides the kit's).
    pub async fn open_with(
        customize: impl FnOnce(BillingBuilder) -> BillingBuilder,
    ) -> Result<Practice, PracticeError> {
        let clock = Arc::new(FixedClock::at(build::t0()));
        let store = Arc::new(MemoryStore::new());
        let gateway = Arc::new(FakeGateway::new(clock.clone()));
        let ids = Arc::new(SequentialIds::default());
        let builder = Billing::builder(BillingConfig::new("https://pay.example.org"))
            .storage(store.clone())
            .payment_gateway(gateway.clone())
            .connect(gateway.clone())
            .webhook_verifier(gateway.clone())
            .renderer(Arc::new(TextRenderer))
            .ids(ids.clone())
            .secrets(Arc::new(SequentialSecrets::default()))
            .pay_links(Arc::new(OpenPayLinks))
            .passwords(Arc::new(FastHasher))
            .clock(clock.clone());
        let billing = customize(builder).build()?;
        let created = billing
            .staff
            .add_practitioner("Dr Estival", Some("Europe/Paris"))
            .await?;
        let dr = billing
            .staff
            .authenticate(Some(created.token.expose()))
            .await?;
        let practitioner = PractitionerId::from_uuid(created.id.as_uuid());
        let consent_page = billing.connect.start_oauth(&dr, practitioner).await?;
        billing
            .connect
            .complete_oauth(&gateway.consent(&consent_page), &dr)
            .await?;
        Ok(Practice {
            billing,
            store,
            gateway,
            clock,
            ids,
            practitioner,
            dr,
        })
    }

    /// A consultation the day after tomorrow capped at `cap` (e.g. `"25,00"`), whose
    /// patient opened the pay link and authorised the card: the hold is in place and
    /// the gate to the waiting room open.
    pub async fn held_consultation(&self, cap: &str) -> Result<Scheduled, PracticeError> {
        let request = ScheduleRequest {
            practitioner: self.practitioner,
            patient_name: "M. Martin".into(),
            patient_email: None,
            starts_at: self.clock.now() + Duration::days(2),
            payment: PaymentChoice::Online {
                amount: Some(AmountInput::parse(cap, None)?),
                service: None,
            },
            patient_lang: Lang::Fr,
        };
        let scheduled = self
            .billing
            .scheduling
            .schedule(&self.dr, &request, None)
            .await?;
        let token = scheduled.pay_token.expose();
        let checkout = self
            .billing
            .patients
            .start_checkout(token, Lang::Fr)
            .await?;
        let intent = checkout.intent.ok_or("a hold's checkout has an intent")?;
        let webhook = self.gateway.authorize(&intent)?;
        self.billing
            .webhooks
            .receive(Some(&webhook.signature), &webhook.body)
            .await?;
        Ok(scheduled)
    }
}
