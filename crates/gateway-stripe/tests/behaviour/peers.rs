//! The two implementations the behaviour suite runs against, and how a patient's
//! browser authorises a hold on each.

use std::sync::Arc;

use async_trait::async_trait;
use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, GatewayEvent, HoldRequest, PaymentGateway, SandboxControl,
    SandboxNext,
};
use billing_core::ids::{ConnectedAccountId, CustomerId, PaymentIntentId, PaymentMethodId};
use billing_core::money::Money;
use billing_core::payment::model::SavedCard;
use gateway_stripe::{
    CheckoutKind, ClientOptions, SandboxConfig, SandboxGateway, StripeGateway, StripeSettings,
};
use serde_json::Value;
use tokio::sync::MutexGuard;

use crate::harness::{MemorySandboxStore, TestClock, checkout, hold};
use crate::localstripe::{self, Localstripe};

/// A card the patient uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    /// Authorises.
    Good,
    /// The issuer declines.
    Declined,
    /// Asks for 3-D Secure, which the patient passes or fails.
    ThreeDSecure { pass: bool },
}

/// A card the patient saves for a hold placed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saving {
    /// Every later charge succeeds.
    Good,
    /// Saves, but every charge is declined (`…0341`).
    DeclinesCharges,
    /// Every charge asks the cardholder to authenticate (`…3184`).
    NeedsAuthentication,
}

/// A hold the patient went through the authorisation of.
#[derive(Debug)]
pub struct Authorised {
    pub hold: HoldRequest,
    pub intent: PaymentIntentId,
}

/// A gateway implementation plus what a browser does against it.
#[async_trait]
pub trait Peer: Send + Sync {
    fn name(&self) -> &'static str;
    fn gateway(&self) -> &dyn PaymentGateway;
    fn account(&self) -> ConnectedAccountId;
    /// Whether the peer reports `amount_capturable` and `amount_received` (localstripe
    /// does not).
    fn reports_amounts(&self) -> bool;
    /// Whether the peer refuses what Stripe refuses: capture after cancel, refunds
    /// above the captured amount or before a capture (localstripe accepts them all).
    fn enforces_stripes_rules(&self) -> bool;
    /// The patient authorises `amount` for a fresh payment with `card`, as their
    /// browser would on this peer.
    async fn authorise(&self, amount: Money, card: Card) -> Authorised;
    /// The patient saves a card for a fresh payment of `amount`, to be held later:
    /// the hold request of that payment, and the saved card.
    async fn save_card(&self, amount: Money, card: Saving) -> (HoldRequest, SavedCard);
}

// ---------------------------------------------------------------------------------

pub struct SandboxPeer {
    /// Where the patient's browser goes (the card page).
    pub sandbox: Arc<SandboxGateway>,
    /// What the server calls: `sandbox` itself, or another sandbox on the same store
    /// (a second server, or the same one after a restart).
    pub server: Arc<SandboxGateway>,
    pub clock: Arc<TestClock>,
    /// Where both keep their objects, if anywhere.
    pub store: Option<MemorySandboxStore>,
}

fn config() -> SandboxConfig {
    SandboxConfig::new("http://127.0.0.1:8080")
}

impl SandboxPeer {
    /// One sandbox in memory.
    pub fn new() -> SandboxPeer {
        let clock = TestClock::new();
        let sandbox = Arc::new(SandboxGateway::new(clock.clone(), config()));
        SandboxPeer {
            server: sandbox.clone(),
            sandbox,
            clock,
            store: None,
        }
    }

    /// Two sandboxes on one store: the patient pays on one, the server works on the
    /// other, as with two servers on one database.
    pub fn stored() -> SandboxPeer {
        let clock = TestClock::new();
        let store = MemorySandboxStore::default();
        let on_store = || {
            Arc::new(SandboxGateway::with_store(
                clock.clone(),
                config(),
                Arc::new(store.clone()),
            ))
        };
        SandboxPeer {
            sandbox: on_store(),
            server: on_store(),
            clock,
            store: Some(store),
        }
    }
}

#[async_trait]
impl Peer for SandboxPeer {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn gateway(&self) -> &dyn PaymentGateway {
        self.server.as_ref()
    }

    fn account(&self) -> ConnectedAccountId {
        ConnectedAccountId::parse("acct_1SandboxSuite0001").unwrap()
    }

