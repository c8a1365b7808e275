//! [`PaymentRepository`]: the conditional write of the state machine with what goes
//! with it (history, audit, e-mail, numbered documents), and the queries of the
//! payments table and of reconciliation.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{DocumentRow, MemoryStore, State, count, micros};
use crate::ids::{PaymentId, PaymentIntentId, PractitionerId};
use crate::money::Currency;
use crate::payment::model::{Payment, PaymentStatus};
use crate::payment::ports::{
    ChangeLog, HistoryEntry, PaymentCursor, PaymentPage, PaymentQuery, PaymentRepository,
    PaymentRow, PaymentScope, PaymentTotals,
};
use crate::receipt::{Document, DocumentDraft, DocumentKind, DocumentNumber};
use crate::repository::RepositoryError;

/// The most rows one page may have (the port's bound).
const MAX_PAGE: u32 = 200;

/// `payment` as the database keeps it: every instant at the microsecond.
fn stored(payment: &Payment) -> Result<Payment, RepositoryError> {
    let mut parts = payment.to_parts();
    parts.created_at = micros(parts.created_at);
    parts.updated_at = micros(parts.updated_at);
    parts.authorized_at = parts.authorized_at.map(micros);
    parts.capture_before = parts.capture_before.map(micros);
    parts.captured_at = parts.captured_at.map(micros);
    if let Some(checkout) = &mut parts.checkout {
        checkout.expires_at = checkout.expires_at.map(micros);
    }
    if let Some(pending) = &mut parts.pending {
        pending.since = micros(pending.since);
    }
    if let Some(dispute) = &mut parts.dispute {
        dispute.evidence_due_by = dispute.evidence_due_by.map(micros);
    }
    if let Some(attention) = &mut parts.attention {
        attention.at = micros(attention.at);
    }
    if let Some(terms) = &mut parts.terms {
        terms.at = micros(terms.at);
    }
    Payment::restore(parts).map_err(|e| RepositoryError::Corrupt(e.to_string()))
}

fn in_scope(scope: &PaymentScope, p: &Payment) -> bool {
    match scope {
        PaymentScope::All => true,
        PaymentScope::Practitioners(ids) => ids.contains(&p.practitioner()),
    }
}

/// What a query matches, before pagination: shared by the page and its totals.
fn is_match(query: &PaymentQuery, p: &Payment) -> bool {
    in_scope(&query.scope, p)
        && (query.statuses.is_empty() || query.statuses.contains(&p.status()))
        && query.from.is_none_or(|from| p.created_at() >= micros(from))
        && query.to.is_none_or(|to| p.created_at() < micros(to))
}

/// Where `p` stands in the list: newest first, then highest id first.
fn position(p: &Payment) -> Reverse<(DateTime<Utc>, PaymentId)> {
    Reverse((p.created_at(), p.id()))
}

impl State {
    /// Inserts a new payment row, with the database's keys: its id, one payment per
    /// consultation, and the consultation and practitioner it refers to.
    pub(super) fn insert_payment(&mut self, payment: &Payment) -> Result<(), RepositoryError> {
        if self.payments.contains_key(&payment.id()) {
            return Err(RepositoryError::Duplicate("payment"));
        }
        self.check_payment_references(payment)?;
        self.payments.insert(payment.id(), stored(payment)?);
        Ok(())
    }

    /// The keys a payment row refers to: one payment per consultation (another than
    /// `payment` itself), and its consultation and practitioner exist.
    fn check_payment_references(&self, payment: &Payment) -> Result<(), RepositoryError> {
        if self
            .payment_of(payment.consultation())
            .is_some_and(|other| other.id() != payment.id())
        {
            return Err(RepositoryError::Duplicate("payment of this consultation"));
        }
        if !self.consultations.contains_key(&payment.consultation()) {
            return Err(RepositoryError::NotFound);
        }
        self.practitioner_exists(payment.practitioner())
    }

    /// Writes what goes with a change, in the order of the adapter: history, audit,
    /// e-mail, then the documents, numbered. Inside a transaction only.
    pub(super) fn append_log(&mut self, log: &ChangeLog) -> Result<(), RepositoryError> {
        for entry in &log.history {
            if !self.payments.contains_key(&entry.payment) {
                return Err(RepositoryError::NotFound);
            }
            self.history.push(entry.clone());
        }
        self.append_audit(&log.audit)?;
        self.enqueue(&log.messages)?;
        for draft in &log.documents {
            self.issue(draft)?;
        }
        Ok(())
    }

