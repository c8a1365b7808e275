//! E-mail that is never lost: a transactional outbox.
//!
//! A message is written by the storage port **in the same transaction** as the change
//! that causes it (the consultation scheduled, the payment captured, the refund
//! made…): see [`ChangeLog::messages`](crate::payment::ports::ChangeLog) and
//! [`ConsultationRepository::create`](crate::consultation::ports::ConsultationRepository).
//! [`OutboxService::deliver_due`] sends what is due through the [`Mailer`] port and
//! retries with backoff. Each message has a `dedupe` key, so nothing is queued twice,
//! and a claim (a lease written by a conditional update) so that of several servers on
//! one database exactly one sends a message at a time.
//!
//! Delivery is at least once: a server that dies after the SMTP server accepted a
//! message but before it was marked sent leaves it to be sent again when its lease
//! ends. The copy carries the same `Message-ID`, which mail clients use to collapse
//! duplicates. A message is never dropped because the SMTP server is down; one the
//! SMTP server refuses for good (an unknown mailbox) is marked failed and shown to
//! staff.
//!
//! Without a mailer (no SMTP configured) messages stay queued and staff read them on
//! the dashboard's Messages page.

pub mod compose;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::access::{Action, Actor, authorize};
use crate::consultation;
use crate::consultation::ports::ConsultationRepository;
use crate::consultation::service::live_token;
use crate::contact::EmailAddress;
use crate::error::BillingError;
use crate::ids::{ConsultationId, PaymentId, PractitionerId, RefundId};
use crate::payment::model::Lang;
use crate::payment::ports::PaymentRepository;
use crate::practitioner::ports::PractitionerRepository;
use crate::receipt::{DocumentKind, DocumentService, sheet};
use crate::repository::RepositoryError;
use crate::system::{Clock, IdGenerator, PayLinkSigner, now_micros};

/// Stands for the consultation's live pay link in a stored body; filled in when the
/// message is sent, so the outbox never holds a working link.
pub const PAY_URL: &str = "{pay_url}";

/// Stands for the server's public URL in a stored body (links to the dashboard).
pub const PUBLIC_URL: &str = "{public_url}";

/// Stands for a fresh password-reset link of the message's staff recipient, made when
/// the message is sent: the outbox never holds a link that works.
pub const PASSWORD_URL: &str = "{password_url}";

/// What a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// To the patient: the pay link, at scheduling (or sent again by staff).
    PayLink,
    /// To the patient: the hold is in place.
    HoldPlaced,
    /// To the patient: the note d'honoraires, attached.
    Receipt,
    /// To the patient: a credit note, attached.
    CreditNote,
    /// To the patient: the bank refused the hold on the saved card; authorise again.
    AuthorizeAgain,
    /// To the practitioner: a hold is about to lapse and is not validated (C10).
    HoldExpiring,
    /// To the practitioner: a refund failed.
    RefundFailed,
    /// To the practitioner: a dispute was opened.
    DisputeOpened,
    /// To the patient: the consultation is cancelled (by either side), and what
    /// becomes of the hold.
    Cancelled,
    /// To the patient: the consultation was moved.
    Rescheduled,
    /// To a staff member: a link to choose a new password, which they asked for.
    PasswordReset,
}

impl MessageKind {
    /// Every kind, in declaration order.
    pub const ALL: [MessageKind; 11] = [
        MessageKind::PayLink,
        MessageKind::HoldPlaced,
        MessageKind::Receipt,
        MessageKind::CreditNote,
        MessageKind::AuthorizeAgain,
        MessageKind::HoldExpiring,
        MessageKind::RefundFailed,
        MessageKind::DisputeOpened,
        MessageKind::Cancelled,
        MessageKind::Rescheduled,
        MessageKind::PasswordReset,
    ];

    /// The stable name (`pay_link`, `receipt`, …), stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::PayLink => "pay_link",
            MessageKind::HoldPlaced => "hold_placed",
            MessageKind::Receipt => "receipt",
            MessageKind::CreditNote => "credit_note",
            MessageKind::AuthorizeAgain => "authorize_again",
            MessageKind::HoldExpiring => "hold_expiring",
            MessageKind::RefundFailed => "refund_failed",
            MessageKind::DisputeOpened => "dispute_opened",
            MessageKind::Cancelled => "cancelled",
            MessageKind::Rescheduled => "rescheduled",
            MessageKind::PasswordReset => "password_reset",
        }
    }
}