    fn reports_amounts(&self) -> bool {
        true
    }

    fn enforces_stripes_rules(&self) -> bool {
        true
    }

    /// The sandbox card page: start the checkout, pay with Stripe's test payment
    /// method, answer 3-D Secure.
    async fn authorise(&self, amount: Money, card: Card) -> Authorised {
        let hold = hold(&self.account(), amount);
        let start = self
            .sandbox
            .start_checkout(&checkout(hold.clone()))
            .await
            .unwrap();
        let session = start.session.expect("a sandbox checkout session");
        let payment_method = match card {
            Card::Good => "pm_card_visa",
            Card::Declined => "pm_card_chargeDeclined",
            Card::ThreeDSecure { .. } => "pm_card_authenticationRequired",
        };
        let mut outcome = self.sandbox.pay(&session, payment_method).await.unwrap();
        if let Card::ThreeDSecure { pass } = card {
            assert_eq!(outcome.next, SandboxNext::Authenticate);
            assert!(outcome.events.is_empty());
            outcome = self.sandbox.authenticate(&session, pass).await.unwrap();
        }
        let intent = outcome
            .events
            .iter()
            .find_map(|e| match &e.payload {
                GatewayEvent::PaymentIntent(s) => Some(s.id.clone()),
                _ => None,
            })
            .expect("the payment's events name its intent");
        Authorised { hold, intent }
    }

    /// The sandbox card page in `setup` mode.
    async fn save_card(&self, amount: Money, card: Saving) -> (HoldRequest, SavedCard) {
        let hold = hold(&self.account(), amount);
        let start = self
            .sandbox
            .start_checkout(&CheckoutRequest {
                mode: CheckoutMode::SaveCard,
                ..checkout(hold.clone())
            })
            .await
            .unwrap();
        let session = start.session.expect("a sandbox checkout session");
        let payment_method = match card {
            Saving::Good => "pm_card_visa",
            Saving::DeclinesCharges => "pm_card_chargeCustomerFail",
            Saving::NeedsAuthentication => "pm_card_authenticationRequired",
        };
        let mut outcome = self.sandbox.pay(&session, payment_method).await.unwrap();
        if outcome.next == SandboxNext::Authenticate {
            outcome = self.sandbox.authenticate(&session, true).await.unwrap();
        }
        let saved = outcome
            .events
            .iter()
            .find_map(|e| match &e.payload {
                GatewayEvent::SetupIntent(s) => s.saved_card.clone(),
                _ => None,
            })
            .expect("the saving's event names the card");
        (hold, saved)
    }
}

// ---------------------------------------------------------------------------------

pub struct LocalstripePeer {
    pub server: &'static Localstripe,
    pub gateway: StripeGateway,
    _exclusive: MutexGuard<'static, ()>,
}

pub const LOCALSTRIPE_KEY: &str = "sk_test_consultpay_localstripe";

impl LocalstripePeer {
    /// A freshly reset localstripe for this test alone, or `None` when it cannot run
    /// here (outside CI).
    pub async fn acquire() -> Option<LocalstripePeer> {
        let (guard, server) = localstripe::acquire().await?;
        let settings = StripeSettings {
            secret_key: LOCALSTRIPE_KEY.into(),
            api_base: Some(server.base.clone()),
            connect_base: Some(server.base.clone()),
            connect_client_id: None,
            webhook_secret: None,
            connect_webhook_secret: None,
            // localstripe has no Checkout: the Payment Element path.
            checkout: CheckoutKind::Elements,
            describe_intents: true,
            renewable_holds: false,
        };
        let options = ClientOptions {
            initial_backoff: std::time::Duration::from_millis(50),
            ..ClientOptions::default()
        };
        Some(LocalstripePeer {
            server,
            gateway: StripeGateway::new(&settings, options).unwrap(),
            _exclusive: guard,
        })
    }

    /// A raw call to localstripe, as Stripe.js or a test would make it.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.server.base);
        let mut req = crate::harness::http()
            .request(method.clone(), url)
            .bearer_auth(LOCALSTRIPE_KEY);
        req = if method == reqwest::Method::GET {
            req.query(form)
        } else {
            req.form(form)
        };
        let resp = req.send().await.expect("localstripe answers");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// A card PaymentMethod, as Stripe.js creates it from the card form.
    async fn card(&self, number: &str) -> String {
        let (status, pm) = self
            .call(
                reqwest::Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", number),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2034"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{pm}");
        pm["id"].as_str().expect("a payment method id").to_owned()
    }
}

#[async_trait]
impl Peer for LocalstripePeer {
    fn name(&self) -> &'static str {
        "localstripe"
    }

