//! A consultation validated end to end on the in-memory store and the fake gateway:
//! a practitioner has linked Stripe and scheduled a consultation capped at 25,00 €,
//! the patient's card is held, and the act is validated at 18,00 €: only that is
//! captured. Then Stripe captures another but its answer is lost on the way back: the
//! practitioner retries and the same idempotency key makes it one capture.
//!
//! `cargo run -p billing-core --features testing --example validate_in_memory`
//! (`billing_core::testing::Practice` shows how the kit is wired.)

use billing_core::PaymentStatus;
use billing_core::money::AmountInput;
use billing_core::testing::{Op, Practice, PracticeError, Script, block_on};

fn main() -> Result<(), PracticeError> {
    block_on(async {
        let practice = Practice::open().await?;
        let (payments, dr) = (&practice.billing.payments, &practice.dr);

        let held = practice.held_consultation("25,00").await?;
        let consultation = held.record.consultation.id;
        let access = practice
            .billing
            .patients
            .access(held.pay_token.expose())
            .await?;
        assert!(access.can_enter, "the hold opens the waiting room");
        let payment = payments
            .validate(dr, consultation, &AmountInput::parse("18,00", None)?)
            .await?;
        assert_eq!(payment.status(), PaymentStatus::Captured);
        let fee = payment.fee().map(|f| f.amount.to_string());
        println!(
            "captured {} of a {} hold, Stripe's fee {}",
            payment
                .captured()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            payment.amount(),
            fee.as_deref().unwrap_or("unknown"),
        );
        assert_eq!(fee.as_deref(), Some("0.50 EUR"));

        let second = practice.held_consultation("25,00").await?;
        let consultation = second.record.consultation.id;
        practice.gateway.script(Op::Capture, Script::LostAnswer);
        let amount = AmountInput::parse("20,00", None)?;
        let lost = payments.validate(dr, consultation, &amount).await;
        match &lost {
            Ok(_) => return Err("the answer was lost: the validation cannot succeed".into()),
            Err(e) => println!("first attempt: {e}"),
        }
        let retried = payments.validate(dr, consultation, &amount).await?;
        assert_eq!(retried.status(), PaymentStatus::Captured);
        let captures: Vec<_> = practice
            .gateway
            .calls()
            .into_iter()
            .filter(|c| c.op == Op::Capture)
            .collect();
        assert_eq!(
            captures.len(),
            3,
            "one capture, then the lost one and its retry"
        );
        assert_eq!(captures[1].key, captures[2].key, "the retry reuses the key");
        println!(
            "retried: {} captured once",
            retried
                .captured()
                .map(|m| m.to_string())
                .unwrap_or_default()
        );
        Ok(())
    })
}
