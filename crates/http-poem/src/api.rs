//! The JSON API under `/api/v1`. Handlers only convert: wire types in, a use case of
//! `Billing`, wire types (or a problem) out. No business rule lives here.

use billing_core::BillingError;
use billing_core::access::Actor;
use billing_core::consultation::service::{PaymentChoice, ScheduleRequest};
use billing_core::fees::{FeePreset, FeeSchedule};
use billing_core::ids::{ConsultationId, PaymentId, PractitionerId, ServiceId};
use billing_core::money::Money;
use billing_core::payment::model::{Lang, PaymentStatus};
use billing_core::payment::ports::PaymentCursor;
use billing_core::payment::service::PaymentFilter;
use billing_core::practitioner::service::{FeeScheduleInput, PreferencesInput, ServicePatch};
use billing_core::receipt::DocumentRef;
use chrono::{DateTime, Utc};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, OpenApi, SecurityScheme, Tags};
use uuid::Uuid;

use crate::csv;
use crate::problem::{ApiResult, Problem};
use crate::state::HttpState;
use crate::wire::*;

/// Staff bearer token (`consultpay user add` prints one).
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct StaffAuth(Bearer);

impl std::fmt::Debug for StaffAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaffAuth(*** ***)")
    }
}

#[derive(Tags)]
enum Tag {
    /// Linking the practitioner's own Stripe account (C1, C12).
    Stripe,
    /// Default amount, maximum and fee schedule (C2).
    Preferences,
    /// Priced services (C2).
    Services,
    /// Scheduling, validating the act, releasing the hold (C3, C6).
    Consultations,
    /// The payments table, refunds, audit (C8, C10, C11, C13).
    Payments,
    /// The patient's pay page and waiting-room gate (C4).
    Patient,
    /// Fee previews (C7).
    Fees,
}

/// `201 Created` with a body.
#[derive(Debug, ApiResponse)]
pub enum Created<T: poem_openapi::types::ToJSON + Send + Sync> {
    #[oai(status = 201)]
    Created(Json<T>),
}

/// Accepted for later (an e-mail queued in the outbox).
#[derive(Debug, ApiResponse)]
pub enum Queued {
    #[oai(status = 202)]
    Accepted,
}

/// A PDF document to download.
#[derive(Debug, ApiResponse)]
pub enum PdfDownload {
    #[oai(status = 200, content_type = "application/pdf")]
    Pdf(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Cache-Control")] String,
    ),
}

impl PdfDownload {
    fn of((bytes, name): (Vec<u8>, String)) -> Self {
        PdfDownload::Pdf(
            Binary(bytes),
            format!("inline; filename=\"{name}\""),
            "private, no-store".to_owned(),
        )
    }
}

