//! Who may do what: the permission policy as pure functions.
//!
//! Every use case asks [`authorize`] (staff actions on a practitioner's data) or
//! [`authorize_patient`] (a pay token on its consultation) before doing anything else.
//! Refusals come in two kinds so that the HTTP layer does not leak existence:
//! [`AccessDenied::NotFound`] when the actor has no relation to the practitioner at all
//! (another practitioner's data looks like nothing), [`AccessDenied::Forbidden`] when
//! the actor is staff of that practitioner but their role may not do this.

use std::collections::BTreeSet;

use crate::ids::{ConsultationId, PractitionerId, UserId};

/// Someone acting on the system, as resolved from their credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// A signed-in practitioner or secretary.
    Staff(StaffUser),
    /// Whoever holds a consultation's pay link.
    Patient {
        /// The consultation the pay link opens (and nothing else).
        consultation: ConsultationId,
    },
    /// A verified Stripe webhook.
    Stripe,
    /// The operator's tools (CLI, reconciliation job).
    System,
    /// No credentials.
    Anonymous,
}

/// A staff user and what their role lets them reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaffUser {
    /// The user's id (a practitioner's user has the practitioner's id).
    pub id: UserId,
    /// The name shown in the dashboard and the audit trail.
    pub name: String,
    /// What the user may reach.
    pub role: Role,
}

/// Whose data a staff user may reach, and as what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The practitioner themself.
    Practitioner(PractitionerId),
    /// A secretary (delegate) of one or more practitioners.
    Secretary(BTreeSet<PractitionerId>),
}

impl Role {
    /// The practitioners whose data this role may see.
    pub fn practitioners(&self) -> Vec<PractitionerId> {
        match self {
            Role::Practitioner(p) => vec![*p],
            Role::Secretary(ps) => ps.iter().copied().collect(),
        }
    }

    /// The role without its practitioners.
    pub fn kind(&self) -> RoleKind {
        match self {
            Role::Practitioner(_) => RoleKind::Practitioner,
            Role::Secretary(_) => RoleKind::Secretary,
        }
    }
}

/// The two kinds of staff, for display and storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleKind {
    /// See [`Role::Practitioner`].
    Practitioner,
    /// See [`Role::Secretary`].
    Secretary,
}

impl RoleKind {
    /// The stable name (`practitioner`, `secretary`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RoleKind::Practitioner => "practitioner",
            RoleKind::Secretary => "secretary",
        }
    }
}

/// Everything staff can do to a practitioner's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// See the Stripe link and the account's state.
    ViewStripeLink,
    /// Start linking a Stripe account (OAuth or onboarding).
    LinkStripe,
    /// Re-read the account from Stripe.
    VerifyStripe,
    /// Unlink the Stripe account.
    UnlinkStripe,
    /// See amounts, fee schedule, statement text and policy.
    ViewPreferences,
    /// Change them (and the profile).
    EditPreferences,
    /// See the catalogue.
    ViewServices,
    /// Create, reprice, withdraw services.
    ManageServices,
    /// Schedule, reschedule or cancel a consultation, send its pay link again.
    Schedule,
    /// See a consultation and its pay link.
    ViewConsultation,
    /// See payments, their history and documents.
    ViewPayments,
    /// Capture (validate the act).
    ValidateAct,
    /// Release a hold (charge nothing).
    ReleaseHold,
    /// Refund part or all of a capture.
    Refund,
    /// Read the audit trail.
    ViewAudit,
    /// Start the teleconsultation and take the moderator's pass to its room.
    RunConsultation,
    /// Charge a missed consultation's fee (no-show, late cancellation).
    ChargeMissedFee,
    /// Invite secretaries and send them links to set their password.
    ManageTeam,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 18] = [
        Action::ViewStripeLink,
        Action::LinkStripe,
        Action::VerifyStripe,
        Action::UnlinkStripe,
        Action::ViewPreferences,
        Action::EditPreferences,
        Action::ViewServices,
        Action::ManageServices,
        Action::Schedule,
        Action::ViewConsultation,
        Action::ViewPayments,
        Action::ValidateAct,
        Action::ReleaseHold,
        Action::Refund,
        Action::ViewAudit,
        Action::RunConsultation,
        Action::ChargeMissedFee,
        Action::ManageTeam,
    ];

    /// What a secretary may do for the practitioners they work for: schedule (which
    /// includes cancelling and rescheduling) and look. Never link or unlink Stripe,
    /// change caps or services, capture, release, refund or charge a no-show fee, and
    /// never enter the consultation itself (medical secrecy).
    pub const fn allowed_to_secretary(self) -> bool {
        matches!(
            self,
            Action::ViewStripeLink
                | Action::ViewPreferences
                | Action::ViewServices
                | Action::Schedule
                | Action::ViewConsultation
                | Action::ViewPayments
        )
    }
}

/// Why [`authorize`] or [`authorize_patient`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessDenied {
    /// No credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// The actor has no relation to this data; answered as if it did not exist.
    #[error("not found")]
    NotFound,
    /// The actor may see this data but their role may not perform this action.
    #[error("your role may not do this")]
    Forbidden,
}

