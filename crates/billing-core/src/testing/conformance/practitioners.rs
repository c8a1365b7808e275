use crate::audit::{AuditAction, AuditLog};
use crate::fees::FeeSchedule;
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::money::{Currency, Money};
use crate::practitioner::model::{
    AccountSnapshot, PayoutInterval, PayoutSchedule, Preferences, RevokeReason, Service, StripeLink,
};
use crate::practitioner::ports::{OAuthStateRecord, PractitionerRepository, ServiceRepository};
use crate::repository::RepositoryError;
use futures_util::future::join_all;
use rust_decimal::Decimal;

use super::fixtures::*;
use crate::Storage;

fn practitioners<S: Storage>(s: &S) -> &dyn PractitionerRepository {
    s
}

fn services<S: Storage>(s: &S) -> &dyn ServiceRepository {
    s
}

fn snapshot(account: &str, interval: Option<PayoutInterval>) -> AccountSnapshot {
    AccountSnapshot {
        id: ConnectedAccountId::parse(account).unwrap(),
        charges_enabled: true,
        payouts_enabled: false,
        details_submitted: true,
        disabled_reason: Some("requirements.past_due".into()),
        currently_due: vec!["external_account".into(), "individual.dob.day".into()],
        payout_schedule: interval.map(|interval| PayoutSchedule {
            interval,
            delay_days: Some(7),
        }),
        default_currency: Some(Currency::Eur),
        country: Some("FR".into()),
    }
}

pub async fn a_practitioner_round_trips_through_every_kind_of_stripe_link<S: Storage>(store: S) {
    let mut p = practitioner(&store).await;
    assert_eq!(PractitionerRepository::get(&store, p.id).await.unwrap(), p);

    let account = ConnectedAccountId::parse("acct_1GOVXuEdeEjkOh7w").unwrap();
    let links = [
        StripeLink::onboarding(account.clone(), t0() + mins(1)),
        StripeLink::linked(
            snapshot(
                "acct_1GOVXuEdeEjkOh7w",
                Some(PayoutInterval::Weekly("monday".into())),
            ),
            t0() + mins(2),
        ),
        StripeLink::linked(
            snapshot("acct_1GOVXuEdeEjkOh7w", Some(PayoutInterval::Monthly(31))),
            t0() + mins(3),
        ),
        StripeLink::linked(
            snapshot("acct_1GOVXuEdeEjkOh7w", Some(PayoutInterval::Daily)),
            t0() + mins(3),
        ),
        StripeLink::onboarded(
            snapshot("acct_1GOVXuEdeEjkOh7w", Some(PayoutInterval::Daily)),
            t0() + mins(3),
        ),
        StripeLink::linked(
            snapshot("acct_1GOVXuEdeEjkOh7w", Some(PayoutInterval::Manual)),
            t0() + mins(3),
        ),
        StripeLink::linked(
            AccountSnapshot {
                currently_due: vec![],
                disabled_reason: None,
                default_currency: None,
                country: None,
                ..snapshot("acct_1GOVXuEdeEjkOh7w", None)
            },
            t0() + mins(4),
        ),
        StripeLink::Revoked {
            account,
            at: t0() + mins(5),
            reason: RevokeReason::Deauthorized,
        },
        StripeLink::Unlinked,
    ];
    for link in links {
        let next = p.with_link(link, t0() + mins(6));
        practitioners(&store)
            .update(
                &next,
                p.version,
                &audit(p.id, AuditAction::StripeLinked, t0()),
            )
            .await
            .unwrap();
        assert_eq!(
            PractitionerRepository::get(&store, p.id).await.unwrap(),
            next
        );
        p = next;
    }

    let custom = FeeSchedule::custom(Decimal::new(29_999, 4), eur(30)).unwrap();
    let prefs = Preferences::new(
        eur(1_800),
        Money::from_minor(99_999_999, Currency::Eur),
        custom,
    )
    .unwrap()
    .with_cancellation(
        crate::consultation::policy::CancellationPolicy::new(
            48,
            crate::consultation::policy::MissedFee::Fixed(eur(1_200)),
        )
        .unwrap(),
    )
    .unwrap();
    let next = p.with_preferences(prefs, t0() + mins(7));
    practitioners(&store)
        .update(
            &next,
            p.version,
            &audit(p.id, AuditAction::PreferencesChanged, t0()),
        )
        .await
        .unwrap();
    assert_eq!(
        PractitionerRepository::get(&store, p.id).await.unwrap(),
        next
    );
}

pub async fn a_practitioner_update_from_a_stale_version_is_a_conflict_and_writes_nothing<
    S: Storage,
>(
    store: S,
) {
    let p = practitioner(&store).await;
    let first = p.with_preferences(Preferences::starting(Currency::Eur), t0() + mins(1));
    practitioners(&store)
        .update(
            &first,
            p.version,
            &audit(p.id, AuditAction::PreferencesChanged, t0()),
        )
        .await
        .unwrap();
    let entries = AuditLog::recent(&store, p.id, 100).await.unwrap().len();

    let stale = p.with_link(
        StripeLink::onboarding(ConnectedAccountId::parse("acct_2").unwrap(), t0()),
        t0() + mins(2),
    );
    let err = practitioners(&store)
        .update(
            &stale,
            p.version,
            &audit(p.id, AuditAction::StripeLinkStarted, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Conflict), "{err:?}");
    assert_eq!(
        PractitionerRepository::get(&store, p.id).await.unwrap(),
        first
    );
    assert_eq!(
        AuditLog::recent(&store, p.id, 100).await.unwrap().len(),
        entries,
        "no audit entry"
    );
}

