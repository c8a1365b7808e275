//! Browser routes: the OAuth callback, the patient pay page, the dashboard, and in
//! sandbox mode the stand-ins for Stripe's hosted pages.

use billing_core::consultation::service::PayPage;
use billing_core::gateway::SandboxNext;
use billing_core::ids::CheckoutSessionId;
use billing_core::practitioner::service::OAuthCallback;
use poem::web::{Data, Form, Html, Path, Query, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use crate::problem::Problem;
use crate::state::{HttpSettings, HttpState};
use crate::wire::{FailureView, PayView, StatusLabel, amount};

/// The pay page's data, as the JSON API and the HTML page both show it.
pub fn pay_view(page: &PayPage, settings: &HttpSettings) -> PayView {
    let c = &page.record.consultation;
    let p = page.record.payment.as_ref();
    PayView {
        consultation_id: c.id.as_uuid(),
        practitioner_name: page.practitioner_name.as_str().to_owned(),
        starts_at: c.starts_at,
        time_zone: page.time_zone.name().to_owned(),
        payment_required: p.is_some(),
        amount: p.map(|p| amount(&p.amount())),
        currency: p.map(|p| p.amount().currency().code().to_owned()),
        status: p.map(|p| p.status().as_str().to_owned()),
        status_label: p.map(|p| StatusLabel::of(p.status())),
        failure: p.and_then(|p| p.failure()).map(|f| FailureView {
            code: f.code.clone(),
            decline_code: f.decline_code.clone(),
            message: f.message.clone(),
        }),
        can_enter: page.can_enter,
        waiting_room_url: page
            .can_enter
            .then(|| settings.waiting_room(c.id.as_uuid()))
            .flatten(),
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title></head><body>{body}</body></html>",
        esc(title)
    ))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Stripe's OAuth redirect: consumes the state, exchanges the code, links the account,
/// then sends the practitioner back to the dashboard.
#[handler]
pub async fn oauth_callback(
    Query(q): Query<CallbackQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let callback = OAuthCallback {
        code: q.code,
        state: q.state,
        error: q.error,
    };
    let dashboard = state.billing.config.dashboard_url();
    match state.billing.connect.complete_oauth(&callback, None).await {
        Ok(_) => Redirect::see_other(format!("{dashboard}?stripe=linked")).into_response(),
        Err(err) => {
            let problem = Problem::from(err);
            if problem.code == "oauth_access_denied" {
                return Redirect::see_other(format!("{dashboard}?stripe=denied")).into_response();
            }
            let mut resp = page(
                "Stripe",
                &format!(
                    "<h1>Le lien avec Stripe n'a pas abouti</h1><p>{}</p><p><a href=\"{}\">Tableau de bord</a></p>",
                    esc(problem.detail.as_deref().unwrap_or(problem.code)),
                    esc(&dashboard)
                ),
            )
            .into_response();
            resp.set_status(problem.status);
            resp
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PayPageQuery {
    checkout: Option<String>,
}

/// The patient's pay page (phone first). The styled version comes with the pages.
#[handler]
pub async fn pay_page(
    Path(token): Path<String>,
    Query(q): Query<PayPageQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let refresh = q.checkout.is_some();
    match state.billing.patients.open(&token, refresh).await {
        Ok(p) => {
            let view = pay_view(&p, &state.settings);
            let mut body = format!(
                "<h1>{}</h1><p>{}</p>",
                esc(&view.practitioner_name),
                esc(&view.starts_at.to_rfc3339())
            );
            if let (Some(a), Some(c)) = (&view.amount, &view.currency) {
                body.push_str(&format!(
                    "<p>Montant de l'empreinte : <strong>{} {}</strong></p>",
                    esc(a),
                    esc(c)
                ));
            }
            if let Some(label) = &view.status_label {
                body.push_str(&format!("<p>Statut : {}</p>", esc(&label.fr)));
            }
            if view.can_enter {
                let href = view.waiting_room_url.clone().unwrap_or_else(|| "#".into());
                body.push_str(&format!(
                    "<a id=\"enter\" href=\"{}\">Entrer en salle d'attente</a>",
                    esc(&href)
                ));
            } else {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/pay/{}/checkout\"><button id=\"pay\">Payer</button></form>",
                    esc(&token)
                ));
            }
            page("ConsultPay", &body).into_response()
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

/// The pay page's "Pay now" button: starts checkout and sends the browser there.
#[handler]
pub async fn pay_checkout(Path(token): Path<String>, Data(state): Data<&HttpState>) -> Response {
    match state.billing.patients.start_checkout(&token).await {
        Ok(start) => match start.redirect_url {
            Some(url) => Redirect::see_other(url).into_response(),
            None => Redirect::see_other(format!("/pay/{token}")).into_response(),
        },
        Err(e) => Problem::from(e).into_response(),
    }
}

/// The dashboard placeholder until the pages land.
#[handler]
pub async fn dashboard_page() -> Html<String> {
    page("ConsultPay", "<h1>ConsultPay</h1><p>Tableau de bord</p>")
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    state: Option<String>,
    redirect_uri: Option<String>,
    approve: Option<String>,
    deny: Option<String>,
}

/// Sandbox stand-in for Stripe's OAuth consent page.
#[handler]
pub async fn sandbox_authorize(
    Query(q): Query<AuthorizeQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let callback = state.billing.config.oauth_redirect_uri();
    // Like Stripe, only the registered redirect URI is accepted (no open redirect).
    if q.redirect_uri.as_deref().is_some_and(|r| r != callback) {
        return Problem::invalid("redirect_uri", "not the registered redirect URI").into_response();
    }
    let Some(oauth_state) = q.state.filter(|s| !s.is_empty() && s.len() <= 256) else {
        return Problem::invalid("state", "missing").into_response();
    };
    let encoded = urlencode(&oauth_state);
    if q.approve.as_deref() == Some("1") {
        return match sandbox.approve_connect(&oauth_state).await {
            Ok(code) => Redirect::see_other(format!(
                "{callback}?code={}&state={encoded}",
                urlencode(&code)
            ))
            .into_response(),
            Err(e) => Problem::from(e).into_response(),
        };
    }
    if q.deny.as_deref() == Some("1") {
        return Redirect::see_other(format!(
            "{callback}?error=access_denied&error_description=The+user+denied+your+request&state={encoded}"
        ))
        .into_response();
    }
    let here = format!(
        "/sandbox/connect/authorize?state={encoded}&redirect_uri={}",
        urlencode(&callback)
    );
    page(
        "Stripe (sandbox)",
        &format!(
            "<h1>Stripe — bac à sable</h1><p>ConsultPay souhaite accéder à votre compte Stripe.</p>\
             <p><a id=\"approve\" href=\"{0}&amp;approve=1\">Autoriser l'accès à ce compte</a></p>\
             <p><a id=\"deny\" href=\"{0}&amp;deny=1\">Annuler</a></p>",
            esc(&here)
        ),
    )
    .into_response()
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn session(id: &str) -> Result<CheckoutSessionId, Problem> {
    CheckoutSessionId::parse(id).map_err(|_| Problem::not_found())
}

/// Sandbox stand-in for Stripe Checkout: the test cards.
#[handler]
pub async fn sandbox_checkout_page(
    Path(id): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    match sandbox.checkout(&session).await {
        Ok(c) => {
            let action = format!("/sandbox/checkout/{}", esc(session.as_str()));
            let body = if c.awaiting_authentication {
                format!(
                    "<h1>3-D Secure</h1><form method=\"post\" action=\"{action}/authenticate\">\
                     <button id=\"approve\" name=\"result\" value=\"approve\">Authentifier</button>\
                     <button id=\"fail\" name=\"result\" value=\"fail\">Échouer</button></form>"
                )
            } else {
                format!(
                    "<h1>{}</h1><p>{} {}</p><form method=\"post\" action=\"{action}\">\
                     <button id=\"visa\" name=\"payment_method\" value=\"pm_card_visa\">Visa 4242</button>\
                     <button id=\"declined\" name=\"payment_method\" value=\"pm_card_chargeDeclined\">Refusée 0002</button>\
                     <button id=\"3ds\" name=\"payment_method\" value=\"pm_card_authenticationRequired\">3-D Secure 3184</button>\
                     </form><p><a href=\"{}\">Annuler</a></p>",
                    esc(&c.description),
                    esc(&amount(&c.amount)),
                    esc(c.amount.currency().code()),
                    esc(&c.cancel_url)
                )
            };
            page("Checkout (sandbox)", &body).into_response()
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct PayForm {
    payment_method: String,
}

fn sandbox_next(
    next: SandboxNext,
    session: &CheckoutSessionId,
    cancel_url: Option<String>,
) -> Response {
    match next {
        SandboxNext::Return(url) => Redirect::see_other(url).into_response(),
        SandboxNext::Authenticate => {
            Redirect::see_other(format!("/sandbox/checkout/{}", session.as_str())).into_response()
        }
        SandboxNext::TryAgain { .. } => match cancel_url {
            Some(url) => Redirect::see_other(url).into_response(),
            None => Redirect::see_other(format!("/sandbox/checkout/{}", session.as_str()))
                .into_response(),
        },
    }
}

/// Pays the sandbox session with a Stripe test payment method.
#[handler]
pub async fn sandbox_checkout_pay(
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let cancel_url = sandbox.checkout(&session).await.ok().map(|c| c.cancel_url);
    match sandbox.pay(&session, form.payment_method.trim()).await {
        Ok(next) => sandbox_next(next, &session, cancel_url),
        Err(e) => Problem::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthenticateForm {
    result: String,
}

/// Answers the sandbox's 3-D Secure challenge.
#[handler]
pub async fn sandbox_checkout_authenticate(
    Path(id): Path<String>,
    Form(form): Form<AuthenticateForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let approve = match form.result.as_str() {
        "approve" => true,
        "fail" => false,
        _ => return Problem::invalid("result", "approve or fail").into_response(),
    };
    let cancel_url = sandbox.checkout(&session).await.ok().map(|c| c.cancel_url);
    match sandbox.authenticate(&session, approve).await {
        Ok(next) => sandbox_next(next, &session, cancel_url),
        Err(e) => Problem::from(e).into_response(),
    }
}
