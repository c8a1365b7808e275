//! The clinic's wiring of the act's validation, on billing-core's test kit: the
//! consultation is scheduled and held through billing-core's own services (their
//! webhook inbox and idempotency keys in the clinic's store), then validated and
//! refunded through `clinic_billing::validation`, which was given only its ports.

use std::sync::Arc;

use billing_core::chrono::Duration;
use billing_core::consultation::service::{PaymentChoice, ScheduleRequest};
use billing_core::ids::PractitionerId;
use billing_core::money::AmountInput;
use billing_core::system::Clock as _;
use billing_core::testing::{
    FakeGateway, FixedClock, MemoryStore, Op, OpenPayLinks, SequentialIds, SequentialSecrets,
    TextRenderer, block_on, build,
};
use billing_core::{Billing, BillingConfig, Lang, PaymentStatus};
use clinic_billing::{KvKeys, MemoryKv, ValidationPorts, validation};

fn amount(text: &str) -> AmountInput {
    AmountInput::parse(text, None).expect("a well-formed amount")
}

#[test]
fn the_clinic_validates_an_act_and_refunds_once_through_its_own_keys() {
    let clock = Arc::new(FixedClock::at(build::t0()));
    let store = Arc::new(MemoryStore::new());
    let keys = Arc::new(KvKeys::new(MemoryKv::default()));
    let gateway = Arc::new(FakeGateway::new(clock.clone()));
    let ids = Arc::new(SequentialIds::with_prefix(7));
    let billing = Billing::builder(BillingConfig::new("https://clinic.example.org"))
        .storage(store.clone())
        .webhook_inbox(keys.clone())
        .idempotency(keys.clone())
        .payment_gateway(gateway.clone())
        .connect(gateway.clone())
        .webhook_verifier(gateway.clone())
        .renderer(Arc::new(TextRenderer))
        .ids(ids.clone())
        .secrets(Arc::new(SequentialSecrets::default()))
        .pay_links(Arc::new(OpenPayLinks))
        .clock(clock.clone())
        .build()
        .expect("every port is given");
    let clinic = validation(ValidationPorts {
        consultations: store.clone(),
        payments: store.clone(),
        practitioners: store,
        idempotency: keys,
        gateway: gateway.clone(),
        ids,
        clock: clock.clone(),
    });

    block_on(async {
        let created = billing
            .staff
            .add_practitioner("Dr Roux", None)
            .await
            .unwrap();
        let dr = billing
            .staff
            .authenticate(Some(created.token.expose()))
            .await
            .unwrap();
        let id = PractitionerId::from_uuid(created.id.as_uuid());
        let consent = billing.connect.start_oauth(&dr, id).await.unwrap();
        billing
            .connect
            .complete_oauth(&gateway.consent(&consent), &dr)
            .await
            .unwrap();
        let request = ScheduleRequest {
            practitioner: id,
            patient_name: "M. Petit".into(),
            patient_email: None,
            starts_at: clock.now() + Duration::hours(3),
            payment: PaymentChoice::Online {
                amount: Some(amount("25,00")),
                service: None,
            },
            patient_lang: Lang::En,
        };
        // Scheduled twice with one client key: one consultation (the clinic's keys).
        let scheduled = billing
            .scheduling
            .schedule(&dr, &request, Some("k-1"))
            .await
            .unwrap();
        let again = billing
            .scheduling
            .schedule(&dr, &request, Some("k-1"))
            .await
            .unwrap();
        assert_eq!(
            again.record.consultation.id,
            scheduled.record.consultation.id
        );

        let token = scheduled.pay_token.expose();
        let checkout = billing
            .patients
            .start_checkout(token, Lang::En)
            .await
            .unwrap();
        let webhook = gateway.authorize(&checkout.intent.unwrap()).unwrap();
        // Delivered twice, applied once (the clinic's inbox).
        for _ in 0..2 {
            billing
                .webhooks
                .receive(Some(&webhook.signature), &webhook.body)
                .await
                .unwrap();
        }

        let consultation = scheduled.record.consultation.id;
        let validated = clinic
            .validate(&dr, consultation, &amount("20,00"))
            .await
            .unwrap();
        assert_eq!(validated.status(), PaymentStatus::Captured);
        assert_eq!(
            validated.captured().map(|m| m.to_string()).as_deref(),
            Some("20.00 EUR")
        );

        // A refund sent twice with one key refunds once.
        for _ in 0..2 {
            let refunded = clinic
                .refund(&dr, validated.id(), &amount("5,00"), Some("refund-1"))
                .await
                .unwrap();
            assert_eq!(refunded.status(), PaymentStatus::PartiallyRefunded);
        }
        let refunds = gateway
            .calls()
            .iter()
            .filter(|c| c.op == Op::Refund)
            .count();
        assert_eq!(refunds, 1);
    });
}
