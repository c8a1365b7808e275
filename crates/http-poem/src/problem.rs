//! Every failure as an RFC 9457 problem document (`application/problem+json`) with a
//! stable machine `code`. The one place where domain errors become HTTP statuses.

use billing_core::BillingError;
use billing_core::access::AccessDenied;
use poem::error::{
    MethodNotAllowedError, NotFoundError, ParsePathError, ReadBodyError, ResponseError,
};
use poem::http::StatusCode;
use poem::http::header::CONTENT_TYPE;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem document, as serialised.
#[derive(Debug, Clone, PartialEq, Eq, Object, serde::Serialize)]
#[oai(rename = "Problem", example)]
pub struct ProblemDocument {
    /// A URI naming the problem type (`urn:consultpay:problem:<code>`).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    pub status: u16,
    /// The stable machine code clients switch on (`amount_above_cap`, `not_found`, …).
    pub code: String,
    /// What went wrong this time.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The input field at fault, when there is one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl poem_openapi::types::Example for ProblemDocument {
    /// What a validation above the hold answers.
    fn example() -> Self {
        ProblemDocument {
            type_: "urn:consultpay:problem:amount_above_cap".into(),
            title: "Amount above the hold".into(),
            status: 422,
            code: "amount_above_cap".into(),
            detail: Some("30.00 EUR is above the hold of 25.00 EUR".into()),
            field: None,
        }
    }
}

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: Option<String>,
    pub field: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code, self.status)
    }
}

impl std::error::Error for Problem {}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str) -> Self {
        Problem {
            status,
            code,
            detail: None,
            field: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found() -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not_found")
    }

