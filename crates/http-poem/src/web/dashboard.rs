//! The staff dashboard: Stripe panel, preferences with a live fee preview, services,
//! scheduling with the pay link to copy, the payments table (filters, totals,
//! pagination, CSV) and a payment's page (validate the act, release, refund).
//! A secretary sees only what a secretary may do.

use askama::Template;
use billing_core::access::{Action, Actor, authorize};
use billing_core::consultation::day::{HoldCoverage, Started, startable};
use billing_core::consultation::model::{
    Cancellation, CancelledBy, ConsultationRecord, ConsultationStatus,
};
use billing_core::consultation::policy::MissedFee;
use billing_core::consultation::service::{PaymentChoice, ScheduleRequest};
use billing_core::fees::{FeePreset, FeeSchedule};
use billing_core::gateway::RefundStatus;
use billing_core::ids::{ConsultationId, PaymentId, PractitionerId, ServiceId};
use billing_core::money::{AmountInput, Currency, Money};
use billing_core::outbox::Delivery;
use billing_core::payment::model::{Payment, PaymentStatus};
use billing_core::payment::ports::{PaymentCursor, PaymentRow};
use billing_core::payment::service::PaymentFilter;
use billing_core::practitioner::model::{PayoutInterval, Practitioner, Preferences, StripeLink};
use billing_core::practitioner::profile::{DEFAULT_VAT_MENTION, ProfileInput};
use billing_core::practitioner::service::{
    CancellationInput, FeeScheduleInput, MissedFeeInput, PreferencesInput, ServicePatch,
};
use billing_core::receipt::{DocumentKind, DocumentRef};
use billing_core::session::{SignInStep, SignedIn};
use billing_core::video::Pass;
use billing_core::{BillingError, Lang};
use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{CsrfToken, Data, Path, Query, Redirect};
use poem::{FromRequest, IntoResponse, Request, RequestBody, Response, handler};
use rust_decimal::Decimal;
use serde::Deserialize;

use super::i18n::Texts;
use super::session::{self, staff};
use super::{
    Checked, Ctx, Layout, NoFields, form_status, format, http_state, message, render, rendered,
    user_box, with_status,
};
use crate::problem::{Problem, status_of};
use crate::state::HttpState;

// ---------------------------------------------------------------- shared pieces

/// A signed-in page request: the context, the actor and their first practitioner.
pub(super) struct Staff {
    pub(super) ctx: Ctx,
    pub(super) actor: Actor,
    pub(super) practitioner: Practitioner,
}

impl std::fmt::Debug for Staff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staff").finish_non_exhaustive()
    }
}

impl Staff {
    pub(super) fn layout(&self, title: &str, nav: &'static str) -> Layout {
        self.ctx
            .layout(title, user_box(&self.actor, self.ctx.t), nav)
    }

    pub(super) fn tz(&self) -> Tz {
        self.practitioner.time_zone.tz()
    }

    /// The answer to a refused use case: a page that says why when the role may not
    /// do it (a secretary on a practitioner's page), the problem otherwise.
    pub(super) fn refusal(&self, e: BillingError) -> Response {
        if let BillingError::Access(billing_core::access::AccessDenied::Forbidden) = e {
            return message(
                &self.ctx,
                StatusCode::FORBIDDEN,
                self.ctx.t.forbidden_title,
                self.ctx.t.forbidden_practitioner_only,
                Some(("/dashboard", self.ctx.t.back)),
            );
        }
        Problem::from(e).into_response()
    }

    fn practitioners(&self) -> Vec<PractitionerId> {
        match &self.actor {
            Actor::Staff(u) => u.role.practitioners(),
            _ => vec![],
        }
    }

    fn may(&self, action: Action) -> bool {
        authorize(&self.actor, action, self.practitioner.id).is_ok()
    }
}

/// Loads the signed-in staff member and their first practitioner, or answers with the
/// way to the sign-in page.
async fn signed_in(ctx: Ctx, req: &Request, state: &HttpState) -> Result<Staff, Response> {
    let login = || Redirect::see_other("/dashboard/login").into_response();
    let actor = staff(req, state).await.ok_or_else(login)?;
    let first = match &actor {
        Actor::Staff(u) => u.role.practitioners().first().copied(),
        _ => None,
    }
    .ok_or_else(login)?;
    match state.billing.catalogue.practitioner(&actor, first).await {
        Ok(practitioner) => Ok(Staff {
            ctx,
            actor,
            practitioner,
        }),
        Err(e) => Err(Problem::from(e).into_response()),
    }
}

/// The signed-in staff member, as an extractor: handlers that take one are only
/// reached signed in; anybody else is sent to the sign-in page.
impl<'a> FromRequest<'a> for Staff {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let ctx = Ctx::from_request(req, body).await?;
        let state = http_state(req)?;
        signed_in(ctx, req, state).await.map_err(rendered)
    }
}

#[derive(Debug)]
pub struct Flash {
    pub kind: &'static str,
    pub text: &'static str,
}

fn flash(t: &Texts, key: Option<&str>) -> Option<Flash> {
    let (kind, text) = match key? {
        "linked" => ("ok", t.flash_linked),
        "denied" => ("warn", t.flash_denied),
        "onboarding_back" => ("ok", t.flash_onboarding_back),
        "onboarding_expired" => ("warn", t.flash_onboarding_expired),
        "verified" => ("ok", t.flash_verified),
        "unlinked" => ("ok", t.flash_unlinked),
        "saved" => ("ok", t.flash_saved),
        "validated" => ("ok", t.flash_validated),
        "released" => ("ok", t.flash_released),
        "refunded" => ("ok", t.flash_refunded),
        "profile_saved" => ("ok", t.profile_saved),
        "link_sent" => ("ok", t.pay_link_sent),
        "started" => ("ok", t.flash_started),
        "cancelled" => ("ok", t.flash_cancelled),
        "rescheduled" => ("ok", t.flash_rescheduled),
        "rescheduled_renewed_in_time" => ("warn", t.flash_rescheduled_renew),
        "rescheduled_lapses" => ("warn", t.flash_rescheduled_lapses),
        "no_show" => ("ok", t.flash_no_show),
        "fee_charged" => ("ok", t.flash_fee_charged),
        _ => return None,
    };
    Some(Flash { kind, text })
}

/// A refused action, in the page's language.
/// What a page says about a failure. Server-side failures (storage, Stripe's own
/// errors) get a generic sentence: their details go to the logs, not the browser.
pub(crate) fn error_text(err: &BillingError, lang: Lang) -> String {
    let fr = lang == Lang::Fr;
    let text = match err.code() {
        "amount_above_cap" => {
            if fr {
                "Ce montant dépasse l'empreinte."
            } else {
                "This amount is above the hold."
            }
        }
        "amount_above_maximum" => {
            if fr {
                "Ce montant dépasse votre maximum."
            } else {
                "This amount is above your maximum."
            }
        }
        "invalid_amount" => {
            if fr {
                "Ce montant n'est pas valide (exemple : 25,00)."
            } else {
                "This amount is not valid (e.g. 25.00)."
            }
        }
        "below_minimum_charge" => {
            if fr {
                "Stripe n'encaisse pas moins de 0,50 €."
            } else {
                "Stripe does not charge less than €0.50."
            }
        }
        "currency_mismatch" => {
            if fr {
                "La devise ne correspond pas."
            } else {
                "The currency does not match."
            }
        }
        "stripe_not_linked" => {
            if fr {
                "Aucun compte Stripe lié."
            } else {
                "No Stripe account is linked."
            }
        }
        "charges_disabled" => {
            if fr {
                "Le compte Stripe ne peut pas encore encaisser."
            } else {
                "The Stripe account cannot take payments yet."
            }
        }
        "payment_state_conflict" => {
            if fr {
                "Le paiement n'est plus dans un état qui le permet."
            } else {
                "The payment is no longer in a state that allows this."
            }
        }
        "stripe_already_linked" => {
            if fr {
                "Un compte Stripe est déjà lié : déliez-le d'abord."
            } else {
                "A Stripe account is already linked: unlink it first."
            }
        }
        "outstanding_holds" => {
            if fr {
                "Des empreintes sont en cours : validez-les ou annulez-les d'abord."
            } else {
                "Holds are outstanding: validate or release them first."
            }
        }
        "card_declined" => {
            if fr {
                "Carte refusée."
            } else {
                "Card declined."
            }
        }
        "forbidden" => {
            if fr {
                "Votre rôle ne permet pas cette action."
            } else {
                "Your role may not do this."
            }
        }
        "gateway_unavailable" | "storage_unavailable" => {
            if fr {
                "Service momentanément indisponible : réessayez."
            } else {
                "Temporarily unavailable: try again."
            }
        }
        "oauth_state_invalid" => {
            if fr {
                "Ce lien avec Stripe a expiré, a déjà servi ou n'a pas été demandé par vous : recommencez depuis le tableau de bord."
            } else {
                "This Stripe link has expired, was already used or was not started by you: start again from the dashboard."
            }
        }
        "not_found" => {
            if fr {
                "Introuvable : ce lien ou cet élément n'existe pas (ou plus)."
            } else {
                "Not found: this link or item does not exist (any more)."
            }
        }
        "concurrent_modification" | "idempotency_key_in_flight" => {
            if fr {
                "Modifié au même moment ailleurs : rechargez la page et réessayez."
            } else {
                "Changed elsewhere at the same time: reload the page and try again."
            }
        }
        "gateway_object_missing" => {
            if fr {
                "Stripe ne connaît pas (ou plus) ce paiement : il a pu être créé dans un autre mode ou un bac à sable redémarré."
            } else {
                "Stripe does not know this payment (any more): it may come from another mode or a restarted sandbox."
            }
        }
        "refund_failed" => {
            if fr {
                "Stripe n'a pas pu effectuer ce remboursement."
            } else {
                "Stripe could not make this refund."
            }
        }
        "validation_failed" if fr => return validation_text_fr(err),
        _ if status_of(err).is_server_error() => {
            tracing::warn!(code = err.code(), error = %err, "request failed");
            if fr {
                "Une erreur est survenue : réessayez plus tard."
            } else {
                "Something went wrong: try again later."
            }
        }
        _ if fr => return format!("Action impossible ({}).", err.code()),
        _ => return err.to_string(),
    };
    text.to_owned()
}

