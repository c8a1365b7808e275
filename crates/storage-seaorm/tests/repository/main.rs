//! The repository test suite: every behaviour of billing-core's conformance suite, plus
//! this adapter's migrations, run against SQLite in memory, a SQLite file and PostgreSQL (see `harness` for how each database
//! is made and destroyed, and when PostgreSQL is skipped).
//!
//! Test names read `<backend>::<behaviour>`, e.g.
//! `postgres::concurrent_validations_of_one_payment_let_exactly_one_win`.

// `cfg(test)` marks the shared cases and fixtures as test code (for clippy's
// `allow-unwrap-in-tests`), like the `#[test]` functions that call them.
#[cfg(test)]
mod cases;
#[cfg(test)]
mod harness;

/// One module per backend, one test per case.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        suite!(@backend sqlite_memory, SqliteMemory, $($case),*);
        suite!(@backend sqlite_file, SqliteFile, $($case),*);
        suite!(@backend postgres, Postgres, $($case),*);
        suite!(@listed $($case),*);
    };
    (@listed $($case:ident),*) => {
        /// Every case of the conformance suite has a test here: one added to
        /// billing-core and not listed below fails this test.
        #[test]
        fn every_conformance_case_runs_on_every_backend() {
            use billing_core::testing::conformance::{sandbox_cases, storage_cases};
            let listed = [$(stringify!($case)),*];
            let suite = storage_cases::<storage_seaorm::Store>()
                .into_iter()
                .map(|c| c.name)
                .chain(sandbox_cases::<storage_seaorm::Store>().into_iter().map(|c| c.name));
            let missing: Vec<_> = suite.filter(|name| !listed.contains(name)).collect();
            assert!(missing.is_empty(), "not run: {missing:?}");
        }
    };
    (@backend $module:ident, $backend:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::harness::run(crate::harness::Backend::$backend, crate::cases::$case)
                        .await;
                }
            )*
        }
    };
}

