//! Refunds, one by one: what the payment's refunded total is made of (C11, C15).
//!
//! Stripe refunds are asynchronous: a refund is `pending` until the card network
//! confirms it, and a refund that `succeeded` may still fail later (a closed card).
//! A failed or cancelled refund gives its amount back to what may be refunded. The
//! payment keeps every refund it learnt of, by id, and the refunded total follows
//! them.

use std::fmt;
use std::str::FromStr;

use crate::ids::RefundId;
use crate::money::{Money, MoneyError};

/// Where a refund stands at the gateway.
// Exhaustive on purpose: pages word each state (pending, refunded, failed); a
// wildcard arm there would mislabel a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum RefundState {
    /// Accepted, on its way to the card.
    Pending,
    /// The patient must act (not for cards; kept so no Stripe status is lost).
    RequiresAction,
    /// The network confirmed it (it may still fail later, e.g. a closed card).
    Succeeded,
    /// The card network refused it: the money stays with the practitioner.
    Failed,
    /// Cancelled before it completed: the money stays with the practitioner.
    Canceled,
}

impl RefundState {
    /// Every state, in declaration order.
    pub const ALL: [RefundState; 5] = [
        RefundState::Pending,
        RefundState::RequiresAction,
        RefundState::Succeeded,
        RefundState::Failed,
        RefundState::Canceled,
    ];

    /// Stripe's name, also the stored form.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefundState::Pending => "pending",
            RefundState::RequiresAction => "requires_action",
            RefundState::Succeeded => "succeeded",
            RefundState::Failed => "failed",
            RefundState::Canceled => "canceled",
        }
    }

    /// The money is on its way back to the patient, or there: it counts as refunded.
    pub const fn is_live(self) -> bool {
        !matches!(self, RefundState::Failed | RefundState::Canceled)
    }

    /// Refunds only move forward: pending → succeeded → failed, and a failed or
    /// cancelled refund stays so. A fact of a lower rank than what is known is stale.
    const fn rank(self) -> u8 {
        match self {
            RefundState::Pending | RefundState::RequiresAction => 0,
            RefundState::Succeeded => 1,
            RefundState::Failed | RefundState::Canceled => 2,
        }
    }
}

impl fmt::Display for RefundState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RefundState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        RefundState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(())
    }
}

/// One refund of a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RefundLine {
    /// Stripe's refund id (`re_…`): refunds are merged by it.
    pub id: RefundId,
    /// The amount of this refund, in the payment's currency.
    pub amount: Money,
    /// Where it stands; only [live](RefundState::is_live) refunds count as refunded.
    pub status: RefundState,
}

/// The most refunds a payment keeps (a teleconsultation is refunded once or twice;
/// this only bounds what a hostile gateway answer could make us store).
pub const MAX_REFUNDS: usize = 100;

/// `lines` with `facts` merged in, by id: a new refund is added, a known one moves
/// forward only (a stale fact about it changes nothing). Returns `None` when nothing
/// changed.
pub(crate) fn merge(lines: &[RefundLine], facts: &[RefundLine]) -> Option<Vec<RefundLine>> {
    let mut merged = lines.to_vec();
    let mut changed = false;
    for fact in facts {
        match merged.iter().position(|l| l.id == fact.id) {
            Some(i) if fact.status.rank() > merged[i].status.rank() => {
                merged[i].status = fact.status;
                changed = true;
            }
            Some(_) => {}
            None if merged.len() < MAX_REFUNDS => {
                merged.push(fact.clone());
                changed = true;
            }
            None => {}
        }
    }
    changed.then_some(merged)
}

/// What the live refunds of `lines` add up to, in `zero`'s currency.
pub(crate) fn live_total(lines: &[RefundLine], zero: Money) -> Result<Money, MoneyError> {
    lines
        .iter()
        .filter(|l| l.status.is_live())
        .try_fold(zero, |sum, l| sum.checked_add(&l.amount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn line(id: &str, minor: i64, status: RefundState) -> RefundLine {
        RefundLine {
            id: RefundId::parse(id).unwrap(),
            amount: Money::from_minor(minor, Currency::Eur),
            status,
        }
    }

    #[test]
    fn refunds_only_move_forward_and_unknown_ones_are_added() {
        use RefundState::*;
        let known = [line("re_1", 500, Succeeded)];
        assert_eq!(merge(&known, &[line("re_1", 500, Pending)]), None, "stale");
        assert_eq!(merge(&known, &[line("re_1", 500, Succeeded)]), None, "same");
        let failed = merge(&known, &[line("re_1", 500, Failed)]).unwrap();
        assert_eq!(failed, vec![line("re_1", 500, Failed)]);
        assert_eq!(merge(&failed, &[line("re_1", 500, Succeeded)]), None);
        let two = merge(&known, &[line("re_2", 300, Pending)]).unwrap();
        assert_eq!(two.len(), 2);
        let zero = Money::zero(Currency::Eur);
        assert_eq!(
            live_total(&two, zero).unwrap(),
            Money::from_minor(800, Currency::Eur)
        );
        assert_eq!(live_total(&failed, zero).unwrap(), zero);
    }

    #[test]
    fn a_hostile_list_cannot_grow_a_payment_without_bound() {
        let many: Vec<RefundLine> = (0..MAX_REFUNDS + 10)
            .map(|n| line(&format!("re_{n}"), 1, RefundState::Pending))
            .collect();
        assert_eq!(merge(&[], &many).unwrap().len(), MAX_REFUNDS);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in RefundState::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
        }
        assert_eq!("refunded".parse::<RefundState>(), Err(()));
    }
}
