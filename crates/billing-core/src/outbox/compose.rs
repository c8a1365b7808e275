//! What each message says, in the reader's language: the patient's for theirs, French
//! for the practitioner's. Pure functions of the facts; `None` when there is nobody to
//! write to (no e-mail address).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{AttachmentRef, Message, MessageKind, PAY_URL, PUBLIC_URL};
use crate::consultation::model::{CancelledBy, ConsultationRecord, ConsultationStatus};
use crate::format;
use crate::ids::RefundId;
use crate::payment::model::{Lang, Payment, PaymentStatus};
use crate::payment::ports::PaymentRow;
use crate::practitioner::model::Practitioner;
use crate::receipt::{DocumentKind, Due};

/// A message a payment change calls for, before it is written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    HoldPlaced,
    Receipt,
    CreditNote(RefundId),
    CreditNoteCancelled(RefundId),
    AuthorizeAgain,
    RefundFailed(RefundId),
    DisputeOpened,
}

/// The notices the move from `before` to `after` calls for, given the documents it
/// issues (`receipt::due`): each document goes to the patient.
pub(crate) fn notices(before: &Payment, after: &Payment, documents: &[Due]) -> Vec<Notice> {
    let mut out = Vec::new();
    if after.status() == PaymentStatus::Authorized && before.status() != PaymentStatus::Authorized {
        out.push(Notice::HoldPlaced);
    }
    out.extend(documents.iter().map(|d| match d {
        Due::Receipt { .. } => Notice::Receipt,
        Due::CreditNote { refund, .. } => Notice::CreditNote(refund.clone()),
        Due::Cancellation { refund, .. } => Notice::CreditNoteCancelled(refund.clone()),
    }));
    for line in after.refunds() {
        let ended_before = before
            .refunds()
            .iter()
            .any(|l| l.id == line.id && !l.status.is_live());
        if !line.status.is_live() && !ended_before {
            out.push(Notice::RefundFailed(line.id.clone()));
        }
    }
    if after.status() == PaymentStatus::Failed
        && before.status() != PaymentStatus::Failed
        && after.saved_card().is_some()
    {
        out.push(Notice::AuthorizeAgain);
    }
    if let Some(d) = after.dispute()
        && d.status.is_open()
        && !before
            .dispute()
            .is_some_and(|b| b.id == d.id && b.status.is_open())
    {
        out.push(Notice::DisputeOpened);
    }
    out
}

/// What a message about one consultation is written from, and its identity.
struct Facts<'a> {
    record: &'a ConsultationRecord,
    practitioner: &'a Practitioner,
    id: Uuid,
    now: DateTime<Utc>,
}

impl Facts<'_> {
    /// A message to the patient, in their language; `None` without their address.
    fn to_patient(
        &self,
        kind: MessageKind,
        subject: String,
        body: String,
        attachment: Option<AttachmentRef>,
        dedupe: String,
    ) -> Option<Message> {
        let c = &self.record.consultation;
        Some(Message {
            id: self.id,
            kind,
            practitioner: self.practitioner.id,
            consultation: Some(c.id),
            user: None,
            to: c.patient.email.clone()?,
            lang: c.lang,
            subject,
            body,
            attachment,
            dedupe,
            created_at: self.now,
        })
    }

    fn when(&self, lang: Lang) -> String {
        format::datetime_zoned(
            self.record.consultation.starts_at,
            self.practitioner.time_zone.tz(),
            lang,
        )
    }

    fn day(&self, at: DateTime<Utc>, lang: Lang) -> String {
        format::date(at, self.practitioner.time_zone.tz(), lang)
    }
}

/// French agreement with an amount: "1,50 € débité", "18,00 € débités".
fn s_fr(m: &crate::money::Money) -> &'static str {
    if m.amount() >= rust_decimal::Decimal::TWO {
        "s"
    } else {
        ""
    }
}

fn fr_en(lang: Lang, fr: String, en: String) -> String {
    match lang {
        Lang::Fr => fr,
        Lang::En => en,
    }
}