/// May `actor` perform `action` on `practitioner`'s data?
pub fn authorize(
    actor: &Actor,
    action: Action,
    practitioner: PractitionerId,
) -> Result<(), AccessDenied> {
    match actor {
        Actor::System => Ok(()),
        Actor::Anonymous => Err(AccessDenied::Unauthenticated),
        Actor::Patient { .. } | Actor::Stripe => Err(AccessDenied::NotFound),
        Actor::Staff(user) => match &user.role {
            Role::Practitioner(own) if *own == practitioner => Ok(()),
            Role::Secretary(of) if of.contains(&practitioner) => {
                if action.allowed_to_secretary() {
                    Ok(())
                } else {
                    Err(AccessDenied::Forbidden)
                }
            }
            Role::Practitioner(_) | Role::Secretary(_) => Err(AccessDenied::NotFound),
        },
    }
}

/// May `actor` open `consultation`'s pay page, start its checkout or ask its access?
/// Only the holder of that consultation's pay token (or the operator's tools).
pub fn authorize_patient(actor: &Actor, consultation: ConsultationId) -> Result<(), AccessDenied> {
    match actor {
        Actor::Patient { consultation: c } if *c == consultation => Ok(()),
        Actor::System => Ok(()),
        Actor::Anonymous => Err(AccessDenied::Unauthenticated),
        _ => Err(AccessDenied::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn pid(n: u128) -> PractitionerId {
        PractitionerId::from_uuid(Uuid::from_u128(n))
    }

    fn staff(role: Role) -> Actor {
        Actor::Staff(StaffUser {
            id: UserId::from_uuid(Uuid::from_u128(99)),
            name: "someone".into(),
            role,
        })
    }

    #[test]
    fn a_practitioner_may_do_everything_on_their_own_data() {
        let me = staff(Role::Practitioner(pid(1)));
        for action in Action::ALL {
            assert_eq!(authorize(&me, action, pid(1)), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn another_practitioners_data_does_not_exist_for_you() {
        let me = staff(Role::Practitioner(pid(1)));
        for action in Action::ALL {
            assert_eq!(
                authorize(&me, action, pid(2)),
                Err(AccessDenied::NotFound),
                "{action:?}"
            );
        }
    }

    #[test]
    fn a_secretary_schedules_and_looks_but_never_moves_money_or_links() {
        let sec = staff(Role::Secretary(BTreeSet::from([pid(1), pid(3)])));
        let table = [
            (Action::ViewStripeLink, Ok(())),
            (Action::LinkStripe, Err(AccessDenied::Forbidden)),
            (Action::VerifyStripe, Err(AccessDenied::Forbidden)),
            (Action::UnlinkStripe, Err(AccessDenied::Forbidden)),
            (Action::ViewPreferences, Ok(())),
            (Action::EditPreferences, Err(AccessDenied::Forbidden)),
            (Action::ViewServices, Ok(())),
            (Action::ManageServices, Err(AccessDenied::Forbidden)),
            (Action::Schedule, Ok(())),
            (Action::ViewConsultation, Ok(())),
            (Action::ViewPayments, Ok(())),
            (Action::ValidateAct, Err(AccessDenied::Forbidden)),
            (Action::ReleaseHold, Err(AccessDenied::Forbidden)),
            (Action::Refund, Err(AccessDenied::Forbidden)),
            (Action::ViewAudit, Err(AccessDenied::Forbidden)),
            (Action::RunConsultation, Err(AccessDenied::Forbidden)),
            (Action::ChargeMissedFee, Err(AccessDenied::Forbidden)),
            (Action::ManageTeam, Err(AccessDenied::Forbidden)),
        ];
        assert_eq!(table.len(), Action::ALL.len());
        for (action, expected) in table {
            assert_eq!(authorize(&sec, action, pid(1)), expected, "{action:?}");
            assert_eq!(authorize(&sec, action, pid(3)), expected, "{action:?}");
            assert_eq!(
                authorize(&sec, action, pid(2)),
                Err(AccessDenied::NotFound),
                "a secretary of others sees nothing of pid(2): {action:?}"
            );
        }
    }

    #[test]
    fn patients_and_anonymous_callers_get_no_staff_action() {
        let c = ConsultationId::from_uuid(Uuid::from_u128(7));
        for action in Action::ALL {
            assert_eq!(
                authorize(&Actor::Patient { consultation: c }, action, pid(1)),
                Err(AccessDenied::NotFound)
            );
            assert_eq!(
                authorize(&Actor::Anonymous, action, pid(1)),
                Err(AccessDenied::Unauthenticated)
            );
            assert_eq!(
                authorize(&Actor::Stripe, action, pid(1)),
                Err(AccessDenied::NotFound)
            );
        }
    }

    #[test]
    fn a_pay_token_opens_exactly_one_consultation() {
        let mine = ConsultationId::from_uuid(Uuid::from_u128(7));
        let other = ConsultationId::from_uuid(Uuid::from_u128(8));
        let patient = Actor::Patient { consultation: mine };
        assert_eq!(authorize_patient(&patient, mine), Ok(()));
        assert_eq!(
            authorize_patient(&patient, other),
            Err(AccessDenied::NotFound)
        );
        assert_eq!(
            authorize_patient(&staff(Role::Practitioner(pid(1))), mine),
            Err(AccessDenied::NotFound)
        );
    }
}
