//! The Stripe implementation of `PaymentGateway` and `ConnectOnboarding`: direct
//! charges on the practitioner's connected account (`Stripe-Account` on every payment
//! call), Connect OAuth and Account Links for onboarding.

use async_trait::async_trait;
use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStart, CheckoutState, CheckoutStatus, ClientSecret,
    ConnectOnboarding, GatewayError, HoldRequest, IntentSnapshot, IntentStatus, PaymentGateway,
    RefundOutcome, SetupSnapshot,
};
use billing_core::ids::{
    CheckoutSessionId, ConnectedAccountId, CustomerId, PaymentIntentId, PractitionerId,
    SetupIntentId,
};
use billing_core::money::Money;
use billing_core::payment::model::IdempotencyKey;
use billing_core::payment::model::{Failure, RefundLine};
use billing_core::practitioner::model::AccountSnapshot;
use billing_core::secrets::OAuthState;

use crate::client::{
    Call, CallError, ClientOptions, DEFAULT_API_BASE, DEFAULT_CONNECT_BASE, Form, Host, Retry,
    StripeClient, random_u64,
};
use crate::secret::Secret;
use crate::transformers::{self, INTENT_EXPAND, RefundAccounting, SESSION_EXPAND};
use crate::wire;

/// How the patient authorises the hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckoutKind {
    /// Stripe Checkout (a hosted page): a Checkout Session in `payment` mode whose
    /// intent uses manual capture; the patient is redirected to its URL.
    #[default]
    Hosted,
    /// The Payment Element on our own page: a manual-capture PaymentIntent whose
    /// client secret the page uses.
    Elements,
}

