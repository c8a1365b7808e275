//! A consultation validated end to end on the in-memory store and the fake gateway:
//! a practitioner links Stripe, schedules a consultation capped at 25,00 €, the
//! patient's card is held, and the act is validated at 18,00 €: only that is captured.
//! Then the same with Stripe's answer lost on the way back: the retry captures once.
//!
//! `cargo run -p billing-core --features testing --example validate_in_memory`

use std::sync::Arc;

use billing_core::chrono::Duration;
use billing_core::consultation::service::{PaymentChoice, ScheduleRequest, Scheduled};
use billing_core::money::AmountInput;
use billing_core::system::Clock as _;
use billing_core::testing::{
    FakeGateway, FixedClock, MemoryStore, Op, OpenPayLinks, Script, SequentialIds,
    SequentialSecrets, TextRenderer, build,
};
use billing_core::{Billing, BillingConfig, Lang, PaymentStatus};

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let clock = Arc::new(FixedClock::at(build::t0()));
    let store = Arc::new(MemoryStore::new());
    let gateway = Arc::new(FakeGateway::new(clock.clone()));
    let billing = Billing::builder(BillingConfig::new("https://pay.example.org"))
        .storage(store)
        .payment_gateway(gateway.clone())
        .connect(gateway.clone())
        .webhook_verifier(gateway.clone())
        .renderer(Arc::new(TextRenderer))
        .ids(Arc::new(SequentialIds::default()))
        .secrets(Arc::new(SequentialSecrets::default()))
        .pay_links(Arc::new(OpenPayLinks))
        .clock(clock.clone())
        .build()?;

    // The operator adds a practitioner, who signs in with the token shown once.
    let created = billing
        .staff
        .add_practitioner("Dr Estival", Some("Europe/Paris"))
        .await?;
    let dr = billing
        .staff
        .authenticate(Some(created.token.expose()))
        .await?;
    let practitioner = billing_core::ids::PractitionerId::from_uuid(created.id.as_uuid());

    // They link their own Stripe account: Connect OAuth, consent on the gateway's page.
    let consent_page = billing.connect.start_oauth(&dr, practitioner).await?;
    let callback = gateway.consent(&consent_page);
    billing.connect.complete_oauth(&callback, &dr).await?;

    // A consultation the day after tomorrow, at most 25,00 €.
    let schedule = |name: &str| ScheduleRequest {
        practitioner,
        patient_name: name.into(),
        patient_email: None,
        starts_at: clock.now() + Duration::days(2),
        payment: PaymentChoice::Online {
            amount: Some(AmountInput::parse("25,00", None).expect("a well-formed amount")),
            service: None,
        },
        patient_lang: Lang::Fr,
    };
    let first = billing
        .scheduling
        .schedule(&dr, &schedule("M. Martin"), None)
        .await?;
    hold_the_card(&billing, &gateway, &first).await?;

    // After the session: the act is validated at 18,00 €, the rest of the hold released.
    let consultation = first.record.consultation.id;
    let payment = billing
        .payments
        .validate(&dr, consultation, &AmountInput::parse("18,00", None)?)
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

    // Another one, where Stripe captures but its answer is lost: the practitioner sees
    // an error, retries, and the same idempotency key makes it one capture.
    let second = billing
        .scheduling
        .schedule(&dr, &schedule("Mme Durand"), None)
        .await?;
    hold_the_card(&billing, &gateway, &second).await?;
    gateway.script(Op::Capture, Script::LostAnswer);
    let amount = AmountInput::parse("20,00", None)?;
    let consultation = second.record.consultation.id;
    let lost = billing.payments.validate(&dr, consultation, &amount).await;
    println!(
        "first attempt: {}",
        lost.as_ref()
            .map(|_| "ok".to_owned())
            .unwrap_or_else(|e| e.to_string())
    );
    assert!(lost.is_err(), "the answer was lost");
    let retried = billing
        .payments
        .validate(&dr, consultation, &amount)
        .await?;
    assert_eq!(retried.status(), PaymentStatus::Captured);
    let captures: Vec<_> = gateway
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
}

/// The patient opens the pay link and authorises the card; Stripe's webhook tells
/// the server, and the gate to the waiting room opens.
async fn hold_the_card(
    billing: &Billing,
    gateway: &FakeGateway,
    scheduled: &Scheduled,
) -> Result<(), Error> {
    let token = scheduled.pay_token.expose();
    let start = billing.patients.start_checkout(token, Lang::Fr).await?;
    let intent = start.intent.ok_or("a hold's checkout has an intent")?;
    let webhook = gateway.authorize(&intent)?;
    billing
        .webhooks
        .receive(Some(&webhook.signature), &webhook.body)
        .await?;
    assert!(billing.patients.access(token).await?.can_enter);
    Ok(())
}
