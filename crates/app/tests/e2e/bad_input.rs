//! Bad input of every kind gets a 4xx `application/problem+json` with a code — never a
//! 5xx, never anything else — and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp, csrf_token};

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<String>,
    content_type: &'static str,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    body: Option<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        body,
        content_type: "application/json",
        status,
        code,
    }
}

#[tokio::test]
async fn malformed_requests_get_a_problem_and_never_a_5xx() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, scheduled) = app.paid_consultation().await;
    let consultation = scheduled["id"].as_str().expect("id").to_owned();
    let token = scheduled["pay_token"].as_str().expect("token").to_owned();
    app.pay(&token, "pm_card_visa").await;
    let valid = |payment: serde_json::Value| {
        json!({
            "practitioner_id": dr.id,
            "patient": { "display_name": "M. Dupont" },
            "starts_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "payment": payment,
        })
        .to_string()
    };
    let with = |patch: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value =
            serde_json::from_str(&valid(json!({ "mode": "online" }))).expect("json");
        patch(&mut v);
        Some(v.to_string())
    };
    let prefs = format!("/api/v1/practitioners/{}/preferences", dr.id);
    let validate = format!("/api/v1/consultations/{consultation}/validate");
    let c = "/api/v1/consultations";
    let big = "x".repeat(200 * 1024);
    let cases = vec![
        case("not JSON", Method::POST, c, Some("{".into()), 400, "validation_failed"),
        case("empty body", Method::POST, c, Some(String::new()), 400, "validation_failed"),
        case("array instead of object", Method::POST, c, Some("[]".into()), 400, "validation_failed"),
        case("wrong type", Method::POST, c, with(&|v| v["practitioner_id"] = json!(5)), 400, "validation_failed"),
        case("unknown field", Method::POST, c, with(&|v| v["surprise"] = json!(true)), 400, "validation_failed"),
        case("unknown nested field", Method::POST, c, with(&|v| v["payment"]["tip"] = json!("1")), 400, "validation_failed"),
        case("missing field", Method::POST, c, with(&|v| { v.as_object_mut().map(|o| o.remove("patient")); }), 400, "validation_failed"),
        case("bad date", Method::POST, c, with(&|v| v["starts_at"] = json!("tomorrow")), 400, "validation_failed"),
        case("past date", Method::POST, c, with(&|v| v["starts_at"] = json!("2001-01-01T10:00:00Z")), 422, "validation_failed"),
        case("unknown mode", Method::POST, c, with(&|v| v["payment"]["mode"] = json!("cash")), 400, "validation_failed"),
        case("exponent amount", Method::POST, c, with(&|v| v["payment"]["amount"] = json!("1e3")), 422, "invalid_amount"),
        case("negative amount", Method::POST, c, with(&|v| v["payment"]["amount"] = json!("-1")), 422, "invalid_amount"),
        case("too many decimals", Method::POST, c, with(&|v| v["payment"]["amount"] = json!("25.001")), 422, "invalid_amount"),
        case("number amount", Method::POST, c, with(&|v| v["payment"]["amount"] = json!(25)), 400, "validation_failed"),
        case("below Stripe's minimum", Method::POST, c, with(&|v| v["payment"]["amount"] = json!("0.10")), 422, "below_minimum_charge"),
        case("above the maximum", Method::POST, c, with(&|v| v["payment"]["amount"] = json!("30")), 422, "amount_above_maximum"),
        case("other currency", Method::POST, c, with(&|v| { v["payment"]["amount"] = json!("20"); v["payment"]["currency"] = json!("USD"); }), 422, "currency_mismatch"),
        case("unknown currency", Method::POST, c, with(&|v| { v["payment"]["amount"] = json!("20"); v["payment"]["currency"] = json!("XXX"); }), 400, "validation_failed"),
        case("currency without amount", Method::POST, c, with(&|v| v["payment"]["currency"] = json!("EUR")), 422, "validation_failed"),
        case("amount without payment", Method::POST, c, Some(valid(json!({ "mode": "none", "amount": "10" }))), 422, "validation_failed"),
        case("empty patient name", Method::POST, c, with(&|v| v["patient"]["display_name"] = json!("  ")), 422, "validation_failed"),
        case("bad e-mail", Method::POST, c, with(&|v| v["patient"]["email"] = json!("nope")), 422, "validation_failed"),
        case("unknown service", Method::POST, c, with(&|v| v["payment"]["service_id"] = json!(uuid::Uuid::new_v4())), 404, "not_found"),
        case("oversized body", Method::POST, c, Some(format!("{{\"x\":\"{big}\"}}")), 413, "payload_too_large"),
        case("default above max", Method::PUT, &prefs, Some(json!({ "default_amount": "30", "max_amount": "25", "currency": "EUR" }).to_string()), 422, "amount_above_maximum"),
        case("unknown fee preset", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "fee_schedule": { "preset": "gold" } }).to_string()), 400, "validation_failed"),
        case("a fixed fee that eats small payments", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "fee_schedule": { "percent": "1.4", "fixed": "0.60" } }).to_string()), 422, "validation_failed"),
        case("a missed fee above the maximum", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "cancellation": { "free_hours": 24, "fee": "fixed", "fee_amount": "30" } }).to_string()), 422, "amount_above_maximum"),
        case("a fixed fee without its amount", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "cancellation": { "free_hours": 24, "fee": "fixed" } }).to_string()), 422, "validation_failed"),
        case("an unknown missed fee", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "cancellation": { "free_hours": 24, "fee": "half" } }).to_string()), 400, "validation_failed"),
        case("a free window of a year", Method::PUT, &prefs, Some(json!({ "default_amount": "25", "max_amount": "25", "currency": "EUR", "cancellation": { "free_hours": 8760, "fee": "none" } }).to_string()), 400, "validation_failed"),
        case("validate with words", Method::POST, &validate, Some(json!({ "amount": "abc" }).to_string()), 422, "invalid_amount"),
        case("validate with nothing", Method::POST, &validate, Some(json!({ "amount": "" }).to_string()), 422, "invalid_amount"),
        case("validate in USD", Method::POST, &validate, Some(json!({ "amount": "10", "currency": "USD" }).to_string()), 422, "currency_mismatch"),
        case("validate a huge amount", Method::POST, &validate, Some(json!({ "amount": "99999999999999999999" }).to_string()), 422, "invalid_amount"),
        case("not a UUID", Method::GET, "/api/v1/consultations/not-a-uuid", None, 400, "validation_failed"),
        case("unknown consultation", Method::GET, &format!("/api/v1/consultations/{}", uuid::Uuid::new_v4()), None, 404, "not_found"),
        case("bad status filter", Method::GET, "/api/v1/payments?status=paid", None, 400, "validation_failed"),
        case("bad date filter", Method::GET, "/api/v1/payments?from=yesterday", None, 400, "validation_failed"),
        // What the schema forbids is 400, whatever the rule; what only the domain knows is 422.
        case("limit zero", Method::GET, "/api/v1/payments?limit=0", None, 400, "validation_failed"),
        case("limit too large", Method::GET, "/api/v1/payments?limit=5000", None, 400, "validation_failed"),
        case("garbage cursor", Method::GET, "/api/v1/payments?cursor=zzz", None, 400, "validation_failed"),
        case("fee of words", Method::GET, "/api/v1/fees/estimate?amount=abc", None, 400, "validation_failed"),
        case("fee of a cent", Method::GET, "/api/v1/fees/estimate?amount=0.01", None, 422, "below_minimum_charge"),
        case("unknown route", Method::GET, "/api/v1/nothing-here", None, 404, "not_found"),
        case("wrong method", Method::DELETE, "/api/v1/payments", None, 405, "method_not_allowed"),
        case("malformed pay token", Method::GET, "/api/v1/pay/not-a-token", None, 404, "not_found"),
        case("encoded path in a pay token", Method::GET, "/api/v1/pay/%2E%2E%2F%2E%2E%2Fetc/access", None, 404, "not_found"),
        case("blank sandbox OAuth state", Method::GET, "/sandbox/connect/authorize?state=%20&approve=1", None, 400, "validation_failed"),
    ];
    let mut failures = vec![];
    for c in cases {
        let mut req = app
            .client
            .request(c.method.clone(), app.url(&c.path))
            .bearer_auth(&dr.token);
        if let Some(body) = c.body.clone() {
            req = req.header("content-type", c.content_type).body(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(!status.is_server_error(), "{}: {status} {body}", c.what);
        if status.as_u16() != c.status
            || body["code"] != c.code
            || content_type != "application/problem+json"
        {
            failures.push(format!(
                "{}: {status} {content_type} {body} (expected {} {})",
                c.what, c.status, c.code
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A payment method the sandbox does not know, typed on its card page.
    let (status, other) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_token = other["pay_token"].as_str().expect("token");
    let (status, checkout) = app
        .post(
            &format!("/api/v1/pay/{other_token}/checkout"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    let page_url = checkout["redirect_url"].as_str().expect("redirect_url");
    let html = app
        .client
        .get(page_url)
        .send()
        .await
        .expect("card page")
        .text()
        .await
        .expect("html");
    let resp = app
        .client
        .post(page_url)
        .form(&[
            ("csrf_token", csrf_token(&html).as_str()),
            ("payment_method", "pm_bogus"),
        ])
        .send()
        .await
        .expect("pay");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(body["code"], "validation_failed", "{body}");

    // Wrong content type.
    let resp = app
        .client
        .post(app.url("/api/v1/consultations"))
        .bearer_auth(&dr.token)
        .header("content-type", "text/plain")
        .body(valid(json!({ "mode": "none" })))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Nothing was half-written: the only consultations are the two scheduled above.
    let (_, upcoming) = app.get("/api/v1/consultations", Some(&dr.token)).await;
    assert_eq!(upcoming.as_array().map(Vec::len), Some(2), "{upcoming}");
    let c = app.consultation(&dr, &consultation).await;
    assert_eq!(c["payment"]["status"], "authorized", "{c}");
    app.stop().await;
}
