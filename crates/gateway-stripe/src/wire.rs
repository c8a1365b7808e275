//! Stripe's JSON, as this adapter reads it.
//!
//! Only the fields the adapter uses are declared; everything else Stripe sends is
//! ignored. The types are tolerant on purpose: fields that older API versions (the
//! version of a webhook endpoint may be older than the pinned `Stripe-Version`) or
//! Stripe-compatible test servers such as localstripe leave out are `Option` or
//! default, `null` is accepted wherever Stripe documents a nullable field, and
//! expandable fields ([`Expandable`]) accept either an id or the expanded object.
//! Whether a missing value is acceptable is decided in
//! [`transformers`](crate::transformers), not here.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

/// Deserializes `null` (or an absent field, with `#[serde(default)]`) as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Stripe metadata: string keys and string values. Values of any other JSON type
/// (which Stripe never sends) are dropped rather than failing the whole object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Metadata(BTreeMap<String, String>);

impl Metadata {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
        Ok(Metadata(
            raw.unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
        ))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Anything with a Stripe id.
pub(crate) trait Object {
    fn id(&self) -> &str;
}

/// An expandable field: the id, or the object when the request asked for `expand[]`
/// (webhook payloads and some test servers expand on their own).
#[derive(Debug)]
pub(crate) enum Expandable<T> {
    Id(String),
    Object(Box<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Expandable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Decide on the JSON type rather than trying both shapes (`untagged`), so an
        // object that fails to deserialize reports its real error.
        let value = serde_json::Value::deserialize(d)?;
        match value {
            serde_json::Value::String(id) => Ok(Expandable::Id(id)),
            serde_json::Value::Object(_) => T::deserialize(value)
                .map(|o| Expandable::Object(Box::new(o)))
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected an id or an object, found {}",
                json_kind(&other)
            ))),
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl<T: Object> Expandable<T> {
    pub(crate) fn id(&self) -> &str {
        match self {
            Expandable::Id(id) => id,
            Expandable::Object(o) => o.id(),
        }
    }

    pub(crate) fn object(&self) -> Option<&T> {
        match self {
            Expandable::Id(_) => None,
            Expandable::Object(o) => Some(o),
        }
    }
}

/// A list object (`{"object": "list", "data": [...], "has_more": …}`).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(crate) struct List<T> {
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    pub data: Vec<T>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_more: bool,
}

/// An object read only for its id (a customer, a payment method): what an expandable
/// field holds when it was expanded.
#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    pub id: String,
}

impl Object for Named {
    fn id(&self) -> &str {
        &self.id
    }
}

/// `PaymentIntent.status`. `requires_source` and `requires_source_action` are the
/// names API versions before 2019-02-11 used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    RequiresSource,
    RequiresSourceAction,
    #[serde(other)]
    Unknown,
}

/// <https://docs.stripe.com/api/payment_intents/object>
#[derive(Debug, Deserialize)]
pub(crate) struct PaymentIntent {
    pub id: String,
    pub amount: i64,
    /// Absent from localstripe's objects.
    #[serde(default)]
    pub amount_capturable: Option<i64>,
    /// Absent from localstripe's objects.
    #[serde(default)]
    pub amount_received: Option<i64>,
    pub currency: String,
    pub status: IntentStatus,
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub last_payment_error: Option<LastPaymentError>,
    /// Since API version 2022-11-15.
    #[serde(default)]
    pub latest_charge: Option<Expandable<Charge>>,
    /// Before 2022-11-15 (still sent by endpoints on older versions).
    #[serde(default)]
    pub charges: Option<List<Charge>>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub customer: Option<Expandable<Named>>,
    #[serde(default)]
    pub payment_method: Option<Expandable<Named>>,
    /// `off_session` when the intent saves its card for later.
    #[serde(default)]
    pub setup_future_usage: Option<String>,
}

impl Object for PaymentIntent {
    fn id(&self) -> &str {
        &self.id
    }
}

impl PaymentIntent {
    /// The intent's current charge, when the response carries it as an object.
    pub(crate) fn charge(&self) -> Option<&Charge> {
        match &self.latest_charge {
            Some(latest) => latest.object(),
            None => self.charges.as_ref().and_then(|c| c.data.last()),
        }
    }
}