/// A form field the domain refused, in French (the domain words its rules in English).
fn validation_text_fr(err: &BillingError) -> String {
    let field = match err {
        BillingError::Validation { field, .. } => *field,
        _ => "",
    };
    match field {
        "starts_at" => "La date et l'heure de la consultation sont invalides ou déjà passées.",
        "from" | "to" => "Une date du filtre est invalide (format AAAA-MM-JJ, début avant fin).",
        "patient" | "display_name" | "patient_name" => {
            "Le nom du patient est requis (120 caractères au plus)."
        }
        "email" | "patient_email" => "Cette adresse e-mail n'est pas valide.",
        "service_id" => "Ce service n'est plus proposé.",
        "fee_schedule" | "percent" | "fixed" => "Ce barème de frais n'est pas valide.",
        "name" => "Le nom est requis (120 caractères au plus).",
        "time_zone" => "Ce fuseau horaire n'est pas reconnu.",
        "free_cancellation_hours" => {
            "Le délai d'annulation gratuite est un nombre d'heures entre 0 et 720."
        }
        "status" => "Ce statut de paiement n'existe pas.",
        _ => "Une valeur du formulaire n'est pas valide.",
    }
    .to_owned()
}

/// A payment as a table line.
#[derive(Debug)]
pub struct PaymentLine {
    pub id: String,
    pub href: String,
    pub date: String,
    pub patient: String,
    pub held: String,
    /// Held now (zero once captured, released or lapsed): what the totals add up.
    pub held_now: String,
    pub captured: String,
    pub released: String,
    pub refunded: String,
    pub fee: String,
    pub fee_estimated: bool,
    pub net: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub can_validate: bool,
    pub deadline: Option<String>,
    /// The deadline is close: flagged.
    pub deadline_close: bool,
}

/// Now, and how close to its deadline a hold is flagged.
#[derive(Debug, Clone, Copy)]
struct Due {
    now: DateTime<Utc>,
    within: chrono::Duration,
}

impl Due {
    fn of(billing: &billing_core::Billing) -> Due {
        Due {
            now: billing.now(),
            within: billing.config.expiring_within,
        }
    }
}

fn line(
    p: &Payment,
    patient: &str,
    date: DateTime<Utc>,
    tz: Tz,
    lang: Lang,
    may_validate: bool,
    due: Due,
) -> PaymentLine {
    let zero = Money::zero(p.amount().currency());
    let fee = p.fee();
    PaymentLine {
        id: p.id().to_string(),
        href: format!("/dashboard/payments/{}", p.id()),
        date: format::datetime_short(date, tz, lang),
        patient: patient.to_owned(),
        held: format::money(&p.authorized().unwrap_or(zero), lang),
        held_now: format::money(&p.held(), lang),
        captured: format::money(&p.captured().unwrap_or(zero), lang),
        released: format::money(&p.released(), lang),
        refunded: format::money(&p.refunded(), lang),
        fee: format::money(&fee.map_or(zero, |f| f.amount), lang),
        fee_estimated: fee.is_some_and(|f| f.source == billing_core::fees::FeeSource::Estimated),
        net: format::money(&p.net().unwrap_or(zero), lang),
        status: p.status().as_str(),
        status_label: p.status().label(lang),
        can_validate: may_validate && p.status() == PaymentStatus::Authorized,
        // Only while there is a hold to validate: after capture it means nothing.
        deadline: p
            .capture_before()
            .filter(|_| p.status() == PaymentStatus::Authorized)
            .map(|d| format::datetime_short(d, tz, lang)),
        deadline_close: p.is_expiring(due.now, due.within),
    }
}

fn row_line(r: &PaymentRow, tz: Tz, lang: Lang, may_validate: bool, due: Due) -> PaymentLine {
    line(
        &r.payment,
        r.patient.as_str(),
        r.starts_at,
        tz,
        lang,
        may_validate,
        due,
    )
}

// ---------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate {
    layout: Layout,
    failed: bool,
    /// Why sign-in is refused for a while (too many failures), in words.
    throttled: Option<String>,
    /// A confirmation (the password was just set).
    notice: Option<&'static str>,
    /// An OpenID provider is configured: offer it.
    oidc: bool,
}

#[handler]
pub async fn login_page(
    mut ctx: Ctx,
    req: &Request,
    csrf: &CsrfToken,
    Data(state): Data<&HttpState>,
) -> Response {
    if staff(req, state).await.is_some() {
        return Redirect::see_other("/dashboard").into_response();
    }
    // Nobody is signed in once this page is shown: a session cookie that named an
    // ended session was just forgotten, so the form carries the token of a browser
    // without a session.
    ctx.csrf = csrf.0.clone();
    let notice =
        (req.uri().query() == Some("flash=password_set")).then_some(ctx.t.flash_password_set);
    render(&LoginTemplate {
        layout: ctx.layout(ctx.t.login_title, None, ""),
        failed: false,
        throttled: None,
        notice,
        oidc: state.billing.oidc.is_configured(),
    })
}

/// The sign-in form: an e-mail and a password, or an access token.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[handler]
pub async fn login_submit(
    ctx: Ctx,
    req: &Request,
    Checked(form): Checked<LoginForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let sessions = &state.billing.sessions;
    let step = if form.token.trim().is_empty() {
        let from = crate::ratelimit::client_key(req, state.settings.rate_limits.trusted_proxies);
        sessions
            .sign_in_with_password(&form.email, &form.password, from.as_deref())
            .await
    } else {
        sessions
            .sign_in(form.token.trim())
            .await
            .map(SignInStep::SignedIn)
    };
    let page = |failed: bool, throttled: Option<String>| LoginTemplate {
        layout: ctx.layout(ctx.t.login_title, None, ""),
        failed,
        throttled,
        notice: None,
        oidc: state.billing.oidc.is_configured(),
    };
    match step {
        Ok(SignInStep::SignedIn(signed_in)) => signed_in_response(req, state, &signed_in).await,
        Ok(SignInStep::SecondFactor(pending)) => {
            super::security::ask_for_code(&ctx, req, state, &pending)
        }
        Err(BillingError::TooManyAttempts { retry_after }) => {
            let minutes = billing_core::error::minutes_up(retry_after);
            let text = ctx.t.login_throttled.replace("{n}", &minutes.to_string());
            throttled(render(&page(false, Some(text))), minutes)
        }
        // Storage or the hasher down: not the user's mistake, and not a failed guess.
        Err(e) if !matches!(e, BillingError::Access(_)) => {
            tracing::warn!(error = %e, "sign-in failed");
            message(
                &ctx,
                StatusCode::SERVICE_UNAVAILABLE,
                ctx.t.error_title,
                ctx.t.login_unavailable,
                Some(("/dashboard/login", ctx.t.back)),
            )
        }
        _ => with_status(render(&page(true, None)), StatusCode::UNAUTHORIZED),
    }
}

/// Sets the cookie of a session a sign-in opened, ending the one this browser had
/// before (if any): one cookie, one session.
pub(super) async fn open_session(req: &Request, state: &HttpState, signed_in: &SignedIn) {
    if let Some(previous) = session::presented(req)
        && let Err(e) = state.billing.sessions.sign_out(&previous).await
    {
        tracing::warn!(error = %e, "the previous session could not be ended");
    }
    session::open(req.cookie(), &signed_in.token, state);
}

/// The answer to a sign-in that opened a session: on to the dashboard.
pub(super) async fn signed_in_response(
    req: &Request,
    state: &HttpState,
    signed_in: &SignedIn,
) -> Response {
    open_session(req, state, signed_in).await;
    Redirect::see_other("/dashboard").into_response()
}