impl FromStr for MessageKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        MessageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document to attach, read (and rendered) when the message is sent: the payment's
/// receipt, or the credit note (or its cancellation) of one of its refunds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRef {
    /// The payment the document belongs to.
    pub payment: PaymentId,
    /// Which document: the receipt, or a credit note.
    pub kind: DocumentKind,
    /// The refund a credit note is about; `None` for the receipt.
    pub refund: Option<RefundId>,
}

/// A message as queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message's id, also the e-mail's `Message-ID` on every attempt.
    pub id: uuid::Uuid,
    /// What it is about.
    pub kind: MessageKind,
    /// Whose message it is (who sees it on the dashboard).
    pub practitioner: PractitionerId,
    /// The consultation it is about, if any (whose live pay link fills [`PAY_URL`]).
    pub consultation: Option<ConsultationId>,
    /// The staff member it is for, if any (whose fresh reset link fills
    /// [`PASSWORD_URL`]).
    pub user: Option<crate::ids::UserId>,
    /// The recipient.
    pub to: EmailAddress,
    /// The language it is written in.
    pub lang: Lang,
    /// The subject line.
    pub subject: String,
    /// Plain text; [`PAY_URL`] stands for the pay link.
    pub body: String,
    /// A document to attach when it is sent, if any.
    pub attachment: Option<AttachmentRef>,
    /// The same key is never queued twice (`receipt:{payment}`…).
    pub dedupe: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// Where a queued message stands.
// Exhaustive on purpose: storage persists each state with its date and the Messages
// page labels it; a wildcard arm there would lose or mislabel a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Not sent yet (never tried, or to be tried again at `next_attempt_at`).
    Pending,
    /// The mail server accepted it.
    Sent {
        /// When.
        at: DateTime<Utc>,
    },
    /// Refused for good by the mail server.
    Failed {
        /// When.
        at: DateTime<Utc>,
    },
}

impl Delivery {
    /// The stable name (`pending`, `sent`, `failed`), stored.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Sent { .. } => "sent",
            Delivery::Failed { .. } => "failed",
        }
    }
}

/// A message with its delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The message.
    pub message: Message,
    /// Where it stands.
    pub delivery: Delivery,
    /// How many sends failed so far.
    pub attempts: u32,
    /// When it is due (again); the time it was queued before a first attempt.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure, for staff.
    pub last_error: Option<String>,
}

/// Storage of the outbox (messages are also written by
/// [`PaymentRepository::update`] and [`ConsultationRepository::create`], in their
/// transactions, with the same rules as [`OutboxRepository::enqueue`]).
///
/// # Contract
///
/// - **Once per key.** A message whose `dedupe` key is already queued (by any write)
///   is skipped, never queued twice and never an error.
/// - **Exclusive claims.** A message is leased by a conditional update: of concurrent
///   claimers (several servers) at most one gets a given message until its lease
///   ends; a lapsed lease may be taken over.
/// - **Only the claimer settles.** `mark_sent` and `attempt_failed` change a message
///   only while the caller's claim still holds it, and return `false` (nothing
///   written) otherwise.
/// - Messages read back equal (`==`) to what was queued; an outage is
///   [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Queues the messages whose `dedupe` key is new (pending, due at once); returns
    /// how many were queued. A known key is skipped, not an error.
    async fn enqueue(&self, messages: &[Message]) -> Result<u64, RepositoryError>;

    /// Claims up to `limit` pending messages due at `now` whose lease is free (never
    /// claimed, or claimed until before `now`), oldest first: each is leased to
    /// `claim` until `lease_until` by a conditional update, so that concurrent
    /// claimers (several servers) never get the same message.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError>;

    /// Marks a message sent, if `claim` still holds it. Returns whether it did.
    async fn mark_sent(
        &self,
        id: uuid::Uuid,
        claim: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError>;

    /// Counts an attempt and frees the lease: the message is due again at `retry_at`,
    /// or, without one, failed for good. Only if `claim` still holds it.
    async fn attempt_failed(
        &self,
        id: uuid::Uuid,
        claim: &str,
        at: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
    ) -> Result<bool, RepositoryError>;

    /// The practitioners' latest messages, newest first, at most `limit`.
    async fn recent(
        &self,
        practitioners: &[PractitionerId],
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError>;
}

/// A file attached to an e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAttachment {
    /// The file name the recipient sees (`note-d-honoraires-2026-000123.pdf`).
    pub name: String,
    /// Its MIME type (`application/pdf`).
    pub content_type: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
}