/// The pay link, to the patient, if they gave an address and pay online.
pub fn pay_link(
    record: &ConsultationRecord,
    practitioner: &Practitioner,
    id: Uuid,
    dedupe: &str,
    now: DateTime<Utc>,
) -> Option<Message> {
    let c = &record.consultation;
    let payment = record.payment.as_ref()?;
    let lang = c.lang;
    let facts = Facts {
        record,
        practitioner,
        id,
        now,
    };
    let (dr, patient) = (&practitioner.name, &c.patient.display_name);
    let amount = format::money(&payment.amount(), lang);
    let when = facts.when(lang);
    facts.to_patient(
        MessageKind::PayLink,
        fr_en(
            lang,
            format!(
                "Votre téléconsultation avec {dr} le {}",
                facts.day(c.starts_at, lang)
            ),
            format!(
                "Your teleconsultation with {dr} on {}",
                facts.day(c.starts_at, lang)
            ),
        ),
        fr_en(
            lang,
            format!(
                "Bonjour {patient},\n\n\
                 Votre téléconsultation avec {dr} est prévue le {when}.\n\n\
                 Avant la consultation, une empreinte bancaire de {amount} au plus est prise \
                 sur votre carte : rien n'est débité avant que votre praticien valide la \
                 consultation, et seulement le montant validé.\n\n\
                 Pour enregistrer votre carte, puis entrer en salle d'attente le jour venu, \
                 ouvrez ce lien :\n{PAY_URL}\n\n\
                 Ce lien est personnel : ne le transmettez pas.\n"
            ),
            format!(
                "Hello {patient},\n\n\
                 Your teleconsultation with {dr} is on {when}.\n\n\
                 Before the consultation, a card hold of at most {amount} is placed on your \
                 card: nothing is charged until your practitioner validates the \
                 consultation, and only the validated amount.\n\n\
                 To register your card, then enter the waiting room on the day, open this \
                 link:\n{PAY_URL}\n\n\
                 This link is personal: do not pass it on.\n"
            ),
        ),
        None,
        dedupe.to_owned(),
    )
}

/// To the patient, if they gave an address: their consultation is cancelled, and
/// what becomes of the hold (released, or — cancelled late by them — the
/// practitioner decides on the fee they accepted).
pub(crate) fn cancelled(
    record: &ConsultationRecord,
    practitioner: &Practitioner,
    id: Uuid,
    now: DateTime<Utc>,
) -> Option<Message> {
    let c = &record.consultation;
    let ConsultationStatus::Cancelled(cancellation) = c.status else {
        return None;
    };
    let lang = c.lang;
    let facts = Facts {
        record,
        practitioner,
        id,
        now,
    };
    let (dr, patient) = (&practitioner.name, &c.patient.display_name);
    let when = facts.when(lang);
    let held = record.payment.as_ref().is_some_and(|p| {
        matches!(
            p.status(),
            PaymentStatus::Authorized | PaymentStatus::CardSaved
        )
    });
    let (fr, en) = match (cancellation.by, cancellation.late) {
        (CancelledBy::Practice, _) => (
            format!("{dr} a annulé votre téléconsultation du {when}."),
            format!("{dr} cancelled your teleconsultation of {when}."),
        ),
        (CancelledBy::Patient, _) => (
            format!("Votre annulation de la téléconsultation du {when} avec {dr} est enregistrée."),
            format!("Your cancellation of the teleconsultation of {when} with {dr} is recorded."),
        ),
    };
    let (fr_money, en_money) = match (held, cancellation.late) {
        (false, _) => (String::new(), String::new()),
        (true, false) => (
            "\n\nL'empreinte bancaire est libérée : rien n'est débité.".to_owned(),
            "\n\nThe card hold is released: nothing is charged.".to_owned(),
        ),
        (true, true) => (
            "\n\nVous avez annulé après le délai d'annulation gratuite : votre praticien \
             décidera s'il débite les frais que vous avez acceptés."
                .to_owned(),
            "\n\nYou cancelled after the free cancellation window: your practitioner will \
             decide whether to charge the fee you accepted."
                .to_owned(),
        ),
    };
    facts.to_patient(
        MessageKind::Cancelled,
        fr_en(
            lang,
            format!(
                "Téléconsultation annulée – {}",
                facts.day(c.starts_at, lang)
            ),
            format!(
                "Teleconsultation cancelled – {}",
                facts.day(c.starts_at, lang)
            ),
        ),
        fr_en(
            lang,
            format!("Bonjour {patient},\n\n{fr}{fr_money}\n"),
            format!("Hello {patient},\n\n{en}{en_money}\n"),
        ),
        None,
        format!("cancelled:{}", c.id),
    )
}

