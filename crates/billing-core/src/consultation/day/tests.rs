//! The consultation's day against mocked ports: who gets a pass and when, what a
//! cancellation or a no-show writes, and who may do it.

use super::*;
use crate::consultation::policy::{CancellationPolicy, MissedFee};
use crate::payment::model::Lang;
use crate::test_support::*;
use crate::video::{MockPassSigner, RoomName};
use chrono::Duration;

/// 25.00 EUR held, the patient having accepted "free until 24 h, then `fee`".
fn held_with_fee(fee: MissedFee) -> Payment {
    let policy = CancellationPolicy::new(24, fee).unwrap();
    authorized().with_terms(
        AcceptedTerms::of(&policy, eur(2500), Lang::Fr, now()),
        now(),
    )
}

/// A signer that records what it signed.
fn signer() -> MockPassSigner {
    let mut s = MockPassSigner::new();
    s.expect_room()
        .returning(|_| RoomName::parse("cp-room").unwrap());
    s.expect_sign().returning(|c| {
        Ok(format!(
            "jwt.{}.{}.{}",
            c.display_name,
            c.moderator,
            c.expires_at.timestamp()
        ))
    });
    s
}

fn at(m: &mut Mocks, offset: Duration) {
    // The consultation starts a day after `now()`.
    m.now = now() + Duration::days(1) + offset;
}

#[tokio::test]
async fn a_pass_only_once_paid_within_the_window_and_not_after_the_act() {
    type Case = (
        &'static str,
        Option<Payment>,
        Duration,
        Result<(), &'static str>,
    );
    let table: Vec<Case> = vec![
        (
            "not paid",
            Some(incomplete()),
            Duration::zero(),
            Err("payment_required"),
        ),
        (
            "held, early",
            Some(authorized()),
            -Duration::minutes(16),
            Err("too_early"),
        ),
        (
            "held, window open",
            Some(authorized()),
            -Duration::minutes(15),
            Ok(()),
        ),
        (
            "held, late",
            Some(authorized()),
            Duration::minutes(59),
            Ok(()),
        ),
        (
            "held, over",
            Some(authorized()),
            Duration::minutes(60),
            Err("consultation_over"),
        ),
        (
            "act validated",
            Some(captured(1800)),
            Duration::zero(),
            Err("consultation_over"),
        ),
        (
            "hold released",
            Some(released()),
            Duration::zero(),
            Err("payment_required"),
        ),
        ("no payment needed", None, Duration::zero(), Ok(())),
    ];
    for (case, payment, offset, expected) in table {
        let mut m = Mocks::new();
        at(&mut m, offset);
        m.consultation_is(&record(payment));
        m.passes = Some(signer());
        let got = m.build().patients.pass(pay_token().expose()).await;
        match (got, expected) {
            (Ok(pass), Ok(())) => {
                let end = (now() + Duration::days(1) + Duration::hours(1)).timestamp();
                assert_eq!(pass.jwt, format!("jwt.M. Martin.false.{end}"), "{case}");
                assert_eq!(pass.room.as_str(), "cp-room");
                assert_eq!(pass.url, None, "no platform URL configured");
            }
            (Err(e), Err(code)) => assert_eq!(e.code(), code, "{case}"),
            (got, _) => panic!("{case}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn no_pass_for_a_cancelled_or_missed_consultation_nor_without_a_platform() {
    let mut m = Mocks::new();
    at(&mut m, Duration::zero());
    m.consultation_is(&record(Some(authorized())));
    let e = m
        .build()
        .patients
        .pass(pay_token().expose())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "video_not_configured");

    let mut r = record(Some(authorized()));
    r.consultation.status = ConsultationStatus::Cancelled(Cancellation {
        by: CancelledBy::Practice,
        at: now(),
        late: false,
    });
    let mut m = Mocks::new();
    at(&mut m, Duration::zero());
    m.consultation_is(&r);
    m.passes = Some(MockPassSigner::new());
    let e = m
        .build()
        .patients
        .pass(pay_token().expose())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "consultation_cancelled");
}

/// Expects one conditional write of the day, checked by `check`.
fn expect_day(m: &mut Mocks, check: impl Fn(&Consultation, &ChangeLog) -> bool + Send + 'static) {
    m.consultations
        .expect_update_day()
        .withf(move |next, _, log| check(next, log))
        .times(1)
        .returning(|_, _, _| Ok(()));
}

#[tokio::test]
async fn a_late_cancellation_is_recorded_for_the_practitioner_to_decide() {
    let mut m = Mocks::new();
    at(&mut m, -Duration::hours(3));
    m.consultation_is(&record(Some(held_with_fee(MissedFee::Fixed(eur(1500))))));
    m.practitioner_is(&practitioner());
    expect_day(&mut m, |next, log| {
        matches!(
            next.status,
            ConsultationStatus::Cancelled(Cancellation {
                by: CancelledBy::Patient,
                late: true,
                ..
            })
        ) && log.history.len() == 1
            && log.history[0].event == "cancelled_late"
            && log.history[0].amount == Some(eur(1500))
            // The patient gave no address: nothing to send.
            && log.messages.is_empty()
    });
    // Nothing is released: the gateway and the payment are not touched.
    m.build()
        .patients
        .cancel(pay_token().expose())
        .await
        .unwrap();
}

#[tokio::test]
async fn cancelling_closes_at_the_start_and_never_undoes_a_validated_act() {
    let mut m = Mocks::new();
    at(&mut m, Duration::zero());
    m.consultation_is(&record(Some(authorized())));
    let e = m
        .build()
        .patients
        .cancel(pay_token().expose())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "cancellation_closed");

    let mut m = Mocks::new();
    at(&mut m, -Duration::hours(2));
    m.consultation_is(&record(Some(captured(2500))));
    let e = m
        .build()
        .patients
        .cancel(pay_token().expose())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "already_settled");
}

