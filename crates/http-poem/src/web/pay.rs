//! The patient's pay page (C4): what will be held and why, "Pay now", and once the
//! hold is in place, "Enter waiting room".

use askama::Template;
use billing_core::BillingError;
use billing_core::consultation::model::{CancelledBy, Consultation, ConsultationStatus};
use billing_core::consultation::service::PayPage;
use billing_core::gateway::CheckoutMode;
use billing_core::money::Money;
use billing_core::payment::model::{PaymentStatus, RefundState};
use billing_core::receipt::DocumentKind;
use chrono::{DateTime, SecondsFormat, Utc};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::{Checked, Ctx, Layout, NoFields, format, message, render, with_status};
use crate::documents;
use crate::pages::pay_view;
use crate::state::HttpState;

#[derive(Template)]
#[template(path = "pay.html")]
struct PayTemplate {
    layout: Layout,
    token: String,
    practitioner: String,
    starts_at: String,
    amount: Option<String>,
    failure: Option<String>,
    /// none, incomplete, cancelled, declined, authorized, captured, released,
    /// expired, expired_again, card_saved, disputed, refunded, unavailable.
    state: &'static str,
    /// The waiting room is offered (gate open, consultation not over).
    waiting_room: bool,
    /// The hold is in place but the consultation's time is over: waiting for the
    /// practitioner to validate.
    consultation_over: bool,
    can_pay: bool,
    /// What was charged, released and refunded, in words, once the act is validated.
    settlement: Vec<String>,
    /// The receipt and credit notes to download.
    documents: Vec<DocLink>,
    /// When the hold will be placed, if later (the card is saved now, or was).
    hold_from: Option<String>,
    /// The bank asked for an authentication the patient was not there to give.
    needs_authentication: bool,
    waiting_room_url: String,
    /// scheduled, cancelled_free, cancelled_late, cancelled_by_practice, no_show.
    day: &'static str,
    /// The cancellation policy: accepted, or accepted by paying.
    policy: Option<String>,
    /// When it was accepted, in words.
    policy_accepted: Option<String>,
    can_cancel: bool,
    cancel_is_free: bool,
}

/// A document to download.
struct DocLink {
    id: String,
    label: String,
    href: String,
}

#[derive(Template)]
#[template(path = "elements.html")]
struct ElementsTemplate {
    layout: Layout,
    amount: String,
    publishable_key: String,
    account: String,
    client_secret: String,
    return_url: String,
    /// The Payment Element saves the card (a SetupIntent) instead of holding now.
    save_card: bool,
}

#[derive(Debug, Deserialize)]
pub struct PayQuery {
    checkout: Option<String>,
}

fn state_of(page: &PayPage, returned: Option<&str>) -> &'static str {
    match page.record.payment.as_ref().map(|p| p.status()) {
        None => "none",
        Some(PaymentStatus::CardSaved) => "card_saved",
        Some(PaymentStatus::Authorized) => "authorized",
        Some(PaymentStatus::Captured | PaymentStatus::PartiallyRefunded) => "captured",
        Some(PaymentStatus::Disputed | PaymentStatus::DisputeLost) => "disputed",
        Some(PaymentStatus::Refunded) => "refunded",
        Some(PaymentStatus::Released) => "released",
        Some(PaymentStatus::Expired) if page.can_pay => "expired_again",
        Some(PaymentStatus::Expired) => "expired",
        Some(PaymentStatus::Failed) => "declined",
        Some(PaymentStatus::Incomplete) if returned == Some("cancel") => "cancelled",
        // Back from checkout, but the gateway has not confirmed a hold yet (a bank's
        // check still running, or its answer not here yet).
        Some(PaymentStatus::Incomplete) if returned == Some("success") => "processing",
        Some(PaymentStatus::Incomplete) => "incomplete",
    }
}

fn not_found(ctx: &Ctx) -> Response {
    message(
        ctx,
        StatusCode::NOT_FOUND,
        ctx.t.not_found_title,
        ctx.t.not_found_text,
        None,
    )
}

