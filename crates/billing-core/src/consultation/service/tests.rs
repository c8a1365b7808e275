//! Use-case tests of scheduling (C3) and the patient's side (C4), against mocks of
//! the ports.

use super::*;
use crate::gateway::{CheckoutMode, CheckoutStart, IntentSnapshot, IntentStatus};
use crate::ids::{CheckoutSessionId, PaymentIntentId, UserId};
use crate::money::{Currency, Money};
use crate::payment::model::PaymentEvent;
use crate::practitioner::model::{Service, StripeLink};
use crate::test_support::*;

fn request(payment: PaymentChoice) -> ScheduleRequest {
    ScheduleRequest {
        practitioner: DR,
        patient_name: "M. Martin".into(),
        patient_email: Some("martin@example.org".into()),
        starts_at: now() + Duration::days(1),
        payment,
        patient_lang: Lang::Fr,
    }
}

fn online(amount: Option<&str>, service: Option<ServiceId>) -> PaymentChoice {
    PaymentChoice::Online {
        amount: amount.map(|a| AmountInput::parse(a, None).unwrap()),
        service,
    }
}

/// `DR`, linked, charging 25.00 by default and at most 40.00.
fn practitioner_up_to_40() -> Practitioner {
    let mut p = practitioner();
    p.preferences = preferences(2500, 4000);
    p
}

fn creates(m: &mut Mocks, times: usize) {
    m.consultations
        .expect_create()
        .times(times)
        .returning(|_, _, _| Ok(()));
}

// ---- C3: scheduling ------------------------------------------------------------------

#[tokio::test]
async fn scheduling_online_payment_needs_an_account_that_can_take_charges() {
    let table = [
        ("never linked", StripeLink::Unlinked, "stripe_not_linked"),
        ("unlinked since", revoked(), "stripe_not_linked"),
        (
            "onboarding not finished",
            StripeLink::onboarding(account(), now()),
            "stripe_not_linked",
        ),
        (
            "charges disabled by Stripe",
            StripeLink::linked(account_snapshot(account(), false), now()),
            "charges_disabled",
        ),
    ];
    for (case, link, expected) in table {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner_with(DR, link));
        creates(&mut m, 0);
        let result = m
            .build()
            .scheduling
            .schedule(&dr(), &request(online(None, None)), None)
            .await;
        assert_eq!(code(result), expected, "{case}");
    }
}

/// (case, what was chosen, the service the repository has, the cap or the refusal)
type CapCase = (
    &'static str,
    PaymentChoice,
    Option<Service>,
    Result<Money, &'static str>,
);