/// An e-mail ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// The outbox message's id: the same on every attempt (`Message-ID`).
    pub id: uuid::Uuid,
    /// The recipient.
    pub to: EmailAddress,
    /// The message's language (the e-mail's `Content-Language`).
    pub lang: Lang,
    /// The subject line.
    pub subject: String,
    /// The plain-text body, with its links filled in.
    pub text: String,
    /// Files to attach (a receipt, a credit note).
    pub attachments: Vec<FileAttachment>,
}

/// Why the mail server did not take a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// Down, busy, or a 4xx answer: try again later.
    #[error("temporary mail failure: {0}")]
    Temporary(String),
    /// A 5xx answer about this message (unknown mailbox…): trying again will not help.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

/// Sends e-mail (an adapter: SMTP).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Hands `email` to the mail server. `Ok` once the server accepted it; an outage or
    /// a 4xx answer MUST be [`MailError::Temporary`] (the message is retried), a refusal
    /// of this message for good [`MailError::Permanent`] (it is marked failed).
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// What one delivery round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// Messages the mail server accepted.
    pub sent: u64,
    /// Messages that failed for now and will be tried again.
    pub retried: u64,
    /// Messages refused for good.
    pub failed: u64,
}

impl DeliveryReport {
    /// Adds a later round to this one.
    pub fn absorb(&mut self, later: DeliveryReport) {
        self.sent += later.sent;
        self.retried += later.retried;
        self.failed += later.failed;
    }
}

/// The most messages one round sends.
const MAX_PER_ROUND: usize = 200;
/// How long a claim lasts. Each message is claimed just before it is sent, so the
/// lease covers one send (a few SMTP commands of at most 30 s each).
const LEASE_SECS: i64 = 300;
/// Retries wait 30 s, 1 min, 2 min… doubling, at most 6 h (never given up on while
/// the error is temporary).
const BACKOFF_FIRST_SECS: i64 = 30;
const BACKOFF_MAX_SECS: i64 = 6 * 3600;

/// When to try again after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let secs = BACKOFF_FIRST_SECS.saturating_mul(1_i64 << exp);
    Duration::seconds(secs.min(BACKOFF_MAX_SECS))
}

/// What makes password-reset links when their e-mail is sent.
#[derive(Clone)]
pub(crate) struct PasswordLinks {
    users: Arc<dyn crate::staff::UserRepository>,
    links: Arc<dyn crate::invitation::LinkRepository>,
    secrets: Arc<dyn crate::system::SecretGenerator>,
}

impl PasswordLinks {
    /// A new reset link for `user`, if they still sign in with `to`; `None` otherwise
    /// (the e-mail changed, or they were locked out, since they asked).
    async fn reset_url(
        &self,
        user: crate::ids::UserId,
        to: &EmailAddress,
        config: &crate::config::BillingConfig,
        clock: &dyn Clock,
    ) -> Result<Option<String>, BillingError> {
        match self.users.find_login(to).await? {
            Some((owner, _)) if owner.id == user => {}
            _ => return Ok(None),
        }
        let now = now_micros(clock);
        let token = crate::secrets::LinkToken::from_random(&self.secrets.secret());
        let purpose = crate::invitation::LinkPurpose::Reset;
        let link = crate::invitation::LoginLink {
            id: token.hash(),
            user,
            purpose,
            email: to.clone(),
            created_at: now,
            expires_at: now + purpose.lifetime(),
        };
        self.links.create_link(&link, &[]).await?;
        Ok(Some(config.password_url(&token)))
    }
}

/// The outbox's use cases: delivery (a job), the staff's view, sending a pay link
/// again.
#[derive(Clone)]
pub struct OutboxService {
    pub(crate) outbox: Arc<dyn OutboxRepository>,
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) payments: Arc<dyn PaymentRepository>,
    pub(crate) documents: DocumentService,
    pub(crate) links: Arc<dyn PayLinkSigner>,
    pub(crate) mailer: Option<Arc<dyn Mailer>>,
    pub(crate) password_links: Option<PasswordLinks>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) config: crate::config::BillingConfig,
}

