//! `consultpay stripe setup-webhooks`, the binary as an operator runs it, against a
//! stand-in for Stripe's webhook endpoint API: both endpoints created with exactly the
//! events ConsultPay reads and their secrets printed once; run again, nothing changes.

use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const URL: &str = "https://consultpay.example/webhooks/stripe";

fn consultpay(stripe: &str, args: &[&str], key: Option<&str>) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_consultpay"));
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("STRIPE_API_BASE", stripe)
        .env("CONSULTPAY_SESSION_KEY", "0123456789abcdef0123456789abcdef")
        .env("CONSULTPAY_PUBLIC_URL", "https://consultpay.example");
    if let Some(key) = key {
        cmd.env("STRIPE_SECRET_KEY", key);
    }
    cmd.output().expect("consultpay runs")
}

fn lines(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// A request's form body, as pairs in order.
fn form(req: &Request) -> Vec<(String, String)> {
    let body = String::from_utf8_lossy(&req.body);
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .expect("a form body")
        .query_pairs()
        .into_owned()
        .collect()
}

/// An endpoint as Stripe answers it (the secret only when it is created).
fn endpoint(id: &str, kind: &str, events: &[String], secret: Option<&str>) -> Value {
    json!({
        "id": id, "object": "webhook_endpoint", "url": URL, "status": "enabled",
        "enabled_events": events, "metadata": { "consultpay_endpoint": kind },
        "secret": secret, "api_version": "2025-03-31.basil", "livemode": false,
    })
}

#[tokio::test]
async fn the_operator_sets_up_both_endpoints_once_and_gets_their_secrets_once() {
    let stripe = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "object": "list", "data": [], "has_more": false })),
        )
        .up_to_n_times(1)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(|req: &Request| {
            let f = form(req);
            let kind = f
                .iter()
                .find(|(k, _)| k == "metadata[consultpay_endpoint]")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let events: Vec<String> = f
                .iter()
                .filter(|(k, _)| k == "enabled_events[]")
                .map(|(_, v)| v.clone())
                .collect();
            ResponseTemplate::new(200).set_body_json(endpoint(
                &format!("we_{kind}"),
                &kind,
                &events,
                Some(&format!("whsec_{kind}_once")),
            ))
        })
        .mount(&stripe)
        .await;

    let out = consultpay(
        &stripe.uri(),
        &["stripe", "setup-webhooks", "--url", URL],
        Some("sk_test_platform"),
    );
    let printed = lines(&out);
    assert_eq!(printed.len(), 2, "{printed:?}");
    for (line, kind, variable) in [
        (&printed[0], "platform", "STRIPE_WEBHOOK_SECRET"),
        (&printed[1], "connect", "STRIPE_CONNECT_WEBHOOK_SECRET"),
    ] {
        assert_eq!(line["endpoint"], kind, "{line}");
        assert_eq!(line["status"], "created", "{line}");
        assert_eq!(line["url"], URL, "{line}");
        assert_eq!(line["secret_variable"], variable, "{line}");
        assert_eq!(line["secret"], format!("whsec_{kind}_once"), "{line}");
    }
    // What Stripe was asked: the platform key, a Connect endpoint for the connected
    // accounts' events, exactly the events read.
    let requests = stripe.received_requests().await.expect("recorded");
    let posts: Vec<&Request> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(
            post.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk_test_platform")
        );
        let events: Vec<String> = form(post)
            .into_iter()
            .filter(|(k, _)| k == "enabled_events[]")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(events, gateway_stripe::CONSUMED_EVENTS.to_vec());
    }
    assert!(!form(posts[0]).iter().any(|(k, _)| k == "connect"));
    assert!(form(posts[1]).contains(&("connect".into(), "true".into())));

    // Run again: both found as they should be; no secret (Stripe shows it only once).
    stripe.reset().await;
    let events: Vec<String> = gateway_stripe::CONSUMED_EVENTS
        .iter()
        .map(|e| (*e).to_owned())
        .collect();
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "has_more": false,
            "data": [
                endpoint("we_platform", "platform", &events, None),
                endpoint("we_connect", "connect", &events, None),
            ],
        })))
        .mount(&stripe)
        .await;
    let out = consultpay(
        &stripe.uri(),
        &["stripe", "setup-webhooks", "--url", URL],
        Some("sk_test_platform"),
    );
    let printed = lines(&out);
    assert!(
        printed
            .iter()
            .all(|l| l["status"] == "unchanged" && l["secret"].is_null()),
        "{printed:?}"
    );
    let requests = stripe.received_requests().await.expect("recorded");
    assert!(requests.iter().all(|r| r.method.as_str() == "GET"));

    // Without a Stripe key there is nothing to set up: a clear refusal.
    let out = consultpay(&stripe.uri(), &["stripe", "setup-webhooks"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("STRIPE_SECRET_KEY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