#[tokio::test]
async fn the_cap_is_the_explicit_amount_else_the_service_price_else_the_default() {
    let table: Vec<CapCase> = vec![
        ("default", online(None, None), None, Ok(eur(2500))),
        ("explicit", online(Some("30,00"), None), None, Ok(eur(3000))),
        (
            "explicit wins over the service",
            online(Some("18"), Some(SERVICE)),
            Some(service(DR, 3500, true)),
            Ok(eur(1800)),
        ),
        (
            "service price",
            online(None, Some(SERVICE)),
            Some(service(DR, 3500, true)),
            Ok(eur(3500)),
        ),
        (
            "explicit above the maximum",
            online(Some("40.01"), None),
            None,
            Err("amount_above_maximum"),
        ),
        (
            "service priced above the maximum since",
            online(None, Some(SERVICE)),
            Some(service(DR, 4500, true)),
            Err("amount_above_maximum"),
        ),
        (
            "service no longer offered",
            online(None, Some(SERVICE)),
            Some(service(DR, 3000, false)),
            Err("validation_failed"),
        ),
        (
            "another practitioner's service",
            online(None, Some(SERVICE)),
            Some(service(OTHER_DR, 3000, true)),
            Err("not_found"),
        ),
        (
            "below the minimum charge",
            online(Some("0.49"), None),
            None,
            Err("below_minimum_charge"),
        ),
        (
            "explicit amount in dollars",
            PaymentChoice::Online {
                amount: Some(AmountInput::parse("30", Some(Currency::Usd)).unwrap()),
                service: None,
            },
            None,
            Err("currency_mismatch"),
        ),
    ];
    for (case, choice, svc, expected) in table {
        let service_name = svc
            .as_ref()
            .filter(|_| {
                matches!(
                    &choice,
                    PaymentChoice::Online {
                        service: Some(_),
                        ..
                    }
                )
            })
            .map(|s| s.name().clone());
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner_up_to_40());
        if let Some(s) = svc {
            m.services
                .expect_get()
                .withf(|id| *id == SERVICE)
                .returning(move |_| Ok(s.clone()));
        }
        let cap = expected.ok();
        m.consultations
            .expect_create()
            .withf(move |r, audit, messages| {
                r.consultation.payment_mode == PaymentMode::Online
                    && r.payment.as_ref().map(Payment::amount) == cap
                    && audit.action == AuditAction::Scheduled
                    && matches!(messages, [m] if m.kind == crate::outbox::MessageKind::PayLink
                        && m.to.as_str() == "martin@example.org"
                        && m.dedupe == format!("pay_link:{}:0", r.consultation.id))
            })
            .times(usize::from(cap.is_some()))
            .returning(|_, _, _| Ok(()));
        let result = m
            .build()
            .scheduling
            .schedule(&dr(), &request(choice), None)
            .await;
        match expected {
            Ok(amount) => {
                let record = result.unwrap().record;
                assert_eq!(record.consultation.service, service_name, "{case}");
                let payment = record.payment.unwrap();
                assert_eq!(payment.amount(), amount, "{case}");
                assert_eq!(payment.status(), PaymentStatus::Incomplete, "{case}");
            }
            Err(c) => assert_eq!(code(result), c, "{case}"),
        }
    }
}

#[tokio::test]
async fn a_consultation_without_online_payment_needs_no_stripe_link_and_opens_the_room() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    let link = derived_link(ConsultationId::from_uuid(generated_id(1)), 0);
    let token_hash = link.hash();
    m.consultations
        .expect_create()
        .withf(move |r, _, _| {
            r.payment.is_none()
                && r.consultation.payment_mode == PaymentMode::None
                && r.consultation.pay_token_hash == token_hash
                && r.consultation.pay_link_generation == 0
                && r.consultation.id == ConsultationId::from_uuid(generated_id(1))
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let scheduled = m
        .build()
        .scheduling
        .schedule(&dr(), &request(PaymentChoice::None), None)
        .await
        .unwrap();

    assert!(scheduled.record.can_enter());
    assert_eq!(scheduled.pay_token, link);
    assert_eq!(
        scheduled.pay_url,
        format!("https://pay.example.org/pay/{}", link.expose())
    );
}

/// (who, as whom, recorded as the creator or the refusal)
type SchedulerCase = (&'static str, Actor, Result<Option<UserId>, &'static str>);

#[tokio::test]
async fn a_practitioner_or_their_secretary_may_schedule_but_nobody_else() {
    let mut actors: Vec<SchedulerCase> = vec![
        (
            "the practitioner",
            dr(),
            Ok(Some(UserId::from_uuid(DR.as_uuid()))),
        ),
        ("their secretary", secretary(), Ok(Some(SECRETARY))),
        (
            "a secretary of several practitioners",
            secretary_of(&[OTHER_DR, DR]),
            Ok(Some(SECRETARY)),
        ),
    ];
    actors.extend(outsiders().into_iter().map(|(w, a, c)| (w, a, Err(c))));
    for (who, actor, expected) in actors {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner());
        let created_by = expected.ok().flatten();
        m.consultations
            .expect_create()
            .withf(move |r, _, _| r.consultation.created_by == created_by)
            .times(usize::from(expected.is_ok()))
            .returning(|_, _, _| Ok(()));
        let result = m
            .build()
            .scheduling
            .schedule(&actor, &request(online(None, None)), None)
            .await;
        match expected {
            Ok(_) => assert!(result.is_ok(), "{who}: {result:?}"),
            Err(c) => assert_eq!(code(result), c, "{who}"),
        }
    }
}