fn page_for(
    ctx: &Ctx,
    state: &HttpState,
    token: &str,
    page: &PayPage,
    forced: Option<&'static str>,
    returned: Option<&str>,
) -> Response {
    let view = pay_view(page, &state.settings, token);
    let tz = page.time_zone.tz();
    let payment = page.record.payment.as_ref();
    let status = forced.unwrap_or_else(|| state_of(page, returned));
    let template = PayTemplate {
        layout: ctx.layout(ctx.t.pay_title, None, ""),
        token: token.to_owned(),
        practitioner: view.practitioner_name.clone(),
        starts_at: format::datetime_zoned(page.record.consultation.starts_at, tz, ctx.lang),
        amount: payment.map(|p| format::money(&p.amount(), ctx.lang)),
        failure: payment
            .and_then(|p| p.failure())
            .map(|f| f.message.clone())
            // Stripe words its reasons in English: show them on English pages only.
            .filter(|_| status == "declined" && ctx.lang == billing_core::Lang::En),
        state: status,
        waiting_room: page.waiting_room,
        consultation_over: page.can_enter
            && !page.waiting_room
            && payment.is_some_and(|p| p.status() == PaymentStatus::Authorized),
        can_pay: page.can_pay,
        settlement: settlement(page, ctx),
        documents: document_links(page, ctx, token),
        hold_from: page
            .hold_from
            .map(|at| format::datetime_zoned(at, tz, ctx.lang)),
        needs_authentication: payment
            .and_then(|p| p.failure())
            .is_some_and(|f| f.code.as_deref() == Some("authentication_required")),
        waiting_room_url: view.waiting_room_url.unwrap_or_default(),
        day: day_of(&page.record.consultation),
        policy: (page.record.consultation.status == ConsultationStatus::Scheduled
            && payment.is_some_and(|p| p.captured().is_none()))
        .then(|| crate::pages::policy_text(page, ctx.lang))
        .flatten(),
        policy_accepted: payment.and_then(|p| p.terms()).map(|t| {
            ctx.t
                .pay_policy_accepted
                .replace("{date}", &format::datetime_short(t.at, tz, ctx.lang))
        }),
        can_cancel: page.can_cancel,
        cancel_is_free: page.cancel_is_free,
    };
    render(&template)
}

/// Where the consultation stands, for the page's notice.
fn day_of(c: &Consultation) -> &'static str {
    match c.status {
        ConsultationStatus::Scheduled => "scheduled",
        ConsultationStatus::NoShow { .. } => "no_show",
        ConsultationStatus::Cancelled(x) => match (x.by, x.late) {
            (CancelledBy::Practice, _) => "cancelled_by_practice",
            (CancelledBy::Patient, true) => "cancelled_late",
            (CancelledBy::Patient, false) => "cancelled_free",
        },
    }
}

/// French agreement with an amount: "1,50 € débité", "18,00 € débités".
fn plural(m: &Money, lang: billing_core::Lang) -> &'static str {
    if lang == billing_core::Lang::Fr && m.amount() >= rust_decimal::Decimal::TWO {
        "s"
    } else {
        ""
    }
}