/// What the operator configures for the Stripe gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeSettings {
    /// The platform's secret key (`STRIPE_SECRET_KEY`, `sk_…` or a restricted `rk_…`).
    pub secret_key: String,
    /// `STRIPE_API_BASE`; Stripe's API when absent.
    pub api_base: Option<String>,
    /// `STRIPE_CONNECT_BASE`: where Connect OAuth lives (`https://connect.stripe.com`
    /// when absent).
    pub connect_base: Option<String>,
    /// `STRIPE_CONNECT_CLIENT_ID` (`ca_…`), needed for the OAuth path.
    pub connect_client_id: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`): the platform endpoint's signing secret.
    pub webhook_secret: Option<String>,
    /// `STRIPE_CONNECT_WEBHOOK_SECRET` (`whsec_…`): the Connect endpoint's. With direct
    /// charges every payment event happens on a connected account and reaches only a
    /// Connect endpoint; either secret may sign a delivery to `/webhooks/stripe`.
    pub connect_webhook_secret: Option<String>,
    pub checkout: CheckoutKind,
    /// Send the hold's description (shown in the Stripe dashboard and on receipts) as
    /// the PaymentIntent's `description`. On for Stripe; some Stripe-compatible peers
    /// (localstripe) refuse the field, and their tests turn it off.
    pub describe_intents: bool,
    /// Save the card along with a hold made for the Payment Element
    /// (`setup_future_usage=off_session`), so a hold nearing its deadline can be
    /// renewed off-session. On for Stripe; localstripe refuses the parameter.
    pub renewable_holds: bool,
}

impl std::fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |s: &Option<String>| s.as_ref().map(|_| "*** ***");
        f.debug_struct("StripeSettings")
            .field("secret_key", &"*** ***")
            .field("api_base", &self.api_base)
            .field("connect_base", &self.connect_base)
            .field("connect_client_id", &self.connect_client_id)
            .field("webhook_secret", &masked(&self.webhook_secret))
            .field(
                "connect_webhook_secret",
                &masked(&self.connect_webhook_secret),
            )
            .field("checkout", &self.checkout)
            .field("describe_intents", &self.describe_intents)
            .field("renewable_holds", &self.renewable_holds)
            .finish()
    }
}

/// Why the Stripe gateway could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the Stripe secret key is empty")]
    MissingKey,
    #[error("{which} is not an http(s) URL: {value}")]
    InvalidBase { which: &'static str, value: String },
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}

fn base(value: Option<&str>, default: &str, which: &'static str) -> Result<String, ConfigError> {
    let value = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default);
    let invalid = || ConfigError::InvalidBase {
        which,
        value: value.chars().take(100).collect(),
    };
    let url = reqwest::Url::parse(value).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// `PaymentGateway` and `ConnectOnboarding` on the Stripe API.
#[derive(Debug)]
pub struct StripeGateway {
    client: StripeClient,
    connect_client_id: Option<String>,
    checkout: CheckoutKind,
    describe_intents: bool,
    renewable_holds: bool,
}

impl StripeSettings {
    /// The mode of the secret key: `Some(true)` live (`sk_live_`, `rk_live_`),
    /// `Some(false)` test, `None` when the key does not say (a Stripe-compatible peer).
    pub fn livemode(&self) -> Option<bool> {
        let key = self.secret_key.trim();
        if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
            Some(true)
        } else if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
            Some(false)
        } else {
            None
        }
    }
}

/// The Stripe client the settings describe.
pub(crate) fn client_for(
    settings: &StripeSettings,
    options: ClientOptions,
) -> Result<StripeClient, ConfigError> {
    let key = Secret::new(settings.secret_key.trim());
    if key.is_empty() {
        return Err(ConfigError::MissingKey);
    }
    let api = base(
        settings.api_base.as_deref(),
        DEFAULT_API_BASE,
        "STRIPE_API_BASE",
    )?;
    let connect = base(
        settings.connect_base.as_deref(),
        DEFAULT_CONNECT_BASE,
        "STRIPE_CONNECT_BASE",
    )?;
    StripeClient::new(key, &api, &connect, options).map_err(|e| ConfigError::Client(e.to_string()))
}

impl StripeGateway {
    pub fn new(settings: &StripeSettings, options: ClientOptions) -> Result<Self, ConfigError> {
        let client = client_for(settings, options)?;
        Ok(StripeGateway {
            client,
            connect_client_id: settings
                .connect_client_id
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            checkout: settings.checkout,
            describe_intents: settings.describe_intents,
            renewable_holds: settings.renewable_holds,
        })
    }

    fn client_id(&self) -> Result<&str, GatewayError> {
        self.connect_client_id
            .as_deref()
            .ok_or(GatewayError::NotConfigured(
                "Stripe Connect client id (STRIPE_CONNECT_CLIENT_ID)",
            ))
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<T, GatewayError> {
        self.client
            .send(call)
            .await
            .map_err(transformers::gateway_error)
    }

    async fn intent_call(&self, call: Call<'_>) -> Result<IntentSnapshot, GatewayError> {
        let pi: wire::PaymentIntent = self.send(call).await?;
        Ok(transformers::intent_snapshot(
            &pi,
            RefundAccounting::PINNED,
        )?)
    }

    async fn create_intent(&self, hold: &HoldRequest) -> Result<IntentSnapshot, GatewayError> {
        self.post_intent(
            hold,
            transformers::hold_params(hold, self.describe_intents)?,
        )
        .await
    }

    /// `POST /v1/payment_intents` for `hold` with `params`, under the hold's key.
    async fn post_intent(
        &self,
        hold: &HoldRequest,
        params: Form,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.intent_call(
            Call::post(Host::Api, "/v1/payment_intents")
                .params(params)
                .account(&hold.account)
                .idempotency_key(hold.key.as_str()),
        )
        .await
    }

    /// The customer a card is saved on, on the practitioner's account: one per
    /// checkout attempt (its key derives from the attempt's).
    async fn customer(&self, req: &CheckoutRequest) -> Result<CustomerId, GatewayError> {
        let c: wire::Customer = self
            .send(
                Call::post(Host::Api, "/v1/customers")
                    .params(transformers::customer_params(req))
                    .account(&req.hold.account)
                    .idempotency_key(format!("{}:customer", req.hold.key.as_str())),
            )
            .await?;
        CustomerId::parse(&c.id).map_err(|e| transformers::Malformed(e.to_string()).into())
    }

    /// The Payment Element path. Mode `Hold`: reuse the payment's intent while it can
    /// still be authorised (or already is), else create one that saves the card for a
    /// renewal. Mode `SaveCard`: a SetupIntent.
    async fn elements_checkout(
        &self,
        req: &CheckoutRequest,
    ) -> Result<CheckoutStart, GatewayError> {
        if req.mode == CheckoutMode::SaveCard {
            let customer = self.customer(req).await?;
            let setup: wire::SetupIntent = self
                .send(
                    Call::post(Host::Api, "/v1/setup_intents")
                        .params(transformers::setup_intent_params(
                            req,
                            &customer,
                            self.describe_intents,
                        ))
                        .account(&req.hold.account)
                        .idempotency_key(format!("{}:setup", req.hold.key.as_str())),
                )
                .await?;
            let id = SetupIntentId::parse(&setup.id)
                .map_err(|e| GatewayError::from(transformers::Malformed(e.to_string())))?;
            return Ok(CheckoutStart {
                intent: None,
                session: None,
                setup: Some(id),
                redirect_url: None,
                client_secret: setup
                    .client_secret
                    .as_ref()
                    .map(|s| ClientSecret::new(s.expose().to_owned())),
                expires_at: None,
                mode: CheckoutMode::SaveCard,
            });
        }
        let existing = match &req.existing_intent {
            Some(id) => match self.retrieve(&req.hold.account, id).await {
                Ok(s) if s.status != IntentStatus::Canceled && s.client_secret.is_some() => Some(s),
                Ok(_) | Err(GatewayError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let intent = match existing {
            Some(s) => s,
            None => {
                let customer = self.customer(req).await?;
                let hold = &req.hold;
                let mut params = transformers::hold_params(hold, self.describe_intents)?
                    .with("customer", customer.as_str());
                if self.renewable_holds {
                    params.push("setup_future_usage", "off_session");
                }
                self.post_intent(hold, params).await?
            }
        };
        Ok(CheckoutStart {
            intent: Some(intent.id),
            session: None,
            setup: None,
            redirect_url: None,
            client_secret: intent.client_secret,
            expires_at: None,
            mode: CheckoutMode::Hold,
        })
    }

    /// The Stripe Checkout path. Checkout creates its own intent (or SetupIntent) when
    /// the patient pays, so an earlier intent of the payment is not reused here.
    async fn hosted_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError> {
        let customer = self.customer(req).await?;
        let session: wire::CheckoutSession = self
            .send(
                Call::post(Host::Api, "/v1/checkout/sessions")
                    .params(transformers::checkout_session_params(req, &customer)?)
                    .account(&req.hold.account)
                    .idempotency_key(req.hold.key.as_str()),
            )
            .await?;
        Ok(transformers::checkout_started(&session)?)
    }

    /// Every refund of the intent's charge (Stripe lists them newest first; a
    /// teleconsultation has one or two). The domain merges them by id, so their order
    /// does not matter.
    async fn refunds(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<Vec<RefundLine>, GatewayError> {
        let refunds: Vec<wire::Refund> = list_all(
            &self.client,
            "/v1/refunds",
            Form::new().with("payment_intent", intent.as_str()),
            Some(account),
        )
        .await?;
        let mut lines = refunds
            .iter()
            .map(|r| Ok(transformers::refund_outcome(r)?.line()))
            .collect::<Result<Vec<_>, transformers::Malformed>>()?;
        lines.reverse();
        Ok(lines)
    }
}

/// An item of a Stripe list, which is paged by its id.
pub(crate) trait Listed {
    fn id(&self) -> &str;
}

impl Listed for wire::Refund {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Listed for wire::WebhookEndpoint {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Every item of the list at `path` (narrowed by `filters`), a page of 100 at a time,
/// at most ten pages.
pub(crate) async fn list_all<T>(
    client: &StripeClient,
    path: &str,
    filters: Form,
    account: Option<&ConnectedAccountId>,
) -> Result<Vec<T>, GatewayError>
where
    T: serde::de::DeserializeOwned + Listed,
{
    const PAGES: usize = 10;
    let mut all: Vec<T> = Vec::new();
    for _ in 0..PAGES {
        let mut params = filters.clone().with("limit", "100");
        if let Some(last) = all.last() {
            params.push("starting_after", last.id());
        }
        let mut call = Call::get(Host::Api, path).params(params);
        if let Some(account) = account {
            call = call.account(account);
        }
        let page: wire::List<T> = client
            .send(call)
            .await
            .map_err(transformers::gateway_error)?;
        let more = page.has_more && !page.data.is_empty();
        all.extend(page.data);
        if !more {
            break;
        }
    }
    Ok(all)
}

/// An off-session hold the card did not authorise is a refusal, never an intent left
/// waiting for a patient who is not there: Stripe answers such holds with a
/// `card_error` (`authentication_required`); a Stripe-compatible peer may instead
/// leave the intent in `requires_action` or `requires_payment_method`.
fn off_session_outcome(snapshot: IntentSnapshot) -> Result<IntentSnapshot, GatewayError> {
    match snapshot.status {
        IntentStatus::RequiresAction => Err(GatewayError::Declined(Failure {
            code: Some("authentication_required".into()),
            decline_code: Some("authentication_required".into()),
            message: "The card's bank asks the cardholder to authenticate this payment.".into(),
        })),
        IntentStatus::RequiresPaymentMethod => Err(GatewayError::Declined(
            snapshot.last_error.unwrap_or(Failure {
                code: Some("card_declined".into()),
                decline_code: None,
                message: "The card was declined.".into(),
            }),
        )),
        _ => Ok(snapshot),
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn create_hold(&self, req: &HoldRequest) -> Result<IntentSnapshot, GatewayError> {
        let snapshot = self.create_intent(req).await?;
        if req.off_session.is_none() {
            return Ok(snapshot);
        }
        let snapshot = off_session_outcome(snapshot)?;
        // Confirmed at once, it is held: its deadline is on the charge, which the
        // create call does not expand. Read it back (a failed read leaves the domain
        // counting the card's seven days from now).
        if snapshot.status == IntentStatus::RequiresCapture
            && snapshot.capture_before.is_none()
            && let Ok(read) = self.retrieve(&req.account, &snapshot.id).await
        {
            return Ok(read);
        }
        Ok(snapshot)
    }

    async fn start_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError> {
        match self.checkout {
            CheckoutKind::Hosted => self.hosted_checkout(req).await,
            CheckoutKind::Elements => self.elements_checkout(req).await,
        }
    }

    async fn expire_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
        key: &IdempotencyKey,
    ) -> Result<(), GatewayError> {
        let expired: Result<wire::CheckoutSession, GatewayError> = self
            .send(
                Call::post(Host::Api, format!("/v1/checkout/sessions/{session}/expire"))
                    .account(account)
                    .idempotency_key(key.as_str()),
            )
            .await;
        match expired {
            Ok(_) => Ok(()),
            // "Only Checkout Sessions with a status in [open] can be expired": it may
            // have expired already, or been paid (whose hold then arrives as an
            // event). Any other refusal is surfaced, never taken for "closed".
            Err(
                refused @ (GatewayError::InvalidRequest { .. }
                | GatewayError::UnexpectedState { .. }),
            ) => match self.retrieve_checkout(account, session).await {
                Ok(state) if state.status != CheckoutStatus::Open => Ok(()),
                _ => Err(refused),
            },
            Err(e) => Err(e),
        }
    }

    async fn retrieve_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
    ) -> Result<CheckoutState, GatewayError> {
        let s: wire::CheckoutSession = self
            .send(
                Call::get(Host::Api, format!("/v1/checkout/sessions/{session}"))
                    .params(Form::new().expand(SESSION_EXPAND))
                    .account(account),
            )
            .await?;
        Ok(transformers::checkout_state(&s)?)
    }

    async fn retrieve_setup(
        &self,
        account: &ConnectedAccountId,
        setup: &SetupIntentId,
    ) -> Result<SetupSnapshot, GatewayError> {
        let si: wire::SetupIntent = self
            .send(Call::get(Host::Api, format!("/v1/setup_intents/{setup}")).account(account))
            .await?;
        Ok(transformers::setup_snapshot(&si)?)
    }

    async fn capture(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.intent_call(
            Call::post(Host::Api, format!("/v1/payment_intents/{intent}/capture"))
                .params(transformers::capture_params(amount)?)
                .account(account)
                .idempotency_key(key.as_str()),
        )
        .await
    }

    async fn release(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.intent_call(
            Call::post(Host::Api, format!("/v1/payment_intents/{intent}/cancel"))
                .params(Form::new().expand(INTENT_EXPAND))
                .account(account)
                .idempotency_key(key.as_str()),
        )
        .await
    }

    async fn refund(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<RefundOutcome, GatewayError> {
        let refund: wire::Refund = self
            .send(
                Call::post(Host::Api, "/v1/refunds")
                    .params(transformers::refund_params(intent, amount)?)
                    .account(account)
                    .idempotency_key(key.as_str()),
            )
            .await?;
        Ok(transformers::refund_outcome(&refund)?)
    }

    async fn retrieve(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<IntentSnapshot, GatewayError> {
        let mut snapshot = self
            .intent_call(
                Call::get(Host::Api, format!("/v1/payment_intents/{intent}"))
                    .params(Form::new().expand(INTENT_EXPAND))
                    .account(account),
            )
            .await?;
        if snapshot.status == IntentStatus::Succeeded {
            snapshot.refunds = Some(self.refunds(account, intent).await?);
        }
        Ok(snapshot)
    }
}

#[async_trait]
impl ConnectOnboarding for StripeGateway {
    fn authorize_url(
        &self,
        state: &OAuthState,
        redirect_uri: &str,
    ) -> Result<String, GatewayError> {
        let client_id = self.client_id()?;
        let mut url =
            reqwest::Url::parse(&format!("{}/oauth/authorize", self.client.connect_base()))
                .map_err(|e| GatewayError::InvalidRequest {
                    code: None,
                    param: None,
                    message: e.to_string(),
                })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("scope", "read_write")
            .append_pair("client_id", client_id)
            .append_pair("state", state.expose())
            .append_pair("redirect_uri", redirect_uri);
        Ok(url.into())
    }

    async fn exchange_code(&self, code: &str) -> Result<ConnectedAccountId, GatewayError> {
        let code = code.trim();
        if code.is_empty() {
            return Err(GatewayError::InvalidGrant {
                message: "no authorization code".into(),
            });
        }
        // A code works once: the exchange is repeated only when Stripe cannot have
        // seen it.
        let token: wire::OAuthToken = self
            .send(
                Call::post(Host::Connect, "/oauth/token")
                    .params(
                        Form::new()
                            .with("grant_type", "authorization_code")
                            .with("code", code),
                    )
                    .retry(Retry::IfUnprocessed),
            )
            .await?;
        ConnectedAccountId::parse(&token.stripe_user_id)
            .map_err(|e| transformers::Malformed(e.to_string()).into())
    }

    async fn deauthorize(&self, account: &ConnectedAccountId) -> Result<(), GatewayError> {
        let client_id = self.client_id()?;
        let result: Result<wire::OAuthDeauthorization, CallError> = self
            .client
            .send(
                Call::post(Host::Connect, "/oauth/deauthorize").params(
                    Form::new()
                        .with("client_id", client_id)
                        .with("stripe_user_id", account.as_str()),
                ),
            )
            .await;
        match result {
            Ok(done) if done.stripe_user_id == account.as_str() => Ok(()),
            Ok(_) => Err(transformers::Malformed(
                "the deauthorization names another account".into(),
            )
            .into()),
            // "The account is not connected to your platform" (already disconnected).
            Err(CallError::OAuth {
                error, description, ..
            }) if error == "invalid_client" => Err(GatewayError::AccountUnavailable {
                message: description.unwrap_or(error),
            }),
            Err(e) => Err(transformers::gateway_error(e)),
        }
    }

    async fn retrieve_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<AccountSnapshot, GatewayError> {
        let a: wire::Account = self
            .send(Call::get(Host::Api, format!("/v1/accounts/{account}")))
            .await
            .map_err(|e| match e {
                // An account that does not exist for us cannot be reached either.
                GatewayError::NotFound { message } => GatewayError::AccountUnavailable { message },
                other => other,
            })?;
        Ok(transformers::account_snapshot(&a)?)
    }

    /// Creates a **Standard** account: like the accounts linked through OAuth, the
    /// practitioner owns it, has the full Stripe Dashboard and is the merchant of
    /// record of direct charges (Stripe's fees, disputes and negative balances are
    /// theirs, not the platform's).
    async fn create_account(
        &self,
        practitioner: PractitionerId,
        key: &IdempotencyKey,
    ) -> Result<ConnectedAccountId, GatewayError> {
        let a: wire::Account = self
            .send(
                Call::post(Host::Api, "/v1/accounts")
                    .params(
                        Form::new()
                            .with("type", "standard")
                            .with("metadata[practitioner_id]", practitioner.to_string()),
                    )
                    .idempotency_key(key.as_str()),
            )
            .await?;
        ConnectedAccountId::parse(&a.id).map_err(|e| transformers::Malformed(e.to_string()).into())
    }

    async fn account_link(
        &self,
        account: &ConnectedAccountId,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        // Links are single-use and expire within minutes, so each call gets its own
        // key (shared by its retries) rather than one that would replay an old link.
        let key = format!("consultpay:account_link:{account}:{:016x}", random_u64());
        let link: wire::AccountLink = self
            .send(
                Call::post(Host::Api, "/v1/account_links")
                    .params(
                        Form::new()
                            .with("account", account.as_str())
                            .with("refresh_url", refresh_url)
                            .with("return_url", return_url)
                            .with("type", "account_onboarding"),
                    )
                    .idempotency_key(key),
            )
            .await?;
        Ok(link.url)
    }
}