/// A throttled sign-in's page: `429` with `Retry-After`.
pub(super) fn throttled(page: Response, minutes: i64) -> Response {
    let mut page = with_status(page, StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = (minutes * 60).to_string().parse() {
        page.headers_mut()
            .insert(poem::http::header::RETRY_AFTER, v);
    }
    page
}

#[derive(Debug, Deserialize)]
pub struct UnlinkForm {
    force: Option<String>,
}

/// Ends the session on the server (a copy of the cookie opens nothing any more), then
/// in the browser.
#[handler]
pub async fn logout_submit(
    ctx: Ctx,
    req: &Request,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    if let Some(token) = session::presented(req)
        && let Err(e) = state.billing.sessions.sign_out(&token).await
    {
        // Still signed in: say so rather than pretend.
        tracing::warn!(error = %e, "sign-out failed");
        return message(
            &ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            ctx.t.error_title,
            ctx.t.logout_failed,
            Some(("/dashboard", ctx.t.back)),
        );
    }
    session::close(req.cookie(), state);
    Redirect::see_other("/dashboard/login").into_response()
}

/// A session as the sessions page lists it.
#[derive(Debug)]
pub struct SessionLine {
    pub signed_in: String,
    pub last_seen: String,
    pub ends: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsTemplate {
    layout: Layout,
    sessions: Vec<SessionLine>,
}

/// The signed-in staff member's open sessions, with "sign out everywhere".
#[handler]
pub async fn sessions_page(staff: Staff, req: &Request, Data(state): Data<&HttpState>) -> Response {
    let open = match state.billing.sessions.sessions(&staff.actor).await {
        Ok(open) => open,
        Err(e) => return Problem::from(e).into_response(),
    };
    let current = session::presented(req)
        .and_then(|t| billing_core::secrets::SessionToken::parse(&t).ok())
        .map(|t| t.hash());
    let (tz, lang) = (staff.tz(), staff.ctx.lang);
    let when = |at: DateTime<Utc>| format::datetime_short(at, tz, lang);
    let sessions = open
        .into_iter()
        .map(|s| SessionLine {
            signed_in: when(s.created_at),
            last_seen: when(s.last_seen_at),
            ends: when(s.expires_at),
            current: current.as_ref() == Some(&s.id),
        })
        .collect();
    render(&SessionsTemplate {
        layout: staff.layout(staff.ctx.t.sessions_title, "sessions"),
        sessions,
    })
}

/// Ends every session of the signed-in staff member, this one included.
#[handler]
pub async fn end_all_sessions_submit(
    staff: Staff,
    req: &Request,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    if let Err(e) = state
        .billing
        .sessions
        .sign_out_everywhere(&staff.actor)
        .await
    {
        return Problem::from(e).into_response();
    }
    session::close(req.cookie(), state);
    Redirect::see_other("/dashboard/login").into_response()
}

// ---------------------------------------------------------------- overview

#[derive(Debug)]
pub struct StripePanel {
    pub status: &'static str,
    pub status_label: &'static str,
    pub account: Option<String>,
    pub charges_enabled: bool,
    pub why: Option<String>,
    pub payouts: Option<String>,
    pub dashboard_url: &'static str,
    pub onboarding: bool,
}

fn stripe_panel(link: &StripeLink, t: &Texts, lang: Lang, sandbox: bool) -> StripePanel {
    let status = link.status().as_str();
    let status_label = match status {
        "linked" => t.stripe_status_linked,
        "pending" => t.stripe_status_pending,
        "revoked" => t.stripe_status_revoked,
        _ => t.stripe_status_unlinked,
    };
    let (charges_enabled, why, payouts) = match link {
        StripeLink::Linked { account, .. } => {
            let why = account.disabled_reason.clone().or_else(|| {
                (!account.currently_due.is_empty()).then(|| account.currently_due.join(", "))
            });
            let payouts = account.payout_schedule.as_ref().map(|s| {
                let every = match (&s.interval, lang) {
                    (PayoutInterval::Manual, Lang::Fr) => "manuels".to_owned(),
                    (PayoutInterval::Manual, Lang::En) => "manual".to_owned(),
                    (PayoutInterval::Daily, Lang::Fr) => "chaque jour".to_owned(),
                    (PayoutInterval::Daily, Lang::En) => "daily".to_owned(),
                    (PayoutInterval::Weekly(d), Lang::Fr) => format!("chaque semaine ({d})"),
                    (PayoutInterval::Weekly(d), Lang::En) => format!("weekly ({d})"),
                    (PayoutInterval::Monthly(d), Lang::Fr) => format!("chaque mois (le {d})"),
                    (PayoutInterval::Monthly(d), Lang::En) => format!("monthly (day {d})"),
                };
                match (s.delay_days, lang) {
                    (Some(n), Lang::Fr) => format!("{every}, délai {n} j"),
                    (Some(n), Lang::En) => format!("{every}, {n}-day delay"),
                    (None, _) => every,
                }
            });
            (account.charges_enabled, why, payouts)
        }
        _ => (false, None, None),
    };
    StripePanel {
        status,
        status_label,
        account: link.account_id().map(|a| a.as_str().to_owned()),
        charges_enabled,
        why,
        payouts,
        dashboard_url: "https://dashboard.stripe.com/settings/payouts",
        onboarding: !sandbox,
    }
}

#[derive(Debug)]
pub struct Upcoming {
    pub id: String,
    pub starts_at: String,
    pub patient: String,
    pub status: Option<&'static str>,
    pub status_label: &'static str,
    pub href: Option<String>,
    /// Cancelled or missed, in words.
    pub day: Option<&'static str>,
    /// The practitioner may start it now.
    pub can_start: bool,
}

#[derive(Debug)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Debug)]
pub struct FilterView {
    pub statuses: Vec<Choice>,
    pub from: String,
    pub to: String,
}

#[derive(Debug)]
pub struct TotalsLine {
    pub currency: &'static str,
    pub count: u64,
    pub held: String,
    pub captured: String,
    pub released: String,
    pub refunded: String,
    pub fee: String,
    pub net: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct OverviewTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    stripe: Option<StripePanel>,
    expiring: Vec<PaymentLine>,
    /// Payments a person must act on: a card refused (the patient must authorise
    /// again), a dispute open.
    attention: Vec<PaymentLine>,
    upcoming: Vec<Upcoming>,
    payments: Vec<PaymentLine>,
    totals: Vec<TotalsLine>,
    filter: FilterView,
    next_url: Option<String>,
    first_url: Option<String>,
    csv_url: String,
    csv_fr_url: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    flash: Option<String>,
    stripe: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    /// The CSV's format: `fr` (Excel in French, accounting software) or standard.
    format: Option<String>,
}

fn day_start(date: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn filter_of(q: &OverviewQuery, tz: Tz) -> Result<PaymentFilter, BillingError> {
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let statuses = match status {
        Some(s) => vec![
            s.parse::<PaymentStatus>()
                .map_err(|e| BillingError::Validation {
                    field: "status",
                    message: e.to_string(),
                })?,
        ],
        None => vec![],
    };
    // A date that is not one is said, not ignored (the table and the CSV would
    // silently show everything).
    let bad_date = |field: &'static str| BillingError::Validation {
        field,
        message: "a date (YYYY-MM-DD)".into(),
    };
    let from = match q.from.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => Some(day_start(d, tz).ok_or_else(|| bad_date("from"))?),
        None => None,
    };
    let to = match q.to.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => Some(
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.checked_add_days(Days::new(1)))
                .and_then(|d| day_start(&d.format("%Y-%m-%d").to_string(), tz))
                .ok_or_else(|| bad_date("to"))?,
        ),
        None => None,
    };
    Ok(PaymentFilter {
        practitioner: None,
        statuses,
        from,
        to,
        cursor: q
            .cursor
            .as_deref()
            .and_then(|c| c.parse::<PaymentCursor>().ok()),
        limit: Some(25),
        without_totals: false,
    })
}

fn query_string(q: &OverviewQuery, cursor: Option<&str>) -> String {
    let mut parts = vec![];
    for (k, v) in [("status", &q.status), ("from", &q.from), ("to", &q.to)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", crate::pages::urlencode(v)));
        }
    }
    if let Some(c) = cursor {
        parts.push(format!("cursor={}", crate::pages::urlencode(c)));
    }
    parts.join("&")
}

#[handler]
pub async fn overview(
    s: Staff,
    Query(q): Query<OverviewQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let (t, lang, tz) = (s.ctx.t, s.ctx.lang, s.tz());
    let b = &state.billing;
    let may_validate = s.may(Action::ValidateAct);
    let due = Due::of(b);
    let stripe = s
        .may(Action::LinkStripe)
        .then(|| stripe_panel(&s.practitioner.link, t, lang, state.settings.sandbox));
    let mut error = None;
    let filter = match filter_of(&q, tz) {
        Ok(f) => f,
        Err(e) => {
            error = Some(error_text(&e, lang));
            PaymentFilter {
                limit: Some(25),
                ..PaymentFilter::default()
            }
        }
    };
    let (payments, totals, next_url) = match b.reporting.payments(&s.actor, &filter).await {
        Ok(page) => (
            page.items
                .iter()
                .map(|r| row_line(r, tz, lang, may_validate, due))
                .collect(),
            page.totals
                .iter()
                .map(|t| TotalsLine {
                    currency: t.currency.code(),
                    count: t.count,
                    held: format::money(&t.held, lang),
                    captured: format::money(&t.captured, lang),
                    released: format::money(&t.released, lang),
                    refunded: format::money(&t.refunded, lang),
                    fee: format::money(&t.fee, lang),
                    net: format::money(&t.net, lang),
                })
                .collect(),
            page.next
                .map(|c| format!("/dashboard?{}", query_string(&q, Some(&c.to_string())))),
        ),
        Err(e) => {
            error = Some(error_text(&e, lang));
            (vec![], vec![], None)
        }
    };
    let expiring = b
        .reporting
        .expiring_holds(&s.actor)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| row_line(r, tz, lang, may_validate, due))
        .collect();
    let attention = b
        .reporting
        .payments(
            &s.actor,
            &PaymentFilter {
                statuses: vec![PaymentStatus::Failed, PaymentStatus::Disputed],
                limit: Some(20),
                // Only the rows are shown.
                without_totals: true,
                ..PaymentFilter::default()
            },
        )
        .await
        .map(|page| page.items)
        .unwrap_or_default()
        .iter()
        .map(|r| row_line(r, tz, lang, may_validate, due))
        .collect();
    let upcoming = b
        .scheduling
        .upcoming(&s.actor, 10)
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| Upcoming {
            id: r.consultation.id.to_string(),
            day: match r.consultation.status {
                ConsultationStatus::Scheduled => None,
                ConsultationStatus::Cancelled(_) => Some(s.ctx.t.day_cancelled),
                ConsultationStatus::NoShow { .. } => Some(s.ctx.t.day_missed),
            },
            can_start: authorize(
                &s.actor,
                Action::RunConsultation,
                r.consultation.practitioner,
            )
            .is_ok()
                && startable(r, &b.config, b.now()),
            starts_at: format::datetime_short(r.consultation.starts_at, tz, lang),
            patient: r.consultation.patient.display_name.as_str().to_owned(),
            status: r.payment.as_ref().map(|p| p.status().as_str()),
            status_label: r.payment.as_ref().map_or("", |p| p.status().label(lang)),
            href: r
                .payment
                .as_ref()
                .map(|p| format!("/dashboard/payments/{}", p.id())),
        })
        .collect();
    let stripe_flash = match q.stripe.as_deref() {
        Some("linked") => Some("linked"),
        Some("denied") => Some("denied"),
        _ => None,
    };
    let statuses = PaymentStatus::ALL
        .iter()
        .map(|st| Choice {
            value: st.as_str().to_owned(),
            label: st.label(lang).to_owned(),
            selected: q.status.as_deref() == Some(st.as_str()),
        })
        .collect();
    let base = query_string(&q, None);
    render(&OverviewTemplate {
        layout: s.layout(t.nav_overview, "overview"),
        flash: flash(t, q.flash.as_deref().or(stripe_flash)),
        error,
        stripe,
        expiring,
        attention,
        upcoming,
        payments,
        totals,
        filter: FilterView {
            statuses,
            from: q.from.clone().unwrap_or_default(),
            to: q.to.clone().unwrap_or_default(),
        },
        next_url,
        first_url: q.cursor.is_some().then(|| format!("/dashboard?{base}")),
        csv_url: format!("/dashboard/payments.csv?{base}&lang={}", lang.code()),
        csv_fr_url: format!(
            "/dashboard/payments.csv?{base}&lang={}&format=fr",
            lang.code()
        ),
    })
}

/// The payments table as CSV (same filters as the page).
#[handler]
pub async fn csv_download(
    s: Staff,
    Query(q): Query<OverviewQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let filter = match filter_of(&q, s.tz()) {
        Ok(f) => f,
        Err(e) => return Problem::from(e).into_response(),
    };
    let layout = crate::csv::Layout {
        format: crate::csv::CsvFormat::parse(q.format.as_deref()),
        lang: s.ctx.lang,
        tz: s.tz(),
    };
    match crate::csv::stream(&state.billing, &s.actor, filter, layout).await {
        Ok(body) => crate::csv::response(body),
        Err(e) => Problem::from(e).into_response(),
    }
}

// ---------------------------------------------------------------- Stripe panel actions

/// The Stripe panel's buttons: on to where Stripe (or the next page) takes the
/// practitioner, or why not.
fn stripe_step(s: &Staff, next: Result<String, BillingError>) -> Response {
    match next {
        Ok(url) => Redirect::see_other(url).into_response(),
        Err(e) => message(
            &s.ctx,
            status_of(&e),
            s.ctx.t.error_title,
            &error_text(&e, s.ctx.lang),
            Some(("/dashboard", s.ctx.t.back)),
        ),
    }
}

