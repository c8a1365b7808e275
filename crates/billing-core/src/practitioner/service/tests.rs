//! Use-case tests of the practitioner's side: linking Stripe (C1) and the catalogue
//! (C2), against mocks of the ports.

use chrono::Duration;
use rust_decimal::Decimal;

use super::*;
use crate::audit::AuditAction;
use crate::fees::FeePreset;
use crate::gateway::{GatewayEvent, IgnoreReason, WebhookEvent};
use crate::ids::UserId;
use crate::payment::service::WebhookOutcome;
use crate::practitioner::model::{DescriptorSuffix, LinkStatus, PaymentLabel, StatementText};
use crate::secrets::OAuthState;
use crate::test_support::*;

fn callback(code: Option<&str>, state: Option<&str>, error: Option<&str>) -> OAuthCallback {
    OAuthCallback {
        code: code.map(str::to_owned),
        state: state.map(str::to_owned),
        error: error.map(str::to_owned),
    }
}

/// A state the practitioner `DR` was given a minute ago.
fn issued_state() -> OAuthState {
    OAuthState::from_random(&secret(7))
}

fn state_record(practitioner: PractitionerId, expires_in: Duration) -> OAuthStateRecord {
    OAuthStateRecord {
        hash: issued_state().hash(),
        practitioner,
        created_at: now() - Duration::minutes(1),
        expires_at: now() + expires_in,
    }
}

/// The callback Stripe sends after consent.
fn approved() -> OAuthCallback {
    callback(Some("ac_123"), Some(issued_state().expose()), None)
}

fn consume_returns(m: &mut Mocks, record: OAuthStateRecord) {
    let hash = issued_state().hash();
    m.oauth_states
        .expect_consume()
        .withf(move |h| *h == hash)
        .times(1)
        .returning(move |_| Ok(record.clone()));
}

fn stripe_returns_account(m: &mut Mocks, id: ConnectedAccountId) {
    let exchanged = id.clone();
    m.connect
        .expect_exchange_code()
        .withf(|code| code == "ac_123")
        .times(1)
        .returning(move |_| Ok(exchanged.clone()));
    m.connect
        .expect_retrieve_account()
        .withf(move |a| *a == id)
        .returning(|a| Ok(account_snapshot(a.clone(), true)));
}

fn webhook(payload: GatewayEvent) -> WebhookEvent {
    WebhookEvent {
        id: event_id(),
        kind: "account.updated".into(),
        created: now(),
        account: Some(account()),
        payload,
    }
}

fn claimed_new(m: &mut Mocks) {
    m.webhook_inbox
        .expect_processed()
        .times(1)
        .returning(|_| Ok(false));
}

fn marked_processed(m: &mut Mocks, outcome: &'static str) {
    m.webhook_inbox
        .expect_record_processed()
        .withf(move |_, _, _, _, o| o == outcome)
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
}

// ---- C1: Connect OAuth ---------------------------------------------------------------

#[tokio::test]
async fn starting_oauth_stores_a_hashed_single_use_state_that_expires_and_returns_the_consent_url()
{
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    let state = OAuthState::from_random(&secret(1));
    let shown = state.clone();
    m.connect
        .expect_authorize_url()
        .withf(move |s, redirect| {
            *s == shown && redirect == "https://pay.example.org/connect/stripe/callback"
        })
        .times(1)
        .returning(|s, _| {
            Ok(format!(
                "https://connect.stripe.com/oauth/authorize?scope=read_write&state={}",
                s.expose()
            ))
        });
    let stored = state.hash();
    m.oauth_states
        .expect_insert()
        .withf(move |r| {
            r.hash == stored
                && r.hash.as_str() != secret(1)
                && r.practitioner == DR
                && r.created_at == now()
                && r.expires_at == now() + Duration::minutes(15)
        })
        .times(1)
        .returning(|_| Ok(()));
    m.audit
        .expect_append()
        .withf(|e| e.action == AuditAction::StripeLinkStarted && e.practitioner == DR)
        .times(1)
        .returning(|_| Ok(()));

    let url = m.build().connect.start_oauth(&dr(), DR).await.unwrap();

    assert_eq!(
        url,
        format!(
            "https://connect.stripe.com/oauth/authorize?scope=read_write&state={}",
            secret(1)
        )
    );
}