#[tokio::test]
async fn a_consultation_long_past_is_refused() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    creates(&mut m, 0);
    let mut late = request(PaymentChoice::None);
    late.starts_at = now() - Duration::hours(25);
    let result = m.build().scheduling.schedule(&dr(), &late, None).await;
    assert_eq!(code(result), "validation_failed");
}

// ---- C3: client idempotency keys -------------------------------------------------------

fn dr_scope() -> String {
    format!("user:{}", DR.as_uuid())
}

fn existing_key(req: &ScheduleRequest, resource: Option<uuid::Uuid>) -> Reservation {
    Reservation::Existing(IdempotencyRecord {
        scope: dr_scope(),
        key: "schedule:k1".into(),
        fingerprint: fingerprint(&req.canonical()),
        resource,
        created_at: now() - Duration::minutes(1),
    })
}

#[tokio::test]
async fn a_first_request_with_an_idempotency_key_records_what_it_created() {
    let mut m = Mocks::new();
    let req = request(online(None, None));
    let print = fingerprint(&req.canonical());
    m.idempotency
        .expect_reserve()
        .withf(move |r| {
            r.scope == dr_scope()
                && r.key == "schedule:k1"
                && r.fingerprint == print
                && r.resource.is_none()
        })
        .times(1)
        .returning(|_| Ok(Reservation::New));
    m.practitioner_is(&practitioner());
    creates(&mut m, 1);
    m.idempotency
        .expect_complete()
        .withf(|scope, key, resource| {
            scope == dr_scope() && key == "schedule:k1" && *resource == generated_id(1)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.idempotency.expect_release().never();

    let result = m.build().scheduling.schedule(&dr(), &req, Some("k1")).await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn a_replayed_idempotency_key_returns_the_same_consultation_and_link_and_changes_nothing() {
    let mut m = Mocks::new();
    let req = request(online(None, None));
    let first = existing_key(&req, Some(CONSULTATION.as_uuid()));
    m.idempotency
        .expect_reserve()
        .times(1)
        .returning(move |_| Ok(first.clone()));
    let mut stored = record(Some(scheduled_payment()));
    let link = derived_link(CONSULTATION, 2);
    stored.consultation.pay_token_hash = link.hash();
    stored.consultation.pay_link_generation = 2;
    m.consultation_is(&stored);
    m.consultations.expect_replace_pay_token().never();
    creates(&mut m, 0);
    m.practitioners.expect_get().never();
    m.idempotency.expect_complete().never();

    let replay = m
        .build()
        .scheduling
        .schedule(&dr(), &req, Some("k1"))
        .await
        .unwrap();

    assert_eq!(replay.record, stored);
    assert_eq!(replay.pay_token.hash(), stored.consultation.pay_token_hash);
    assert_eq!(
        replay.pay_url,
        format!("https://pay.example.org/pay/{}", link.expose())
    );
}

#[tokio::test]
async fn a_replay_of_a_link_made_before_links_were_derived_reissues_it() {
    let mut m = Mocks::new();
    let req = request(online(None, None));
    let first = existing_key(&req, Some(CONSULTATION.as_uuid()));
    m.idempotency
        .expect_reserve()
        .returning(move |_| Ok(first.clone()));
    let stored = record(Some(scheduled_payment()));
    m.consultation_is(&stored);
    let fresh = derived_link(CONSULTATION, 1).hash();
    m.consultations
        .expect_replace_pay_token()
        .withf(move |id, hash, generation| {
            *id == CONSULTATION && *hash == fresh && *generation == 1
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    let replay = m
        .build()
        .scheduling
        .schedule(&dr(), &req, Some("k1"))
        .await
        .unwrap();
    assert_eq!(replay.pay_token, derived_link(CONSULTATION, 1));
    assert_eq!(replay.record.consultation.pay_link_generation, 1);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_or_still_running_is_refused() {
    let req = request(online(None, None));
    let mut other = req.clone();
    other.patient_name = "Mme Durand".into();
    let table = [
        (
            "another request",
            existing_key(&other, Some(CONSULTATION.as_uuid())),
            "idempotency_key_reused",
        ),
        (
            "still running",
            existing_key(&req, None),
            "idempotency_key_in_flight",
        ),
    ];
    for (case, answer, expected) in table {
        let mut m = Mocks::new();
        m.idempotency
            .expect_reserve()
            .times(1)
            .returning(move |_| Ok(answer.clone()));
        creates(&mut m, 0);
        m.consultations.expect_replace_pay_token().never();
        let result = m.build().scheduling.schedule(&dr(), &req, Some("k1")).await;
        assert_eq!(code(result), expected, "{case}");
    }
}

#[tokio::test]
async fn a_failed_request_frees_its_idempotency_key_for_a_retry() {
    let mut m = Mocks::new();
    m.idempotency
        .expect_reserve()
        .returning(|_| Ok(Reservation::New));
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    creates(&mut m, 0);
    m.idempotency.expect_complete().never();
    m.idempotency
        .expect_release()
        .withf(|scope, key| scope == dr_scope() && key == "schedule:k1")
        .times(1)
        .returning(|_, _| Ok(()));
    let result = m
        .build()
        .scheduling
        .schedule(&dr(), &request(online(None, None)), Some("k1"))
        .await;
    assert_eq!(code(result), "stripe_not_linked");
}

#[tokio::test]
async fn a_consultation_is_visible_to_staff_of_its_practitioner_only() {
    let mut m = Mocks::new();
    m.consultation_is(&record(None));
    let billing = m.build();
    for who in [dr(), secretary()] {
        assert!(billing.scheduling.get(&who, CONSULTATION).await.is_ok());
    }
    for (who, actor, expected) in outsiders() {
        assert_eq!(
            code(billing.scheduling.get(&actor, CONSULTATION).await),
            expected,
            "{who}"
        );
    }
}

// ---- C4: the patient's side ------------------------------------------------------------

#[tokio::test]
async fn an_unknown_or_malformed_pay_token_is_not_found() {
    let unknown = PayToken::from_random(&secret(99));
    for token in ["short", "../../etc/passwd", unknown.expose()] {
        let mut m = Mocks::new();
        m.consultations
            .expect_pay_access()
            .times(usize::from(token == unknown.expose()))
            .returning(|_| Err(RepositoryError::NotFound));
        let billing = m.build();
        assert_eq!(
            code(billing.patients.access(token).await),
            "not_found",
            "{token}"
        );
    }
    let mut m = Mocks::new();
    m.consultations
        .expect_find_by_pay_token()
        .returning(|_| Err(RepositoryError::NotFound));
    let billing = m.build();
    assert_eq!(
        code(billing.patients.open(unknown.expose(), true).await),
        "not_found"
    );
    assert_eq!(
        code(
            billing
                .patients
                .start_checkout(unknown.expose(), Lang::Fr)
                .await
        ),
        "not_found"
    );
}

#[tokio::test]
async fn the_waiting_room_opens_without_payment_or_once_the_hold_is_in_place_until_the_act() {
    let table = [
        ("no online payment", None, (true, true)),
        ("nothing authorised yet", Some(incomplete()), (false, false)),
        (
            "declined",
            Some(step(
                &incomplete(),
                PaymentEvent::AuthorizationFailed(declined()),
            )),
            (false, false),
        ),
        ("hold in place", Some(authorized()), (true, true)),
        ("act validated", Some(captured(1800)), (true, false)),
        ("hold released", Some(released()), (false, false)),
    ];
    for (case, payment, (can_enter, waiting_room)) in table {
        let mut m = Mocks::new();
        m.consultation_is(&record(payment));
        let access = m
            .build()
            .patients
            .access(pay_token().expose())
            .await
            .unwrap();
        assert_eq!(
            access,
            Access {
                can_enter,
                waiting_room,
                started: false,
                video: false,
                status: ConsultationStatus::Scheduled,
                starts_at: record(None).consultation.starts_at,
            },
            "{case}"
        );
    }
}

fn checkout_url() -> String {
    "https://checkout.stripe.com/c/pay/cs_test_1".into()
}

fn session() -> CheckoutSessionId {
    CheckoutSessionId::parse("cs_test_1").unwrap()
}

/// What the gateway answers to a new checkout on `account()`.
fn gateway_starts_checkout(m: &mut Mocks, payment: &Payment, existing: Option<PaymentIntentId>) {
    let key = IdempotencyKey::checkout(payment.id(), payment.version());
    m.gateway
        .expect_start_checkout()
        .withf(move |req| {
            req.hold.account == account()
                && req.hold.payment == PAYMENT
                && req.hold.consultation == CONSULTATION
                && req.hold.amount == eur(2500)
                && req.hold.key == key
                && req.existing_intent == existing
                && req.success_url
                    == format!(
                        "https://pay.example.org/pay/{}?checkout=success",
                        pay_token().expose()
                    )
        })
        .times(1)
        .returning(|_| {
            Ok(CheckoutStart {
                intent: Some(intent()),
                session: Some(session()),
                setup: None,
                redirect_url: Some(checkout_url()),
                client_secret: None,
                expires_at: Some(now() + Duration::minutes(30)),
                mode: CheckoutMode::Hold,
            })
        });
}

#[tokio::test]
async fn starting_checkout_sends_the_patient_to_the_gateway_and_records_where() {
    let mut m = Mocks::new();
    let payment = scheduled_payment();
    m.consultation_is(&record(Some(payment.clone())));
    m.payment_is(&payment);
    m.practitioner_is(&practitioner());
    gateway_starts_checkout(&mut m, &payment, None);
    let version = payment.version();
    m.payments
        .expect_update()
        .withf(move |p, expected_version, log| {
            *expected_version == version
                && p.account() == Some(&account())
                && p.intent() == Some(&intent())
                && p.checkout().and_then(|c| c.url.clone()) == Some(checkout_url())
                && log.history[0].event == "checkout_started"
                && log.audit[0].action == AuditAction::CheckoutStarted
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let start = m
        .build()
        .patients
        .start_checkout(pay_token().expose(), Lang::Fr)
        .await
        .unwrap();

    assert_eq!(start.redirect_url, Some(checkout_url()));
}

#[tokio::test]
async fn an_open_checkout_is_reused_until_it_is_about_to_expire() {
    let table = [
        ("open for an hour", Duration::hours(1), false),
        ("expiring in two minutes", Duration::minutes(2), true),
    ];
    for (case, left, starts_again) in table {
        let mut m = Mocks::new();
        let payment = scheduled_payment()
            .checkout_started(
                account(),
                Some(intent()),
                Some(CheckoutRef {
                    setup: None,
                    session: Some(CheckoutSessionId::parse("cs_test_old").unwrap()),
                    url: Some("https://checkout.stripe.com/c/pay/cs_test_old".into()),
                    expires_at: Some(now() + left),
                }),
                now() - Duration::minutes(20),
            )
            .unwrap();
        m.consultation_is(&record(Some(payment.clone())));
        m.payment_is(&payment);
        m.practitioner_is(&practitioner());
        if starts_again {
            gateway_starts_checkout(&mut m, &payment, Some(intent()));
        } else {
            m.gateway.expect_start_checkout().never();
        }
        m.payments
            .expect_update()
            .times(usize::from(starts_again))
            .returning(|_, _, _| Ok(()));
        let start = m
            .build()
            .patients
            .start_checkout(pay_token().expose(), Lang::Fr)
            .await
            .unwrap();
        let expected = if starts_again {
            checkout_url()
        } else {
            "https://checkout.stripe.com/c/pay/cs_test_old".into()
        };
        assert_eq!(start.redirect_url, Some(expected), "{case}");
    }
}

#[tokio::test]
async fn checkout_is_refused_once_the_hold_is_in_place_or_the_payment_is_over() {
    for payment in [authorized(), captured(2500), released()] {
        let mut m = Mocks::new();
        m.consultation_is(&record(Some(payment.clone())));
        m.payment_is(&payment);
        m.gateway.expect_start_checkout().never();
        m.payments.expect_update().never();
        let result = m
            .build()
            .patients
            .start_checkout(pay_token().expose(), Lang::Fr)
            .await;
        assert_eq!(
            code(result),
            "payment_state_conflict",
            "{:?}",
            payment.status()
        );
    }
}

#[tokio::test]
async fn checkout_for_a_consultation_without_online_payment_is_refused() {
    let mut m = Mocks::new();
    m.consultation_is(&record(None));
    let result = m
        .build()
        .patients
        .start_checkout(pay_token().expose(), Lang::Fr)
        .await;
    assert_eq!(code(result), "validation_failed");
}

#[tokio::test]
async fn checkout_is_refused_once_the_practitioner_unlinked_stripe() {
    // Whether or not an earlier attempt left an intent on the old account: the
    // practitioner cut that link, so nothing may be authorised on it any more.
    for payment in [scheduled_payment(), incomplete()] {
        let mut m = Mocks::new();
        m.consultation_is(&record(Some(payment.clone())));
        m.payment_is(&payment);
        m.practitioner_is(&practitioner_with(DR, revoked()));
        m.gateway.expect_start_checkout().never();
        m.payments.expect_update().never();
        let result = m
            .build()
            .patients
            .start_checkout(pay_token().expose(), Lang::Fr)
            .await;
        assert_eq!(
            code(result),
            "stripe_not_linked",
            "intent already created: {}",
            payment.intent().is_some()
        );
    }
}

#[tokio::test]
async fn after_a_relink_checkout_starts_afresh_on_the_new_account() {
    // An earlier attempt created an intent on `account()`; the practitioner has since
    // unlinked it and linked `other_account()`. The gateway may answer with the new
    // intent at once, or only later (a Checkout Session creates it on completion):
    // either way the old intent is forgotten, or the new one's events would be taken
    // for another payment's.
    let new_intent = PaymentIntentId::parse("pi_4New").unwrap();
    for answered in [Some(new_intent), None] {
        let mut m = Mocks::new();
        let payment = incomplete();
        m.consultation_is(&record(Some(payment.clone())));
        m.payment_is(&payment);
        m.practitioner_is(&practitioner_with(
            DR,
            StripeLink::linked(account_snapshot(other_account(), true), now()),
        ));
        let answer = answered.clone();
        m.gateway
            .expect_start_checkout()
            .withf(|req| req.hold.account == other_account() && req.existing_intent.is_none())
            .times(1)
            .returning(move |_| {
                Ok(CheckoutStart {
                    setup: None,
                    intent: answer.clone(),
                    session: Some(session()),
                    redirect_url: Some(checkout_url()),
                    client_secret: None,
                    expires_at: None,
                    mode: CheckoutMode::Hold,
                })
            });
        let recorded = answered.clone();
        m.payments
            .expect_update()
            .withf(move |p, _, _| {
                p.account() == Some(&other_account()) && p.intent() == recorded.as_ref()
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let start = m
            .build()
            .patients
            .start_checkout(pay_token().expose(), Lang::Fr)
            .await
            .unwrap();

        assert_eq!(start.redirect_url, Some(checkout_url()), "{answered:?}");
    }
}

#[tokio::test]
async fn a_gateway_failure_when_starting_checkout_changes_nothing() {
    let mut m = Mocks::new();
    let payment = scheduled_payment();
    m.consultation_is(&record(Some(payment.clone())));
    m.payment_is(&payment);
    m.practitioner_is(&practitioner());
    m.gateway
        .expect_start_checkout()
        .times(1)
        .returning(|_| Err(timeout()));
    m.payments.expect_update().never();
    let result = m
        .build()
        .patients
        .start_checkout(pay_token().expose(), Lang::Fr)
        .await;
    assert_eq!(code(result), "gateway_unavailable");
}

#[tokio::test]
async fn coming_back_from_checkout_shows_the_hold_even_before_the_webhook() {
    let mut m = Mocks::new();
    let payment = incomplete();
    m.consultation_is(&record(Some(payment.clone())));
    m.payment_is(&payment);
    m.gateway
        .expect_retrieve()
        .withf(|a, i| *a == account() && *i == intent())
        .times(1)
        .returning(|_, _| Ok(hold_snapshot()));
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Authorized) && log.audit[0].actor == AuditActor::Patient
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.practitioner_is(&practitioner());

    let page = m
        .build()
        .patients
        .open(pay_token().expose(), true)
        .await
        .unwrap();

    assert!(page.can_enter);
    assert_eq!(
        page.record.payment.unwrap().status(),
        PaymentStatus::Authorized
    );
    assert_eq!(page.practitioner_name.as_str(), "Dr Estival");
}

#[tokio::test]
async fn the_pay_page_still_opens_when_the_gateway_is_down_or_not_asked() {
    for refresh in [true, false] {
        let mut m = Mocks::new();
        let payment = incomplete();
        m.consultation_is(&record(Some(payment.clone())));
        m.gateway
            .expect_retrieve()
            .times(usize::from(refresh))
            .returning(|_, _| Err(timeout()));
        m.payments.expect_update().never();
        m.practitioner_is(&practitioner());
        let page = m
            .build()
            .patients
            .open(pay_token().expose(), refresh)
            .await
            .unwrap();
        assert!(!page.can_enter, "refresh={refresh}");
    }
}

#[tokio::test]
async fn a_declined_card_is_shown_when_the_patient_comes_back() {
    let mut m = Mocks::new();
    let payment = incomplete();
    m.consultation_is(&record(Some(payment.clone())));
    m.payment_is(&payment);
    m.gateway.expect_retrieve().returning(|_, _| {
        Ok(IntentSnapshot {
            last_error: Some(declined()),
            ..snapshot(IntentStatus::RequiresPaymentMethod)
        })
    });
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::Failed) && p.failure() == Some(&declined()))
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.practitioner_is(&practitioner());
    let page = m
        .build()
        .patients
        .open(pay_token().expose(), true)
        .await
        .unwrap();
    assert!(!page.can_enter);
    assert_eq!(page.record.payment.unwrap().status(), PaymentStatus::Failed);
}

// ---- C14: holds that cover the consultation -------------------------------------------

/// `CONSULTATION`, starting `ahead` from now, with `payment`.
fn record_in(ahead: Duration, payment: Payment) -> crate::consultation::model::ConsultationRecord {
    let mut r = record(Some(payment));
    r.consultation.starts_at = now() + ahead;
    r
}

#[tokio::test]
async fn a_consultation_further_ahead_than_a_hold_lasts_saves_the_card_and_says_when_it_is_held() {
    let mut m = Mocks::new();
    let payment = scheduled_payment();
    let ten_days = record_in(Duration::days(10), payment.clone());
    m.consultation_is(&ten_days);
    m.payment_is(&payment);
    m.practitioner_is(&practitioner());
    m.gateway
        .expect_start_checkout()
        .withf(|req| {
            req.mode == CheckoutMode::SaveCard
                && req.locale == Lang::En
                && req.hold.off_session.is_none()
                // Only the practitioner's chosen label and the date, in the patient's
                // language: never the practitioner's name.
                && req.hold.description == "Teleconsultation 2026-11-12"
        })
        .times(1)
        .returning(|_| {
            Ok(CheckoutStart {
                setup: None,
                intent: None,
                session: Some(session()),
                redirect_url: Some(checkout_url()),
                client_secret: None,
                expires_at: Some(now() + Duration::hours(24)),
                mode: CheckoutMode::SaveCard,
            })
        });
    m.payments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let billing = m.build();

    let page = billing
        .patients
        .open(pay_token().expose(), false)
        .await
        .unwrap();
    assert_eq!(
        page.hold_from,
        Some(now() + Duration::days(4)),
        "6 days before"
    );
    assert!(page.can_pay && !page.can_enter);

    let start = billing
        .patients
        .start_checkout(pay_token().expose(), Lang::En)
        .await
        .unwrap();
    assert_eq!(start.mode, CheckoutMode::SaveCard);
}

#[tokio::test]
async fn within_the_lead_the_amount_is_held_now_in_the_patients_language_with_the_practitioners_text()
 {
    use crate::practitioner::model::{DescriptorSuffix, PaymentLabel, StatementText};
    let mut m = Mocks::new();
    let payment = scheduled_payment();
    m.consultation_is(&record_in(Duration::days(5), payment.clone()));
    m.payment_is(&payment);
    let mut dr = practitioner();
    dr.preferences = dr.preferences.clone().with_statement(StatementText {
        label: Some(PaymentLabel::parse("Séance").unwrap()),
        descriptor_suffix: Some(DescriptorSuffix::parse("CABINET").unwrap()),
    });
    m.practitioner_is(&dr);
    m.gateway
        .expect_start_checkout()
        .withf(|req| {
            req.mode == CheckoutMode::Hold
                && req.locale == Lang::Fr
                && req.hold.description == "Séance 07/11/2026"
                && req.hold.statement_descriptor_suffix.as_deref() == Some("CABINET")
        })
        .times(1)
        .returning(|_| {
            Ok(CheckoutStart {
                setup: None,
                intent: None,
                session: Some(session()),
                redirect_url: Some(checkout_url()),
                client_secret: None,
                expires_at: Some(now() + Duration::hours(24)),
                mode: CheckoutMode::Hold,
            })
        });
    m.payments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    let billing = m.build();
    let page = billing
        .patients
        .open(pay_token().expose(), false)
        .await
        .unwrap();
    assert_eq!(page.hold_from, None);
    billing
        .patients
        .start_checkout(pay_token().expose(), Lang::Fr)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lapsed_hold_is_paid_again_from_the_same_link_while_the_consultation_is_ahead() {
    let lapsed = step(&authorized(), PaymentEvent::Expired);
    let mut m = Mocks::new();
    m.consultation_is(&record_in(Duration::days(2), lapsed.clone()));
    let reopened = step(&lapsed, PaymentEvent::Reopened);
    m.payment_reads(&[lapsed.clone(), lapsed.clone(), reopened.clone()]);
    m.practitioner_is(&practitioner());
    let mut seq = mockall::Sequence::new();
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Incomplete)
                && p.intent().is_none()
                && p.authorized().is_none()
                && log.history[0].event == "reopened"
                && log.history[0].actor == AuditActor::Patient
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    gateway_starts_checkout(&mut m, &reopened, None);
    m.payments
        .expect_update()
        .withf(|p, _, log| log.history[0].event == "checkout_started" && p.checkout().is_some())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    let billing = m.build();
    let page = billing
        .patients
        .open(pay_token().expose(), false)
        .await
        .unwrap();
    assert!(page.can_pay, "the consultation is two days ahead");
    let start = billing
        .patients
        .start_checkout(pay_token().expose(), Lang::Fr)
        .await
        .unwrap();
    assert_eq!(start.redirect_url, Some(checkout_url()));
}

#[tokio::test]
async fn a_lapsed_hold_of_a_consultation_that_is_over_cannot_be_paid_again() {
    let lapsed = step(&authorized(), PaymentEvent::Expired);
    let mut m = Mocks::new();
    m.consultation_is(&record_in(-Duration::hours(3), lapsed.clone()));
    m.payment_is(&lapsed);
    m.practitioner_is(&practitioner());
    m.payments.expect_update().never();
    m.gateway.expect_start_checkout().never();
    let billing = m.build();
    let page = billing
        .patients
        .open(pay_token().expose(), false)
        .await
        .unwrap();
    assert!(!page.can_pay);
    assert_eq!(
        code(
            billing
                .patients
                .start_checkout(pay_token().expose(), Lang::Fr)
                .await
        ),
        "payment_state_conflict"
    );
}

#[test]
fn the_gate_stays_closed_while_the_card_is_only_saved_or_the_hold_is_being_released() {
    let saved = step(&incomplete(), PaymentEvent::CardSaved(saved_card()));
    assert_eq!(saved.status(), PaymentStatus::CardSaved);
    assert!(!record(Some(saved)).can_enter());
    let releasing = pending(
        &authorized(),
        crate::payment::model::Operation::Release,
        IdempotencyKey::release(PAYMENT, Some(&intent())),
    );
    assert!(!record(Some(releasing)).can_enter());
    assert!(record(Some(authorized())).can_enter());
}