/// What the payment came to, in words: "18,00 € débités le 27/11/2026", "7,00 €
/// libérés", each refund as it stands (with the date of its credit note once it
/// succeeded), what is still on its way back.
fn settlement(page: &PayPage, ctx: &Ctx) -> Vec<String> {
    let Some(p) = page.record.payment.as_ref() else {
        return Vec::new();
    };
    let (Some(charged), Some(at)) = (p.captured(), p.captured_at()) else {
        return Vec::new();
    };
    let tz = page.time_zone.tz();
    let line = |template: &str, m: &Money, date: Option<DateTime<Utc>>| {
        template
            .replace("{amount}", &format::money(m, ctx.lang))
            .replace("{s}", plural(m, ctx.lang))
            .replace(
                "{date}",
                &date
                    .map(|d| format::date(d, tz, ctx.lang))
                    .unwrap_or_default(),
            )
    };
    let mut lines = vec![line(ctx.t.pay_line_charged, &charged, Some(at))];
    if let Ok(Some(released)) = p.released_remainder()
        && released.is_positive()
    {
        lines.push(line(ctx.t.pay_line_released, &released, None));
    }
    let noted = |refund: &billing_core::ids::RefundId| {
        page.documents
            .iter()
            .find(|d| {
                d.draft.kind == DocumentKind::CreditNote && d.draft.refund.as_ref() == Some(refund)
            })
            .map(|d| d.draft.paid_at)
    };
    for r in p.refunds() {
        lines.push(match r.status {
            RefundState::Succeeded => match noted(&r.id) {
                Some(on) => line(ctx.t.pay_line_refunded, &r.amount, Some(on)),
                None => line(ctx.t.pay_line_refunded_undated, &r.amount, None),
            },
            RefundState::Pending | RefundState::RequiresAction => {
                line(ctx.t.pay_line_refund_pending, &r.amount, None)
            }
            RefundState::Failed | RefundState::Canceled => {
                line(ctx.t.pay_line_refund_failed, &r.amount, None)
            }
        });
    }
    // Refunds known only by their total (before refunds were itemised).
    let itemised = p
        .refunds()
        .iter()
        .filter(|r| r.status.is_live())
        .try_fold(Money::zero(charged.currency()), |sum, r| {
            sum.checked_add(&r.amount)
        });
    if let Ok(itemised) = itemised
        && let Ok(rest) = p.refunded().checked_sub(&itemised)
        && rest.is_positive()
    {
        lines.push(line(ctx.t.pay_line_refunded_undated, &rest, None));
    }
    lines
}

fn document_links(page: &PayPage, ctx: &Ctx, token: &str) -> Vec<DocLink> {
    page.documents
        .iter()
        .map(|d| match d.draft.kind {
            DocumentKind::Receipt => DocLink {
                id: "receipt-link".to_owned(),
                label: ctx.t.pay_receipt_link.to_owned(),
                href: format!("/pay/{token}/{}", documents::path(d)),
            },
            kind => DocLink {
                id: format!("credit-note-{}", d.number),
                label: if kind == DocumentKind::CreditNote {
                    ctx.t.pay_credit_note_link
                } else {
                    ctx.t.pay_credit_note_cancellation_link
                }
                .replace("{number}", &d.number.to_string()),
                href: format!("/pay/{token}/{}", documents::path(d)),
            },
        })
        .collect()
}

/// `GET /pay/{token}`. Coming back from checkout (`?checkout=…`) re-reads the payment
/// from the gateway first, so the hold shows at once even if the webhook is late.
#[handler]
pub async fn pay_page(
    ctx: Ctx,
    Path(token): Path<String>,
    Query(q): Query<PayQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .patients
        .open(&token, q.checkout.is_some())
        .await
    {
        Ok(page) => page_for(&ctx, state, &token, &page, None, q.checkout.as_deref()),
        Err(BillingError::NotFound(_)) => not_found(&ctx),
        Err(e) => crate::problem::Problem::from(e).into_response(),
    }
}