#[tokio::test]
async fn the_day_is_the_practitioners_secretaries_cancel_and_reschedule_only() {
    for (what, expected) in [
        ("start", "forbidden"),
        ("pass", "forbidden"),
        ("no_show", "forbidden"),
        ("fee", "forbidden"),
    ] {
        let mut m = Mocks::new();
        at(&mut m, Duration::zero());
        m.consultation_is(&record(Some(authorized())));
        let day = m.build().day;
        let sec = secretary();
        let e = match what {
            "start" => day.start(&sec, CONSULTATION).await.map(|_| ()),
            "pass" => day.pass(&sec, CONSULTATION).await.map(|_| ()),
            "no_show" => day.no_show(&sec, CONSULTATION).await.map(|_| ()),
            _ => day
                .charge_cancellation_fee(&sec, CONSULTATION)
                .await
                .map(|_| ()),
        }
        .unwrap_err();
        assert_eq!(e.code(), expected, "{what}");
    }
    // Another practitioner's consultation does not exist for them.
    let mut m = Mocks::new();
    m.consultation_is(&record(Some(authorized())));
    let e = m
        .build()
        .day
        .cancel(&other_dr(), CONSULTATION)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
}

#[tokio::test]
async fn a_secretary_reschedules_and_learns_whether_the_hold_still_covers() {
    let table = [
        ("a day later", Duration::days(1), HoldCoverage::Covers),
        // The hold lapses six days from now; a week later is beyond it.
        ("a week later", Duration::days(7), HoldCoverage::Lapses),
    ];
    for (case, later, coverage) in table {
        let mut m = Mocks::new();
        let mut with_address = record(Some(authorized()));
        with_address.consultation.patient.email =
            Some(crate::contact::EmailAddress::parse("martin@example.org").unwrap());
        m.consultation_is(&with_address);
        m.practitioner_is(&practitioner());
        let new_start = now() + Duration::days(1) + later;
        expect_day(&mut m, move |next, log| {
            next.starts_at == new_start
                && log.history[0].event == "rescheduled"
                // The patient is told, with the link (filled in when sent).
                && log.messages.len() == 1
                && log.messages[0].body.contains(crate::outbox::PAY_URL)
                && log.messages[0].dedupe == format!("rescheduled:{CONSULTATION}:{}", new_start.timestamp())
        });
        let done = m
            .build()
            .day
            .reschedule(&secretary(), CONSULTATION, new_start)
            .await
            .unwrap();
        assert_eq!(done.hold, coverage, "{case}");
        assert_eq!(done.record.consultation.starts_at, new_start);
    }
}