pub async fn an_unknown_practitioner_is_not_found<S: Storage>(store: S) {
    let ghost = PractitionerId::from_uuid(new_uuid());
    assert!(matches!(
        PractitionerRepository::get(&store, ghost).await,
        Err(RepositoryError::NotFound)
    ));
    let p = crate::practitioner::model::Practitioner::new(
        ghost,
        name("Dr Nobody"),
        Default::default(),
        Currency::Eur,
        t0(),
    );
    let next = p.with_preferences(Preferences::starting(Currency::Eur), t0());
    assert!(matches!(
        practitioners(&store)
            .update(
                &next,
                0,
                &audit(ghost, AuditAction::PreferencesChanged, t0())
            )
            .await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn a_practitioner_is_found_by_the_stripe_account_of_their_link<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let _other = practitioner(&store).await;
    let account = ConnectedAccountId::parse("acct_found").unwrap();
    assert_eq!(store.find_by_account(&account).await.unwrap(), None);
    let next = p.with_link(
        StripeLink::onboarding(account.clone(), t0()),
        t0() + mins(1),
    );
    practitioners(&store)
        .update(
            &next,
            p.version,
            &audit(p.id, AuditAction::StripeLinkStarted, t0()),
        )
        .await
        .unwrap();
    assert_eq!(store.find_by_account(&account).await.unwrap(), Some(next));
    assert_eq!(
        store
            .find_by_account(&ConnectedAccountId::parse("acct_other").unwrap())
            .await
            .unwrap(),
        None
    );
}

fn state(p: PractitionerId) -> OAuthStateRecord {
    OAuthStateRecord {
        hash: pay_token_hash(),
        practitioner: p,
        created_at: t0(),
        expires_at: t0() + mins(15),
    }
}

pub async fn a_second_consume_of_an_oauth_state_is_not_found<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let record = state(p.id);
    store.insert(&record).await.unwrap();
    assert_eq!(store.consume(&record.hash).await.unwrap(), record);
    assert!(matches!(
        store.consume(&record.hash).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        store.consume(&pay_token_hash()).await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn an_oauth_state_stored_twice_is_a_duplicate<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let record = state(p.id);
    store.insert(&record).await.unwrap();
    assert!(matches!(
        store.insert(&record).await,
        Err(RepositoryError::Duplicate(_))
    ));
}

pub async fn concurrent_consumes_of_an_oauth_state_give_it_to_exactly_one_caller<S: Storage>(
    store: S,
) {
    let p = practitioner(&store).await;
    let record = state(p.id);
    store.insert(&record).await.unwrap();
    let consumes = (0..12).map(|_| store.consume(&record.hash));
    let mut won = 0;
    for consumed in join_all(consumes).await {
        match consumed {
            Ok(r) => {
                assert_eq!(r, record);
                won += 1;
            }
            Err(RepositoryError::NotFound) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

fn service(p: PractitionerId, label: &str, price: i64) -> Service {
    Service::new(
        ServiceId::from_uuid(new_uuid()),
        p,
        name(label),
        eur(price),
        &Preferences::new(
            eur(2_500),
            eur(10_000),
            FeeSchedule::default_for(Currency::Eur),
        )
        .unwrap(),
        t0(),
    )
    .unwrap()
}

pub async fn services_are_listed_by_name_with_inactive_ones_only_if_asked<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let other = practitioner(&store).await;
    let bilan = service(p.id, "Bilan", 4_000);
    let suivi = service(p.id, "Suivi", 2_900);
    let ecg = service(p.id, "ECG", 3_000);
    for s in [&suivi, &bilan, &ecg] {
        ServiceRepository::create(&store, s, &audit(p.id, AuditAction::ServiceCreated, t0()))
            .await
            .unwrap();
    }
    ServiceRepository::create(
        &store,
        &service(other.id, "Autre", 2_500),
        &audit(other.id, AuditAction::ServiceCreated, t0()),
    )
    .await
    .unwrap();
    let retired = ecg
        .updated(
            None,
            None,
            Some(false),
            &Preferences::starting(Currency::Eur),
            t0() + mins(1),
        )
        .unwrap();
    services(&store)
        .update(&retired, &audit(p.id, AuditAction::ServiceUpdated, t0()))
        .await
        .unwrap();

    assert_eq!(
        ServiceRepository::get(&store, ecg.id()).await.unwrap(),
        retired
    );
    assert_eq!(
        ServiceRepository::list(&store, p.id, false).await.unwrap(),
        vec![bilan.clone(), suivi.clone()]
    );
    assert_eq!(
        ServiceRepository::list(&store, p.id, true).await.unwrap(),
        vec![bilan, retired, suivi]
    );
}

pub async fn a_service_created_twice_is_a_duplicate_and_an_unknown_one_is_not_found<S: Storage>(
    store: S,
) {
    let p = practitioner(&store).await;
    let s = service(p.id, "Bilan", 4_000);
    ServiceRepository::create(&store, &s, &audit(p.id, AuditAction::ServiceCreated, t0()))
        .await
        .unwrap();
    assert!(matches!(
        ServiceRepository::create(&store, &s, &audit(p.id, AuditAction::ServiceCreated, t0()))
            .await,
        Err(RepositoryError::Duplicate(_))
    ));
    let unknown = service(p.id, "Inconnu", 2_000);
    assert!(matches!(
        ServiceRepository::get(&store, unknown.id()).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        services(&store)
            .update(&unknown, &audit(p.id, AuditAction::ServiceUpdated, t0()))
            .await,
        Err(RepositoryError::NotFound)
    ));
}
