//! Prepares a running sandbox server for `cargo xtask bench http`: links the given
//! practitioner's Stripe account (signed in, through the sandbox consent), sets 25.00 EUR, schedules `N`
//! consultations with online payment and pays each with the test Visa, all over HTTP.
//! Writes one line per consultation, `{consultation_id} {pay_token}`, to stdout.
//!
//! usage: loadprep BASE_URL PRACTITIONER_ID TOKEN N
//!
//! `loadprep webhooks SECRET N` writes instead N Stripe events, each signed with
//! `SECRET` now, one per line: `{Stripe-Signature}\t{body}`. Each is a
//! `payment_intent.amount_capturable_updated` of its own event id, shaped as Stripe
//! sends them, about a PaymentIntent the server does not know (the server stores the
//! event once, looks the intent up and acknowledges it as ignored).

use std::process::ExitCode;

use reqwest::redirect::Policy;
use serde_json::{Value, json};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn location(resp: &reqwest::Response) -> Res<String> {
    Ok(resp
        .headers()
        .get("location")
        .ok_or("no redirect")?
        .to_str()?
        .to_owned())
}

fn csrf(html: &str) -> Res<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).ok_or("no CSRF field")? + marker.len();
    let end = html[start..].find('"').ok_or("no CSRF end")?;
    Ok(html[start..start + end].to_owned())
}

async fn run(base: &str, practitioner: &str, token: &str, n: usize) -> Res<()> {
    // reqwest is built without a default crypto provider here (ring is the one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()?;
    let api = |path: &str| format!("{base}/api/v1{path}");
    let link: Value = client
        .post(api(&format!("/practitioners/{practitioner}/stripe/oauth")))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let authorize = link["authorize_url"].as_str().ok_or("no authorize_url")?;
    let consent = client.get(format!("{authorize}&approve=1")).send().await?;
    // The callback links the account of the practitioner signed in on this browser.
    let login = client.get(format!("{base}/dashboard/login")).send().await?;
    let login_csrf = csrf(&login.text().await?)?;
    client
        .post(format!("{base}/dashboard/login"))
        .form(&[("csrf_token", login_csrf.as_str()), ("token", token)])
        .send()
        .await?;
    client
        .get(location(&consent)?)
        .send()
        .await?
        .error_for_status()?;
    client
        .put(api(&format!("/practitioners/{practitioner}/preferences")))
        .bearer_auth(token)
        .json(&json!({ "default_amount": "25.00", "max_amount": "25.00", "currency": "EUR" }))
        .send()
        .await?
        .error_for_status()?;
    let starts_at = (chrono::Utc::now() + chrono::Duration::hours(4)).to_rfc3339();
    for i in 0..n {
        let scheduled: Value = client
            .post(api("/consultations"))
            .bearer_auth(token)
            .json(&json!({
                "practitioner_id": practitioner,
                "patient": { "display_name": format!("Patient {i}") },
                "starts_at": starts_at,
                "payment": { "mode": "online" },
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let pay_token = scheduled["pay_token"].as_str().ok_or("no pay_token")?;
        let checkout: Value = client
            .post(api(&format!("/pay/{pay_token}/checkout")))
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        let page = checkout["redirect_url"].as_str().ok_or("no redirect_url")?;
        let html = client.get(page).send().await?.text().await?;
        let token_field = csrf(&html)?;
        client
            .post(page)
            .form(&[
                ("csrf_token", token_field.as_str()),
                ("payment_method", "pm_card_visa"),
            ])
            .send()
            .await?;
        println!("{} {pay_token}", scheduled["id"].as_str().ok_or("no id")?);
    }
    Ok(())
}

fn signed_events(secret: &str, n: usize) -> Res<()> {
    use hmac::{Hmac, KeyInit, Mac};
    use std::io::Write;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..n {
        let body = json!({
            "id": format!("evt_bench{now}x{i:07}"),
            "object": "event",
            "api_version": "2024-06-20",
            "type": "payment_intent.amount_capturable_updated",
            "created": now,
            "livemode": false,
            "account": "acct_benchUnknown",
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": {
                "id": format!("pi_bench{now}x{i:07}"),
                "object": "payment_intent",
                "amount": 2500,
                "amount_capturable": 2500,
                "amount_received": 0,
                "capture_method": "manual",
                "currency": "eur",
                "status": "requires_capture",
                "livemode": false,
                "metadata": {},
                "latest_charge": null,
                "last_payment_error": null,
                "cancellation_reason": null,
                "created": now,
            }},
        })
        .to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
        mac.update(format!("{now}.{body}").as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        writeln!(out, "t={now},v1={sig}\t{body}")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, secret, n] = args.as_slice()
        && mode == "webhooks"
    {
        let result = n
            .parse()
            .map_err(|_| "N must be a number".into())
            .and_then(|n| signed_events(secret, n));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadprep: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let [base, practitioner, token, n] = args.as_slice() else {
        eprintln!("usage: loadprep BASE_URL PRACTITIONER_ID TOKEN N");
        return ExitCode::from(2);
    };
    let Ok(n) = n.parse() else {
        eprintln!("N must be a number");
        return ExitCode::from(2);
    };
    match run(base, practitioner, token, n).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadprep: {e}");
            ExitCode::FAILURE
        }
    }
}