/// `PaymentIntent.last_payment_error`: Stripe's error object, every field optional.
#[derive(Debug, Deserialize)]
pub(crate) struct LastPaymentError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// <https://docs.stripe.com/api/charges/object>
#[derive(Debug, Deserialize)]
pub(crate) struct Charge {
    pub id: String,
    pub amount: i64,
    /// Absent before API version 2019-… and from localstripe.
    #[serde(default)]
    pub amount_captured: Option<i64>,
    #[serde(default)]
    pub amount_refunded: Option<i64>,
    #[serde(default)]
    pub captured: Option<bool>,
    #[serde(default)]
    pub payment_intent: Option<Expandable<PaymentIntent>>,
    #[serde(default)]
    pub balance_transaction: Option<Expandable<BalanceTransaction>>,
    #[serde(default)]
    pub payment_method_details: Option<PaymentMethodDetails>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl Object for Charge {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PaymentMethodDetails {
    #[serde(default)]
    pub card: Option<CardDetails>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CardDetails {
    /// When the uncaptured authorisation lapses (Unix seconds).
    #[serde(default)]
    pub capture_before: Option<i64>,
}

/// <https://docs.stripe.com/api/balance_transactions/object>
#[derive(Debug, Deserialize)]
pub(crate) struct BalanceTransaction {
    pub id: String,
    /// Gross amount, negative for money leaving the balance (a dispute's withdrawal).
    #[serde(default)]
    pub amount: i64,
    pub currency: String,
    /// Stripe's fees on this transaction, in `currency` minor units.
    pub fee: i64,
}

impl Object for BalanceTransaction {
    fn id(&self) -> &str {
        &self.id
    }
}

/// <https://docs.stripe.com/api/refunds/object>
#[derive(Debug, Deserialize)]
pub(crate) struct Refund {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub payment_intent: Option<Expandable<Named>>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// <https://docs.stripe.com/api/setup_intents/object>
#[derive(Debug, Deserialize)]
pub(crate) struct SetupIntent {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub customer: Option<Expandable<Named>>,
    #[serde(default)]
    pub payment_method: Option<Expandable<Named>>,
    #[serde(default)]
    pub last_setup_error: Option<LastPaymentError>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub metadata: Metadata,
}

impl Object for SetupIntent {
    fn id(&self) -> &str {
        &self.id
    }
}

/// <https://docs.stripe.com/api/disputes/object>
#[derive(Debug, Deserialize)]
pub(crate) struct Dispute {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub payment_intent: Option<Expandable<Named>>,
    #[serde(default)]
    pub reason: Option<String>,
    pub status: String,
    #[serde(default)]
    pub evidence_details: Option<EvidenceDetails>,
    /// The withdrawal and any reinstatement, as full objects.
    #[serde(default, deserialize_with = "null_as_default")]
    pub balance_transactions: Vec<BalanceTransaction>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EvidenceDetails {
    #[serde(default)]
    pub due_by: Option<i64>,
}

/// <https://docs.stripe.com/api/customers/object>, for its id.
pub(crate) type Customer = Named;

/// <https://docs.stripe.com/api/webhook_endpoints/object>
#[derive(Debug, Deserialize)]
pub(crate) struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub enabled_events: Vec<String>,
    /// Only in the answer that created the endpoint.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// <https://docs.stripe.com/api/accounts/object>
#[derive(Debug, Deserialize)]
pub(crate) struct Account {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub charges_enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub payouts_enabled: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub details_submitted: bool,
    #[serde(default)]
    pub requirements: Option<Requirements>,
    #[serde(default)]
    pub settings: Option<AccountSettings>,
    #[serde(default)]
    pub default_currency: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
}

impl Object for Account {
    fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Requirements {
    #[serde(default)]
    pub disabled_reason: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub currently_due: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccountSettings {
    #[serde(default)]
    pub payouts: Option<PayoutSettings>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PayoutSettings {
    #[serde(default)]
    pub schedule: Option<PayoutSchedule>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PayoutSchedule {
    pub interval: String,
    #[serde(default)]
    pub delay_days: Option<i64>,
    #[serde(default)]
    pub weekly_anchor: Option<String>,
    #[serde(default)]
    pub monthly_anchor: Option<i64>,
}

/// <https://docs.stripe.com/api/account_links/object>
#[derive(Debug, Deserialize)]
pub(crate) struct AccountLink {
    pub url: String,
}

/// <https://docs.stripe.com/api/checkout/sessions/object>
#[derive(Debug, Deserialize)]
pub(crate) struct CheckoutSession {
    pub id: String,
    /// `open`, `complete` or `expired` (absent before API version 2020-08-27).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub payment_intent: Option<Expandable<PaymentIntent>>,
    /// `payment` or `setup`.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub setup_intent: Option<Expandable<SetupIntent>>,
}

/// <https://docs.stripe.com/api/events/object>. `data.object` stays raw JSON until
/// the event's type says what it is.
#[derive(Debug, Deserialize)]
pub(crate) struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    /// The connected account the event happened on (Connect events only).
    #[serde(default)]
    pub account: Option<String>,
    /// The API version the payload is rendered in (the webhook endpoint's).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Live or test mode (test and live connections share `acct_` ids).
    #[serde(default)]
    pub livemode: Option<bool>,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventData {
    pub object: serde_json::Value,
}

/// `POST /oauth/token` answer. The access and refresh tokens are deliberately not
/// read: direct charges use the platform key with `Stripe-Account`, so ConnectPay never
/// holds the practitioner's tokens.
#[derive(Debug, Deserialize)]
pub(crate) struct OAuthToken {
    pub stripe_user_id: String,
}

/// `POST /oauth/deauthorize` answer.
#[derive(Debug, Deserialize)]
pub(crate) struct OAuthDeauthorization {
    pub stripe_user_id: String,
}

/// An error answer: the API's `{"error": {…}}` or the OAuth endpoints'
/// `{"error": "invalid_grant", "error_description": "…"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Api {
        error: ApiError,
    },
    OAuth {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    },
}

/// <https://docs.stripe.com/api/errors>
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct ApiError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expandable_field_takes_an_id_or_an_object() {
        let by_id: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","amount":100,"currency":"eur","status":"succeeded","latest_charge":"ch_1"}"#,
        )
        .unwrap();
        assert_eq!(
            by_id.latest_charge.as_ref().map(Expandable::id),
            Some("ch_1")
        );
        assert!(by_id.charge().is_none());

        let expanded: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","amount":100,"currency":"eur","status":"succeeded",
                "latest_charge":{"id":"ch_1","amount":100,"currency":"eur",
                  "balance_transaction":{"id":"txn_1","currency":"eur","fee":42}}}"#,
        )
        .unwrap();
        let charge = expanded.charge().unwrap();
        assert_eq!(charge.id, "ch_1");
        assert_eq!(
            charge
                .balance_transaction
                .as_ref()
                .and_then(Expandable::object)
                .map(|t| t.fee),
            Some(42)
        );
    }

    #[test]
    fn an_expanded_object_reports_its_own_error() {
        let err = serde_json::from_str::<PaymentIntent>(
            r#"{"id":"pi_1","amount":100,"currency":"eur","status":"succeeded",
                "latest_charge":{"id":"ch_1","amount":"lots","currency":"eur"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn nulls_and_unknown_statuses_are_tolerated() {
        let pi: PaymentIntent = serde_json::from_str(
            r#"{"id":"pi_1","amount":100,"currency":"eur","status":"something_new",
                "metadata":null,"latest_charge":null,"client_secret":null}"#,
        )
        .unwrap();
        assert_eq!(pi.status, IntentStatus::Unknown);
        assert_eq!(pi.metadata, Metadata::default());
        let account: Account = serde_json::from_str(
            r#"{"id":"acct_1","charges_enabled":null,"requirements":{"currently_due":null}}"#,
        )
        .unwrap();
        assert!(!account.charges_enabled);
    }

    #[test]
    fn metadata_keeps_only_string_values() {
        let m: Metadata = serde_json::from_str(r#"{"a":"1","b":2,"c":null}"#).unwrap();
        assert_eq!(m.get("a"), Some("1"));
        assert_eq!(m.get("b"), None);
    }

    #[test]
    fn both_error_shapes_are_read() {
        let api: ErrorBody = serde_json::from_str(
            r#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"No."}}"#,
        )
        .unwrap();
        assert!(
            matches!(api, ErrorBody::Api { error } if error.decline_code.as_deref() == Some("insufficient_funds"))
        );
        let oauth: ErrorBody = serde_json::from_str(
            r#"{"error":"invalid_grant","error_description":"This authorization code has already been used."}"#,
        )
        .unwrap();
        assert!(matches!(oauth, ErrorBody::OAuth { error, .. } if error == "invalid_grant"));
    }
}
