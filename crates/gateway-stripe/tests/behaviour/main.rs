//! Layer 3 and the shared behaviour suite: **one suite, two implementations**.
//!
//! `suite` states each gateway behaviour once; the `suite!` macro runs every case
//! against the in-process sandbox (`sandbox_peer::…`), the sandbox kept in a store
//! and shared by two instances (`stored_sandbox_peer::…`), and against the Stripe
//! adapter talking to a live localstripe (`localstripe_peer::…`). `live` holds what only the
//! localstripe peer can show (its own record of a capture, a webhook it signs);
//! `sandbox` what only the sandbox does (the clock, the card page, Connect).
//!
//! Every localstripe test is in this one binary and holds a process-wide lock, since
//! localstripe keeps its state in one fixed file.

// Suite cases and helpers are test code outside `#[test]` functions: a failed unwrap
// is the test's failure report, as in the tests themselves.
#![allow(clippy::unwrap_used)]

mod harness;
mod live;
mod localstripe;
mod peers;
mod sandbox;
mod suite;

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sandbox_peer {
            $(
                #[tokio::test]
                async fn $case() {
                    let peer = crate::peers::SandboxPeer::new();
                    crate::suite::$case(&peer).await;
                }
            )*
        }

        /// The same sandbox kept in a store, the browser on one instance and the
        /// server on another: every step survives the trip through the store.
        mod stored_sandbox_peer {
            $(
                #[tokio::test]
                async fn $case() {
                    let peer = crate::peers::SandboxPeer::stored();
                    crate::suite::$case(&peer).await;
                }
            )*
        }

        mod localstripe_peer {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(peer) = crate::peers::LocalstripePeer::acquire().await else { return };
                    crate::suite::$case(&peer).await;
                }
            )*
        }
    };
}

suite!(
    a_confirmed_hold_waits_for_capture_for_its_amount,
    a_partial_capture_takes_only_that_amount,
    retrieving_after_a_capture_tells_the_whole_story,
    capturing_more_than_the_hold_is_refused,
    a_released_hold_is_canceled_and_cannot_be_captured,
    refunds_are_bounded_by_what_was_captured,
    an_uncaptured_hold_cannot_be_refunded,
    a_declined_card_leaves_the_intent_waiting_for_another,
    a_card_asking_for_3ds_is_held_once_authenticated,
    a_failed_3ds_is_a_failed_authorisation,
    an_unknown_intent_is_not_found,
    a_saved_card_is_held_off_session_as_the_card_allows,
);
