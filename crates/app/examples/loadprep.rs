//! Prepares a running sandbox server for `cargo xtask bench http`: links the given
//! practitioner's Stripe account (signed in, through the sandbox consent), sets 25.00 EUR, schedules `N`
//! consultations with online payment and pays each with the test Visa, all over HTTP.
//! Writes one line per consultation, `{consultation_id} {pay_token}`, to stdout.
//!
//! usage: loadprep BASE_URL PRACTITIONER_ID TOKEN N

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

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