#[tokio::test]
async fn the_patient_is_marked_absent_only_from_the_start() {
    let mut m = Mocks::new();
    at(&mut m, -Duration::minutes(1));
    m.consultation_is(&record(Some(held_with_fee(MissedFee::FullHold))));
    let e = m
        .build()
        .day
        .no_show(&dr(), CONSULTATION)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "too_early");
}

#[test]
fn the_fee_is_what_the_patient_accepted_never_above_what_is_held() {
    assert_eq!(
        missed_fee(&held_with_fee(MissedFee::FullHold)),
        Some(eur(2500))
    );
    assert_eq!(
        missed_fee(&held_with_fee(MissedFee::Fixed(eur(3000)))),
        Some(eur(2500))
    );
    assert_eq!(missed_fee(&held_with_fee(MissedFee::None)), None);
    assert_eq!(missed_fee(&authorized()), None, "nothing was accepted");
    assert_eq!(missed_fee(&incomplete()), None, "nothing is held");
}

#[tokio::test]
async fn a_cancelled_or_missed_consultation_is_never_validated_as_an_act() {
    let late = ConsultationStatus::Cancelled(Cancellation {
        by: CancelledBy::Patient,
        at: now(),
        late: true,
    });
    for (status, code) in [
        (late, "consultation_cancelled"),
        (
            ConsultationStatus::NoShow { at: now() },
            "consultation_over",
        ),
    ] {
        let mut r = record(Some(held_with_fee(MissedFee::Fixed(eur(1500)))));
        r.consultation.status = status;
        let mut m = Mocks::new();
        m.consultation_is(&r);
        let amount = crate::money::AmountInput::parse("25.00", None).unwrap();
        let e = m
            .build()
            .payments
            .validate(&dr(), CONSULTATION, &amount)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code);
    }
}

#[tokio::test]
async fn once_its_time_has_come_a_secretary_no_longer_cancels_it() {
    let mut m = Mocks::new();
    at(&mut m, Duration::minutes(5));
    m.consultation_is(&record(Some(authorized())));
    let e = m
        .build()
        .day
        .cancel(&secretary(), CONSULTATION)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        "forbidden",
        "releasing is the practitioner's call then"
    );
}

#[test]
fn a_practice_that_moves_the_consultation_into_the_fee_window_leaves_cancelling_free() {
    let mut r = record(Some(held_with_fee(MissedFee::FullHold)));
    let start = r.consultation.starts_at;
    let three_hours_before = start - Duration::hours(3);
    assert!(!cancelling_is_free(&r, three_hours_before));
    // Moved (after the patient accepted) to a start already inside the 24 h window.
    r.consultation.rescheduled_at = Some(start - Duration::hours(5));
    assert!(cancelling_is_free(&r, three_hours_before));
    // Moved with more notice than the policy gives: the policy applies.
    r.consultation.rescheduled_at = Some(start - Duration::hours(30));
    assert!(!cancelling_is_free(&r, three_hours_before));
}

#[test]
fn a_consultation_is_startable_only_scheduled_unvalidated_and_in_its_window() {
    let start = now() + Duration::days(1);
    let cfg = config();
    let held = record(Some(authorized()));
    assert!(!startable(&held, &cfg, start - Duration::minutes(16)));
    assert!(startable(&held, &cfg, start - Duration::minutes(15)));
    assert!(!startable(&held, &cfg, start + Duration::minutes(60)));
    assert!(!startable(&record(Some(captured(1800))), &cfg, start));
    let mut missed = held.clone();
    missed.consultation.status = ConsultationStatus::NoShow { at: start };
    assert!(!startable(&missed, &cfg, start));
}
