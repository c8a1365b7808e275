//! The operator's side of the server: health, readiness, the OpenAPI document and its
//! UI, request ids, and metrics labelled by route pattern — errors included.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn health_readiness_openapi_and_request_ids_answer() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    for path in ["/healthz", "/readyz"] {
        let resp = t.client.get(t.url(path)).send().await.expect(path);
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        // A request id is generated when the client sends none.
        let id = resp.headers()["x-request-id"].to_str().expect("ascii");
        assert!(!id.is_empty(), "{path}");
    }
    // A client's request id is honoured, so logs on both sides match.
    let resp = t
        .client
        .get(t.url("/healthz"))
        .header("x-request-id", "support-ticket-42")
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.headers()["x-request-id"], "support-ticket-42");

    let (status, spec) = t.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["info"]["title"], "ConsultPay");
    for path in [
        "/api/v1/consultations/{id}/validate",
        "/api/v1/pay/{token}/access",
        "/api/v1/practitioners/{id}/stripe/oauth",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} in the document");
    }
    // The committed document is the one the code serves (`cargo xtask openapi`
    // rewrites it), the server's own URL aside; every operation is named.
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json"))
            .expect("docs/openapi.json");
    let mut served = spec.clone();
    served["servers"] = committed["servers"].clone();
    assert!(
        served == committed,
        "docs/openapi.json is stale: run `cargo xtask openapi` and commit it"
    );
    let operations: Vec<&serde_json::Value> = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|p| p.as_object().expect("operations").values())
        .collect();
    assert!(operations.len() > 40);
    for op in operations {
        assert!(op["operationId"].is_string(), "{op}");
    }
    // The patterns that stand for the domain's lists say exactly those lists.
    let currencies = format!(
        "^({})$",
        billing_core::Currency::ALL.map(|c| c.code()).join("|")
    );
    let mut currency_fields = 0;
    for schema in spec["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .values()
    {
        if let Some(currency) = schema["properties"].get("currency") {
            assert_eq!(currency["pattern"], currencies.as_str(), "{schema}");
            currency_fields += 1;
        }
    }
    assert!(currency_fields >= 10);
    let statuses = billing_core::PaymentStatus::ALL
        .map(|s| s.as_str())
        .join("|");
    let status_param = spec["paths"]["/api/v1/payments"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "status")
        .expect("status");
    let pattern = status_param["schema"]["pattern"].as_str().expect("pattern");
    let listed: std::collections::BTreeSet<&str> = pattern
        .trim_start_matches("^((")
        .split(")(,(")
        .next()
        .expect("alternatives")
        .split('|')
        .collect();
    assert_eq!(
        listed,
        statuses.split('|').collect(),
        "the status filter's pattern lists every status"
    );
    // An undeclared method says which are (RFC 9110).
    let wrong = t
        .client
        .delete(t.url("/api/v1/payments"))
        .send()
        .await
        .expect("delete");
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers()["allow"], "GET, HEAD");
    let docs = t.client.get(t.url("/docs")).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));
    t.stop().await;
}

#[tokio::test]
async fn metrics_label_requests_by_route_pattern_even_when_they_fail() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, scheduled) = t.paid_consultation().await;
    let consultation = scheduled["id"].as_str().expect("id");
    // A refusal (422 problem) and a not-found (404 problem) on real routes.
    let (status, _) = t
        .post(
            &format!("/api/v1/consultations/{consultation}/validate"),
            Some(&dr.token),
            json!({ "amount": "abc" }),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
    let (status, _) = t
        .get(
            &format!("/api/v1/payments/{}", uuid::Uuid::new_v4()),
            Some(&dr.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Metrics are the operator's: on the admin listener, with the health checks.
    for path in ["/healthz", "/readyz"] {
        let admin = t
            .client
            .get(format!("{}{path}", t.admin_base))
            .send()
            .await
            .expect("admin listener");
        assert_eq!(admin.status(), StatusCode::OK, "{path}");
    }
    let metrics = t.metrics().await;
    let counted = |route: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("consultpay_http_requests_total")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    // (poem-openapi names path parameters by position.)
    assert!(
        counted("/api/v1/consultations/:param0/validate", "422"),
        "{metrics}"
    );
    assert!(counted("/api/v1/payments/:param0", "404"), "{metrics}");
    // Nothing the server knew the route of is counted as unmatched, and no raw id
    // (or pay token) ever becomes a label.
    assert!(!metrics.contains("route=\"unmatched\""), "{metrics}");
    assert!(!metrics.contains(consultation), "{metrics}");
    // Not on the public listener.
    let (status, _) = t.get("/metrics", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.stop().await;
}
