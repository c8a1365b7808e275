//! The repository conformance suite: every behaviour a storage adapter must have,
//! written once as `async fn behaviour(store)`, for any adapter's tests to call with a
//! **fresh, empty store** each time. A case panics (with the behaviour in its message)
//! when the store breaks the contract; it returns when the store keeps it.
//!
//! Three groups, by the ports they need:
//! - [`storage_cases`]: every port of [`Storage`], the database
//!   adapter's whole contract (including the inbox group);
//! - [`inbox_cases`]: [`WebhookInbox`] and [`IdempotencyStore`] only, for an adapter
//!   of that group alone;
//! - [`sandbox_cases`]: the sandbox gateway's [`SandboxStore`].
//!
//! Each case is also a public function (`conformance::concurrent_records_of_one_event_id_store_it_once_processed`,
//! …), so a test harness can give every behaviour a test of its own. The concurrent
//! cases run their callers as joined futures in one task: an adapter that waits on a
//! database lock or a pool is then seen by several callers at once, and an in-memory
//! one must not block the thread while it holds a lock.
//!
//! ```
//! use billing_core::testing::{conformance, MemoryStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! for case in conformance::storage_cases::<MemoryStore>() {
//!     case.run(MemoryStore::new()).await;
//! }
//! # });
//! ```

// The cases are tests: a failed expectation is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, missing_docs)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::Storage;
use crate::gateway::SandboxStore;
use crate::payment::ports::{IdempotencyStore, WebhookInbox};

mod consultations;
mod documents;
pub mod fixtures;
mod inbox;
mod listing;
mod live;
mod outbox;
mod payments;
mod practitioners;
mod sandbox;
mod sessions;
mod signin;
mod users;

pub use consultations::*;
pub use documents::*;
pub use inbox::*;
pub use listing::*;
pub use live::*;
pub use outbox::*;
pub use payments::*;
pub use practitioners::*;
pub use sandbox::*;
pub use sessions::*;
pub use signin::*;
pub use users::*;

/// A case's run: the behaviour, checked on the store it is given.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One behaviour of the suite, by name.
pub struct Case<S> {
    /// The behaviour, as a sentence (`a_second_consume_of_an_oauth_state_is_not_found`).
    pub name: &'static str,
    run: fn(S) -> CaseFuture,
}

impl<S> Case<S> {
    /// Checks the behaviour on `store`, which must be fresh and empty; panics if the
    /// store breaks it.
    pub fn run(&self, store: S) -> CaseFuture {
        (self.run)(store)
    }
}

impl<S> fmt::Debug for Case<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Case").field(&self.name).finish()
    }
}

macro_rules! cases {
    ($($case:path),* $(,)?) => {
        vec![$(Case {
            name: {
                let path = stringify!($case);
                match path.rfind(':') {
                    Some(i) => path.split_at(i + 1).1,
                    None => path,
                }
            },
            run: |store| Box::pin($case(store)),
        }),*]
    };
}