#[handler]
pub async fn stripe_link(
    s: Staff,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let next = state
        .billing
        .connect
        .start_oauth(&s.actor, s.practitioner.id)
        .await;
    stripe_step(&s, next)
}

#[handler]
pub async fn stripe_onboard(
    s: Staff,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let next = state
        .billing
        .connect
        .start_onboarding(&s.actor, s.practitioner.id)
        .await;
    stripe_step(&s, next)
}

#[handler]
pub async fn stripe_verify(
    s: Staff,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let next = state
        .billing
        .connect
        .verify(&s.actor, s.practitioner.id)
        .await;
    stripe_step(&s, next.map(|_| "/dashboard?flash=verified".to_owned()))
}

#[derive(Template)]
#[template(path = "unlink.html")]
struct UnlinkTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    account: Option<String>,
    force: bool,
    /// The account was made for Account Links: no OAuth grant to revoke.
    account_links: bool,
}

#[handler]
pub async fn unlink_page(s: Staff) -> Response {
    if !s.may(Action::UnlinkStripe) {
        return message(
            &s.ctx,
            StatusCode::FORBIDDEN,
            s.ctx.t.error_title,
            s.ctx.t.error_title,
            Some(("/dashboard", s.ctx.t.back)),
        );
    }
    render(&UnlinkTemplate {
        layout: s.layout(s.ctx.t.stripe_unlink_title, "overview"),
        flash: None,
        error: None,
        account: s
            .practitioner
            .link
            .account_id()
            .map(|a| a.as_str().to_owned()),
        force: false,
        account_links: !s.practitioner.link.has_oauth_grant(),
    })
}

#[handler]
pub async fn unlink_submit(
    s: Staff,
    Checked(form): Checked<UnlinkForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let force = form.force.as_deref() == Some("true");
    match state
        .billing
        .connect
        .unlink(&s.actor, s.practitioner.id, force)
        .await
    {
        Ok(_) => Redirect::see_other("/dashboard?flash=unlinked").into_response(),
        Err(e) => {
            let outstanding = matches!(e, BillingError::OutstandingHolds { .. });
            with_status(
                render(&UnlinkTemplate {
                    layout: s.layout(s.ctx.t.stripe_unlink_title, "overview"),
                    flash: None,
                    error: Some(error_text(&e, s.ctx.lang)),
                    account: s
                        .practitioner
                        .link
                        .account_id()
                        .map(|a| a.as_str().to_owned()),
                    force: outstanding,
                    account_links: !s.practitioner.link.has_oauth_grant(),
                }),
                status_of(&e),
            )
        }
    }
}

// ---------------------------------------------------------------- preferences

#[derive(Debug, Default)]
pub struct PrefsForm {
    pub default_amount: String,
    pub max_amount: String,
    pub preset: String,
    pub percent: String,
    pub fixed: String,
    pub payment_label: String,
    pub statement_descriptor_suffix: String,
    /// Free cancellation window, in hours, as typed.
    pub free_hours: String,
    /// none, fixed or full_hold.
    pub missed_fee: String,
    pub missed_fee_amount: String,
}

#[derive(Template)]
#[template(path = "preferences.html")]
struct PreferencesTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    form: PrefsForm,
    currencies: Vec<Choice>,
    presets: Vec<Choice>,
    preview: String,
    /// The professional identity form, as stored or as typed.
    profile: ProfileInput,
    profile_error: Option<String>,
    default_vat_mention: &'static str,
}

fn preset_label(p: FeePreset, t: &Texts) -> &'static str {
    match p {
        FeePreset::Default => t.preset_default,
        FeePreset::Standard => t.preset_standard,
        FeePreset::Premium => t.preset_premium,
        FeePreset::Uk => t.preset_uk,
        FeePreset::International => t.preset_international,
    }
}

/// "25,00 € → frais 0,60 €, net 24,40 €".
fn preview_text(amount: &Money, schedule: &FeeSchedule, t: &Texts, lang: Lang) -> String {
    match schedule.estimate(amount) {
        Ok(e) => format!(
            "{} → {} {}, {} {}",
            format::money(amount, lang),
            t.fee,
            format::money(&e.fee, lang),
            t.net,
            format::money(&e.net, lang)
        ),
        Err(_) => String::new(),
    }
}

fn preferences_template(
    s: &Staff,
    flash_: Option<Flash>,
    error: Option<String>,
    form: PrefsForm,
    currency: Currency,
) -> PreferencesTemplate {
    let (t, lang) = (s.ctx.t, s.ctx.lang);
    let prefs = &s.practitioner.preferences;
    let preview_amount = AmountInput::parse(&form.default_amount, None)
        .and_then(|a| a.in_currency(currency))
        .unwrap_or(prefs.default_amount());
    let schedule = schedule_of(&form.preset, &form.percent, &form.fixed, currency)
        .unwrap_or_else(|| prefs.fee_schedule().clone());
    PreferencesTemplate {
        layout: s.layout(t.prefs_title, "preferences"),
        flash: flash_,
        error,
        profile: s.practitioner.profile.to_input(),
        profile_error: None,
        default_vat_mention: DEFAULT_VAT_MENTION,
        preview: preview_text(&preview_amount, &schedule, t, lang),
        currencies: Currency::ALL
            .iter()
            .map(|c| Choice {
                value: c.code().to_owned(),
                label: c.code().to_owned(),
                selected: *c == currency,
            })
            .collect(),
        presets: FeePreset::ALL
            .iter()
            .map(|p| Choice {
                value: p.id().to_owned(),
                label: preset_label(*p, t).to_owned(),
                selected: form.preset == p.id(),
            })
            .chain(std::iter::once(Choice {
                value: "custom".into(),
                label: t.prefs_custom.to_owned(),
                selected: form.preset == "custom",
            }))
            .collect(),
        form,
    }
}

fn schedule_of(
    preset: &str,
    percent: &str,
    fixed: &str,
    currency: Currency,
) -> Option<FeeSchedule> {
    if preset == "custom" {
        let percent = percent.trim().replace(',', ".").parse::<Decimal>().ok()?;
        let fixed = AmountInput::parse(fixed, None)
            .ok()?
            .in_currency(currency)
            .ok()?;
        FeeSchedule::custom(percent, fixed).ok()
    } else {
        preset
            .parse::<FeePreset>()
            .ok()
            .map(|p| p.schedule(currency))
    }
}

#[handler]
pub async fn preferences_page(s: Staff, Query(q): Query<OverviewQuery>) -> Response {
    if !s.may(Action::EditPreferences) {
        return s.refusal(BillingError::Access(
            billing_core::access::AccessDenied::Forbidden,
        ));
    }
    let prefs = &s.practitioner.preferences;
    let form = prefs_form(prefs, s.ctx.lang);
    render(&preferences_template(
        &s,
        flash(s.ctx.t, q.flash.as_deref()),
        None,
        form,
        prefs.currency(),
    ))
}

/// A percentage as the practitioner types it: `1,4` in French, `1.4` in English.
fn percent_input(percent: Decimal, lang: Lang) -> String {
    let text = percent.normalize().to_string();
    match lang {
        Lang::Fr => text.replace('.', ","),
        Lang::En => text,
    }
}