/// "Pay now": starts the authorisation and sends the patient to Stripe Checkout (or
/// the sandbox card page), or shows the Payment Element.
#[handler]
pub async fn checkout_submit(
    ctx: Ctx,
    Path(token): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .patients
        .start_checkout(&token, ctx.lang)
        .await
    {
        Ok(start) => {
            if let Some(url) = start.redirect_url {
                return Redirect::see_other(url).into_response();
            }
            let (Some(secret), Some(key)) = (
                start.client_secret,
                state.settings.stripe_publishable_key.clone(),
            ) else {
                return Redirect::see_other(format!("/pay/{token}")).into_response();
            };
            let Ok(page) = state.billing.patients.open(&token, false).await else {
                return not_found(&ctx);
            };
            let payment = page.record.payment.as_ref();
            let template = ElementsTemplate {
                layout: ctx.layout(ctx.t.pay_title, None, ""),
                amount: payment
                    .map(|p| format::money(&p.amount(), ctx.lang))
                    .unwrap_or_default(),
                publishable_key: key,
                account: payment
                    .and_then(|p| p.account())
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
                client_secret: secret.expose().to_owned(),
                return_url: format!("{}/pay/{token}?checkout=success", state.settings.public_url),
                save_card: start.mode == CheckoutMode::SaveCard,
            };
            render(&template)
        }
        Err(BillingError::NotFound(_)) => not_found(&ctx),
        Err(e) => {
            tracing::info!(code = e.code(), "checkout refused");
            match state.billing.patients.open(&token, false).await {
                Ok(page) => {
                    let forced = if page.can_enter {
                        None
                    } else {
                        Some("unavailable")
                    };
                    with_status(
                        page_for(&ctx, state, &token, &page, forced, None),
                        StatusCode::CONFLICT,
                    )
                }
                Err(_) => not_found(&ctx),
            }
        }
    }
}

/// "Cancel the consultation" from the pay link.
#[handler]
pub async fn cancel_submit(
    ctx: Ctx,
    Path(token): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state.billing.patients.cancel(&token).await {
        Ok(_) => Redirect::see_other(format!("/pay/{token}")).into_response(),
        Err(BillingError::NotFound(_)) => not_found(&ctx),
        Err(e) => {
            tracing::info!(code = e.code(), "cancellation refused");
            match state.billing.patients.open(&token, false).await {
                Ok(page) => with_status(
                    page_for(&ctx, state, &token, &page, None, None),
                    crate::problem::status_of(&e),
                ),
                Err(_) => not_found(&ctx),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "waiting.html")]
struct WaitingTemplate {
    layout: Layout,
    token: String,
    practitioner: String,
    starts_at: String,
    /// RFC 3339, for the countdown.
    starts_at_iso: String,
    /// The server's time when the page was made (RFC 3339): the countdown follows
    /// the server's clock, not the device's.
    now_iso: String,
    started: bool,
    /// A video platform is set up: "Join" opens its room with the patient's pass.
    video: bool,
}

/// The built-in waiting room (used when no external waiting-room URL is configured):
/// the practitioner, the time, a countdown, and — once the practitioner starts —
/// "Join" (to the video platform) or "your practitioner will call you". It follows
/// the access check by itself; a consultation no longer offered sends the patient
/// back to the pay page.
#[handler]
pub async fn waiting_room_page(
    ctx: Ctx,
    Path(token): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    let page = match state.billing.patients.open(&token, false).await {
        Ok(page) => page,
        Err(_) => return not_found(&ctx),
    };
    if !page.waiting_room {
        return Redirect::see_other(format!("/pay/{token}")).into_response();
    }
    let c = &page.record.consultation;
    render(&WaitingTemplate {
        layout: ctx.layout(ctx.t.waiting_room_title, None, ""),
        token: token.clone(),
        practitioner: page.practitioner_name.as_str().to_owned(),
        starts_at: format::datetime_zoned(c.starts_at, page.time_zone.tz(), ctx.lang),
        starts_at_iso: c.starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        now_iso: state.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        started: c.started_at.is_some(),
        video: state.billing.patients.video_offered(),
    })
}

/// "Join": the patient's pass, then the video platform's room. Without a platform,
/// or when the pass is refused (too early, not paid, over), back to the waiting room
/// or the pay page.
#[handler]
pub async fn join(ctx: Ctx, Path(token): Path<String>, Data(state): Data<&HttpState>) -> Response {
    match state.billing.patients.pass(&token).await {
        Ok(pass) => match pass.url {
            Some(url) => Redirect::see_other(url).into_response(),
            None => Redirect::see_other(format!("/pay/{token}/waiting-room")).into_response(),
        },
        Err(BillingError::NotFound(_)) => not_found(&ctx),
        Err(e) => {
            tracing::info!(code = e.code(), "pass refused");
            Redirect::see_other(format!("/pay/{token}/waiting-room")).into_response()
        }
    }
}