/// To the patient, if they gave an address: their consultation moved from
/// `previous` to its new time; the same link still opens it.
pub(crate) fn rescheduled(
    record: &ConsultationRecord,
    practitioner: &Practitioner,
    previous: DateTime<Utc>,
    id: Uuid,
    now: DateTime<Utc>,
) -> Option<Message> {
    let c = &record.consultation;
    let lang = c.lang;
    let facts = Facts {
        record,
        practitioner,
        id,
        now,
    };
    let tz = practitioner.time_zone.tz();
    let (dr, patient) = (&practitioner.name, &c.patient.display_name);
    let (was, when) = (format::datetime_zoned(previous, tz, lang), facts.when(lang));
    facts.to_patient(
        MessageKind::Rescheduled,
        fr_en(
            lang,
            format!(
                "Téléconsultation déplacée au {}",
                facts.day(c.starts_at, lang)
            ),
            format!("Teleconsultation moved to {}", facts.day(c.starts_at, lang)),
        ),
        fr_en(
            lang,
            format!(
                "Bonjour {patient},\n\n\
                 Votre téléconsultation avec {dr}, prévue le {was}, est déplacée au {when}.\n\n\
                 Votre lien reste le même :\n{PAY_URL}\n"
            ),
            format!(
                "Hello {patient},\n\n\
                 Your teleconsultation with {dr}, planned on {was}, is moved to {when}.\n\n\
                 Your link stays the same:\n{PAY_URL}\n"
            ),
        ),
        None,
        format!("rescheduled:{}:{}", c.id, c.starts_at.timestamp()),
    )
}