/// The preferences form as stored.
fn prefs_form(prefs: &Preferences, lang: Lang) -> PrefsForm {
    let schedule = prefs.fee_schedule();
    PrefsForm {
        default_amount: format::input(&prefs.default_amount(), lang),
        max_amount: format::input(&prefs.max_amount(), lang),
        preset: schedule.preset().map_or("custom", |p| p.id()).to_owned(),
        percent: percent_input(schedule.percent(), lang),
        fixed: format::input(&schedule.fixed(), lang),
        payment_label: prefs
            .statement()
            .label
            .as_ref()
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default(),
        statement_descriptor_suffix: prefs
            .statement()
            .descriptor_suffix
            .as_ref()
            .map(|d| d.as_str().to_owned())
            .unwrap_or_default(),
        free_hours: prefs.cancellation().free_hours().to_string(),
        missed_fee: prefs.cancellation().fee().kind().to_owned(),
        missed_fee_amount: match prefs.cancellation().fee() {
            MissedFee::Fixed(m) => format::input(&m, lang),
            MissedFee::None | MissedFee::FullHold => String::new(),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct PreferencesFormData {
    default_amount: String,
    max_amount: String,
    currency: String,
    preset: String,
    percent: Option<String>,
    fixed: Option<String>,
    payment_label: Option<String>,
    statement_descriptor_suffix: Option<String>,
    free_hours: Option<String>,
    missed_fee: Option<String>,
    missed_fee_amount: Option<String>,
}

#[handler]
pub async fn preferences_submit(
    s: Staff,
    Checked(f): Checked<PreferencesFormData>,
    Data(state): Data<&HttpState>,
) -> Response {
    let currency = f
        .currency
        .parse::<Currency>()
        .unwrap_or(s.practitioner.preferences.currency());
    let form = PrefsForm {
        default_amount: f.default_amount.clone(),
        max_amount: f.max_amount.clone(),
        preset: f.preset.clone(),
        percent: f.percent.clone().unwrap_or_default(),
        fixed: f.fixed.clone().unwrap_or_default(),
        payment_label: f.payment_label.clone().unwrap_or_default(),
        statement_descriptor_suffix: f.statement_descriptor_suffix.clone().unwrap_or_default(),
        free_hours: f.free_hours.clone().unwrap_or_default(),
        missed_fee: f.missed_fee.clone().unwrap_or_default(),
        missed_fee_amount: f.missed_fee_amount.clone().unwrap_or_default(),
    };
    let input = (|| -> Result<PreferencesInput, BillingError> {
        let fee_schedule = if f.preset == "custom" {
            FeeScheduleInput::Custom {
                percent: form
                    .percent
                    .trim()
                    .replace(',', ".")
                    .parse::<Decimal>()
                    .map_err(|_| BillingError::Validation {
                        field: "percent",
                        message: "a number such as 1,4".into(),
                    })?,
                fixed: AmountInput::parse(&form.fixed, None)?,
            }
        } else {
            FeeScheduleInput::Preset(f.preset.parse::<FeePreset>()?)
        };
        Ok(PreferencesInput {
            currency,
            default_amount: AmountInput::parse(&f.default_amount, None)?,
            max_amount: AmountInput::parse(&f.max_amount, None)?,
            fee_schedule,
            payment_label: f.payment_label.clone(),
            statement_descriptor_suffix: f.statement_descriptor_suffix.clone(),
            cancellation: policy_input(&form)?,
        })
    })();
    let result = match input {
        Ok(i) => {
            state
                .billing
                .catalogue
                .set_preferences(&s.actor, s.practitioner.id, &i)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::see_other("/dashboard/preferences?flash=saved").into_response(),
        Err(e) => {
            let msg = error_text(&e, s.ctx.lang);
            with_status(
                render(&preferences_template(&s, None, Some(msg), form, currency)),
                status_of(&e),
            )
        }
    }
}

/// The policy fields of the preferences form; absent (an older form) keeps the
/// policy.
fn policy_input(form: &PrefsForm) -> Result<Option<CancellationInput>, BillingError> {
    if form.missed_fee.is_empty() && form.free_hours.trim().is_empty() {
        return Ok(None);
    }
    let free_hours =
        form.free_hours
            .trim()
            .parse::<u32>()
            .map_err(|_| BillingError::Validation {
                field: "free_cancellation_hours",
                message: "a whole number of hours".into(),
            })?;
    let fee = match form.missed_fee.as_str() {
        "fixed" => MissedFeeInput::Fixed(AmountInput::parse(&form.missed_fee_amount, None)?),
        "full_hold" => MissedFeeInput::FullHold,
        _ => MissedFeeInput::None,
    };
    Ok(Some(CancellationInput { free_hours, fee }))
}

#[derive(Debug, Deserialize)]
pub struct ProfileFormData {
    profession: Option<String>,
    address: Option<String>,
    health_id: Option<String>,
    siret: Option<String>,
    vat_mention: Option<String>,
    email: Option<String>,
}

/// `POST /dashboard/profile`: the practitioner's professional identity (receipts).
#[handler]
pub async fn profile_submit(
    s: Staff,
    Checked(f): Checked<ProfileFormData>,
    Data(state): Data<&HttpState>,
) -> Response {
    let text = |o: &Option<String>| o.clone().unwrap_or_default();
    let input = ProfileInput {
        profession: text(&f.profession),
        address: text(&f.address),
        health_id: text(&f.health_id),
        siret: text(&f.siret),
        vat_mention: text(&f.vat_mention),
        email: text(&f.email),
    };
    match state
        .billing
        .catalogue
        .set_profile(&s.actor, s.practitioner.id, &input)
        .await
    {
        Ok(_) => Redirect::see_other("/dashboard/preferences?flash=profile_saved").into_response(),
        Err(e) => {
            let prefs = &s.practitioner.preferences;
            let form = prefs_form(prefs, s.ctx.lang);
            let mut page = preferences_template(&s, None, None, form, prefs.currency());
            page.profile = input;
            page.profile_error = Some(error_text(&e, s.ctx.lang));
            with_status(render(&page), status_of(&e))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    amount: String,
    currency: Option<String>,
    preset: Option<String>,
    percent: Option<String>,
    fixed: Option<String>,
    /// The most that may be charged (the hold, when validating).
    max: Option<String>,
}

/// The live fee preview's text, computed and formatted by the server (no fee math in
/// JavaScript).
#[handler]
pub fn fee_preview(req: &Request, jar: &CookieJar, Query(q): Query<PreviewQuery>) -> Response {
    let lang = super::i18n::detect(req, jar);
    let t = super::i18n::texts(lang);
    let currency = q
        .currency
        .as_deref()
        .and_then(|c| c.parse().ok())
        .unwrap_or(Currency::Eur);
    let schedule = match (&q.preset, &q.percent, &q.fixed) {
        (Some(p), _, _) if p != "custom" => {
            p.parse::<FeePreset>().ok().map(|p| p.schedule(currency))
        }
        (_, Some(percent), Some(fixed)) => schedule_of("custom", percent, fixed, currency),
        _ => Some(FeeSchedule::default_for(currency)),
    };
    let amount = AmountInput::parse(&q.amount, None).and_then(|a| a.in_currency(currency));
    let max = q
        .max
        .as_deref()
        .and_then(|m| AmountInput::parse(m, None).ok())
        .and_then(|m| m.in_currency(currency).ok());
    if let (Ok(a), Some(max)) = (&amount, max)
        && a.amount() > max.amount()
    {
        // No fee for what cannot be charged: say why instead.
        return Response::builder()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "{} {}.",
                t.validate_over,
                format::money(&max, lang)
            ));
    }
    match (amount, schedule) {
        (Ok(a), Some(s)) => Response::builder()
            .content_type("text/plain; charset=utf-8")
            .body(preview_text(&a, &s, t, lang)),
        _ => Problem::invalid_amount("amount", "not an amount").into_response(),
    }
}

// ---------------------------------------------------------------- services

#[derive(Debug)]
pub struct ServiceLine {
    pub id: String,
    pub name: String,
    pub amount_input: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    services: Vec<ServiceLine>,
    /// `€`, `$`…: what the amounts are in.
    currency_sign: String,
}

async fn services_response(
    s: &Staff,
    state: &HttpState,
    flash_: Option<Flash>,
    error: Option<String>,
) -> Response {
    let list = state
        .billing
        .catalogue
        .services(&s.actor, s.practitioner.id, true)
        .await
        .unwrap_or_default();
    let status = form_status(error.is_some());
    with_status(
        render(&ServicesTemplate {
            layout: s.layout(s.ctx.t.services_title, "services"),
            flash: flash_,
            error,
            services: list
                .iter()
                .map(|x| ServiceLine {
                    id: x.id().to_string(),
                    name: x.name().as_str().to_owned(),
                    amount_input: format::input(&x.price(), s.ctx.lang),
                    active: x.active(),
                })
                .collect(),
            currency_sign: format::unit(s.practitioner.preferences.currency()).to_owned(),
        }),
        status,
    )
}

#[handler]
pub async fn services_page(
    s: Staff,
    Query(q): Query<OverviewQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    if !s.may(Action::ManageServices) {
        return s.refusal(BillingError::Access(
            billing_core::access::AccessDenied::Forbidden,
        ));
    }
    services_response(&s, state, flash(s.ctx.t, q.flash.as_deref()), None).await
}

#[derive(Debug, Deserialize)]
pub struct ServiceForm {
    name: String,
    amount: String,
    action: Option<String>,
}

#[handler]
pub async fn add_service(
    s: Staff,
    Checked(f): Checked<ServiceForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let result = match AmountInput::parse(&f.amount, None) {
        Ok(a) => {
            state
                .billing
                .catalogue
                .create_service(&s.actor, s.practitioner.id, &f.name, &a)
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => Redirect::see_other("/dashboard/services?flash=saved").into_response(),
        Err(e) => services_response(&s, state, None, Some(error_text(&e, s.ctx.lang))).await,
    }
}

#[handler]
pub async fn update_service(
    s: Staff,
    Path(id): Path<String>,
    Checked(f): Checked<ServiceForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<ServiceId>() else {
        return Problem::not_found().into_response();
    };
    let patch = match AmountInput::parse(&f.amount, None) {
        Ok(amount) => Ok(ServicePatch {
            name: Some(f.name.clone()),
            amount: Some(amount),
            active: match f.action.as_deref() {
                Some("deactivate") => Some(false),
                Some("reactivate") => Some(true),
                _ => None,
            },
        }),
        Err(e) => Err(BillingError::from(e)),
    };
    let result = match patch {
        Ok(p) => {
            state
                .billing
                .catalogue
                .update_service(&s.actor, id, &p)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::see_other("/dashboard/services?flash=saved").into_response(),
        Err(e) => services_response(&s, state, None, Some(error_text(&e, s.ctx.lang))).await,
    }
}

// ---------------------------------------------------------------- scheduling

#[derive(Debug, Default)]
pub struct ScheduleFormView {
    pub patient: String,
    pub email: String,
    pub starts_at: String,
    pub mode: String,
    pub amount: String,
}

#[derive(Debug)]
pub struct PractitionerChoice {
    pub id: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "schedule.html")]
struct ScheduleTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    pay_link: Option<String>,
    /// What was just scheduled, recapped above its pay link.
    recap: Option<ScheduledRecap>,
    practitioners: Vec<PractitionerChoice>,
    services: Vec<Choice2>,
    /// The default amount as people read it (`25,00 €`).
    default_amount: String,
    /// The same, as typed in the field (`25,00`).
    default_amount_input: String,
    time_zone: &'static str,
    form: ScheduleFormView,
    /// This rendering's idempotency key: a resubmitted form (double click, reload
    /// after the POST) replays the consultation instead of scheduling another.
    attempt: String,
}

/// A consultation just scheduled: who, when, how much.
#[derive(Debug)]
pub struct ScheduledRecap {
    pub patient: String,
    pub when: String,
    /// `None` without online payment.
    pub amount: Option<String>,
    /// The payment's page, where the pay link can be seen again.
    pub payment_href: Option<String>,
}

#[derive(Debug)]
pub struct Choice2 {
    pub id: String,
    pub name: String,
    pub amount: String,
    pub selected: bool,
}

async fn schedule_response(
    s: &Staff,
    state: &HttpState,
    error: Option<String>,
    done: Option<&billing_core::consultation::service::Scheduled>,
    form: ScheduleFormView,
    service: Option<&str>,
) -> Response {
    let lang = s.ctx.lang;
    let pay_link = done.map(|d| d.pay_url.clone());
    let recap = done.map(|d| {
        let c = &d.record.consultation;
        ScheduledRecap {
            patient: c.patient.display_name.as_str().to_owned(),
            when: format::datetime_zoned(c.starts_at, s.tz(), lang),
            amount: d
                .record
                .payment
                .as_ref()
                .map(|p| format::money(&p.amount(), lang)),
            payment_href: d
                .record
                .payment
                .as_ref()
                .map(|p| format!("/dashboard/payments/{}", p.id())),
        }
    });
    let mut practitioners = vec![];
    for id in s.practitioners() {
        if let Ok(p) = state.billing.catalogue.practitioner(&s.actor, id).await {
            practitioners.push(PractitionerChoice {
                id: p.id.to_string(),
                name: p.name.as_str().to_owned(),
                selected: p.id == s.practitioner.id,
            });
        }
    }
    let services = state
        .billing
        .catalogue
        .services(&s.actor, s.practitioner.id, false)
        .await
        .unwrap_or_default()
        .iter()
        .map(|x| Choice2 {
            id: x.id().to_string(),
            name: x.name().as_str().to_owned(),
            amount: format::money(&x.price(), lang),
            selected: service == Some(x.id().to_string().as_str()),
        })
        .collect();
    let status = form_status(error.is_some());
    with_status(
        render(&ScheduleTemplate {
            layout: s.layout(s.ctx.t.schedule_title, "schedule"),
            flash: None,
            error,
            pay_link,
            recap,
            practitioners,
            services,
            default_amount: format::money(&s.practitioner.preferences.default_amount(), lang),
            default_amount_input: format::input(&s.practitioner.preferences.default_amount(), lang),
            time_zone: s.practitioner.time_zone.name(),
            form,
            attempt: new_attempt(),
        }),
        status,
    )
}

/// A fresh idempotency key for a form that moves money or creates something.
fn new_attempt() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The form's idempotency key as submitted (the hidden `attempt` field), if usable.
fn attempt_of(field: Option<&str>) -> Option<&str> {
    field
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 64)
}

#[handler]
pub async fn schedule_page(
    mut s: Staff,
    Query(q): Query<SchedulePageQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    if let Err(refused) = pick_practitioner(&mut s, state, q.practitioner_id.as_deref()).await {
        return refused;
    }
    let soon = Utc::now() + chrono::Duration::hours(1);
    let form = ScheduleFormView {
        starts_at: format::datetime_input(soon, s.tz()),
        mode: if s.practitioner.link.chargeable_account().is_ok() {
            "online"
        } else {
            "none"
        }
        .into(),
        ..ScheduleFormView::default()
    };
    schedule_response(&s, state, None, None, form, None).await
}

#[derive(Debug, Deserialize)]
pub struct SchedulePageQuery {
    practitioner_id: Option<String>,
}

/// A secretary of several practitioners schedules for the one picked (its services
/// and default amount), never silently another one: an unknown or foreign id is not
/// found, a failed lookup is an error.
async fn pick_practitioner(
    s: &mut Staff,
    state: &HttpState,
    picked: Option<&str>,
) -> Result<(), Response> {
    let Some(pid) = picked.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let pid = pid
        .parse::<PractitionerId>()
        .map_err(|_| Problem::not_found().into_response())?;
    if pid != s.practitioner.id {
        s.practitioner = state
            .billing
            .catalogue
            .practitioner(&s.actor, pid)
            .await
            .map_err(|e| Problem::from(e).into_response())?;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct ScheduleFormData {
    practitioner_id: Option<String>,
    patient: String,
    email: Option<String>,
    starts_at: String,
    mode: String,
    service_id: Option<String>,
    amount: Option<String>,
    attempt: Option<String>,
    /// The patient's language (`fr` or `en`).
    patient_lang: Option<String>,
}

fn local_to_utc(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[handler]
pub async fn schedule_submit(
    mut s: Staff,
    Checked(f): Checked<ScheduleFormData>,
    Data(state): Data<&HttpState>,
) -> Response {
    if let Err(refused) = pick_practitioner(&mut s, state, f.practitioner_id.as_deref()).await {
        return refused;
    }
    let form = ScheduleFormView {
        patient: f.patient.clone(),
        email: f.email.clone().unwrap_or_default(),
        starts_at: f.starts_at.clone(),
        mode: f.mode.clone(),
        amount: f.amount.clone().unwrap_or_default(),
    };
    let request = (|| -> Result<ScheduleRequest, BillingError> {
        let starts_at = local_to_utc(&f.starts_at, s.tz()).ok_or(BillingError::Validation {
            field: "starts_at",
            message: "a date and time".into(),
        })?;
        let payment = match f.mode.as_str() {
            "online" => PaymentChoice::Online {
                amount: f
                    .amount
                    .as_deref()
                    .filter(|a| !a.trim().is_empty())
                    .map(|a| AmountInput::parse(a, None))
                    .transpose()?,
                service: f
                    .service_id
                    .as_deref()
                    .filter(|x| !x.is_empty())
                    .map(|x| x.parse::<ServiceId>())
                    .transpose()
                    .map_err(|_| BillingError::NotFound("service"))?,
            },
            _ => PaymentChoice::None,
        };
        Ok(ScheduleRequest {
            practitioner: s.practitioner.id,
            patient_name: f.patient.clone(),
            patient_email: f.email.clone(),
            starts_at,
            payment,
            patient_lang: f
                .patient_lang
                .as_deref()
                .and_then(crate::web::i18n::parse)
                .unwrap_or(Lang::Fr),
        })
    })();
    let result = match request {
        Ok(r) => {
            state
                .billing
                .scheduling
                .schedule(&s.actor, &r, attempt_of(f.attempt.as_deref()))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(done) => schedule_response(&s, state, None, Some(&done), form, None).await,
        Err(e) => {
            let mut msg = error_text(&e, s.ctx.lang);
            if matches!(e.code(), "stripe_not_linked" | "charges_disabled") {
                msg = s.ctx.t.schedule_needs_stripe.to_owned();
            }
            schedule_response(&s, state, Some(msg), None, form, f.service_id.as_deref()).await
        }
    }
}

// ---------------------------------------------------------------- a payment

#[derive(Debug)]
pub struct HistoryLine {
    pub at: String,
    pub event: String,
    pub amount: String,
    pub to: &'static str,
    pub actor: String,
}

#[derive(Template)]
#[template(path = "payment.html")]
struct PaymentTemplate {
    layout: Layout,
    flash: Option<Flash>,
    error: Option<String>,
    p: PaymentLine,
    starts_at: String,
    can_validate: bool,
    can_release: bool,
    can_refund: bool,
    validate_amount: String,
    /// The hold, as the validate form's maximum (machine form: `25.00`).
    validate_max: String,
    refund_amount: String,
    /// The refund form's idempotency key (see `ScheduleTemplate::attempt`).
    refund_attempt: String,
    preview: String,
    currency: &'static str,
    fee_percent: String,
    fee_fixed: String,
    history: Vec<HistoryLine>,
    /// When the hold will be placed (card saved, nothing held yet).
    hold_from: Option<String>,
    /// Why the saved card was refused off-session (a first hold, or a renewal).
    card_refused: Option<String>,
    renewal_refused: Option<String>,
    attention: Option<String>,
    refunds: Vec<RefundLine>,
    dispute: Option<DisputeLine>,
    /// The receipt and credit notes, as links.
    documents: Vec<DocumentLine>,
    /// The patient's live pay link (shown again: it is derived, never stored).
    pay_link: Option<String>,
    /// The patient has an address and the viewer may schedule: "send it again".
    can_send_link: bool,
    patient_email: String,
    /// The consultation's day: where it stands and what the viewer may do.
    day: DayBlock,
}

/// The consultation's day on the payment page.
struct DayBlock {
    id: String,
    /// Cancelled, missed or started, in words.
    facts: Vec<String>,
    /// The terms the patient accepted, with their date.
    terms: Option<(String, String)>,
    can_start: bool,
    can_cancel: bool,
    can_reschedule: bool,
    reschedule_at: String,
    can_no_show: bool,
    /// What marking the patient absent does.
    no_show_help: String,
    /// A late cancellation the practitioner decides on: the fee to charge.
    charge_fee: Option<String>,
    late_decide: bool,
}

impl DayBlock {
    fn of(
        record: &ConsultationRecord,
        payment: &Payment,
        may: impl Fn(Action) -> bool,
        s: &Staff,
        state: &HttpState,
    ) -> DayBlock {
        let (t, tz, lang) = (s.ctx.t, s.tz(), s.ctx.lang);
        let (now, config) = (state.now(), &state.billing.config);
        let c = &record.consultation;
        let date = |at: DateTime<Utc>| format::datetime_short(at, tz, lang);
        let scheduled = c.status == ConsultationStatus::Scheduled;
        let settled = payment.captured().is_some();
        let held = payment
            .authorized()
            .filter(|_| payment.status() == PaymentStatus::Authorized);
        let fee = held.and_then(|h| payment.terms().and_then(|t| t.fee_for(h)));
        let mut facts = Vec::new();
        match c.status {
            ConsultationStatus::Cancelled(x) => facts.push(
                match x.by {
                    CancelledBy::Patient => t.day_cancelled_patient,
                    CancelledBy::Practice => t.day_cancelled_practice,
                }
                .replace("{date}", &date(x.at)),
            ),
            ConsultationStatus::NoShow { at } => {
                facts.push(t.day_no_show_at.replace("{date}", &date(at)));
            }
            ConsultationStatus::Scheduled => {}
        }
        if let Some(at) = c.started_at {
            facts.push(t.day_started_at.replace("{date}", &date(at)));
        }
        let late = matches!(
            c.status,
            ConsultationStatus::Cancelled(Cancellation { late: true, .. })
        ) && held.is_some();
        DayBlock {
            id: c.id.to_string(),
            facts,
            terms: payment
                .terms()
                .map(|x| (t.day_terms.replace("{date}", &date(x.at)), x.text.clone())),
            can_start: may(Action::RunConsultation) && startable(record, config, now),
            can_cancel: may(Action::Schedule) && scheduled && !settled,
            can_reschedule: may(Action::Schedule)
                && scheduled
                && !settled
                && c.started_at.is_none(),
            reschedule_at: format::datetime_input(c.starts_at, tz),
            can_no_show: may(Action::ChargeMissedFee)
                && scheduled
                && !settled
                && now >= c.starts_at,
            no_show_help: match fee {
                Some(f) => t.day_no_show_fee.replace("{fee}", &format::money(&f, lang)),
                None => t.day_no_fee.to_owned(),
            },
            charge_fee: fee
                .filter(|_| late && may(Action::ChargeMissedFee))
                .map(|f| t.day_charge_fee.replace("{fee}", &format::money(&f, lang))),
            late_decide: late,
        }
    }
}

/// A receipt or credit note, on the payment page.
struct DocumentLine {
    id: String,
    title: &'static str,
    number: String,
    amount: String,
    href: String,
}

/// One refund, on the payment page.
struct RefundLine {
    id: String,
    amount: String,
    /// In words, in the page's language.
    status: &'static str,
    failed: bool,
}

/// The dispute, on the payment page.
struct DisputeLine {
    status: &'static str,
    open: bool,
    reason: String,
    amount: String,
    evidence_due: Option<String>,
    withdrawn: String,
    fee: String,
    url: String,
}

fn refund_state(status: RefundStatus, t: &Texts, lang: Lang) -> &'static str {
    match status {
        RefundStatus::Pending | RefundStatus::RequiresAction => t.refund_pending,
        RefundStatus::Succeeded => PaymentStatus::Refunded.label(lang),
        RefundStatus::Failed | RefundStatus::Canceled => t.refund_failed,
    }
}

async fn payment_response(
    s: &Staff,
    state: &HttpState,
    id: PaymentId,
    flash_: Option<Flash>,
    error: Option<(String, StatusCode)>,
    typed: Option<String>,
) -> Response {
    let (t, lang, tz) = (s.ctx.t, s.ctx.lang, s.tz());
    let viewer = match &s.actor {
        Actor::Staff(u) => Some(u.id),
        _ => None,
    };
    let (payment, history) = match state.billing.reporting.payment(&s.actor, id).await {
        Ok(x) => x,
        Err(e) => return Problem::from(e).into_response(),
    };
    let record = match state
        .billing
        .scheduling
        .get(&s.actor, payment.consultation())
        .await
    {
        Ok(r) => r,
        Err(e) => return Problem::from(e).into_response(),
    };
    let documents = match state.billing.reporting.documents(&s.actor, id).await {
        Ok(d) => d,
        Err(e) => return Problem::from(e).into_response(),
    };
    let patient = record.consultation.patient.display_name.as_str().to_owned();
    // Who did what, by name: the practice's staff (a practice has a handful).
    let names: std::collections::HashMap<_, _> = state
        .billing
        .staff
        .list_users()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.user
                .role
                .practitioners()
                .contains(&payment.practitioner())
        })
        .map(|r| (r.user.id, r.user.name))
        .collect();
    let pay_link = state
        .billing
        .scheduling
        .pay_link(&s.actor, record.consultation.id)
        .await
        .ok()
        .flatten();
    let patient_email = record
        .consultation
        .patient
        .email
        .as_ref()
        .map(|e| e.as_str().to_owned());
    let practitioner = payment.practitioner();
    let may = |a: Action| authorize(&s.actor, a, practitioner).is_ok();
    let status = payment.status();
    // A cancelled or missed consultation is settled by its day (the fee, or a
    // release), never validated as an act.
    let can_validate = may(Action::ValidateAct)
        && status == PaymentStatus::Authorized
        && record.consultation.status == ConsultationStatus::Scheduled;
    let schedule = payment.fee_schedule();
    let held = payment.authorized().unwrap_or(payment.amount());
    let validate_amount = typed.clone().unwrap_or_else(|| format::input(&held, lang));
    let preview_amount = AmountInput::parse(&validate_amount, None)
        .and_then(|a| a.in_currency(held.currency()))
        .unwrap_or(held);
    let (err_text, err_status) = match error {
        Some((t, s)) => (Some(t), s),
        None => (None, StatusCode::OK),
    };
    with_status(
        render(&PaymentTemplate {
            layout: s.layout(t.payment_title, "overview"),
            flash: flash_,
            error: err_text,
            starts_at: format::datetime_long(record.consultation.starts_at, tz, lang),
            can_validate,
            can_release: may(Action::ReleaseHold)
                && matches!(
                    status,
                    PaymentStatus::Authorized
                        | PaymentStatus::Incomplete
                        | PaymentStatus::Failed
                        | PaymentStatus::CardSaved
                ),
            can_refund: may(Action::Refund)
                && matches!(
                    status,
                    PaymentStatus::Captured | PaymentStatus::PartiallyRefunded
                ),
            validate_amount,
            validate_max: held.amount().to_string(),
            refund_amount: payment
                .refundable()
                .map(|m| format::input(&m, lang))
                .unwrap_or_default(),
            refund_attempt: new_attempt(),
            preview: preview_text(&preview_amount, schedule, t, lang),
            currency: held.currency().code(),
            fee_percent: schedule.percent().to_string(),
            fee_fixed: schedule.fixed().amount().to_string(),
            history: history
                .iter()
                .map(|h| HistoryLine {
                    at: format::datetime_short(h.at, tz, lang),
                    event: crate::web::i18n::history_event(
                        match (h.event.as_str(), record.consultation.status) {
                            ("captured", ConsultationStatus::NoShow { .. }) => {
                                "missed_fee_captured"
                            }
                            ("captured", ConsultationStatus::Cancelled(_)) => "late_fee_captured",
                            (event, _) => event,
                        },
                        lang,
                    )
                    .to_owned(),
                    amount: h
                        .amount
                        .as_ref()
                        .map(|m| format::money(m, lang))
                        .unwrap_or_default(),
                    to: h.to.label(lang),
                    actor: crate::web::i18n::history_actor(&h.actor, viewer, &names, lang),
                })
                .collect(),
            hold_from: (status == PaymentStatus::CardSaved).then(|| {
                format::datetime_zoned(
                    record.consultation.starts_at - state.billing.config.hold_lead,
                    tz,
                    lang,
                )
            }),
            card_refused: (status == PaymentStatus::Failed)
                .then(|| payment.failure())
                .flatten()
                .filter(|_| payment.saved_card().is_some())
                .map(|f| format!("{} ({})", t.card_refused, f.message)),
            renewal_refused: (status == PaymentStatus::Authorized)
                .then(|| payment.failure())
                .flatten()
                .map(|f| format!("{} ({})", t.renewal_refused, f.message)),
            attention: payment
                .attention()
                .map(|a| format!("{} — {}", format::datetime_short(a.at, tz, lang), a.message)),
            refunds: payment
                .refunds()
                .iter()
                .map(|r| RefundLine {
                    id: r.id.as_str().to_owned(),
                    amount: format::money(&r.amount, lang),
                    status: refund_state(r.status, t, lang),
                    failed: !r.status.is_live(),
                })
                .collect(),
            dispute: payment.dispute().map(|d| DisputeLine {
                status: d.status.label(lang),
                open: d.status.is_open(),
                reason: d.reason.clone(),
                amount: format::money(&d.amount, lang),
                evidence_due: d
                    .evidence_due_by
                    .map(|at| format::datetime_zoned(at, tz, lang)),
                withdrawn: format::money(&d.withdrawn, lang),
                fee: format::money(&d.fee, lang),
                url: d.dashboard_url(payment.account(), state.settings.stripe_live),
            }),
            can_send_link: pay_link.is_some()
                && patient_email.is_some()
                && may(Action::Schedule)
                && matches!(
                    status,
                    PaymentStatus::Incomplete
                        | PaymentStatus::Failed
                        | PaymentStatus::Expired
                        | PaymentStatus::CardSaved
                        | PaymentStatus::Authorized
                ),
            patient_email: patient_email.unwrap_or_default(),
            day: DayBlock::of(&record, &payment, may, s, state),
            pay_link,
            documents: documents
                .iter()
                .map(|d| {
                    let receipt = d.draft.kind == DocumentKind::Receipt;
                    DocumentLine {
                        id: if receipt {
                            "receipt-link".to_owned()
                        } else {
                            format!("credit-note-{}", d.number)
                        },
                        title: match d.draft.kind {
                            DocumentKind::Receipt => t.receipt_title,
                            DocumentKind::CreditNote => t.credit_note_title,
                            DocumentKind::CreditNoteCancellation => {
                                t.credit_note_cancellation_title
                            }
                        },
                        number: d.number.to_string(),
                        amount: format::money(&d.draft.amount, lang),
                        href: format!("/dashboard/payments/{id}/{}", crate::documents::path(d)),
                    }
                })
                .collect(),
            p: line(
                &payment,
                &patient,
                record.consultation.starts_at,
                tz,
                lang,
                may(Action::ValidateAct),
                Due::of(&state.billing),
            ),
        }),
        err_status,
    )
}

#[handler]
pub async fn payment_page(
    s: Staff,
    Path(id): Path<String>,
    Query(q): Query<OverviewQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return Problem::not_found().into_response();
    };
    payment_response(
        &s,
        state,
        id,
        flash(s.ctx.t, q.flash.as_deref()),
        None,
        None,
    )
    .await
}

/// `POST /dashboard/payments/{id}/send-link`: the pay link, e-mailed to the patient
/// again (through the outbox).
#[handler]
pub async fn send_link_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return Problem::not_found().into_response();
    };
    let result = async {
        let consultation = consultation_of(state, &s, id).await?;
        state
            .billing
            .outbox
            .send_pay_link(&s.actor, consultation)
            .await
    }
    .await;
    match result {
        Ok(()) => {
            Redirect::see_other(format!("/dashboard/payments/{id}?flash=link_sent")).into_response()
        }
        Err(e) => {
            let msg = error_text(&e, s.ctx.lang);
            payment_response(&s, state, id, None, Some((msg, status_of(&e))), None).await
        }
    }
}

/// One message of the outbox, on the Messages page.
struct MessageLine {
    at: String,
    to: String,
    subject: String,
    status: &'static str,
    status_class: &'static str,
    attempts: u32,
    error: Option<String>,
    attachment: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "messages.html")]