suite!(
    // schema
    migrations_run_down_to_nothing_and_up_again,
    the_totals_migration_sums_the_payments_written_before_it,
    // practitioners, OAuth states, services
    a_practitioner_round_trips_through_every_kind_of_stripe_link,
    a_practitioner_update_from_a_stale_version_is_a_conflict_and_writes_nothing,
    an_unknown_practitioner_is_not_found,
    a_practitioner_is_found_by_the_stripe_account_of_their_link,
    a_second_consume_of_an_oauth_state_is_not_found,
    an_oauth_state_stored_twice_is_a_duplicate,
    concurrent_consumes_of_an_oauth_state_give_it_to_exactly_one_caller,
    services_are_listed_by_name_with_inactive_ones_only_if_asked,
    a_service_created_twice_is_a_duplicate_and_an_unknown_one_is_not_found,
    // consultations
    a_consultation_and_its_payment_round_trip_by_id_and_by_pay_token,
    a_consultation_without_online_payment_round_trips,
    the_day_of_a_consultation_is_written_conditionally_with_its_history,
    the_terms_a_patient_accepted_are_kept_with_the_payment,
    a_reused_pay_token_hash_is_a_duplicate_and_nothing_is_written,
    a_reused_consultation_or_payment_id_is_a_duplicate,
    a_second_payment_for_one_consultation_is_a_duplicate_and_nothing_is_written,
    a_consultation_of_an_unknown_practitioner_is_not_found,
    replacing_the_pay_token_retires_the_previous_one,
    an_unknown_consultation_or_pay_token_is_not_found,
    the_gate_of_a_pay_token_agrees_with_its_record_through_the_payments_life,
    upcoming_lists_consultations_from_a_date_soonest_first,
    // the e-mail outbox
    messages_are_queued_once_per_key_with_the_change_that_sends_them,
    concurrent_claimers_never_share_a_message,
    a_lapsed_claim_is_taken_over_and_only_the_claimer_settles_a_message,
    // receipts and credit notes
    documents_are_numbered_per_practitioner_and_year_and_read_back_whole,
    a_second_receipt_or_a_lost_race_writes_nothing_and_consumes_no_number,
    concurrent_captures_number_receipts_without_gap_or_reuse,
    the_practitioners_profile_and_the_consultations_service_and_language_round_trip,
    // payments
    a_payment_round_trips_through_its_life_with_its_history_in_order,
    money_round_trips_exactly_including_awkward_decimals,
    timestamps_round_trip_at_microsecond_precision,
    a_payment_update_from_a_stale_version_is_a_conflict_and_writes_nothing,
    updating_an_unknown_payment_is_not_found,
    a_failure_mid_transaction_leaves_payment_history_and_audit_untouched,
    concurrent_validations_of_one_payment_let_exactly_one_win,
    a_payment_is_found_by_its_intent,
    open_holds_count_authorised_payments_and_operations_in_flight,
    // the payments table and reconciliation
    payments_are_paged_newest_first_through_ties_in_created_at,
    the_payments_list_filters_by_status_date_range_and_scope,
    totals_equal_the_reference_sum_over_every_match_not_only_the_page,
    totals_over_days_and_their_edges_equal_the_reference_sum_after_every_change,
    concurrent_changes_of_one_days_payments_keep_its_totals_exact,
    holds_due_are_authorised_holds_by_deadline_soonest_first,
    reconciliation_finds_stale_operations_and_recent_transient_checkouts,
    // live Stripe Connect over time
    a_payment_round_trips_with_its_saved_card_refunds_dispute_and_attention,
    holds_to_place_are_saved_cards_of_consultations_starting_soon_soonest_first,
    what_statements_say_round_trips_with_the_practitioner,
    // webhook inbox, idempotency keys
    a_webhook_event_is_processed_once_recorded_so_and_stays_processed,
    concurrent_records_of_one_event_id_store_it_once_processed,
    an_idempotency_key_is_reserved_once_and_replayed_with_what_it_created,
    a_released_key_can_be_reserved_again_but_a_completed_one_stays,
    concurrent_reservations_of_one_key_give_exactly_one_new,
    // dashboard sessions
    a_session_is_found_by_its_hash_with_its_user_until_ended,
    a_reused_session_id_is_a_duplicate_and_an_unknown_users_is_not_found,
    a_session_ends_when_the_token_it_was_opened_with_is_revoked,
    ending_every_session_of_a_user_leaves_the_others_signed_in,
    touching_a_session_moves_only_its_last_use,
    sessions_that_are_over_are_purged_and_open_ones_kept,
    a_login_is_found_by_its_email_and_setting_one_ends_the_users_sessions,
    an_email_signs_in_one_user_and_an_unknown_user_gets_none,
    a_link_is_found_while_live_and_redeemed_once_setting_the_login,
    an_expired_link_redeems_nothing_and_is_purged,
    a_link_for_an_unknown_user_is_not_found_and_a_reused_id_a_duplicate,
    a_link_whose_email_another_user_signs_in_with_redeems_nothing,
    concurrent_redemptions_of_one_link_let_exactly_one_win,
    redeeming_a_link_spends_the_users_others_and_revoking_them_spends_all,
    failed_sign_ins_are_counted_per_key_newest_first_cleared_and_purged,
    an_identity_is_linked_by_a_link_once_per_account_and_unlinked_by_revocation,
    a_second_factor_is_pending_then_confirmed_and_takes_each_step_once,
    a_message_to_a_staff_member_reads_back_with_its_user,
    personal_tokens_are_added_listed_newest_first_touched_and_revoked_one_by_one,
    // users and the audit trail
    a_fresh_database_has_no_user,
    a_practitioners_user_shares_their_id_and_is_found_by_token_hash,
    a_secretary_works_for_each_of_their_practitioners,
    a_secretary_of_an_unknown_practitioner_is_not_found_and_nothing_is_written,
    a_reused_token_hash_is_a_duplicate_and_the_practitioner_is_not_created,
    a_reused_practitioner_or_user_id_is_a_duplicate,
    replacing_tokens_revokes_every_live_one_and_the_replacement_signs_in,
    replacing_tokens_of_an_unknown_user_or_with_a_taken_hash_writes_nothing,
    users_are_read_by_id_and_listed_oldest_first_with_their_live_tokens,
    the_audit_trail_reads_back_newest_first_per_practitioner,
    an_audit_entry_about_an_unknown_practitioner_is_not_found,
    // the sandbox gateway's store
    the_sandbox_store_keeps_rows_by_version_and_replaces_them,
    a_dropped_sandbox_write_changes_nothing,
    sandbox_writers_take_turns,
);