/// The message a notice calls for, or `None` when its reader has no address.
pub(crate) fn message(
    notice: &Notice,
    payment: &Payment,
    record: &ConsultationRecord,
    practitioner: &Practitioner,
    id: Uuid,
    now: DateTime<Utc>,
) -> Option<Message> {
    let c = &record.consultation;
    let facts = Facts {
        record,
        practitioner,
        id,
        now,
    };
    let (dr, patient) = (&practitioner.name, &c.patient.display_name);
    let pid = payment.id();
    let patient_message = |kind, subject, body, attachment, dedupe: String| {
        facts.to_patient(kind, subject, body, attachment, dedupe)
    };
    let staff_message = |kind, subject: String, body: String, dedupe: String| {
        Some(Message {
            id,
            kind,
            practitioner: practitioner.id,
            consultation: Some(c.id),
            user: None,
            to: practitioner.profile.email()?.clone(),
            lang: Lang::Fr,
            subject,
            body,
            attachment: None,
            dedupe,
            created_at: now,
        })
    };
    let lang = c.lang;
    let money = |m| format::money(m, lang);
    match notice {
        Notice::HoldPlaced => {
            let held = money(&payment.held());
            let when = facts.when(lang);
            patient_message(
                MessageKind::HoldPlaced,
                fr_en(
                    lang,
                    "Empreinte bancaire enregistrée pour votre téléconsultation".into(),
                    "Card hold in place for your teleconsultation".into(),
                ),
                fr_en(
                    lang,
                    format!(
                        "Bonjour {patient},\n\n\
                         Une empreinte bancaire de {held} est en place pour votre \
                         téléconsultation avec {dr} le {when}. Rien n'est débité : après la \
                         consultation, votre praticien valide le montant final, au plus \
                         {held}, et le reste est libéré.\n\n\
                         Le jour venu, ouvrez votre lien pour entrer en salle d'attente :\n\
                         {PAY_URL}\n"
                    ),
                    format!(
                        "Hello {patient},\n\n\
                         A card hold of {held} is in place for your teleconsultation with \
                         {dr} on {when}. Nothing is charged: after the consultation your \
                         practitioner validates the final amount, at most {held}, and the \
                         rest is released.\n\n\
                         On the day, open your link to enter the waiting room:\n{PAY_URL}\n"
                    ),
                ),
                None,
                format!(
                    "hold_placed:{pid}:{}",
                    payment.intent().map(|i| i.as_str()).unwrap_or_default()
                ),
            )
        }
        Notice::Receipt => {
            let captured_money = payment.captured()?;
            let captured = money(&captured_money);
            let s = s_fr(&captured_money);
            let day = facts.day(c.starts_at, lang);
            let released = payment
                .released_remainder()
                .ok()
                .flatten()
                .filter(|m| m.is_positive());
            let (rest_fr, rest_en) = match released {
                Some(r) => (
                    format!(
                        " ; {} de l'empreinte {} libéré{}",
                        money(&r),
                        if s_fr(&r).is_empty() { "est" } else { "sont" },
                        s_fr(&r)
                    ),
                    format!("; the other {} of the hold is released", money(&r)),
                ),
                None => (String::new(), String::new()),
            };
            patient_message(
                MessageKind::Receipt,
                fr_en(
                    lang,
                    format!("Votre note d'honoraires – téléconsultation du {day}"),
                    format!("Your receipt – teleconsultation of {day}"),
                ),
                fr_en(
                    lang,
                    format!(
                        "Bonjour {patient},\n\n\
                         {dr} a validé votre téléconsultation du {day} : {captured} débité{s} \
                         sur votre carte{rest_fr}.\n\n\
                         Votre note d'honoraires est jointe à ce message. Vous la retrouvez \
                         aussi sur votre lien :\n{PAY_URL}\n"
                    ),
                    format!(
                        "Hello {patient},\n\n\
                         {dr} validated your teleconsultation of {day}: {captured} was \
                         charged to your card{rest_en}.\n\n\
                         Your receipt is attached. It is also on your link:\n{PAY_URL}\n"
                    ),
                ),
                Some(AttachmentRef {
                    payment: pid,
                    kind: DocumentKind::Receipt,
                    refund: None,
                }),
                format!("receipt:{pid}"),
            )
        }
        Notice::CreditNote(refund) => {
            let line = payment.refunds().iter().find(|l| &l.id == refund)?;
            let amount = money(&line.amount);
            patient_message(
                MessageKind::CreditNote,
                fr_en(
                    lang,
                    format!("Remboursement de {amount} – votre avoir"),
                    format!("Refund of {amount} – your credit note"),
                ),
                fr_en(
                    lang,
                    format!(
                        "Bonjour {patient},\n\n\
                         {dr} vous a remboursé {amount}. Selon votre banque, le montant \
                         apparaît sur votre compte sous quelques jours.\n\n\
                         L'avoir correspondant est joint à ce message.\n"
                    ),
                    format!(
                        "Hello {patient},\n\n\
                         {dr} refunded you {amount}. Depending on your bank, it shows on \
                         your account within a few days.\n\n\
                         The credit note is attached.\n"
                    ),
                ),
                Some(AttachmentRef {
                    payment: pid,
                    kind: DocumentKind::CreditNote,
                    refund: Some(refund.clone()),
                }),
                format!("credit_note:{pid}:{refund}"),
            )
        }
        Notice::CreditNoteCancelled(refund) => {
            let line = payment.refunds().iter().find(|l| &l.id == refund)?;
            let amount = money(&line.amount);
            patient_message(
                MessageKind::CreditNote,
                fr_en(
                    lang,
                    format!("Votre remboursement de {amount} n'a pas abouti"),
                    format!("Your refund of {amount} did not go through"),
                ),
                fr_en(
                    lang,
                    format!(
                        "Bonjour {patient},\n\n\
                         Le remboursement de {amount} que {dr} vous avait fait n'a pas abouti \
                         (refusé par votre banque, ou annulé) : la somme reste réglée. \
                         L'annulation de l'avoir est jointe à ce message.\n\n\
                         Contactez {dr} pour la suite.\n"
                    ),
                    format!(
                        "Hello {patient},\n\n\
                         The refund of {amount} {dr} made you did not go through (your bank \
                         refused it, or it was cancelled): the amount stays paid. The \
                         cancellation of the credit note is attached.\n\n\
                         Contact {dr} about it.\n"
                    ),
                ),
                Some(AttachmentRef {
                    payment: pid,
                    kind: DocumentKind::CreditNoteCancellation,
                    refund: Some(refund.clone()),
                }),
                format!("credit_note_cancelled:{pid}:{refund}"),
            )
        }
        Notice::AuthorizeAgain => {
            let when = facts.when(lang);
            patient_message(
                MessageKind::AuthorizeAgain,
                fr_en(
                    lang,
                    "Action requise : autorisez à nouveau votre carte".into(),
                    "Action needed: authorise your card again".into(),
                ),
                fr_en(
                    lang,
                    format!(
                        "Bonjour {patient},\n\n\
                         Votre banque a refusé l'empreinte bancaire de votre téléconsultation \
                         avec {dr} le {when}, ou demande que vous la confirmiez vous-même.\n\n\
                         Pour garder votre rendez-vous, ouvrez votre lien et autorisez à \
                         nouveau votre carte (ou une autre) :\n{PAY_URL}\n"
                    ),
                    format!(
                        "Hello {patient},\n\n\
                         Your bank refused the card hold for your teleconsultation with {dr} \
                         on {when}, or asks you to confirm it yourself.\n\n\
                         To keep your appointment, open your link and authorise your card \
                         (or another one) again:\n{PAY_URL}\n"
                    ),
                ),
                None,
                format!("authorize_again:{pid}:{}", payment.version()),
            )
        }
        Notice::RefundFailed(refund) => {
            let line = payment.refunds().iter().find(|l| &l.id == refund)?;
            let amount = format::money(&line.amount, Lang::Fr);
            staff_message(
                MessageKind::RefundFailed,
                format!("Remboursement non abouti – {patient}"),
                format!(
                    "Le remboursement de {amount} à {patient} (téléconsultation du {}) n'a \
                     pas abouti (refusé par la banque du patient, ou annulé). Le montant \
                     reste sur votre compte Stripe.\n\nVoir le paiement : \
                     {}/dashboard/payments/{pid}\n",
                    facts.day(c.starts_at, Lang::Fr),
                    PUBLIC_URL,
                ),
                format!("refund_failed:{pid}:{refund}"),
            )
        }
        Notice::DisputeOpened => {
            let d = payment.dispute()?;
            let amount = format::money(&d.amount, Lang::Fr);
            let due = d
                .evidence_due_by
                .map(|at| format::datetime_zoned(at, practitioner.time_zone.tz(), Lang::Fr))
                .unwrap_or_else(|| "—".into());
            staff_message(
                MessageKind::DisputeOpened,
                format!("Contestation ouverte – {patient}"),
                format!(
                    "La banque de {patient} conteste le paiement de {amount} (motif : {}). \
                     Vos justificatifs sont attendus avant le {due}, dans votre tableau de \
                     bord Stripe.\n\nVoir le paiement : {}/dashboard/payments/{pid}\n",
                    d.reason, PUBLIC_URL,
                ),
                format!("dispute_opened:{pid}:{}", d.id),
            )
        }
    }
}

