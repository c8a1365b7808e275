//! Disputes (chargebacks and inquiries) on a captured payment (C15).
//!
//! A dispute is reported whole by Stripe with every event about it (`created`,
//! `updated`, `funds_withdrawn`, `funds_reinstated`, `closed`), so the payment keeps
//! the latest picture. Pictures only move forward: by status (an inquiry, a
//! chargeback awaiting evidence, under review, then won or lost), then by the money
//! movements Stripe lists on it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::ids::{ConnectedAccountId, DisputeId};
use crate::money::{Money, MoneyError};

/// Stripe's dispute statuses (<https://docs.stripe.com/api/disputes/object#dispute_object-status>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum DisputeStatus {
    /// An inquiry (no funds withdrawn yet) awaiting the practitioner's answer.
    WarningNeedsResponse,
    /// The inquiry's answer is under review by the bank.
    WarningUnderReview,
    /// The inquiry closed without becoming a chargeback.
    WarningClosed,
    /// A chargeback: funds withdrawn, evidence due.
    NeedsResponse,
    /// The evidence was submitted and is under review by the bank.
    UnderReview,
    /// Closed in the practitioner's favour: withdrawn funds were reinstated.
    Won,
    /// Closed in the patient's favour: the funds stay withdrawn.
    Lost,
}

impl DisputeStatus {
    /// Every status, in declaration order.
    pub const ALL: [DisputeStatus; 7] = [
        DisputeStatus::WarningNeedsResponse,
        DisputeStatus::WarningUnderReview,
        DisputeStatus::WarningClosed,
        DisputeStatus::NeedsResponse,
        DisputeStatus::UnderReview,
        DisputeStatus::Won,
        DisputeStatus::Lost,
    ];

    /// Stripe's name, also the stored form (`needs_response`, `won`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::WarningNeedsResponse => "warning_needs_response",
            DisputeStatus::WarningUnderReview => "warning_under_review",
            DisputeStatus::WarningClosed => "warning_closed",
            DisputeStatus::NeedsResponse => "needs_response",
            DisputeStatus::UnderReview => "under_review",
            DisputeStatus::Won => "won",
            DisputeStatus::Lost => "lost",
        }
    }

    /// Still to be decided.
    pub const fn is_open(self) -> bool {
        !matches!(
            self,
            DisputeStatus::WarningClosed | DisputeStatus::Won | DisputeStatus::Lost
        )
    }

    /// How far along the dispute is; a picture of a lower rank is stale.
    const fn rank(self) -> u8 {
        match self {
            DisputeStatus::WarningNeedsResponse => 0,
            DisputeStatus::WarningUnderReview => 1,
            DisputeStatus::NeedsResponse => 2,
            DisputeStatus::UnderReview => 3,
            DisputeStatus::WarningClosed | DisputeStatus::Won | DisputeStatus::Lost => 4,
        }
    }

    /// The outcome people read: fr / en.
    pub const fn label(self, lang: crate::payment::model::Lang) -> &'static str {
        use crate::payment::model::Lang;
        match (self, lang) {
            (DisputeStatus::WarningNeedsResponse | DisputeStatus::NeedsResponse, Lang::Fr) => {
                "réponse attendue"
            }
            (DisputeStatus::WarningNeedsResponse | DisputeStatus::NeedsResponse, Lang::En) => {
                "response needed"
            }
            (DisputeStatus::WarningUnderReview | DisputeStatus::UnderReview, Lang::Fr) => {
                "en cours d'examen"
            }
            (DisputeStatus::WarningUnderReview | DisputeStatus::UnderReview, Lang::En) => {
                "under review"
            }
            (DisputeStatus::WarningClosed, Lang::Fr) => "demande close",
            (DisputeStatus::WarningClosed, Lang::En) => "inquiry closed",
            (DisputeStatus::Won, Lang::Fr) => "gagnée",
            (DisputeStatus::Won, Lang::En) => "won",
            (DisputeStatus::Lost, Lang::Fr) => "perdue",
            (DisputeStatus::Lost, Lang::En) => "lost",
        }
    }
}

impl fmt::Display for DisputeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DisputeStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        DisputeStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or(())
    }
}