struct MessagesTemplate {
    layout: Layout,
    messages: Vec<MessageLine>,
    sends: bool,
}

/// `GET /dashboard/messages`: the outbox of the signed-in staff's practitioners —
/// what was sent, what waits (always, without SMTP), what the mail server refused.
#[handler]
pub async fn messages_page(s: Staff, Data(state): Data<&HttpState>) -> Response {
    let (t, lang, tz) = (s.ctx.t, s.ctx.lang, s.tz());
    let queued = match state.billing.outbox.messages(&s.actor, 100).await {
        Ok(q) => q,
        Err(e) => return Problem::from(e).into_response(),
    };
    let mut messages = Vec::with_capacity(queued.len());
    for q in queued {
        let text = state
            .billing
            .outbox
            .text(&q.message)
            .await
            .unwrap_or_else(|_| q.message.body.clone());
        let (status, status_class) = match q.delivery {
            Delivery::Pending => (t.message_pending, "authorized"),
            Delivery::Sent { .. } => (t.message_sent, "captured"),
            Delivery::Failed { .. } => (t.message_failed, "failed"),
        };
        messages.push(MessageLine {
            at: format::datetime_short(q.message.created_at, tz, lang),
            to: q.message.to.as_str().to_owned(),
            subject: q.message.subject.clone(),
            status,
            status_class,
            attempts: q.attempts,
            error: q.last_error.clone(),
            attachment: q.message.attachment.is_some(),
            text,
        });
    }
    render(&MessagesTemplate {
        layout: s.layout(t.nav_messages, "messages"),
        messages,
        sends: state.billing.outbox.sends(),
    })
}