#[tokio::test]
async fn completing_oauth_links_the_account_and_audits_it() {
    let mut m = Mocks::new();
    consume_returns(&mut m, state_record(DR, Duration::minutes(14)));
    stripe_returns_account(&mut m, account());
    m.practitioners
        .expect_find_by_account()
        .returning(|_| Ok(None));
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    m.practitioners
        .expect_update()
        .withf(|p, expected_version, audit| {
            matches!(&p.link, StripeLink::Linked { account: a, linked_at, .. }
                if a.id == account() && a.charges_enabled && *linked_at == now())
                && *expected_version == 3
                && p.version == 4
                && audit.action == AuditAction::StripeLinked
                && audit.actor == AuditActor::User(UserId::from_uuid(DR.as_uuid()))
                && audit.detail == account().as_str()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let linked = m
        .build()
        .connect
        .complete_oauth(&approved(), &dr())
        .await
        .unwrap();

    assert_eq!(linked, DR);
}

/// How the state store answers in the table below.
enum Consume {
    /// The state is not even looked up.
    NotAsked,
    /// Unknown, or consumed already (a replay).
    Unknown,
    /// Found (and so consumed), expiring at `now + d`.
    ExpiresIn(Duration),
}

#[tokio::test]
async fn oauth_callbacks_with_an_unusable_state_are_refused_without_calling_stripe() {
    let malformed = "not a state";
    let state = issued_state();
    let issued = state.expose();
    let table = [
        ("no state", None, Consume::NotAsked),
        ("malformed state", Some(malformed), Consume::NotAsked),
        ("unknown or replayed state", Some(issued), Consume::Unknown),
        (
            "state expired a second ago (and consumed)",
            Some(issued),
            Consume::ExpiresIn(Duration::seconds(-1)),
        ),
        (
            "state expiring right now",
            Some(issued),
            Consume::ExpiresIn(Duration::zero()),
        ),
    ];
    for (case, state, consume) in table {
        let mut m = Mocks::new();
        match consume {
            Consume::NotAsked => {
                m.oauth_states.expect_consume().never();
            }
            Consume::Unknown => {
                m.oauth_states
                    .expect_consume()
                    .times(1)
                    .returning(|_| Err(RepositoryError::NotFound));
            }
            Consume::ExpiresIn(d) => consume_returns(&mut m, state_record(DR, d)),
        }
        m.connect.expect_exchange_code().never();
        m.practitioners.expect_update().never();
        let result = m
            .build()
            .connect
            .complete_oauth(&callback(Some("ac_123"), state, None), &dr())
            .await;
        assert_eq!(code(result), "oauth_state_invalid", "{case}");
    }
}

#[tokio::test]
async fn a_state_issued_to_one_practitioner_cannot_link_the_account_of_whoever_is_signed_in() {
    for (case, session) in [
        ("another practitioner", other_dr()),
        ("the practitioner's secretary", secretary()),
    ] {
        let mut m = Mocks::new();
        consume_returns(&mut m, state_record(DR, Duration::minutes(10)));
        m.connect.expect_exchange_code().never();
        m.practitioners.expect_update().never();
        let result = m
            .build()
            .connect
            .complete_oauth(&approved(), &session)
            .await;
        assert_eq!(code(result), "oauth_state_invalid", "{case}");
    }
}

#[tokio::test]
async fn a_callback_on_a_browser_where_nobody_is_signed_in_is_refused_and_keeps_the_state() {
    let mut m = Mocks::new();
    m.oauth_states.expect_consume().never();
    m.connect.expect_exchange_code().never();
    m.practitioners.expect_update().never();
    let result = m
        .build()
        .connect
        .complete_oauth(&approved(), &Actor::Anonymous)
        .await;
    assert_eq!(code(result), "unauthenticated");
}

#[tokio::test]
async fn a_consent_refused_at_stripe_is_access_denied_and_still_burns_the_state() {
    let mut m = Mocks::new();
    consume_returns(&mut m, state_record(DR, Duration::minutes(10)));
    m.connect.expect_exchange_code().never();
    let result = m
        .build()
        .connect
        .complete_oauth(
            &callback(None, Some(issued_state().expose()), Some("access_denied")),
            &dr(),
        )
        .await;
    assert_eq!(code(result), "oauth_access_denied");
}

#[tokio::test]
async fn an_authorisation_code_stripe_rejects_is_reported_and_nothing_is_linked() {
    let mut m = Mocks::new();
    consume_returns(&mut m, state_record(DR, Duration::minutes(10)));
    m.connect.expect_exchange_code().times(1).returning(|_| {
        Err(GatewayError::InvalidGrant {
            message: "Authorization code expired".into(),
        })
    });
    m.practitioners.expect_update().never();
    let result = m.build().connect.complete_oauth(&approved(), &dr()).await;
    assert_eq!(code(result), "oauth_code_invalid");
}

#[tokio::test]
async fn a_callback_without_a_code_is_refused_before_stripe_is_asked() {
    let mut m = Mocks::new();
    consume_returns(&mut m, state_record(DR, Duration::minutes(10)));
    m.connect.expect_exchange_code().never();
    let result = m
        .build()
        .connect
        .complete_oauth(
            &callback(Some(""), Some(issued_state().expose()), None),
            &dr(),
        )
        .await;
    assert_eq!(code(result), "validation_failed");
}

#[tokio::test]
async fn an_account_linked_to_another_practitioner_is_refused_but_a_released_one_may_be_reused() {
    let table = [
        (
            "linked to another practitioner",
            linked(),
            Some("validation_failed"),
        ),
        (
            "onboarding for another practitioner",
            StripeLink::onboarding(account(), now()),
            Some("validation_failed"),
        ),
        ("unlinked by another practitioner", revoked(), None),
    ];
    for (case, other_link, expected) in table {
        let mut m = Mocks::new();
        consume_returns(&mut m, state_record(DR, Duration::minutes(10)));
        stripe_returns_account(&mut m, account());
        let holder = practitioner_with(OTHER_DR, other_link);
        m.practitioners
            .expect_find_by_account()
            .returning(move |_| Ok(Some(holder.clone())));
        m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
        m.practitioners
            .expect_update()
            .times(usize::from(expected.is_none()))
            .returning(|_, _, _| Ok(()));
        let result = m.build().connect.complete_oauth(&approved(), &dr()).await;
        match expected {
            Some(c) => assert_eq!(code(result), c, "{case}"),
            None => assert_eq!(result.unwrap(), DR, "{case}"),
        }
    }
}

// ---- C1: verify, unlink ------------------------------------------------------------------

#[tokio::test]
async fn verifying_re_reads_the_account_from_stripe() {
    let mut m = Mocks::new();
    let before = StripeLink::linked(
        account_snapshot(account(), false),
        now() - Duration::days(5),
    );
    m.practitioner_is(&practitioner_with(DR, before));
    m.connect
        .expect_retrieve_account()
        .withf(|a| *a == account())
        .times(1)
        .returning(|a| Ok(account_snapshot(a.clone(), true)));
    m.practitioners
        .expect_update()
        .withf(|p, expected_version, audit| {
            matches!(&p.link, StripeLink::Linked { account: a, linked_at, verified_at, .. }
                if a.charges_enabled
                    && *linked_at == now() - Duration::days(5)
                    && *verified_at == now())
                && *expected_version == 3
                && audit.action == AuditAction::StripeVerified
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let link = m.build().connect.verify(&dr(), DR).await.unwrap();

    assert!(link.chargeable_account().is_ok());
}

#[tokio::test]
async fn verifying_an_account_that_disconnected_us_marks_the_link_revoked() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    m.connect.expect_retrieve_account().times(1).returning(|_| {
        Err(GatewayError::AccountUnavailable {
            message: "The application is not connected".into(),
        })
    });
    m.practitioners
        .expect_update()
        .withf(|p, _, audit| {
            matches!(
                p.link,
                StripeLink::Revoked {
                    reason: RevokeReason::Deauthorized,
                    ..
                }
            ) && audit.action == AuditAction::StripeDeauthorized
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let link = m.build().connect.verify(&dr(), DR).await.unwrap();

    assert_eq!(link.status(), LinkStatus::Revoked);
    assert_eq!(
        link.account_id(),
        Some(&account()),
        "history keeps the account"
    );
}

#[tokio::test]
async fn verifying_while_stripe_is_down_changes_nothing() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    m.connect
        .expect_retrieve_account()
        .times(1)
        .returning(|_| Err(timeout()));
    m.practitioners.expect_update().never();
    let result = m.build().connect.verify(&dr(), DR).await;
    assert_eq!(code(result), "gateway_unavailable");
}

#[tokio::test]
async fn verifying_or_unlinking_without_a_link_is_stripe_not_linked() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    m.connect.expect_retrieve_account().never();
    m.connect.expect_deauthorize().never();
    let billing = m.build();
    assert_eq!(
        code(billing.connect.verify(&dr(), DR).await),
        "stripe_not_linked"
    );
    assert_eq!(
        code(billing.connect.unlink(&dr(), DR, true).await),
        "stripe_not_linked"
    );
}

#[tokio::test]
async fn unlinking_is_refused_while_payments_hold_money_unless_forced() {
    let table = [(false, Err("outstanding_holds")), (true, Ok(()))];
    for (force, expected) in table {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner());
        m.payments
            .expect_open_holds()
            .withf(|p| *p == DR)
            .returning(|_| Ok(2));
        m.connect
            .expect_deauthorize()
            .times(usize::from(force))
            .returning(|_| Ok(()));
        m.practitioners
            .expect_update()
            .times(usize::from(force))
            .returning(|_, _, _| Ok(()));
        let result = m.build().connect.unlink(&dr(), DR, force).await;
        match expected {
            Err(c) => assert_eq!(code(result), c, "force={force}"),
            Ok(()) => assert_eq!(result.unwrap().status(), LinkStatus::Revoked),
        }
    }
}

#[tokio::test]
async fn unlinking_deauthorizes_at_stripe_and_keeps_the_account_in_history() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    m.payments.expect_open_holds().returning(|_| Ok(0));
    m.connect
        .expect_deauthorize()
        .withf(|a| *a == account())
        .times(1)
        .returning(|_| Ok(()));
    m.practitioners
        .expect_update()
        .withf(|p, expected_version, audit| {
            *expected_version == 3
                && audit.action == AuditAction::StripeUnlinked
                && audit.detail == account().as_str()
                && matches!(&p.link, StripeLink::Revoked { account: a, reason: RevokeReason::Unlinked, at }
                    if *a == account() && *at == now())
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let link = m.build().connect.unlink(&dr(), DR, false).await.unwrap();

    assert_eq!(link.account_id(), Some(&account()));
}

#[tokio::test]
async fn an_account_made_for_account_links_is_unlinked_without_an_oauth_grant_to_revoke() {
    // No STRIPE_CONNECT_CLIENT_ID needed: there is nothing to deauthorize.
    for link in [
        StripeLink::onboarded(account_snapshot(account(), true), now() - Duration::days(3)),
        StripeLink::onboarding(account(), now() - Duration::days(1)),
    ] {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner_with(DR, link.clone()));
        m.payments.expect_open_holds().returning(|_| Ok(0));
        m.connect.expect_deauthorize().never();
        m.practitioners
            .expect_update()
            .withf(|p, _, audit| {
                audit.action == AuditAction::StripeUnlinked
                    && matches!(
                        &p.link,
                        StripeLink::Revoked {
                            reason: RevokeReason::Unlinked,
                            ..
                        }
                    )
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        let result = m.build().connect.unlink(&dr(), DR, false).await.unwrap();
        assert_eq!(result.status(), LinkStatus::Revoked, "{link:?}");
    }
}

#[tokio::test]
async fn a_failed_deauthorization_leaves_the_link_unless_stripe_says_it_is_already_gone() {
    let table: Vec<(&str, GatewayError, Result<LinkStatus, &str>)> = vec![
        (
            "already disconnected at Stripe",
            GatewayError::AccountUnavailable {
                message: "not connected".into(),
            },
            Ok(LinkStatus::Revoked),
        ),
        ("timeout", timeout(), Err("gateway_unavailable")),
        (
            "rate limited",
            GatewayError::RateLimited,
            Err("gateway_unavailable"),
        ),
        (
            "Connect not configured",
            GatewayError::NotConfigured("STRIPE_CONNECT_CLIENT_ID"),
            Err("gateway_not_configured"),
        ),
    ];
    for (case, failure, expected) in table {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner());
        m.payments.expect_open_holds().returning(|_| Ok(0));
        m.connect
            .expect_deauthorize()
            .times(1)
            .returning(move |_| Err(failure.clone()));
        m.practitioners
            .expect_update()
            .times(usize::from(expected.is_ok()))
            .returning(|_, _, _| Ok(()));
        let result = m.build().connect.unlink(&dr(), DR, false).await;
        match expected {
            Ok(status) => assert_eq!(result.unwrap().status(), status, "{case}"),
            Err(c) => assert_eq!(code(result), c, "{case}"),
        }
    }
}

#[tokio::test]
async fn only_the_practitioner_may_link_verify_or_unlink_their_stripe_account() {
    let mut actors = vec![("their secretary", secretary(), "forbidden")];
    actors.extend(outsiders());
    for (who, actor, expected) in actors {
        // No expectation is set: any port called before the refusal panics.
        let billing = Mocks::new().build();
        let c = &billing.connect;
        assert_eq!(
            code(c.start_oauth(&actor, DR).await),
            expected,
            "{who}: oauth"
        );
        assert_eq!(
            code(c.start_onboarding(&actor, DR).await),
            expected,
            "{who}: account link"
        );
        assert_eq!(code(c.verify(&actor, DR).await), expected, "{who}: verify");
        assert_eq!(
            code(c.unlink(&actor, DR, true).await),
            expected,
            "{who}: unlink"
        );
    }
}

#[tokio::test]
async fn a_secretary_may_see_the_link_but_outsiders_may_not() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    let billing = m.build();
    let link = billing.connect.status(&secretary(), DR).await.unwrap();
    assert_eq!(link.status(), LinkStatus::Linked);
    for (who, actor, expected) in outsiders() {
        assert_eq!(
            code(billing.connect.status(&actor, DR).await),
            expected,
            "{who}"
        );
    }
}

#[tokio::test]
async fn account_links_onboarding_creates_the_account_once_and_marks_the_link_pending() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner_with(DR, StripeLink::Unlinked));
    m.connect
        .expect_create_account()
        .withf(|p, key| *p == DR && *key == IdempotencyKey::for_practitioner(DR, "account", 3))
        .times(1)
        .returning(|_, _| Ok(account()));
    m.practitioners
        .expect_update()
        .withf(|p, _, audit| {
            p.link.status() == LinkStatus::Pending && audit.action == AuditAction::StripeLinkStarted
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.connect
        .expect_account_link()
        .withf(|a, refresh, back| {
            *a == account()
                && refresh == "https://pay.example.org/connect/stripe/onboarding?step=refresh"
                && back == "https://pay.example.org/connect/stripe/onboarding?step=return"
        })
        .times(1)
        .returning(|_, _, _| Ok("https://connect.stripe.com/setup/s/abc".into()));

    let url = m.build().connect.start_onboarding(&dr(), DR).await.unwrap();

    assert_eq!(url, "https://connect.stripe.com/setup/s/abc");
}

#[tokio::test]
async fn onboarding_a_practitioner_already_linked_is_refused_and_creates_nothing() {
    let mut m = Mocks::new();
    // No account is created, nothing is written: the mocks have no expectation.
    m.practitioner_is(&practitioner_with(DR, linked()));
    let e = m
        .build()
        .connect
        .start_onboarding(&dr(), DR)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "stripe_already_linked");
}

#[tokio::test]
async fn onboarding_again_an_account_it_made_continues_it_without_a_new_account() {
    let mut m = Mocks::new();
    let mut p = practitioner_with(DR, linked());
    if let StripeLink::Linked { via, .. } = &mut p.link {
        *via = crate::practitioner::model::LinkVia::AccountLinks;
    }
    m.practitioner_is(&p);
    // No create_account, no update: the mocks would panic.
    m.connect
        .expect_account_link()
        .withf(|a, _, _| *a == account())
        .times(1)
        .returning(|_, _, _| Ok("https://connect.stripe.com/setup/s/more".into()));
    let url = m.build().connect.start_onboarding(&dr(), DR).await.unwrap();
    assert_eq!(url, "https://connect.stripe.com/setup/s/more");
}

// ---- C1: Connect webhooks ----------------------------------------------------------------

#[tokio::test]
async fn an_account_updated_event_refreshes_the_practitioners_link() {
    let mut m = Mocks::new();
    claimed_new(&mut m);
    let stale = practitioner_with(
        DR,
        StripeLink::linked(
            account_snapshot(account(), false),
            now() - Duration::days(1),
        ),
    );
    let found = stale.clone();
    m.practitioners
        .expect_find_by_account()
        .withf(|a| *a == account())
        .returning(move |_| Ok(Some(found.clone())));
    m.practitioner_is(&stale);
    m.practitioners
        .expect_update()
        .withf(|p, _, audit| {
            p.link.chargeable_account().is_ok()
                && audit.action == AuditAction::StripeAccountUpdated
                && audit.actor == AuditActor::Stripe(Some(event_id()))
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    marked_processed(&mut m, "applied (0 status change(s))");

    let outcome = m
        .build()
        .webhooks
        .apply(&webhook(GatewayEvent::AccountUpdated(account_snapshot(
            account(),
            true,
        ))))
        .await
        .unwrap();

    assert_eq!(outcome, WebhookOutcome::Applied(vec![]));
}

#[tokio::test]
async fn a_deauthorization_at_stripe_revokes_the_link() {
    let mut m = Mocks::new();
    claimed_new(&mut m);
    m.practitioners
        .expect_find_by_account()
        .returning(|_| Ok(Some(practitioner())));
    m.practitioner_is(&practitioner());
    m.practitioners
        .expect_update()
        .withf(|p, _, audit| {
            matches!(
                p.link,
                StripeLink::Revoked {
                    reason: RevokeReason::Deauthorized,
                    ..
                }
            ) && audit.action == AuditAction::StripeDeauthorized
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    marked_processed(&mut m, "applied (0 status change(s))");

    let outcome = m
        .build()
        .webhooks
        .apply(&webhook(GatewayEvent::AccountDeauthorized {
            account: account(),
        }))
        .await
        .unwrap();

    assert_eq!(outcome, WebhookOutcome::Applied(vec![]));
}

#[tokio::test]
async fn a_deauthorization_of_an_account_the_practitioner_has_since_replaced_changes_nothing() {
    let mut m = Mocks::new();
    claimed_new(&mut m);
    // The look-up by account still sees the old link; the fresh read shows the relink.
    m.practitioners
        .expect_find_by_account()
        .returning(|_| Ok(Some(practitioner())));
    m.practitioner_is(&practitioner_with(
        DR,
        StripeLink::linked(account_snapshot(other_account(), true), now()),
    ));
    m.practitioners.expect_update().never();
    marked_processed(&mut m, "ignored: no_change");

    let outcome = m
        .build()
        .webhooks
        .apply(&webhook(GatewayEvent::AccountDeauthorized {
            account: account(),
        }))
        .await
        .unwrap();

    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::NoChange));
}

#[tokio::test]
async fn connect_events_for_accounts_nobody_linked_are_acknowledged_and_ignored() {
    let table = [
        (
            GatewayEvent::AccountDeauthorized { account: account() },
            IgnoreReason::UnknownAccount,
        ),
        (
            GatewayEvent::AccountUpdated(account_snapshot(account(), true)),
            IgnoreReason::UnknownAccount,
        ),
    ];
    for (event, why) in table {
        let mut m = Mocks::new();
        claimed_new(&mut m);
        m.practitioners
            .expect_find_by_account()
            .returning(|_| Ok(None));
        m.practitioners.expect_update().never();
        m.webhook_inbox
            .expect_record_processed()
            .times(1)
            .returning(|_, _, _, _, _| Ok(()));
        let outcome = m.build().webhooks.apply(&webhook(event)).await.unwrap();
        assert_eq!(outcome, WebhookOutcome::Ignored(why));
    }
}

// ---- C2: preferences ----------------------------------------------------------------

fn prefs_input(default: &str, max: &str, fees: FeeScheduleInput) -> PreferencesInput {
    PreferencesInput {
        currency: Currency::Eur,
        default_amount: AmountInput::parse(default, None).unwrap(),
        max_amount: AmountInput::parse(max, None).unwrap(),
        fee_schedule: fees,
        payment_label: None,
        statement_descriptor_suffix: None,
        cancellation: None,
    }
}

fn custom_fees(
    percent: i64,
    scale: u32,
    fixed: &str,
    currency: Option<Currency>,
) -> FeeScheduleInput {
    FeeScheduleInput::Custom {
        percent: Decimal::new(percent, scale),
        fixed: AmountInput::parse(fixed, currency).unwrap(),
    }
}

#[tokio::test]
async fn preferences_that_break_a_rule_are_refused_and_nothing_is_written() {
    let default_fees = || FeeScheduleInput::Preset(FeePreset::Default);
    let table = [
        (
            "default above the maximum",
            prefs_input("30.00", "25.00", default_fees()),
            "amount_above_maximum",
        ),
        (
            "default below the minimum charge",
            prefs_input("0.40", "25.00", default_fees()),
            "below_minimum_charge",
        ),
        (
            "maximum in another currency",
            PreferencesInput {
                max_amount: AmountInput::parse("40", Some(Currency::Usd)).unwrap(),
                ..prefs_input("25", "40", default_fees())
            },
            "currency_mismatch",
        ),
        (
            "fixed fee in another currency",
            prefs_input("25", "40", custom_fees(15, 1, "0.25", Some(Currency::Gbp))),
            "currency_mismatch",
        ),
        (
            "a fraction of a cent",
            prefs_input("25.001", "40", default_fees()),
            "invalid_amount",
        ),
        (
            "a percentage above 100",
            prefs_input("25", "40", custom_fees(150, 0, "0.25", None)),
            "validation_failed",
        ),
        (
            "a statement suffix Stripe refuses",
            PreferencesInput {
                statement_descriptor_suffix: Some("Dr \"Psy\" *".into()),
                ..prefs_input("25", "40", default_fees())
            },
            "validation_failed",
        ),
        (
            "a statement suffix longer than 22",
            PreferencesInput {
                statement_descriptor_suffix: Some("TELECONSULTATION MEDICALE".into()),
                ..prefs_input("25", "40", default_fees())
            },
            "validation_failed",
        ),
        (
            "a label with a line break",
            PreferencesInput {
                payment_label: Some("Consultation\npsychiatrie".into()),
                ..prefs_input("25", "40", default_fees())
            },
            "validation_failed",
        ),
    ];
    for (case, input, expected) in table {
        let mut m = Mocks::new();
        m.practitioner_is(&practitioner());
        m.practitioners.expect_update().never();
        let result = m.build().catalogue.set_preferences(&dr(), DR, &input).await;
        assert_eq!(code(result), expected, "{case}");
    }
}

#[tokio::test]
async fn new_preferences_are_written_conditionally_on_the_version_read() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    let expected = Preferences::new(
        eur(3000),
        eur(6000),
        FeePreset::Standard.schedule(Currency::Eur),
    )
    .unwrap();
    let written = expected.clone();
    m.practitioners
        .expect_update()
        .withf(move |p, expected_version, audit| {
            p.preferences == written
                && *expected_version == 3
                && p.version == 4
                && audit.action == AuditAction::PreferencesChanged
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let prefs = m
        .build()
        .catalogue
        .set_preferences(
            &dr(),
            DR,
            &prefs_input("30,00", "60", FeeScheduleInput::Preset(FeePreset::Standard)),
        )
        .await
        .unwrap();

    assert_eq!(prefs, expected);
}

#[tokio::test]
async fn a_preferences_write_that_loses_a_race_is_retried_on_the_fresh_version() {
    let mut m = Mocks::new();
    let mut fresher = practitioner();
    fresher.version = 4;
    for p in [practitioner(), practitioner(), fresher] {
        m.practitioners
            .expect_get()
            .times(1)
            .returning(move |_| Ok(p.clone()));
    }
    let mut seq = mockall::Sequence::new();
    m.practitioners
        .expect_update()
        .withf(|_, v, _| *v == 3)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(RepositoryError::Conflict));
    m.practitioners
        .expect_update()
        .withf(|p, v, _| *v == 4 && p.version == 5)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let result = m
        .build()
        .catalogue
        .set_preferences(
            &dr(),
            DR,
            &prefs_input("25", "40", FeeScheduleInput::Preset(FeePreset::Default)),
        )
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn preferences_that_keep_losing_races_end_in_a_conflict() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    m.practitioners
        .expect_update()
        .times(3)
        .returning(|_, _, _| Err(RepositoryError::Conflict));
    let result = m
        .build()
        .catalogue
        .set_preferences(
            &dr(),
            DR,
            &prefs_input("25", "40", FeeScheduleInput::Preset(FeePreset::Default)),
        )
        .await;
    assert_eq!(code(result), "concurrent_modification");
}

#[tokio::test]
async fn what_statements_say_is_set_kept_when_absent_and_cleared_when_empty() {
    let chosen = StatementText {
        label: Some(PaymentLabel::parse("Consultation").unwrap()),
        descriptor_suffix: Some(DescriptorSuffix::parse("CABINET 12").unwrap()),
    };
    let with_text = |input: PreferencesInput, before: StatementText, after: StatementText| {
        let mut m = Mocks::new();
        let mut p = practitioner();
        p.preferences = p.preferences.clone().with_statement(before);
        m.practitioner_is(&p);
        m.practitioners
            .expect_update()
            .withf(move |p, _, _| *p.preferences.statement() == after)
            .times(1)
            .returning(|_, _, _| Ok(()));
        (m, input)
    };
    let base = || prefs_input("25", "40", FeeScheduleInput::Preset(FeePreset::Default));
    for (case, (m, input)) in [
        (
            "set",
            with_text(
                PreferencesInput {
                    payment_label: Some(" Consultation ".into()),
                    statement_descriptor_suffix: Some("CABINET 12".into()),
                    ..base()
                },
                StatementText::default(),
                chosen.clone(),
            ),
        ),
        (
            "kept when absent",
            with_text(base(), chosen.clone(), chosen.clone()),
        ),
        (
            "cleared when empty",
            with_text(
                PreferencesInput {
                    payment_label: Some(String::new()),
                    statement_descriptor_suffix: Some(" ".into()),
                    ..base()
                },
                chosen.clone(),
                StatementText::default(),
            ),
        ),
    ] {
        let result = m.build().catalogue.set_preferences(&dr(), DR, &input).await;
        assert!(result.is_ok(), "{case}: {result:?}");
    }
}

// ---- C2: services -------------------------------------------------------------------

#[tokio::test]
async fn services_are_priced_within_the_maximum() {
    let table = [
        ("at the maximum", "Bilan", "40.00", None),
        (
            "above the maximum",
            "Bilan",
            "40.01",
            Some("amount_above_maximum"),
        ),
        (
            "below the minimum charge",
            "Bilan",
            "0.30",
            Some("below_minimum_charge"),
        ),
        ("without a name", "  ", "30", Some("validation_failed")),
    ];
    for (case, name, price, expected) in table {
        let mut m = Mocks::new();
        let mut p = practitioner();
        p.preferences = preferences(2500, 4000);
        m.practitioner_is(&p);
        m.services
            .expect_create()
            .withf(|s, audit| {
                s.practitioner() == DR
                    && s.id() == ServiceId::from_uuid(generated_id(1))
                    && audit.action == AuditAction::ServiceCreated
            })
            .times(usize::from(expected.is_none()))
            .returning(|_, _| Ok(()));
        let result = m
            .build()
            .catalogue
            .create_service(&dr(), DR, name, &AmountInput::parse(price, None).unwrap())
            .await;
        match expected {
            None => assert_eq!(result.unwrap().price(), eur(4000), "{case}"),
            Some(c) => assert_eq!(code(result), c, "{case}"),
        }
    }
}

#[tokio::test]
async fn a_service_is_repriced_within_the_maximum_or_not_at_all() {
    let table = [
        (
            ServicePatch {
                amount: Some(AmountInput::parse("20", None).unwrap()),
                ..ServicePatch::default()
            },
            Ok((eur(2000), true)),
        ),
        (
            ServicePatch {
                active: Some(false),
                ..ServicePatch::default()
            },
            Ok((eur(3000), false)),
        ),
        (
            ServicePatch {
                amount: Some(AmountInput::parse("99", None).unwrap()),
                ..ServicePatch::default()
            },
            Err("amount_above_maximum"),
        ),
    ];
    for (patch, expected) in table {
        let mut m = Mocks::new();
        let mut p = practitioner();
        p.preferences = preferences(2500, 4000);
        m.practitioner_is(&p);
        m.services
            .expect_get()
            .returning(|_| Ok(service(DR, 3000, true)));
        m.services
            .expect_update()
            .withf(|_, audit| audit.action == AuditAction::ServiceUpdated)
            .times(usize::from(expected.is_ok()))
            .returning(|_, _| Ok(()));
        let result = m
            .build()
            .catalogue
            .update_service(&dr(), SERVICE, &patch)
            .await;
        match expected {
            Ok((price, active)) => {
                let s = result.unwrap();
                assert_eq!((s.price(), s.active()), (price, active), "{patch:?}");
            }
            Err(c) => assert_eq!(code(result), c, "{patch:?}"),
        }
    }
}

#[tokio::test]
async fn another_practitioners_service_does_not_exist_for_you() {
    let mut m = Mocks::new();
    m.services
        .expect_get()
        .returning(|_| Ok(service(OTHER_DR, 3000, true)));
    m.services.expect_update().never();
    m.practitioners.expect_get().never();
    let billing = m.build();
    let patch = ServicePatch {
        active: Some(false),
        ..ServicePatch::default()
    };
    assert_eq!(
        code(
            billing
                .catalogue
                .update_service(&dr(), SERVICE, &patch)
                .await
        ),
        "not_found"
    );
    assert_eq!(
        code(
            billing
                .catalogue
                .service(&dr(), SERVICE, Action::ViewServices)
                .await
        ),
        "not_found"
    );
}

#[tokio::test]
async fn an_unknown_service_is_not_found() {
    let mut m = Mocks::new();
    m.services
        .expect_get()
        .returning(|_| Err(RepositoryError::NotFound));
    let result = m
        .build()
        .catalogue
        .update_service(&dr(), SERVICE, &ServicePatch::default())
        .await;
    assert_eq!(code(result), "not_found");
}

#[tokio::test]
async fn a_secretary_may_see_prices_and_services_but_not_change_them() {
    let mut m = Mocks::new();
    m.practitioner_is(&practitioner());
    m.services
        .expect_list()
        .withf(|p, inactive| *p == DR && !inactive)
        .times(1)
        .returning(|_, _| Ok(vec![service(DR, 3000, true)]));
    m.services
        .expect_get()
        .returning(|_| Ok(service(DR, 3000, true)));
    m.services.expect_create().never();
    m.services.expect_update().never();
    m.practitioners.expect_update().never();
    let billing = m.build();
    let c = &billing.catalogue;
    let sec = secretary();

    assert_eq!(c.services(&sec, DR, false).await.unwrap().len(), 1);
    assert_eq!(
        c.preferences(&sec, DR).await.unwrap(),
        Preferences::starting(Currency::Eur)
    );
    let price = AmountInput::parse("30", None).unwrap();
    assert_eq!(
        code(c.create_service(&sec, DR, "Bilan", &price).await),
        "forbidden"
    );
    assert_eq!(
        code(
            c.update_service(&sec, SERVICE, &ServicePatch::default())
                .await
        ),
        "forbidden"
    );
    let input = prefs_input("25", "40", FeeScheduleInput::Preset(FeePreset::Default));
    assert_eq!(code(c.set_preferences(&sec, DR, &input).await), "forbidden");
}

#[tokio::test]
async fn outsiders_see_nothing_of_a_practitioners_catalogue() {
    for (who, actor, expected) in outsiders() {
        let billing = Mocks::new().build();
        let c = &billing.catalogue;
        assert_eq!(code(c.services(&actor, DR, true).await), expected, "{who}");
        assert_eq!(code(c.preferences(&actor, DR).await), expected, "{who}");
        let input = prefs_input("25", "40", FeeScheduleInput::Preset(FeePreset::Default));
        assert_eq!(
            code(c.set_preferences(&actor, DR, &input).await),
            expected,
            "{who}"
        );
    }
}