/// Every behaviour of [`Storage`]: practitioners, OAuth states,
/// services, consultations, the outbox, receipts, payments and their table, users, the
/// audit trail, and the inbox group.
pub fn storage_cases<S: Storage + 'static>() -> Vec<Case<S>> {
    let mut all = cases![
        practitioners::a_practitioner_round_trips_through_every_kind_of_stripe_link,
        practitioners::a_practitioner_update_from_a_stale_version_is_a_conflict_and_writes_nothing,
        practitioners::an_unknown_practitioner_is_not_found,
        practitioners::a_practitioner_is_found_by_the_stripe_account_of_their_link,
        practitioners::a_second_consume_of_an_oauth_state_is_not_found,
        practitioners::an_oauth_state_stored_twice_is_a_duplicate,
        practitioners::concurrent_consumes_of_an_oauth_state_give_it_to_exactly_one_caller,
        practitioners::services_are_listed_by_name_with_inactive_ones_only_if_asked,
        practitioners::a_service_created_twice_is_a_duplicate_and_an_unknown_one_is_not_found,
        consultations::a_consultation_and_its_payment_round_trip_by_id_and_by_pay_token,
        consultations::a_consultation_without_online_payment_round_trips,
        consultations::a_reused_pay_token_hash_is_a_duplicate_and_nothing_is_written,
        consultations::a_reused_consultation_or_payment_id_is_a_duplicate,
        consultations::a_second_payment_for_one_consultation_is_a_duplicate_and_nothing_is_written,
        consultations::a_consultation_of_an_unknown_practitioner_is_not_found,
        consultations::replacing_the_pay_token_retires_the_previous_one,
        consultations::an_unknown_consultation_or_pay_token_is_not_found,
        consultations::the_gate_of_a_pay_token_agrees_with_its_record_through_the_payments_life,
        consultations::upcoming_lists_consultations_from_a_date_soonest_first,
        consultations::the_day_of_a_consultation_is_written_conditionally_with_its_history,
        consultations::the_terms_a_patient_accepted_are_kept_with_the_payment,
        outbox::messages_are_queued_once_per_key_with_the_change_that_sends_them,
        outbox::concurrent_claimers_never_share_a_message,
        outbox::a_lapsed_claim_is_taken_over_and_only_the_claimer_settles_a_message,
        documents::documents_are_numbered_per_practitioner_and_year_and_read_back_whole,
        documents::a_second_receipt_or_a_lost_race_writes_nothing_and_consumes_no_number,
        documents::concurrent_captures_number_receipts_without_gap_or_reuse,
        documents::the_practitioners_profile_and_the_consultations_service_and_language_round_trip,
        payments::a_payment_round_trips_through_its_life_with_its_history_in_order,
        payments::money_round_trips_exactly_including_awkward_decimals,
        payments::timestamps_round_trip_at_microsecond_precision,
        payments::a_payment_update_from_a_stale_version_is_a_conflict_and_writes_nothing,
        payments::updating_an_unknown_payment_is_not_found,
        payments::a_failure_mid_transaction_leaves_payment_history_and_audit_untouched,
        payments::concurrent_validations_of_one_payment_let_exactly_one_win,
        payments::a_payment_is_found_by_its_intent,
        payments::open_holds_count_authorised_payments_and_operations_in_flight,
        listing::payments_are_paged_newest_first_through_ties_in_created_at,
        listing::the_payments_list_filters_by_status_date_range_and_scope,
        listing::totals_equal_the_reference_sum_over_every_match_not_only_the_page,
        listing::totals_over_days_and_their_edges_equal_the_reference_sum_after_every_change,
        listing::concurrent_changes_of_one_days_payments_keep_its_totals_exact,
        listing::holds_due_are_authorised_holds_by_deadline_soonest_first,
        listing::reconciliation_finds_stale_operations_and_recent_transient_checkouts,
        live::a_payment_round_trips_with_its_saved_card_refunds_dispute_and_attention,
        live::holds_to_place_are_saved_cards_of_consultations_starting_soon_soonest_first,
        live::what_statements_say_round_trips_with_the_practitioner,
        sessions::a_session_is_found_by_its_hash_with_its_user_until_ended,
        sessions::a_reused_session_id_is_a_duplicate_and_an_unknown_users_is_not_found,
        sessions::a_session_ends_when_the_token_it_was_opened_with_is_revoked,
        sessions::ending_every_session_of_a_user_leaves_the_others_signed_in,
        sessions::touching_a_session_moves_only_its_last_use,
        sessions::sessions_that_are_over_are_purged_and_open_ones_kept,
        sessions::a_login_is_found_by_its_email_and_setting_one_ends_the_users_sessions,
        sessions::an_email_signs_in_one_user_and_an_unknown_user_gets_none,
        signin::a_link_is_found_while_live_and_redeemed_once_setting_the_login,
        signin::an_expired_link_redeems_nothing_and_is_purged,
        signin::a_link_for_an_unknown_user_is_not_found_and_a_reused_id_a_duplicate,
        signin::a_link_whose_email_another_user_signs_in_with_redeems_nothing,
        signin::concurrent_redemptions_of_one_link_let_exactly_one_win,
        signin::redeeming_a_link_spends_the_users_others_and_revoking_them_spends_all,
        signin::failed_sign_ins_are_counted_per_key_newest_first_cleared_and_purged,
        signin::an_identity_is_linked_by_a_link_once_per_account_and_unlinked_by_revocation,
        signin::a_second_factor_is_pending_then_confirmed_and_takes_each_step_once,
        outbox::a_message_to_a_staff_member_reads_back_with_its_user,
        users::a_fresh_database_has_no_user,
        users::a_practitioners_user_shares_their_id_and_is_found_by_token_hash,
        users::a_secretary_works_for_each_of_their_practitioners,
        users::a_secretary_of_an_unknown_practitioner_is_not_found_and_nothing_is_written,
        users::a_reused_token_hash_is_a_duplicate_and_the_practitioner_is_not_created,
        users::a_reused_practitioner_or_user_id_is_a_duplicate,
        users::the_audit_trail_reads_back_newest_first_per_practitioner,
        users::an_audit_entry_about_an_unknown_practitioner_is_not_found,
        users::replacing_tokens_revokes_every_live_one_and_the_replacement_signs_in,
        users::replacing_tokens_of_an_unknown_user_or_with_a_taken_hash_writes_nothing,
        users::users_are_read_by_id_and_listed_oldest_first_with_their_live_tokens,
        users::personal_tokens_are_added_listed_newest_first_touched_and_revoked_one_by_one,
    ];
    all.extend(inbox_cases());
    all
}

/// The webhook inbox (an event applied once) and the API's idempotency keys.
pub fn inbox_cases<S: WebhookInbox + IdempotencyStore + 'static>() -> Vec<Case<S>> {
    cases![
        inbox::a_webhook_event_is_processed_once_recorded_so_and_stays_processed,
        inbox::concurrent_records_of_one_event_id_store_it_once_processed,
        inbox::an_idempotency_key_is_reserved_once_and_replayed_with_what_it_created,
        inbox::a_released_key_can_be_reserved_again_but_a_completed_one_stays,
        inbox::concurrent_reservations_of_one_key_give_exactly_one_new,
    ]
}

/// The sandbox gateway's store: rows by version, one writer at a time.
pub fn sandbox_cases<S: SandboxStore + 'static>() -> Vec<Case<S>> {
    cases![
        sandbox::the_sandbox_store_keeps_rows_by_version_and_replaces_them,
        sandbox::a_dropped_sandbox_write_changes_nothing,
        sandbox::sandbox_writers_take_turns,
    ]
}
