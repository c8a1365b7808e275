//! Layer 3, localstripe only: what the suite cannot see from the gateway's side —
//! the peer's own record of a partial capture, and a webhook localstripe signs and
//! delivers, verified by our verifier.

use std::sync::Arc;
use std::time::Duration;

use billing_core::gateway::{
    GatewayEvent, IntentStatus, PaymentGateway, WebhookError, WebhookVerifier,
};
use billing_core::payment::model::IdempotencyKey;
use billing_core::system::SystemClock;
use gateway_stripe::{Secret, StripeWebhookVerifier};
use reqwest::Method;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::harness::eur;
use crate::peers::{Card, LocalstripePeer, Peer};

#[tokio::test]
async fn a_partial_capture_charges_exactly_that_amount_at_the_peer() {
    let Some(peer) = LocalstripePeer::acquire().await else {
        return;
    };
    let a = peer.authorise(eur(1000), Card::Good).await;

    let (_, before) = peer
        .call(
            Method::GET,
            &format!("/v1/payment_intents/{}", a.intent),
            &[],
        )
        .await;
    assert_eq!(before["status"], "requires_capture", "{before}");
    assert_eq!(before["capture_method"], "manual");
    assert_eq!(before["amount"], 1000);
    assert_eq!(before["currency"], "eur");
    assert_eq!(before["metadata"]["payment_id"], a.hold.payment.to_string());
    assert_eq!(
        before["metadata"]["consultation_id"],
        a.hold.consultation.to_string()
    );

    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(600)).unwrap();
    let s = peer
        .gateway
        .capture(&peer.account(), &a.intent, &eur(600), &key)
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Succeeded);

    let charge_id = before["latest_charge"]["id"]
        .as_str()
        .expect("the authorised charge")
        .to_owned();
    let (_, charge) = peer
        .call(Method::GET, &format!("/v1/charges/{charge_id}"), &[])
        .await;
    assert_eq!(charge["captured"], true, "{charge}");
    assert_eq!(charge["payment_intent"], a.intent.as_str());
    // localstripe models the released 4.00 as a refund (as Stripe did before the
    // 2025-03-31 API version): what stays charged is exactly the 6.00 captured.
    let amount = charge["amount"].as_i64().unwrap();
    let refunded = charge["amount_refunded"].as_i64().unwrap();
    assert_eq!(amount - refunded, 600, "{charge}");
}

#[tokio::test]
async fn a_webhook_signed_by_the_peer_verifies_with_our_verifier() {
    let Some(peer) = LocalstripePeer::acquire().await else {
        return;
    };
    let listener = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&listener)
        .await;
    let secret = "whsec_consultpay_localstripe_test";
    let url = format!("{}/webhooks/stripe", listener.uri());
    let (status, body) = peer
        .call(
            Method::POST,
            "/_config/webhooks/consultpay",
            &[
                ("url", url.as_str()),
                ("secret", secret),
                ("events[]", "payment_intent.succeeded"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let a = peer.authorise(eur(2500), Card::Good).await;
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2500)).unwrap();
    peer.gateway
        .capture(&peer.account(), &a.intent, &eur(2500), &key)
        .await
        .unwrap();

    // localstripe delivers about a second later.
    let mut delivery = None;
    for _ in 0..100 {
        let received = listener.received_requests().await.unwrap_or_default();
        delivery = received
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains(a.intent.as_str()));
        if delivery.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = delivery.expect("localstripe delivered payment_intent.succeeded");
    let header = delivery
        .headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .expect("a Stripe-Signature header")
        .to_owned();

    let verifier = StripeWebhookVerifier::new(Some(Secret::new(secret)), Arc::new(SystemClock));
    let event = verifier
        .verify(Some(&header), &delivery.body)
        .expect("our verifier accepts it");
    assert_eq!(event.kind, "payment_intent.succeeded");
    let GatewayEvent::PaymentIntent(s) = event.payload else {
        panic!("{:?}", event.payload);
    };
    assert_eq!(s.id, a.intent);
    assert_eq!(s.status, IntentStatus::Succeeded);
    assert_eq!(s.payment, Some(a.hold.payment));

    let mut tampered = delivery.body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        verifier.verify(Some(&header), &tampered),
        Err(WebhookError::BadSignature)
    );
    let other = StripeWebhookVerifier::new(
        Some(Secret::new("whsec_not_the_one")),
        Arc::new(SystemClock),
    );
    assert_eq!(
        other.verify(Some(&header), &delivery.body),
        Err(WebhookError::BadSignature)
    );
}
