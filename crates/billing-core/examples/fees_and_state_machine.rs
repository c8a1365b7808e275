//! Fees and the authorise-then-capture state machine, with nothing but billing-core:
//! `cargo run -p billing-core --example fees_and_state_machine`.

use billing_core::chrono::Utc;
use billing_core::fees::FeeSchedule;
use billing_core::ids::{ConsultationId, PaymentId, PractitionerId};
use billing_core::payment::model::{Applied, Payment, PaymentEvent, TransitionError};
use billing_core::uuid::Uuid;
use billing_core::{Currency, Money, PaymentStatus};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let eur = |text: &str| Money::parse(text, Currency::Eur);
    // Stripe's fee on 25,00 € (1.4 % + 0,25 €, rounded half-up to the cent).
    let schedule = FeeSchedule::default_for(Currency::Eur);
    let estimate = schedule.estimate(&eur("25,00")?)?;
    println!("25.00 EUR: fee {}, net {}", estimate.fee, estimate.net);

    // A hold of 25,00 €, then the act validated at 18,00 €: only that is captured.
    let now = Utc::now();
    let id = |n| Uuid::from_u128(n);
    let payment = Payment::new(
        PaymentId::from_uuid(id(1)),
        ConsultationId::from_uuid(id(2)),
        PractitionerId::from_uuid(id(3)),
        eur("25.00")?,
        schedule,
        now,
    )?;
    let step = |p: &Payment, event: PaymentEvent| -> Result<Payment, TransitionError> {
        match p.apply(&event, now)? {
            Applied::Changed { payment, .. } => Ok(*payment),
            _ => Ok(p.clone()),
        }
    };
    let held = step(
        &payment,
        PaymentEvent::HoldPlaced {
            amount: eur("25.00")?,
            capture_before: None,
        },
    )?;
    assert_eq!(held.status(), PaymentStatus::Authorized);
    // Capturing more than the hold is refused by the state machine itself.
    match held.apply(
        &PaymentEvent::Captured {
            amount: eur("30.00")?,
            fee: None,
        },
        now,
    ) {
        Err(refused) => println!("capture 30.00 of a 25.00 hold: {refused}"),
        Ok(_) => return Err("a capture above the hold was accepted".into()),
    }
    let captured = step(
        &held,
        PaymentEvent::Captured {
            amount: eur("18.00")?,
            fee: None,
        },
    )?;
    println!(
        "captured {} of {} ({:?}): released {}, fee {}, net {}",
        captured.captured().unwrap_or(eur("0")?),
        held.held(),
        captured.status(),
        captured.released_remainder()?.unwrap_or(eur("0")?),
        captured.fee().map(|f| f.amount).unwrap_or(eur("0")?),
        captured.net()?,
    );
    Ok(())
}