/// To the practitioner: a hold about to lapse, not validated (C10).
pub(crate) fn hold_expiring(
    row: &PaymentRow,
    practitioner: &Practitioner,
    id: Uuid,
    now: DateTime<Utc>,
) -> Option<Message> {
    let p = &row.payment;
    let deadline = p.capture_before()?;
    let tz = practitioner.time_zone.tz();
    let patient = &row.patient;
    let held = format::money(&p.held(), Lang::Fr);
    Some(Message {
        id,
        kind: MessageKind::HoldExpiring,
        practitioner: practitioner.id,
        consultation: Some(p.consultation()),
        user: None,
        to: practitioner.profile.email()?.clone(),
        lang: Lang::Fr,
        subject: format!(
            "Empreinte à valider avant le {} – {patient}",
            format::date(deadline, tz, Lang::Fr)
        ),
        body: format!(
            "L'empreinte de {held} de {patient} (téléconsultation du {}) expire le {} sans \
             être validée. Validez l'acte (ou libérez l'empreinte) avant cette date : après, \
             plus rien ne pourra être débité.\n\nVoir le paiement : \
             {PUBLIC_URL}/dashboard/payments/{}\n",
            format::datetime_zoned(row.starts_at, tz, Lang::Fr),
            format::datetime_zoned(deadline, tz, Lang::Fr),
            p.id(),
        ),
        attachment: None,
        dedupe: format!("hold_expiring:{}:{}", p.id(), deadline.timestamp()),
        created_at: now,
    })
}