/// A document of a payment the staff member may see, as PDF.
async fn document_pdf(
    s: &Staff,
    state: &HttpState,
    id: &str,
    which: Option<DocumentRef>,
) -> Response {
    let (Ok(id), Some(which)) = (id.parse::<PaymentId>(), which) else {
        return Problem::not_found().into_response();
    };
    let result = async {
        let docs = state.billing.reporting.documents(&s.actor, id).await?;
        crate::documents::pdf(state, &docs, which, s.ctx.lang)
    }
    .await;
    match result {
        Ok((pdf, name)) => crate::documents::pdf_response(pdf, &name),
        Err(BillingError::ReceiptNotIssued) => Problem::not_found().into_response(),
        Err(e) => Problem::from(e).into_response(),
    }
}

/// `GET /dashboard/payments/{id}/receipt.pdf`.
#[handler]
pub async fn receipt_pdf(
    s: Staff,
    Path(id): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    document_pdf(&s, state, &id, Some(DocumentRef::Receipt)).await
}

/// `GET /dashboard/payments/{id}/credit-notes/{number}.pdf`.
#[handler]
pub async fn credit_note_pdf(
    s: Staff,
    Path((id, file)): Path<(String, String)>,
    Data(state): Data<&HttpState>,
) -> Response {
    document_pdf(&s, state, &id, crate::documents::credit_note(&file)).await
}