    /// Numbers `draft` with the next number of its practitioner's series for its year
    /// and stores it. A second document of one payment, kind and refund is
    /// [`RepositoryError::Duplicate`]; the surrounding transaction then gives its
    /// number back with everything else.
    fn issue(&mut self, draft: &DocumentDraft) -> Result<(), RepositoryError> {
        self.practitioner_exists(draft.practitioner)?;
        let last = self
            .document_counters
            .entry((draft.practitioner, draft.year))
            .or_insert(0);
        *last = last
            .checked_add(1)
            .ok_or_else(|| RepositoryError::Corrupt("the document counter is full".into()))?;
        let number = DocumentNumber {
            year: draft.year,
            seq: *last,
        };
        if self.documents.iter().any(|d| {
            d.draft.payment == draft.payment
                && d.draft.kind == draft.kind
                && d.draft.refund == draft.refund
        }) {
            return Err(RepositoryError::Duplicate("document"));
        }
        if !self.payments.contains_key(&draft.payment) {
            return Err(RepositoryError::NotFound);
        }
        self.documents.push(DocumentRow {
            number,
            draft: draft.clone(),
        });
        Ok(())
    }

    /// The documents of `payment` in number order, each credit note referring to the
    /// receipt and each cancellation to its credit note.
    fn documents_of(&self, payment: PaymentId) -> Vec<Document> {
        let mut rows: Vec<&DocumentRow> = self
            .documents
            .iter()
            .filter(|d| d.draft.payment == payment)
            .collect();
        rows.sort_by_key(|d| (d.number.year, d.number.seq));
        let of_kind = |kind: DocumentKind, refund: Option<&crate::ids::RefundId>| {
            rows.iter()
                .find(|d| d.draft.kind == kind && d.draft.refund.as_ref() == refund)
                .map(|d| d.number)
        };
        rows.iter()
            .map(|d| Document {
                number: d.number,
                refers_to: match d.draft.kind {
                    DocumentKind::Receipt => None,
                    DocumentKind::CreditNote => of_kind(DocumentKind::Receipt, None),
                    DocumentKind::CreditNoteCancellation => {
                        of_kind(DocumentKind::CreditNote, d.draft.refund.as_ref())
                    }
                },
                draft: d.draft.clone(),
            })
            .collect()
    }

    /// A page of the payments table and the totals of everything `query` matches.
    fn page(&self, query: &PaymentQuery) -> Result<PaymentPage, RepositoryError> {
        if query.scope == PaymentScope::Practitioners(Vec::new()) {
            return Ok(PaymentPage {
                items: Vec::new(),
                next: None,
                totals: Vec::new(),
            });
        }
        let mut matching: Vec<&Payment> = self
            .payments
            .values()
            .filter(|p| is_match(query, p))
            .collect();
        matching.sort_by_key(|p| position(p));

        let mut totals: BTreeMap<Currency, PaymentTotals> = BTreeMap::new();
        for p in matching.iter().filter(|_| query.totals) {
            let currency = p.amount().currency();
            totals
                .entry(currency)
                .or_insert_with(|| PaymentTotals::zero(currency))
                .add(p)
                .map_err(|e| RepositoryError::Corrupt(format!("payments totals: {e}")))?;
        }

        let limit = count(query.limit.clamp(1, MAX_PAGE));
        let after = |p: &&Payment| match &query.after {
            Some(cursor) => position(p) > Reverse((cursor.created_at, cursor.id)),
            None => true,
        };
        let mut rest = matching.into_iter().filter(after);
        let items = rest
            .by_ref()
            .take(limit)
            .map(|p| self.payment_row(p))
            .collect::<Result<Vec<PaymentRow>, _>>()?;
        let next = match (rest.next(), items.last()) {
            (Some(_), Some(last)) => Some(PaymentCursor {
                created_at: last.payment.created_at(),
                id: last.payment.id(),
            }),
            _ => None,
        };
        Ok(PaymentPage {
            items,
            next,
            totals: totals.into_values().collect(),
        })
    }
}

#[async_trait]
impl PaymentRepository for MemoryStore {
    async fn get(&self, id: PaymentId) -> Result<Payment, RepositoryError> {
        self.read(|s| s.payments.get(&id).cloned())
            .ok_or(RepositoryError::NotFound)
    }

    async fn find_by_intent(
        &self,
        intent: &PaymentIntentId,
    ) -> Result<Option<Payment>, RepositoryError> {
        Ok(self.read(|s| {
            s.payments
                .values()
                .filter(|p| p.intent() == Some(intent))
                .max_by_key(|p| (p.updated_at(), p.id()))
                .cloned()
        }))
    }