/// A CSV document to download.
#[derive(Debug, ApiResponse)]
pub enum CsvDownload {
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Csv(
        Binary<poem::Body>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

fn practitioner(id: Uuid) -> PractitionerId {
    PractitionerId::from_uuid(id)
}

#[derive(Debug)]
pub struct Api {
    pub state: HttpState,
}

impl Api {
    async fn actor(&self, auth: &StaffAuth) -> Result<Actor, Problem> {
        self.state.staff(&auth.0.token).await
    }

    fn ctx(&self) -> ViewContext {
        self.state.view_context()
    }

    async fn document_pdf(
        &self,
        auth: &StaffAuth,
        id: Uuid,
        which: DocumentRef,
        lang: Option<LangView>,
    ) -> ApiResult<PdfDownload> {
        let actor = self.actor(auth).await?;
        let documents = self
            .state
            .billing
            .reporting
            .documents(&actor, PaymentId::from_uuid(id))
            .await?;
        let lang = lang.map_or(Lang::Fr, Lang::from);
        Ok(PdfDownload::of(crate::documents::pdf(
            &self.state,
            &documents,
            which,
            lang,
        )?))
    }

    fn payment_view(&self, p: &billing_core::payment::model::Payment) -> PaymentView {
        PaymentView::of(p, self.ctx())
    }

    fn filter(
        &self,
        practitioner_id: Option<Uuid>,
        status: Option<String>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> Result<PaymentFilter, Problem> {
        let statuses = match status {
            Some(s) => s
                .split(',')
                .filter(|x| !x.trim().is_empty())
                .map(|x| {
                    x.trim()
                        .parse::<PaymentStatus>()
                        .map_err(|e| Problem::invalid("status", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![],
        };
        let cursor = cursor
            .map(|c| {
                c.parse::<PaymentCursor>()
                    .map_err(|_| Problem::invalid("cursor", "invalid cursor"))
            })
            .transpose()?;
        Ok(PaymentFilter {
            practitioner: practitioner_id.map(practitioner),
            statuses,
            from,
            to,
            cursor,
            limit,
            without_totals: false,
        })
    }
}

#[OpenApi(prefix_path = "/api/v1")]
impl Api {
    /// Who am I: the signed-in user, their role and practitioners.
    #[oai(path = "/me", method = "get", tag = "Tag::Stripe", operation_id = "me")]
    async fn me(&self, auth: StaffAuth) -> ApiResult<Json<MeView>> {
        let actor = self.actor(&auth).await?;
        MeView::of(&actor).map(Json).ok_or_else(Problem::not_found)
    }

    /// Starts Connect OAuth: returns Stripe's consent URL with a single-use, expiring
    /// `state` bound to this practitioner.
    #[oai(
        path = "/practitioners/:id/stripe/oauth",
        method = "post",
        tag = "Tag::Stripe",
        operation_id = "stripeOauth"
    )]
    async fn stripe_oauth(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<AuthorizeUrlView>> {
        let actor = self.actor(&auth).await?;
        let url = self
            .state
            .billing
            .connect
            .start_oauth(&actor, practitioner(id.0))
            .await?;
        Ok(Json(AuthorizeUrlView { authorize_url: url }))
    }

    /// Starts Account Links onboarding (creates the connected account if needed).
    #[oai(
        path = "/practitioners/:id/stripe/account-link",
        method = "post",
        tag = "Tag::Stripe",
        operation_id = "stripeAccountLink"
    )]
    async fn stripe_account_link(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<UrlView>> {
        let actor = self.actor(&auth).await?;
        let url = self
            .state
            .billing
            .connect
            .start_onboarding(&actor, practitioner(id.0))
            .await?;
        Ok(Json(UrlView { url }))
    }

    /// The Stripe link: status, account, whether it can take charges and why not,
    /// payout schedule.
    #[oai(
        path = "/practitioners/:id/stripe",
        method = "get",
        tag = "Tag::Stripe",
        operation_id = "stripeStatus"
    )]
    async fn stripe_status(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<StripeLinkView>> {
        let actor = self.actor(&auth).await?;
        let link = self
            .state
            .billing
            .connect
            .status(&actor, practitioner(id.0))
            .await?;
        Ok(Json((&link).into()))
    }

    /// Verifies the pairing: re-reads the account from Stripe.
    #[oai(
        path = "/practitioners/:id/stripe/verify",
        method = "post",
        tag = "Tag::Stripe",
        operation_id = "stripeVerify"
    )]
    async fn stripe_verify(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<StripeLinkView>> {
        let actor = self.actor(&auth).await?;
        let link = self
            .state
            .billing
            .connect
            .verify(&actor, practitioner(id.0))
            .await?;
        Ok(Json((&link).into()))
    }

    /// Unlinks (OAuth deauthorize). The Stripe account itself is not deleted; history
    /// is kept. Refused while holds are outstanding unless `force=true`.
    #[oai(
        path = "/practitioners/:id/stripe",
        method = "delete",
        tag = "Tag::Stripe",
        operation_id = "stripeUnlink"
    )]
    async fn stripe_unlink(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        force: Query<Option<bool>>,
    ) -> ApiResult<Json<StripeLinkView>> {
        let actor = self.actor(&auth).await?;
        let link = self
            .state
            .billing
            .connect
            .unlink(&actor, practitioner(id.0), force.0.unwrap_or(false))
            .await?;
        Ok(Json((&link).into()))
    }

    /// Default amount, maximum, currency and fee schedule.
    #[oai(
        path = "/practitioners/:id/preferences",
        method = "get",
        tag = "Tag::Preferences",
        operation_id = "preferences"
    )]
    async fn preferences(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<PreferencesView>> {
        let actor = self.actor(&auth).await?;
        let prefs = self
            .state
            .billing
            .catalogue
            .preferences(&actor, practitioner(id.0))
            .await?;
        Ok(Json((&prefs).into()))
    }

    /// Replaces the preferences (practitioner only).
    #[oai(
        path = "/practitioners/:id/preferences",
        method = "put",
        tag = "Tag::Preferences",
        operation_id = "setPreferences"
    )]
    async fn set_preferences(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<PreferencesInputView>,
    ) -> ApiResult<Json<PreferencesView>> {
        let actor = self.actor(&auth).await?;
        let input = PreferencesInput {
            currency: parse_currency("currency", &body.currency)?,
            default_amount: parse_amount("default_amount", &body.default_amount.0, None)?,
            max_amount: parse_amount("max_amount", &body.max_amount.0, None)?,
            fee_schedule: match &body.fee_schedule {
                Some(s) => s.to_domain()?,
                None => FeeScheduleInput::Preset(FeePreset::Default),
            },
            payment_label: body.payment_label.clone(),
            statement_descriptor_suffix: body.statement_descriptor_suffix.clone(),
            cancellation: body
                .cancellation
                .as_ref()
                .map(CancellationPolicyInputView::to_domain)
                .transpose()?,
        };
        let prefs = self
            .state
            .billing
            .catalogue
            .set_preferences(&actor, practitioner(id.0), &input)
            .await?;
        Ok(Json((&prefs).into()))
    }

    /// The practitioner's professional identity, printed on notes d'honoraires.
    #[oai(
        path = "/practitioners/:id/profile",
        method = "get",
        tag = "Tag::Preferences",
        operation_id = "profile"
    )]
    async fn profile(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<ProfileView>> {
        let actor = self.actor(&auth).await?;
        let p = self
            .state
            .billing
            .catalogue
            .practitioner(&actor, practitioner(id.0))
            .await?;
        Ok(Json((&p.profile).into()))
    }

    /// Replaces the professional identity (practitioner only). Receipts already issued
    /// keep the identity they print.
    #[oai(
        path = "/practitioners/:id/profile",
        method = "put",
        tag = "Tag::Preferences",
        operation_id = "setProfile"
    )]
    async fn set_profile(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<ProfileInputView>,
    ) -> ApiResult<Json<ProfileView>> {
        let actor = self.actor(&auth).await?;
        let profile = self
            .state
            .billing
            .catalogue
            .set_profile(&actor, practitioner(id.0), &body.to_domain())
            .await?;
        Ok(Json((&profile).into()))
    }

    /// The practitioner's services (inactive ones with `include_inactive=true`).
    #[oai(
        path = "/practitioners/:id/services",
        method = "get",
        tag = "Tag::Services",
        operation_id = "services"
    )]
    async fn services(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        include_inactive: Query<Option<bool>>,
    ) -> ApiResult<Json<Vec<ServiceView>>> {
        let actor = self.actor(&auth).await?;
        let list = self
            .state
            .billing
            .catalogue
            .services(
                &actor,
                practitioner(id.0),
                include_inactive.0.unwrap_or(false),
            )
            .await?;
        Ok(Json(list.iter().map(ServiceView::from).collect()))
    }

    /// Adds a priced service.
    #[oai(
        path = "/practitioners/:id/services",
        method = "post",
        tag = "Tag::Services",
        operation_id = "createService"
    )]
    async fn create_service(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<ServiceInputView>,
    ) -> ApiResult<Created<ServiceView>> {
        let actor = self.actor(&auth).await?;
        let amount = parse_amount("amount", &body.amount.0, body.currency.as_deref())?;
        let service = self
            .state
            .billing
            .catalogue
            .create_service(&actor, practitioner(id.0), &body.name, &amount)
            .await?;
        Ok(Created::Created(Json((&service).into())))
    }

    /// Changes a service (name, amount, active).
    #[oai(
        path = "/services/:id",
        method = "patch",
        tag = "Tag::Services",
        operation_id = "updateService"
    )]
    async fn update_service(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<ServicePatchView>,
    ) -> ApiResult<Json<ServiceView>> {
        let actor = self.actor(&auth).await?;
        let patch = ServicePatch {
            name: body.name.clone(),
            amount: body
                .amount
                .as_ref()
                .map(|a| parse_amount("amount", &a.0, body.currency.as_deref()))
                .transpose()?,
            active: body.active,
        };
        let service = self
            .state
            .billing
            .catalogue
            .update_service(&actor, ServiceId::from_uuid(id.0), &patch)
            .await?;
        Ok(Json((&service).into()))
    }

    /// Deactivates a service (it stays in history; it can no longer set a cap).
    #[oai(
        path = "/services/:id",
        method = "delete",
        tag = "Tag::Services",
        operation_id = "deleteService"
    )]
    async fn delete_service(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<ServiceView>> {
        let actor = self.actor(&auth).await?;
        let patch = ServicePatch {
            active: Some(false),
            ..ServicePatch::default()
        };
        let service = self
            .state
            .billing
            .catalogue
            .update_service(&actor, ServiceId::from_uuid(id.0), &patch)
            .await?;
        Ok(Json((&service).into()))
    }

    /// Schedules a teleconsultation with or without online payment. Returns the pay
    /// link, shown once. Send an `Idempotency-Key` to make retries safe.
    #[oai(
        path = "/consultations",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "schedule"
    )]
    async fn schedule(
        &self,
        auth: StaffAuth,
        #[oai(name = "Idempotency-Key", validator(max_length = 255))] idempotency_key: Header<
            Option<String>,
        >,
        body: Json<ConsultationInputView>,
    ) -> ApiResult<Created<ScheduledView>> {
        let actor = self.actor(&auth).await?;
        let payment = match body.payment.mode {
            PaymentModeView::None => {
                if body.payment.amount.is_some()
                    || body.payment.currency.is_some()
                    || body.payment.service_id.is_some()
                {
                    // Well-formed, but contradictory: 422, as the domain's own refusals.
                    return Err(Problem::unprocessable(
                        "payment",
                        "amount and service_id only apply to mode=online",
                    ));
                }
                PaymentChoice::None
            }
            PaymentModeView::Online => PaymentChoice::Online {
                amount: match (&body.payment.amount, &body.payment.currency) {
                    (Some(a), currency) => {
                        Some(parse_amount("payment.amount", &a.0, currency.as_deref())?)
                    }
                    (None, Some(_)) => {
                        return Err(Problem::unprocessable(
                            "payment.currency",
                            "a currency only goes with an amount",
                        ));
                    }
                    (None, None) => None,
                },
                service: body.payment.service_id.map(ServiceId::from_uuid),
            },
        };
        let key = idempotency_key
            .0
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty());
        if key.is_some_and(|k| k.len() > 255) {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "at most 255 characters",
            ));
        }
        let request = ScheduleRequest {
            practitioner: practitioner(body.practitioner_id),
            patient_name: body.patient.display_name.clone(),
            patient_email: body.patient.email.clone(),
            starts_at: body.starts_at,
            payment,
            patient_lang: body.patient.lang.map_or(Lang::Fr, Lang::from),
        };
        let scheduled = self
            .state
            .billing
            .scheduling
            .schedule(&actor, &request, key)
            .await?;
        let consultation = ConsultationView::of(&scheduled.record, self.ctx());
        Ok(Created::Created(Json(ScheduledView {
            id: scheduled.record.consultation.id.as_uuid(),
            pay_url: scheduled.pay_url,
            pay_token: scheduled.pay_token.expose().to_owned(),
            payment: consultation.payment.clone(),
            consultation,
        })))
    }

    /// Upcoming consultations of the user's practitioner(s).
    #[oai(
        path = "/consultations",
        method = "get",
        tag = "Tag::Consultations",
        operation_id = "upcoming"
    )]
    async fn upcoming(
        &self,
        auth: StaffAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<Vec<ConsultationView>>> {
        let actor = self.actor(&auth).await?;
        let list = self
            .state
            .billing
            .scheduling
            .upcoming(&actor, limit.0.unwrap_or(50))
            .await?;
        Ok(Json(
            list.iter()
                .map(|r| ConsultationView::of(r, self.ctx()))
                .collect(),
        ))
    }

    /// The consultation's live pay link, shown again (it is derived from the server's
    /// key, never stored). `pay_url` is null for a link made before links were
    /// derived: make a new one with `POST /consultations/{id}/pay-link`.
    #[oai(
        path = "/consultations/:id/pay-link",
        method = "get",
        tag = "Tag::Consultations",
        operation_id = "payLink"
    )]
    async fn pay_link(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<PayLinkView>> {
        let actor = self.actor(&auth).await?;
        let pay_url = self
            .state
            .billing
            .scheduling
            .pay_link(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(PayLinkView { pay_url }))
    }

    /// E-mails the pay link to the patient again (through the outbox; the patient
    /// needs an e-mail address). Staff who may schedule.
    #[oai(
        path = "/consultations/:id/pay-link/email",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "emailPayLink"
    )]
    async fn email_pay_link(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Queued> {
        let actor = self.actor(&auth).await?;
        self.state
            .billing
            .outbox
            .send_pay_link(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Queued::Accepted)
    }

    /// The latest e-mail of the user's practitioner(s), newest first, with delivery.
    #[oai(
        path = "/messages",
        method = "get",
        tag = "Tag::Consultations",
        operation_id = "messages"
    )]
    async fn messages(
        &self,
        auth: StaffAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<Vec<MessageView>>> {
        let actor = self.actor(&auth).await?;
        let queued = self
            .state
            .billing
            .outbox
            .messages(&actor, limit.0.unwrap_or(50))
            .await?;
        Ok(Json(queued.iter().map(MessageView::of).collect()))
    }

    /// A consultation and its payment.
    #[oai(
        path = "/consultations/:id",
        method = "get",
        tag = "Tag::Consultations",
        operation_id = "consultation"
    )]
    async fn consultation(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<ConsultationView>> {
        let actor = self.actor(&auth).await?;
        let record = self
            .state
            .billing
            .scheduling
            .get(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(ConsultationView::of(&record, self.ctx())))
    }

    /// A new pay link for the consultation; the previous one stops working.
    #[oai(
        path = "/consultations/:id/pay-link",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "newPayLink"
    )]
    async fn new_pay_link(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<ScheduledView>> {
        let actor = self.actor(&auth).await?;
        let scheduled = self
            .state
            .billing
            .scheduling
            .new_pay_link(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        let consultation = ConsultationView::of(&scheduled.record, self.ctx());
        Ok(Json(ScheduledView {
            id: id.0,
            pay_url: scheduled.pay_url,
            pay_token: scheduled.pay_token.expose().to_owned(),
            payment: consultation.payment.clone(),
            consultation,
        }))
    }

    /// Validates the act: captures `amount` (≤ the hold), releases the rest; `"0"`
    /// releases the whole hold. Idempotent: the same request retried captures once.
    #[oai(
        path = "/consultations/:id/validate",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "validate"
    )]
    async fn validate(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<AmountInputView>,
    ) -> ApiResult<Json<PaymentView>> {
        let actor = self.actor(&auth).await?;
        let amount = parse_amount("amount", &body.amount.0, body.currency.as_deref())?;
        let payment = self
            .state
            .billing
            .payments
            .validate(&actor, ConsultationId::from_uuid(id.0), &amount)
            .await?;
        Ok(Json(self.payment_view(&payment)))
    }

    /// Starts the consultation (practitioner only, from `CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES`
    /// before its start): the patient's waiting room then offers to join. Answers the
    /// practitioner's (moderator's) pass when a video platform is set up.
    #[oai(
        path = "/consultations/:id/start",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "start"
    )]
    async fn start(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<StartedView>> {
        let actor = self.actor(&auth).await?;
        let started = self
            .state
            .billing
            .day
            .start(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(StartedView {
            consultation: ConsultationView::of(&started.record, self.ctx()),
            pass: started.pass.as_ref().map(PassView::from),
        }))
    }

    /// The practitioner's (moderator's) pass to the consultation's room.
    #[oai(
        path = "/consultations/:id/pass",
        method = "get",
        tag = "Tag::Consultations",
        operation_id = "staffPass"
    )]
    async fn staff_pass(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<PassView>> {
        let actor = self.actor(&auth).await?;
        let pass = self
            .state
            .billing
            .day
            .pass(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json((&pass).into()))
    }

    /// The practice cancels (practitioner or secretary): the hold is released; no fee
    /// applies. Retrying is safe.
    #[oai(
        path = "/consultations/:id/cancel",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "cancel"
    )]
    async fn cancel(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<ConsultationView>> {
        let actor = self.actor(&auth).await?;
        let record = self
            .state
            .billing
            .day
            .cancel(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(ConsultationView::of(&record, self.ctx())))
    }

    /// Moves the consultation (practitioner or secretary), before it started. The
    /// answer says whether the hold still covers the new time.
    #[oai(
        path = "/consultations/:id/reschedule",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "reschedule"
    )]
    async fn reschedule(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        body: Json<RescheduleInputView>,
    ) -> ApiResult<Json<RescheduledView>> {
        let actor = self.actor(&auth).await?;
        let done = self
            .state
            .billing
            .day
            .reschedule(&actor, ConsultationId::from_uuid(id.0), body.starts_at)
            .await?;
        Ok(Json(RescheduledView {
            consultation: ConsultationView::of(&done.record, self.ctx()),
            hold: done.hold.as_str().to_owned(),
        }))
    }

    /// Marks the patient absent (practitioner only, from the start on): the fee the
    /// patient accepted is captured, or the hold released when the policy has none.
    #[oai(
        path = "/consultations/:id/no-show",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "noShow"
    )]
    async fn no_show(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<ConsultationView>> {
        let actor = self.actor(&auth).await?;
        let record = self
            .state
            .billing
            .day
            .no_show(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(ConsultationView::of(&record, self.ctx())))
    }

    /// Charges the fee of a consultation the patient cancelled after the free window
    /// (practitioner only); `POST …/release` lets it go instead.
    #[oai(
        path = "/consultations/:id/cancellation-fee",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "cancellationFee"
    )]
    async fn cancellation_fee(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
    ) -> ApiResult<Json<ConsultationView>> {
        let actor = self.actor(&auth).await?;
        let record = self
            .state
            .billing
            .day
            .charge_cancellation_fee(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(ConsultationView::of(&record, self.ctx())))
    }

    /// Releases the hold: nothing is charged.
    #[oai(
        path = "/consultations/:id/release",
        method = "post",
        tag = "Tag::Consultations",
        operation_id = "release"
    )]
    async fn release(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<PaymentView>> {
        let actor = self.actor(&auth).await?;
        let payment = self
            .state
            .billing
            .payments
            .release(&actor, ConsultationId::from_uuid(id.0))
            .await?;
        Ok(Json(self.payment_view(&payment)))
    }

    /// Refunds part or all of a captured payment. Send an `Idempotency-Key` to make
    /// retries safe.
    #[oai(
        path = "/payments/:id/refunds",
        method = "post",
        tag = "Tag::Payments",
        operation_id = "refund"
    )]
    async fn refund(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key", validator(max_length = 255))] idempotency_key: Header<
            Option<String>,
        >,
        body: Json<AmountInputView>,
    ) -> ApiResult<Json<PaymentView>> {
        let actor = self.actor(&auth).await?;
        let amount = parse_amount("amount", &body.amount.0, body.currency.as_deref())?;
        let key = idempotency_key
            .0
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty());
        if key.is_some_and(|k| k.len() > 255) {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "at most 255 characters",
            ));
        }
        let payment = self
            .state
            .billing
            .payments
            .refund(&actor, PaymentId::from_uuid(id.0), &amount, key)
            .await?;
        Ok(Json(self.payment_view(&payment)))
    }

    /// The payments table: newest first, filtered by status (comma-separated) and
    /// creation date, with totals and a cursor for the next page.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/payments",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "payments"
    )]
    async fn payments(
        &self,
        auth: StaffAuth,
        practitioner_id: Query<Option<Uuid>>,
        #[oai(validator(
            pattern = r"^((incomplete|card_saved|authorized|captured|partially_refunded|refunded|released|expired|failed|disputed|dispute_lost)(,(incomplete|card_saved|authorized|captured|partially_refunded|refunded|released|expired|failed|disputed|dispute_lost))*)?$"
        ))]
        status: Query<Option<String>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        #[oai(validator(
            pattern = r"^-?[0-9]{1,16}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        cursor: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<PaymentsPageView>> {
        let actor = self.actor(&auth).await?;
        let filter = self.filter(practitioner_id.0, status.0, from.0, to.0, cursor.0, limit.0)?;
        let page = self
            .state
            .billing
            .reporting
            .payments(&actor, &filter)
            .await?;
        Ok(Json(PaymentsPageView::of(&page, self.ctx())))
    }

    /// The payments table as CSV (all pages, same filters), one row per payment, with
    /// each captured payment's receipt number. `format=fr` makes the file French
    /// accounting software and Excel read: semicolons, decimal commas, dates and times
    /// in the practitioner's time zone, French headers, a UTF-8 byte-order mark.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/payments.csv",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "paymentsCsv"
    )]
    async fn payments_csv(
        &self,
        auth: StaffAuth,
        practitioner_id: Query<Option<Uuid>>,
        #[oai(validator(
            pattern = r"^((incomplete|card_saved|authorized|captured|partially_refunded|refunded|released|expired|failed|disputed|dispute_lost)(,(incomplete|card_saved|authorized|captured|partially_refunded|refunded|released|expired|failed|disputed|dispute_lost))*)?$"
        ))]
        status: Query<Option<String>>,
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
        lang: Query<Option<String>>,
        format: Query<Option<CsvFormatView>>,
    ) -> ApiResult<CsvDownload> {
        let actor = self.actor(&auth).await?;
        let filter = self.filter(practitioner_id.0, status.0, from.0, to.0, None, Some(200))?;
        // Dates in the time zone of the practitioner asked for, else the user's first.
        let whose = practitioner_id
            .0
            .map(practitioner)
            .or_else(|| match &actor {
                Actor::Staff(u) => u.role.practitioners().first().copied(),
                _ => None,
            });
        let tz = match whose {
            Some(id) => self
                .state
                .billing
                .catalogue
                .practitioner(&actor, id)
                .await?
                .time_zone
                .tz(),
            None => billing_core::practitioner::model::TimeZone::default().tz(),
        };
        let layout = csv::Layout {
            format: match format.0 {
                Some(CsvFormatView::Fr) => csv::CsvFormat::Fr,
                _ => csv::CsvFormat::Standard,
            },
            lang: csv::lang(lang.0.as_deref()),
            tz,
        };
        let body = csv::stream(&self.state.billing, &actor, filter, layout).await?;
        Ok(CsvDownload::Csv(Binary(body), csv::DISPOSITION.to_owned()))
    }

    /// One payment with its history.
    #[oai(
        path = "/payments/:id",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "payment"
    )]
    async fn payment(&self, auth: StaffAuth, id: Path<Uuid>) -> ApiResult<Json<PaymentDetailView>> {
        let actor = self.actor(&auth).await?;
        let (payment, history) = self
            .state
            .billing
            .reporting
            .payment(&actor, PaymentId::from_uuid(id.0))
            .await?;
        let documents = self
            .state
            .billing
            .reporting
            .documents(&actor, payment.id())
            .await?;
        Ok(Json(PaymentDetailView {
            payment: self.payment_view(&payment),
            history: history.iter().map(HistoryView::from).collect(),
            documents: documents.iter().map(DocumentView::of).collect(),
        }))
    }

    /// The payment's note d'honoraires as PDF (`lang`: fr or en, default fr). A
    /// payment not captured has none: 409 `receipt_not_issued`.
    #[oai(
        path = "/payments/:id/receipt.pdf",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "receiptPdf"
    )]
    async fn receipt_pdf(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        lang: Query<Option<LangView>>,
    ) -> ApiResult<PdfDownload> {
        self.document_pdf(&auth, id.0, DocumentRef::Receipt, lang.0)
            .await
    }

    /// One of the payment's credit notes as PDF, by number (`2026-000124.pdf`).
    #[oai(
        path = "/payments/:id/credit-notes/:file",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "creditNotePdf"
    )]
    async fn credit_note_pdf(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        file: Path<String>,
        lang: Query<Option<LangView>>,
    ) -> ApiResult<PdfDownload> {
        let which = crate::documents::credit_note(&file.0)
            .ok_or_else(|| Problem::from(BillingError::NotFound("credit note")))?;
        self.document_pdf(&auth, id.0, which, lang.0).await
    }

    /// Holds whose capture deadline is near: validate or release them (C10).
    #[oai(
        path = "/holds/expiring",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "expiring"
    )]
    async fn expiring(&self, auth: StaffAuth) -> ApiResult<Json<Vec<PaymentView>>> {
        let actor = self.actor(&auth).await?;
        let rows = self.state.billing.reporting.expiring_holds(&actor).await?;
        Ok(Json(
            rows.iter()
                .map(|r| PaymentView::of_row(r, self.ctx()))
                .collect(),
        ))
    }

    /// The practitioner's audit trail, newest first (practitioner only).
    #[oai(
        path = "/practitioners/:id/audit",
        method = "get",
        tag = "Tag::Payments",
        operation_id = "audit"
    )]
    async fn audit(
        &self,
        auth: StaffAuth,
        id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
    ) -> ApiResult<Json<Vec<AuditView>>> {
        let actor = self.actor(&auth).await?;
        let entries = self
            .state
            .billing
            .reporting
            .audit_trail(&actor, practitioner(id.0), limit.0.unwrap_or(100))
            .await?;
        Ok(Json(entries.iter().map(AuditView::from).collect()))
    }

    /// Stripe's fee and the net on an amount (25.00 EUR on the default schedule →
    /// 0.60 and 24.40). `schedule` is a preset name; default `default`.
    #[oai(
        path = "/fees/estimate",
        method = "get",
        tag = "Tag::Fees",
        operation_id = "feeEstimate"
    )]
    async fn fee_estimate(
        &self,
        #[oai(validator(pattern = r"^[0-9]{1,8}([.,][0-9]{1,2})?$"))] amount: Query<String>,
        #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
        currency: Query<Option<String>>,
        #[oai(validator(pattern = r"^(default|standard|premium|uk|international)$"))]
        schedule: Query<Option<String>>,
    ) -> ApiResult<Json<FeeEstimateView>> {
        let currency = parse_currency("currency", currency.0.as_deref().unwrap_or("EUR"))?;
        let money = Money::parse(&amount.0, currency)
            .map_err(|e| Problem::invalid_amount("amount", e.to_string()))?;
        // Below Stripe's smallest charge there is no payment, and the fixed part alone
        // would show a negative net.
        money.ensure_chargeable().map_err(BillingError::from)?;
        let preset = match schedule.0.as_deref() {
            Some(s) => s
                .parse::<FeePreset>()
                .map_err(|e| Problem::invalid("schedule", e.to_string()))?,
            None => FeePreset::Default,
        };
        let schedule: FeeSchedule = preset.schedule(currency);
        let estimate = schedule
            .estimate(&money)
            .map_err(|e| Problem::invalid_amount("amount", e.to_string()))?;
        Ok(Json(FeeEstimateView::of(&money, &schedule, &estimate)))
    }

    /// The patient's pay page data. `refresh=true` re-reads a payment waiting on the
    /// patient from the gateway first (after coming back from checkout).
    #[oai(
        path = "/pay/:token",
        method = "get",
        tag = "Tag::Patient",
        operation_id = "pay"
    )]
    async fn pay(
        &self,
        token: Path<String>,
        refresh: Query<Option<bool>>,
    ) -> ApiResult<Json<PayView>> {
        let page = self
            .state
            .billing
            .patients
            .open(&token.0, refresh.0.unwrap_or(false))
            .await?;
        Ok(Json(crate::pages::pay_view(
            &page,
            &self.state.settings,
            &token.0,
        )))
    }

    /// Starts the authorisation: where to send the patient (Stripe Checkout or the
    /// sandbox card page), and/or a client secret for the Payment Element.
    /// The patient's language (for Checkout) is taken from `Accept-Language`.
    #[oai(
        path = "/pay/:token/checkout",
        method = "post",
        tag = "Tag::Patient",
        operation_id = "checkout"
    )]
    async fn checkout(
        &self,
        token: Path<String>,
        #[oai(name = "Accept-Language")] accept_language: Header<Option<String>>,
    ) -> ApiResult<Json<CheckoutView>> {
        let lang = crate::web::i18n::from_accept_language(accept_language.0.as_deref());
        let start = self
            .state
            .billing
            .patients
            .start_checkout(&token.0, lang)
            .await?;
        Ok(Json(CheckoutView {
            redirect_url: start.redirect_url,
            client_secret: start.client_secret.map(|s| s.expose().to_owned()),
            expires_at: start.expires_at,
            mode: match start.mode {
                billing_core::gateway::CheckoutMode::Hold => "hold",
                billing_core::gateway::CheckoutMode::SaveCard => "save_card",
            }
            .to_owned(),
        }))
    }

    /// The waiting-room gate: may this patient enter now?
    #[oai(
        path = "/pay/:token/access",
        method = "get",
        tag = "Tag::Patient",
        operation_id = "access"
    )]
    async fn access(&self, token: Path<String>) -> ApiResult<Json<AccessView>> {
        let access = self.state.billing.patients.access(&token.0).await?;
        Ok(Json(AccessView {
            can_enter: access.can_enter,
            waiting_room: access.waiting_room,
            started: access.started,
            video: access.video,
            status: access.status.as_str().to_owned(),
            starts_at: access.starts_at,
        }))
    }

    /// The patient's pass to the video room, while the gate is open (hold in place or
    /// no payment needed) and from `CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES` before the
    /// start until `CONSULTPAY_OPEN_AFTER_START_MINUTES` after. Otherwise a problem:
    /// `payment_required` (402), `too_early`, `consultation_over`,
    /// `consultation_cancelled`, `video_not_configured`.
    #[oai(
        path = "/pay/:token/pass",
        method = "get",
        tag = "Tag::Patient",
        operation_id = "patientPass"
    )]
    async fn patient_pass(&self, token: Path<String>) -> ApiResult<Json<PassView>> {
        let pass = self.state.billing.patients.pass(&token.0).await?;
        Ok(Json((&pass).into()))
    }

    /// The patient cancels, until the start. Inside the free window (or when the
    /// policy charges nothing) the hold is released at once; later, the cancellation
    /// is recorded and the practitioner decides. Retrying is safe.
    #[oai(
        path = "/pay/:token/cancel",
        method = "post",
        tag = "Tag::Patient",
        operation_id = "patientCancel"
    )]
    async fn patient_cancel(&self, token: Path<String>) -> ApiResult<Json<PayView>> {
        self.state.billing.patients.cancel(&token.0).await?;
        let page = self.state.billing.patients.open(&token.0, false).await?;
        Ok(Json(crate::pages::pay_view(
            &page,
            &self.state.settings,
            &token.0,
        )))
    }
}