    /// A request that does not parse: 400 `validation_failed` naming the field.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "validation_failed")
            .field(field)
            .detail(detail)
    }

    /// Well-formed fields that do not go together (each valid alone): 422
    /// `validation_failed`, as the domain's own refusals.
    pub fn unprocessable(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            .field(field)
            .detail(detail)
    }

    /// An amount that is not one: 422 `invalid_amount`.
    pub fn invalid_amount(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount")
            .field(field)
            .detail(detail)
    }

    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            type_: format!("urn:consultpay:problem:{}", self.code),
            title: title(self.code).to_owned(),
            status: self.status.as_u16(),
            code: self.code.to_owned(),
            detail: self.detail.clone(),
            field: self.field.clone(),
        }
    }

    /// Turns any error reaching the top of the routes into a problem: ours pass
    /// through, poem's and poem-openapi's (malformed JSON, bad parameters, unknown
    /// route, body too large…) get their code; anything else is a 500 whose details
    /// stay in the logs.
    pub fn from_poem(err: poem::Error) -> Problem {
        if let Some(p) = err.downcast_ref::<Problem>() {
            return p.clone();
        }
        if err.is::<NotFoundError>() {
            return Problem::not_found();
        }
        if err.is::<MethodNotAllowedError>() {
            return Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        if err.is::<ParsePathError>() {
            return Problem::not_found();
        }
        if let Some(ReadBodyError::PayloadTooLarge) = err.downcast_ref::<ReadBodyError>() {
            return Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        }
        if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
            return Problem::new(StatusCode::BAD_REQUEST, "validation_failed")
                .detail(truncate(&e.reason));
        }
        if let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
            return Problem::new(StatusCode::BAD_REQUEST, "validation_failed")
                .field(e.name)
                .detail(truncate(&e.reason));
        }
        if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
            return Problem::new(StatusCode::BAD_REQUEST, "validation_failed")
                .field(e.name)
                .detail(truncate(&e.reason));
        }
        if err.is::<poem_openapi::error::ContentTypeError>() {
            return Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                .detail("send application/json");
        }
        if err.is::<poem_openapi::error::AuthorizationError>() {
            return Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated");
        }
        let status = err.status();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            s if s.is_client_error() => {
                Problem::new(s, "bad_request").detail(truncate(&err.to_string()))
            }
            _ => {
                tracing::error!(error = %err, "unhandled error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

/// The HTTP status of each problem code.
pub fn status_of(err: &BillingError) -> StatusCode {
    use billing_core::ErrorClass as C;
    match (err, err.class()) {
        (BillingError::Webhook(_), _) => StatusCode::BAD_REQUEST,
        (BillingError::OAuthStateInvalid | BillingError::OAuthDenied, _) => StatusCode::BAD_REQUEST,
        (BillingError::Storage(_), _) => StatusCode::SERVICE_UNAVAILABLE,
        (_, C::Unauthenticated) => StatusCode::UNAUTHORIZED,
        (_, C::Forbidden) => StatusCode::FORBIDDEN,
        (_, C::NotFound) => StatusCode::NOT_FOUND,
        (_, C::Invalid) => StatusCode::UNPROCESSABLE_ENTITY,
        (_, C::Conflict) => StatusCode::CONFLICT,
        (_, C::Refused) => StatusCode::PAYMENT_REQUIRED,
        (_, C::Unavailable) => StatusCode::BAD_GATEWAY,
        (_, C::Throttled) => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl From<BillingError> for Problem {
    fn from(err: BillingError) -> Self {
        let status = status_of(&err);
        let field = match &err {
            BillingError::Validation { field, .. } => Some((*field).to_owned()),
            _ => None,
        };
        // Outages keep their causes in the logs, not in responses.
        let detail = if status.is_server_error() {
            tracing::warn!(error = %err, code = err.code(), "request failed on a dependency");
            None
        } else {
            Some(err.to_string())
        };
        if let BillingError::Access(AccessDenied::Unauthenticated) = err {
            return Problem::new(status, err.code());
        }
        Problem {
            status,
            code: err.code(),
            detail,
            field,
        }
    }
}

/// Titles per code: stable, short, in English (clients translate by `code`).
fn title(code: &str) -> &'static str {
    match code {
        "unauthenticated" => "Authentication required",
        "sign_in_throttled" => "Too many failed sign-ins",
        "forbidden" => "Your role may not do this",
        "not_found" => "Not found",
        "invalid_amount" => "Invalid amount",
        "below_minimum_charge" => "Below Stripe's minimum charge",
        "currency_mismatch" => "Currency mismatch",
        "amount_above_cap" => "Amount above the hold",
        "amount_above_maximum" => "Amount above the maximum",
        "validation_failed" => "Invalid request",
        "stripe_not_linked" => "No Stripe account linked",
        "charges_disabled" => "The Stripe account cannot take charges",
        "payment_state_conflict" => "The payment is not in a state that allows this",
        "concurrent_modification" => "Modified concurrently",
        "stripe_already_linked" => "A Stripe account is already linked",
        "oauth_state_invalid" => "Invalid or expired Stripe link request",
        "oauth_access_denied" => "Stripe link refused",
        "oauth_code_invalid" => "Invalid Stripe authorisation code",
        "outstanding_holds" => "Payments still hold money",
        "card_declined" => "Card declined",
        "refund_failed" => "Refund refused by Stripe",
        "refund_in_progress" => "Another refund at the same time",
        "idempotency_key_reused" => "Idempotency key reused",
        "idempotency_key_in_flight" => "Request in progress",
        "webhook_signature_invalid" => "Invalid webhook signature",
        "webhook_not_configured" => "Webhooks not configured",
        "stripe_account_unavailable" => "Stripe account unreachable",
        "gateway_not_configured" => "Payment gateway not configured",
        "gateway_unavailable" => "Payment gateway unavailable",
        "gateway_object_missing" => "Unknown to the payment gateway",
        "storage_unavailable" => "Storage unavailable",
        "method_not_allowed" => "Method not allowed",
        "payload_too_large" => "Request body too large",
        "request_timeout" => "Request body too slow",
        "rate_limited" => "Too many requests",
        "unsupported_media_type" => "Unsupported media type",
        "bad_request" => "Bad request",
        "receipt_not_issued" => "No receipt issued yet",
        "document_unavailable" => "Document unavailable",
        "payment_required" => "Payment not authorised",
        "too_early" => "Too early",
        "consultation_over" => "Consultation over",
        "consultation_cancelled" => "Consultation cancelled",
        "consultation_started" => "Consultation already started",
        "video_not_configured" => "No video platform configured",
        "cancellation_closed" => "Too late to cancel from the link",
        "already_settled" => "Act already validated",
        "no_fee_applies" => "No cancellation fee applies",
        "pass_unavailable" => "Pass unavailable",
        _ => "Internal error",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, PROBLEM_JSON)
            .body(body)
    }
}

impl ResponseError for Problem {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

impl ApiResponse for Problem {
    fn meta() -> MetaResponses {
        let content = || {
            vec![MetaMediaType {
                content_type: PROBLEM_JSON,
                schema: ProblemDocument::schema_ref(),
            }]
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "The request was refused: see `code`.",
                    status: None,
                    status_range: Some("4XX".into()),
                    content: content(),
                    headers: vec![],
                },
                MetaResponse {
                    description: "A dependency (database, payment gateway) failed.",
                    status: None,
                    status_range: Some("5XX".into()),
                    content: content(),
                    headers: vec![],
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        ProblemDocument::register(registry);
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;
    use billing_core::MoneyError;
    use billing_core::gateway::GatewayError;
    use billing_core::repository::RepositoryError;

    #[test]
    fn domain_errors_get_their_status_and_code() {
        let table: Vec<(BillingError, u16, &str)> = vec![
            (AccessDenied::Unauthenticated.into(), 401, "unauthenticated"),
            (AccessDenied::Forbidden.into(), 403, "forbidden"),
            (AccessDenied::NotFound.into(), 404, "not_found"),
            (
                BillingError::InvalidAmount(MoneyError::Empty),
                422,
                "invalid_amount",
            ),
            (BillingError::Conflict, 409, "concurrent_modification"),
            (BillingError::OAuthStateInvalid, 400, "oauth_state_invalid"),
            (
                BillingError::Gateway(GatewayError::Unavailable {
                    message: "timeout".into(),
                }),
                502,
                "gateway_unavailable",
            ),
            (
                BillingError::Storage(RepositoryError::NotFound),
                503,
                "storage_unavailable",
            ),
            (
                BillingError::Webhook(billing_core::gateway::WebhookError::BadSignature),
                400,
                "webhook_signature_invalid",
            ),
            (
                BillingError::Day(billing_core::video::DayError::PaymentRequired),
                402,
                "payment_required",
            ),
            (
                BillingError::Day(billing_core::video::DayError::ConsultationOver),
                409,
                "consultation_over",
            ),
        ];
        for (err, status, code) in table {
            let p = Problem::from(err);
            assert_eq!((p.status.as_u16(), p.code), (status, code));
        }
    }

    #[test]
    fn every_refusal_of_the_consultations_day_has_a_title() {
        use billing_core::video::DayError as D;
        let now = chrono::Utc::now();
        for e in [
            D::PaymentRequired,
            D::TooEarly { opens_at: now },
            D::ConsultationOver,
            D::ConsultationCancelled,
            D::VideoNotConfigured,
            D::CancellationClosed,
            D::AlreadySettled,
            D::AlreadyStarted,
            D::NoFeeApplies,
        ] {
            assert_ne!(title(e.code()), "Internal error", "{e:?}");
        }
    }

    #[test]
    fn outages_do_not_leak_their_cause() {
        let p = Problem::from(BillingError::Storage(RepositoryError::Corrupt(
            "password=hunter2".into(),
        )));
        assert_eq!(p.detail, None);
    }

    #[tokio::test]
    async fn a_problem_is_served_as_problem_json() {
        let resp = Problem::invalid("amount", "nope").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.header(CONTENT_TYPE), Some(PROBLEM_JSON));
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_vec().await.unwrap()).unwrap();
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["field"], "amount");
        assert_eq!(body["status"], 400);
        assert_eq!(body["type"], "urn:consultpay:problem:validation_failed");
    }
}
