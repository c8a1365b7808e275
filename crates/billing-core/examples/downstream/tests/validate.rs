//! The clinic's wiring of the act's validation, on billing-core's test kit: a practice
//! whose webhook inbox and idempotency keys are the clinic's own adapter schedules and
//! holds a consultation; the act is then validated and refunded through
//! `clinic_billing::validation`, which was given only its ports.

use std::sync::Arc;

use billing_core::consultation::service::{PaymentChoice, ScheduleRequest};
use billing_core::money::AmountInput;
use billing_core::testing::{Op, Practice, block_on};
use billing_core::{Lang, PaymentStatus};
use clinic_billing::{KvKeys, MemoryKv, ValidationPorts, validation};

fn amount(text: &str) -> AmountInput {
    AmountInput::parse(text, None).expect("a well-formed amount")
}

#[test]
fn the_clinic_validates_an_act_and_refunds_once_through_its_own_keys() {
    block_on(async {
        let keys = Arc::new(KvKeys::new(MemoryKv::default()));
        let practice =
            Practice::open_with(|b| b.webhook_inbox(keys.clone()).idempotency(keys.clone()))
                .await
                .unwrap();
        let clinic = validation(ValidationPorts {
            consultations: practice.store.clone(),
            payments: practice.store.clone(),
            practitioners: practice.store.clone(),
            idempotency: keys.clone(),
            gateway: practice.gateway.clone(),
            ids: practice.ids.clone(),
            clock: practice.clock.clone(),
        });
        let dr = &practice.dr;

        // Scheduled twice with one client key: one consultation (the clinic's keys).
        let request = ScheduleRequest {
            practitioner: practice.practitioner,
            patient_name: "M. Petit".into(),
            patient_email: None,
            starts_at: billing_core::testing::build::t0()
                + billing_core::chrono::Duration::hours(3),
            payment: PaymentChoice::Online {
                amount: Some(amount("25,00")),
                service: None,
            },
            patient_lang: Lang::En,
        };
        let scheduling = &practice.billing.scheduling;
        let first = scheduling
            .schedule(dr, &request, Some("k-1"))
            .await
            .unwrap();
        let again = scheduling
            .schedule(dr, &request, Some("k-1"))
            .await
            .unwrap();
        assert_eq!(again.record.consultation.id, first.record.consultation.id);

        // A consultation held by its patient (the hold's webhook goes through the
        // clinic's inbox), validated through the clinic's own wiring.
        let held = practice.held_consultation("25,00").await.unwrap();
        let consultation = held.record.consultation.id;
        let validated = clinic
            .validate(dr, consultation, &amount("20,00"))
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
                .refund(dr, validated.id(), &amount("5,00"), Some("refund-1"))
                .await
                .unwrap();
            assert_eq!(refunded.status(), PaymentStatus::PartiallyRefunded);
        }
        let refunds = practice
            .gateway
            .calls()
            .iter()
            .filter(|c| c.op == Op::Refund)
            .count();
        assert_eq!(refunds, 1);
    });
}