    async fn update(
        &self,
        payment: &Payment,
        expected_version: i64,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError> {
        let next = stored(payment)?;
        self.transaction(|s| {
            let version = s
                .payments
                .get(&payment.id())
                .ok_or(RepositoryError::NotFound)?
                .version();
            if version != expected_version {
                return Err(RepositoryError::Conflict);
            }
            s.check_payment_references(&next)?;
            s.payments.insert(next.id(), next);
            s.append_log(log)
        })
    }

    async fn documents(&self, payment: PaymentId) -> Result<Vec<Document>, RepositoryError> {
        Ok(self.read(|s| s.documents_of(payment)))
    }

    async fn receipt_numbers(
        &self,
        payments: &[PaymentId],
    ) -> Result<Vec<(PaymentId, DocumentNumber)>, RepositoryError> {
        Ok(self.read(|s| {
            s.documents
                .iter()
                .filter(|d| {
                    d.draft.kind == DocumentKind::Receipt && payments.contains(&d.draft.payment)
                })
                .map(|d| (d.draft.payment, d.number))
                .collect()
        }))
    }

    async fn list(&self, query: &PaymentQuery) -> Result<PaymentPage, RepositoryError> {
        self.read(|s| s.page(query))
    }

    async fn holds_due(
        &self,
        scope: &PaymentScope,
        deadline_before: DateTime<Utc>,
    ) -> Result<Vec<PaymentRow>, RepositoryError> {
        let deadline_before = micros(deadline_before);
        self.read(|s| {
            let mut due: Vec<(DateTime<Utc>, &Payment)> = s
                .payments
                .values()
                .filter(|p| in_scope(scope, p) && p.status() == PaymentStatus::Authorized)
                .filter_map(|p| Some((p.capture_before()?, p)))
                .filter(|(deadline, _)| *deadline <= deadline_before)
                .collect();
            due.sort_by_key(|(deadline, p)| (*deadline, p.id()));
            due.into_iter().map(|(_, p)| s.payment_row(p)).collect()
        })
    }

    async fn holds_to_place(
        &self,
        starting_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, RepositoryError> {
        let starting_before = micros(starting_before);
        self.read(|s| {
            let mut rows = s
                .payments
                .values()
                .filter(|p| p.status() == PaymentStatus::CardSaved)
                .map(|p| s.payment_row(p))
                .collect::<Result<Vec<PaymentRow>, _>>()?;
            rows.retain(|r| r.starts_at < starting_before);
            rows.sort_by_key(|r| (r.starts_at, r.payment.id()));
            rows.truncate(count(limit));
            Ok(rows)
        })
    }

    async fn needing_reconciliation(
        &self,
        stale_before: DateTime<Utc>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, RepositoryError> {
        let (stale_before, since) = (micros(stale_before), micros(since));
        let stale_operation = |p: &Payment| p.pending().is_some_and(|op| op.since < stale_before);
        let transient = |p: &Payment| {
            matches!(
                p.status(),
                PaymentStatus::Incomplete | PaymentStatus::Failed
            ) && (p.checkout().is_some() || p.intent().is_some())
                && p.updated_at() >= since
                && p.updated_at() < stale_before
        };
        Ok(self.read(|s| {
            let mut found: Vec<&Payment> = s
                .payments
                .values()
                .filter(|p| stale_operation(p) || transient(p))
                .collect();
            found.sort_by_key(|p| (p.updated_at(), p.id()));
            found.into_iter().take(count(limit)).cloned().collect()
        }))
    }

    async fn open_holds(&self, practitioner: PractitionerId) -> Result<u64, RepositoryError> {
        let open = self.read(|s| {
            s.payments
                .values()
                .filter(|p| {
                    p.practitioner() == practitioner
                        && (matches!(
                            p.status(),
                            PaymentStatus::Authorized | PaymentStatus::CardSaved
                        ) || p.pending().is_some())
                })
                .count()
        });
        Ok(u64::try_from(open).unwrap_or(u64::MAX))
    }

    async fn history(&self, id: PaymentId) -> Result<Vec<HistoryEntry>, RepositoryError> {
        // Insertion order: writes to one payment are serialised by its version.
        Ok(self.read(|s| {
            s.history
                .iter()
                .filter(|h| h.payment == id)
                .cloned()
                .collect()
        }))
    }
}