/// A dispute on the payment's charge, as Stripe last reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Dispute {
    /// Stripe's dispute id (`dp_…`); a new id on the same charge is a new dispute.
    pub id: DisputeId,
    /// The disputed amount.
    pub amount: Money,
    /// Stripe's reason code (`fraudulent`, `product_not_received`, `general`, …).
    pub reason: String,
    /// Where the dispute stands.
    pub status: DisputeStatus,
    /// When the practitioner's evidence is due (open disputes).
    pub evidence_due_by: Option<DateTime<Utc>>,
    /// What the dispute took from the practitioner's balance, net of what was
    /// reinstated (never negative).
    pub withdrawn: Money,
    /// Stripe's dispute fees, net of any returned (never negative).
    pub fee: Money,
    /// How many balance transactions Stripe listed (withdrawal, reinstatement): they
    /// only accumulate.
    pub transactions: u32,
}

impl Dispute {
    /// What the dispute costs the practitioner so far: funds withdrawn and fees.
    pub fn cost(&self) -> Result<Money, MoneyError> {
        self.withdrawn.checked_add(&self.fee)
    }

    /// Does `self` say more than `known`? A different dispute replaces a closed one
    /// (a new dispute on the same charge), or an open one when it is as far along.
    pub(crate) fn supersedes(&self, known: &Dispute) -> bool {
        let progress = |d: &Dispute| (d.status.rank(), d.transactions);
        if self.id != known.id {
            return !known.status.is_open() || progress(self) >= progress(known);
        }
        progress(self) >= progress(known) && self != known
    }

    /// The dispute in the Stripe dashboard of the practitioner's account.
    pub fn dashboard_url(&self, account: Option<&ConnectedAccountId>, live: bool) -> String {
        let mode = if live { "" } else { "test/" };
        match account {
            Some(a) => format!(
                "https://dashboard.stripe.com/{a}/{mode}disputes/{}",
                self.id
            ),
            None => format!("https://dashboard.stripe.com/{mode}disputes/{}", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn dispute(id: &str, status: DisputeStatus, transactions: u32) -> Dispute {
        let eur = |m| Money::from_minor(m, Currency::Eur);
        Dispute {
            id: DisputeId::parse(id).unwrap(),
            amount: eur(2500),
            reason: "fraudulent".into(),
            status,
            evidence_due_by: None,
            withdrawn: eur(if transactions > 0 { 2500 } else { 0 }),
            fee: eur(if transactions > 0 { 1500 } else { 0 }),
            transactions,
        }
    }

    #[test]
    fn dispute_pictures_only_move_forward() {
        use DisputeStatus::*;
        let opened = dispute("dp_1", NeedsResponse, 0);
        let withdrawn = dispute("dp_1", NeedsResponse, 1);
        let lost = dispute("dp_1", Lost, 1);
        assert!(withdrawn.supersedes(&opened));
        assert!(
            !opened.supersedes(&withdrawn),
            "funds withdrawn already known"
        );
        assert!(lost.supersedes(&withdrawn));
        assert!(
            !withdrawn.supersedes(&lost),
            "a late 'needs response' after the loss"
        );
        assert!(!lost.supersedes(&lost), "the same picture again");
        // A second dispute after the first closed replaces it.
        assert!(dispute("dp_2", NeedsResponse, 0).supersedes(&lost));
        assert_eq!(lost.cost().unwrap(), Money::from_minor(4000, Currency::Eur));
    }

    #[test]
    fn statuses_round_trip_and_say_whether_they_are_open() {
        for s in DisputeStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert!(DisputeStatus::NeedsResponse.is_open());
        assert!(DisputeStatus::WarningUnderReview.is_open());
        assert!(!DisputeStatus::Won.is_open());
        assert!(!DisputeStatus::WarningClosed.is_open());
    }

    #[test]
    fn the_dashboard_link_names_the_account_and_the_mode() {
        let d = dispute("dp_9", DisputeStatus::NeedsResponse, 0);
        let acct = ConnectedAccountId::parse("acct_1X").unwrap();
        assert_eq!(
            d.dashboard_url(Some(&acct), false),
            "https://dashboard.stripe.com/acct_1X/test/disputes/dp_9"
        );
        assert_eq!(
            d.dashboard_url(None, true),
            "https://dashboard.stripe.com/disputes/dp_9"
        );
    }
}