impl fmt::Debug for OutboxService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxService")
            .field("mailer", &self.mailer.is_some())
            .finish_non_exhaustive()
    }
}

impl OutboxService {
    /// The e-mail outbox (receipts, pay links, reminders), from the ports it uses: the
    /// outbox and the records its messages are about, the document renderer, the
    /// pay-link signer, the clock and the id source. Without a mailer
    /// ([`OutboxService::with_mailer`]) messages stay queued.
    // One argument per port the use case calls: grouping them would only hide which.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        outbox: Arc<dyn OutboxRepository>,
        consultations: Arc<dyn ConsultationRepository>,
        practitioners: Arc<dyn PractitionerRepository>,
        payments: Arc<dyn PaymentRepository>,
        documents: DocumentService,
        links: Arc<dyn PayLinkSigner>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        config: crate::config::BillingConfig,
    ) -> Self {
        OutboxService {
            outbox,
            consultations,
            practitioners,
            payments,
            documents,
            links,
            mailer: None,
            password_links: None,
            clock,
            ids,
            config,
        }
    }

    /// Sends messages through `mailer` (`None`: they stay queued).
    #[must_use]
    pub fn with_mailer(mut self, mailer: Option<Arc<dyn Mailer>>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Fills [`PASSWORD_URL`] with a reset link made at sending time, over these
    /// ports (without them, a reset message reads as a placeholder).
    #[must_use]
    pub fn with_password_links(
        mut self,
        users: Arc<dyn crate::staff::UserRepository>,
        links: Arc<dyn crate::invitation::LinkRepository>,
        secrets: Arc<dyn crate::system::SecretGenerator>,
    ) -> Self {
        self.password_links = Some(PasswordLinks {
            users,
            links,
            secrets,
        });
        self
    }

    /// Whether messages are sent (a mailer is configured) or only kept.
    pub fn sends(&self) -> bool {
        self.mailer.is_some()
    }

    /// Sends what is due, at most 200 messages per call, each claimed
    /// just before it is sent (a lease never runs out on a message still waiting its
    /// turn). Without a mailer, nothing is claimed.
    pub async fn deliver_due(&self) -> Result<DeliveryReport, BillingError> {
        let mut report = DeliveryReport::default();
        let Some(mailer) = &self.mailer else {
            return Ok(report);
        };
        let claim = self.ids.new_id().to_string();
        for _ in 0..MAX_PER_ROUND {
            let now = now_micros(self.clock.as_ref());
            let Some(queued) = self
                .outbox
                .claim_due(now, now + Duration::seconds(LEASE_SECS), &claim, 1)
                .await?
                .pop()
            else {
                break;
            };
            self.deliver(mailer.as_ref(), &queued, &claim, &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn deliver(
        &self,
        mailer: &dyn Mailer,
        queued: &Queued,
        claim: &str,
        report: &mut DeliveryReport,
    ) -> Result<(), BillingError> {
        let id = queued.message.id;
        let outcome = match self.email(&queued.message).await {
            Ok(email) => mailer.send(&email).await,
            // A document or link we cannot produce now (storage down): try later.
            Err(e) => Err(MailError::Temporary(e.to_string())),
        };
        let now = now_micros(self.clock.as_ref());
        match outcome {
            // A claim lost meanwhile (a lease that ran out) is someone else's to settle.
            Ok(()) => {
                if self.outbox.mark_sent(id, claim, now).await? {
                    report.sent += 1;
                }
            }
            Err(MailError::Temporary(why)) => {
                let retry_at = now + backoff(queued.attempts.saturating_add(1));
                self.outbox
                    .attempt_failed(id, claim, now, Some(retry_at), &why)
                    .await?;
                report.retried += 1;
            }
            Err(MailError::Permanent(why)) => {
                self.outbox
                    .attempt_failed(id, claim, now, None, &why)
                    .await?;
                report.failed += 1;
            }
        }
        Ok(())
    }

    /// The text of a message as staff read it: its links filled in where they can be
    /// derived. Changes nothing.
    pub async fn text(&self, m: &Message) -> Result<String, BillingError> {
        self.filled(m, false).await
    }

    /// The message's text with its links: the dashboard's, and the patient's pay link.
    /// A pay link that cannot be derived (made before links were derived, or under
    /// another server key) is reissued first when `reissue`, so that the e-mail carries
    /// one that works; otherwise it reads as a placeholder.
    async fn filled(&self, m: &Message, reissue: bool) -> Result<String, BillingError> {
        let mut text = m.body.replace(PUBLIC_URL, &self.config.public_url);
        if text.contains(PASSWORD_URL) {
            let link = match (&self.password_links, m.user, reissue) {
                (Some(links), Some(user), true) => {
                    links
                        .reset_url(user, &m.to, &self.config, self.clock.as_ref())
                        .await?
                }
                _ => None,
            };
            text = text.replace(
                PASSWORD_URL,
                link.as_deref().unwrap_or(match m.lang {
                    Lang::Fr => "[lien de réinitialisation : il est créé à l'envoi]",
                    Lang::En => "[reset link: made when the e-mail is sent]",
                }),
            );
        }
        if !text.contains(PAY_URL) {
            return Ok(text);
        }
        let link = match m.consultation {
            Some(id) => {
                let mut c = self.consultations.get(id).await?.consultation;
                match live_token(self.links.as_ref(), &c) {
                    Some(token) => Some(self.config.pay_url(&token)),
                    None if reissue => {
                        let token = consultation::service::reissue(
                            self.consultations.as_ref(),
                            self.links.as_ref(),
                            &mut c,
                        )
                        .await?;
                        Some(self.config.pay_url(&token))
                    }
                    None => None,
                }
            }
            None => None,
        };
        text = text.replace(
            PAY_URL,
            link.as_deref().unwrap_or(match m.lang {
                Lang::Fr => "[lien de paiement : à renvoyer depuis le tableau de bord]",
                Lang::En => "[pay link: send it again from the dashboard]",
            }),
        );
        Ok(text)
    }

    /// The e-mail of a queued message: its links filled in, its document rendered.
    pub async fn email(&self, m: &Message) -> Result<Email, BillingError> {
        let text = self.filled(m, true).await?;
        let mut attachments = Vec::new();
        if let Some(a) = &m.attachment {
            let documents = self.payments.documents(a.payment).await?;
            let doc = documents
                .iter()
                .find(|d| d.draft.kind == a.kind && d.draft.refund == a.refund);
            let doc = doc.ok_or(BillingError::NotFound("document"))?;
            let sheet = sheet(doc, m.lang);
            attachments.push(FileAttachment {
                name: crate::receipt::file_name(doc, m.lang),
                content_type: "application/pdf",
                bytes: self.documents.render(&sheet)?,
            });
        }
        Ok(Email {
            id: m.id,
            to: m.to.clone(),
            lang: m.lang,
            subject: m.subject.clone(),
            text,
            attachments,
        })
    }

    /// The latest messages of the actor's practitioners (staff only).
    pub async fn messages(&self, actor: &Actor, limit: u32) -> Result<Vec<Queued>, BillingError> {
        let practitioners = crate::payment::service::payments_scope(actor, None)?;
        Ok(self
            .outbox
            .recent(&practitioners, limit.clamp(1, 500))
            .await?)
    }

    /// Queues the pay link for the patient again (staff who may schedule). The
    /// consultation needs the patient's e-mail address.
    pub async fn send_pay_link(
        &self,
        actor: &Actor,
        consultation: ConsultationId,
    ) -> Result<(), BillingError> {
        let record = match self.consultations.get(consultation).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("consultation")),
            other => other?,
        };
        authorize(actor, Action::Schedule, record.consultation.practitioner)?;
        let practitioner = self
            .practitioners
            .get(record.consultation.practitioner)
            .await?;
        let now = now_micros(self.clock.as_ref());
        if record.payment.is_none() {
            return Err(BillingError::validation(
                "consultation",
                "has no online payment: there is no pay link to send",
            ));
        }
        let message = compose::pay_link(
            &record,
            &practitioner,
            self.ids.new_id(),
            &format!("pay_link:{}:{}", consultation, self.ids.new_id()),
            now,
        )
        .ok_or_else(|| BillingError::validation("email", "the patient has no e-mail address"))?;
        self.outbox.enqueue(&[message]).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