#[derive(Debug, Deserialize)]
pub struct AmountForm {
    amount: Option<String>,
    attempt: Option<String>,
    /// A refund is made only once its confirmation page was answered.
    confirmed: Option<String>,
}

#[derive(Template)]
#[template(path = "refund_confirm.html")]
struct RefundConfirmTemplate {
    layout: Layout,
    id: String,
    amount: String,
    amount_typed: String,
    attempt: String,
    fee: String,
}

async fn consultation_of(
    state: &HttpState,
    s: &Staff,
    id: PaymentId,
) -> Result<ConsultationId, BillingError> {
    Ok(state
        .billing
        .reporting
        .payment(&s.actor, id)
        .await?
        .0
        .consultation())
}

/// Validate the act: capture the typed amount (≤ the hold).
#[handler]
pub async fn validate_submit(
    s: Staff,
    Path(id): Path<String>,
    Checked(f): Checked<AmountForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return Problem::not_found().into_response();
    };
    let typed = f.amount.clone().unwrap_or_default();
    let result = async {
        let consultation = consultation_of(state, &s, id).await?;
        let amount = AmountInput::parse(&typed, None)?;
        state
            .billing
            .payments
            .validate(&s.actor, consultation, &amount)
            .await
    }
    .await;
    match result {
        Ok(p) if p.status() == PaymentStatus::Released => {
            Redirect::see_other(format!("/dashboard/payments/{id}?flash=released")).into_response()
        }
        Ok(_) => {
            Redirect::see_other(format!("/dashboard/payments/{id}?flash=validated")).into_response()
        }
        Err(e) => {
            let status = status_of(&e);
            payment_response(
                &s,
                state,
                id,
                None,
                Some((error_text(&e, s.ctx.lang), status)),
                Some(typed),
            )
            .await
        }
    }
}

#[handler]
pub async fn release_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return Problem::not_found().into_response();
    };
    let result = async {
        let consultation = consultation_of(state, &s, id).await?;
        state.billing.payments.release(&s.actor, consultation).await
    }
    .await;
    match result {
        Ok(_) => {
            Redirect::see_other(format!("/dashboard/payments/{id}?flash=released")).into_response()
        }
        Err(e) => {
            let status = status_of(&e);
            payment_response(
                &s,
                state,
                id,
                None,
                Some((error_text(&e, s.ctx.lang), status)),
                None,
            )
            .await
        }
    }
}

#[handler]
pub async fn refund_submit(
    s: Staff,
    Path(id): Path<String>,
    Checked(f): Checked<AmountForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(id) = id.parse::<PaymentId>() else {
        return Problem::not_found().into_response();
    };
    let typed = f.amount.as_deref().unwrap_or("");
    let result = match AmountInput::parse(typed, None) {
        Ok(amount) if f.confirmed.is_none() => {
            return refund_confirmation(&s, state, id, &amount, typed, f.attempt.as_deref()).await;
        }
        Ok(amount) => {
            state
                .billing
                .payments
                .refund(&s.actor, id, &amount, attempt_of(f.attempt.as_deref()))
                .await
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(_) => {
            Redirect::see_other(format!("/dashboard/payments/{id}?flash=refunded")).into_response()
        }
        Err(e) => {
            let status = status_of(&e);
            payment_response(
                &s,
                state,
                id,
                None,
                Some((error_text(&e, s.ctx.lang), status)),
                None,
            )
            .await
        }
    }
}

/// Before a refund: the amount, and that Stripe keeps its fee, to confirm.
async fn refund_confirmation(
    s: &Staff,
    state: &HttpState,
    id: PaymentId,
    amount: &AmountInput,
    typed: &str,
    attempt: Option<&str>,
) -> Response {
    let lang = s.ctx.lang;
    let payment = match state.billing.reporting.payment(&s.actor, id).await {
        Ok((payment, _)) => payment,
        Err(e) => return Problem::from(e).into_response(),
    };
    // Asked only of who may refund: anybody else gets the refund's own refusal.
    if let Err(denied) = authorize(&s.actor, Action::Refund, payment.practitioner()) {
        return Problem::from(BillingError::Access(denied)).into_response();
    }
    let currency = payment.amount().currency();
    let refund = match amount.in_currency(currency) {
        Ok(m) => m,
        Err(e) => {
            let e = BillingError::from(e);
            let status = status_of(&e);
            return payment_response(
                s,
                state,
                id,
                None,
                Some((error_text(&e, lang), status)),
                None,
            )
            .await;
        }
    };
    let fee = payment.fee().map_or(Money::zero(currency), |f| f.amount);
    render(&RefundConfirmTemplate {
        layout: s.layout(s.ctx.t.refund_confirm_title, ""),
        id: id.to_string(),
        amount: format::money(&refund, lang),
        amount_typed: typed.to_owned(),
        attempt: attempt.unwrap_or_default().to_owned(),
        fee: format::money(&fee, lang),
    })
}

// ---- the consultation's day -----------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct RescheduleFormData {
    starts_at: String,
}

/// Where a day action returns: the consultation's payment page, or the overview.
async fn day_back(state: &HttpState, s: &Staff, id: ConsultationId, flash: &str) -> Response {
    match state.billing.scheduling.get(&s.actor, id).await {
        Ok(ConsultationRecord {
            payment: Some(p), ..
        }) => Redirect::see_other(format!("/dashboard/payments/{}?flash={flash}", p.id()))
            .into_response(),
        _ => Redirect::see_other(format!("/dashboard?flash={flash}")).into_response(),
    }
}

/// A refused day action: on the payment page with the reason, else a message.
async fn day_refused(
    state: &HttpState,
    s: &Staff,
    id: ConsultationId,
    e: BillingError,
) -> Response {
    let status = status_of(&e);
    match state.billing.scheduling.get(&s.actor, id).await {
        Ok(ConsultationRecord {
            payment: Some(p), ..
        }) => {
            payment_response(
                s,
                state,
                p.id(),
                None,
                Some((error_text(&e, s.ctx.lang), status)),
                None,
            )
            .await
        }
        _ => message(
            &s.ctx,
            status,
            s.ctx.t.payment_title,
            &error_text(&e, s.ctx.lang),
            Some(("/dashboard", s.ctx.t.back)),
        ),
    }
}

/// A day action's answer: back with `flash` once done, else the refusal.
async fn day_answer<T>(
    state: &HttpState,
    s: &Staff,
    id: ConsultationId,
    result: Result<T, BillingError>,
    flash: impl FnOnce(&T) -> &'static str,
) -> Response {
    match result {
        Ok(done) => day_back(state, s, id, flash(&done)).await,
        Err(e) => day_refused(state, s, id, e).await,
    }
}

fn consultation_id(text: &str) -> Option<ConsultationId> {
    text.parse::<uuid::Uuid>()
        .ok()
        .map(ConsultationId::from_uuid)
}

/// "Démarrer la téléconsultation": the patient's waiting room offers to join, and
/// the practitioner goes to the room with their pass (or back, without a platform).
#[handler]
pub async fn start_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(id) = consultation_id(&id) else {
        return Problem::not_found().into_response();
    };
    match state.billing.day.start(&s.actor, id).await {
        Ok(Started {
            pass: Some(Pass { url: Some(url), .. }),
            ..
        }) => Redirect::see_other(url).into_response(),
        other => day_answer(state, &s, id, other, |_| "started").await,
    }
}

#[handler]
pub async fn cancel_consultation_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(id) = consultation_id(&id) else {
        return Problem::not_found().into_response();
    };
    let result = state.billing.day.cancel(&s.actor, id).await;
    day_answer(state, &s, id, result, |_| "cancelled").await
}

#[handler]
pub async fn reschedule_submit(
    s: Staff,
    Path(id): Path<String>,
    Checked(f): Checked<RescheduleFormData>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(id) = consultation_id(&id) else {
        return Problem::not_found().into_response();
    };
    let result = match local_to_utc(&f.starts_at, s.tz()) {
        Some(at) => state.billing.day.reschedule(&s.actor, id, at).await,
        None => Err(BillingError::Validation {
            field: "starts_at",
            message: "a date and time".into(),
        }),
    };
    day_answer(state, &s, id, result, |done| match done.hold {
        HoldCoverage::RenewedInTime => "rescheduled_renewed_in_time",
        HoldCoverage::Lapses => "rescheduled_lapses",
        _ => "rescheduled",
    })
    .await
}

#[handler]
pub async fn no_show_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(id) = consultation_id(&id) else {
        return Problem::not_found().into_response();
    };
    let result = state.billing.day.no_show(&s.actor, id).await;
    day_answer(state, &s, id, result, |_| "no_show").await
}

#[handler]
pub async fn cancellation_fee_submit(
    s: Staff,
    Path(id): Path<String>,
    _: Checked<NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(id) = consultation_id(&id) else {
        return Problem::not_found().into_response();
    };
    let result = state
        .billing
        .day
        .charge_cancellation_fee(&s.actor, id)
        .await;
    day_answer(state, &s, id, result, |_| "fee_charged").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentage_is_written_as_the_language_writes_decimals() {
        let percent = Decimal::new(140, 2);
        assert_eq!(percent_input(percent, Lang::Fr), "1,4");
        assert_eq!(percent_input(percent, Lang::En), "1.4");
        assert_eq!(percent_input(Decimal::new(2, 0), Lang::Fr), "2");
    }
}