    fn gateway(&self) -> &dyn PaymentGateway {
        &self.gateway
    }

    fn account(&self) -> ConnectedAccountId {
        // localstripe has no Connect; the header is sent and ignored.
        ConnectedAccountId::parse("acct_1LocalstripeSuite01").unwrap()
    }

    fn reports_amounts(&self) -> bool {
        false
    }

    fn enforces_stripes_rules(&self) -> bool {
        false
    }

    /// The Payment Element: our gateway makes the intent and hands over its client
    /// secret; the browser sets the payment method, confirms, and answers 3-D Secure.
    async fn authorise(&self, amount: Money, card: Card) -> Authorised {
        let hold = hold(&self.account(), amount);
        let start = self
            .gateway
            .start_checkout(&checkout(hold.clone()))
            .await
            .unwrap();
        let intent = start
            .intent
            .expect("the Payment Element path returns the intent");
        let secret = start.client_secret.expect("and its client secret");
        let payment_method = match card {
            Card::Good => "pm_card_visa".to_owned(),
            // localstripe's card that authorises on attach and fails when charged.
            Card::Declined => "pm_card_chargeCustomerFail".to_owned(),
            Card::ThreeDSecure { .. } => self.card("4000002760003184").await,
        };
        let at = format!("/v1/payment_intents/{intent}");
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &at,
                &[("payment_method", payment_method.as_str())],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .call(reqwest::Method::POST, &format!("{at}/confirm"), &[])
            .await;
        match card {
            Card::Declined => assert_eq!(status, 402, "a declined card: {body}"),
            _ => assert_eq!(status, 200, "{body}"),
        }
        if let Card::ThreeDSecure { pass } = card {
            assert_eq!(body["status"], "requires_action", "{body}");
            let (status, body) = self
                .call(
                    reqwest::Method::POST,
                    &format!("{at}/_authenticate"),
                    &[
                        ("client_secret", secret.expose()),
                        ("success", if pass { "true" } else { "false" }),
                    ],
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        Authorised { hold, intent }
    }

    /// The Payment Element saving a card: our gateway makes the customer and the
    /// SetupIntent; the browser confirms it with the card. (localstripe cannot answer
    /// 3-D Secure on a SetupIntent: a card that always asks for it is attached to the
    /// customer directly, as a card saved earlier would be.)
    async fn save_card(&self, amount: Money, card: Saving) -> (HoldRequest, SavedCard) {
        let hold = hold(&self.account(), amount);
        if card == Saving::NeedsAuthentication {
            let (status, customer) = self.call(reqwest::Method::POST, "/v1/customers", &[]).await;
            assert_eq!(status, 200, "{customer}");
            let customer = customer["id"].as_str().unwrap().to_owned();
            let pm = self.card("4000002760003184").await;
            let (status, body) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/payment_methods/{pm}/attach"),
                    &[("customer", customer.as_str())],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            return (
                hold,
                SavedCard {
                    customer: CustomerId::parse(&customer).unwrap(),
                    payment_method: PaymentMethodId::parse(&pm).unwrap(),
                },
            );
        }
        let start = self
            .gateway
            .start_checkout(&CheckoutRequest {
                mode: CheckoutMode::SaveCard,
                ..checkout(hold.clone())
            })
            .await
            .unwrap();
        let secret = start.client_secret.expect("a SetupIntent's client secret");
        let setup = secret.expose().split("_secret_").next().unwrap().to_owned();
        let payment_method = match card {
            Saving::Good => "pm_card_visa",
            _ => "pm_card_chargeCustomerFail",
        };
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/setup_intents/{setup}/confirm"),
                &[("payment_method", payment_method)],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        let saved = SavedCard {
            customer: CustomerId::parse(body["customer"].as_str().unwrap()).unwrap(),
            payment_method: PaymentMethodId::parse(body["payment_method"].as_str().unwrap())
                .unwrap(),
        };
        (hold, saved)
    }
}
