//! Invitation and reset links (found while live, used once, atomically) and the
//! sign-in throttle's failures (counted per key by every caller).

use futures_util::future::join_all;

use crate::audit::AuditAction;
use crate::contact::EmailAddress;
use crate::ids::{PractitionerId, UserId};
use crate::invitation::{LinkPurpose, LoginLink};
use crate::password::PasswordHash;
use crate::repository::RepositoryError;
use crate::session::SessionRecord;
use crate::throttle::ThrottleKey;

use super::fixtures::*;
use crate::Storage;

fn email(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn link(user: UserId, to: &str, minute: i64) -> LoginLink {
    LoginLink {
        id: staff_token_hash(),
        user,
        purpose: LinkPurpose::Invitation,
        email: email(to),
        created_at: t0() + mins(minute),
        expires_at: t0() + mins(minute) + chrono::Duration::days(7),
    }
}

fn hash(s: &str) -> PasswordHash {
    PasswordHash::from_stored(format!("$argon2id$v=19${s}"))
}

/// A practitioner's user, with the practitioner id for audit entries.
async fn user<S: Storage>(store: &S) -> (UserId, PractitionerId) {
    let p = practitioner(store).await;
    (UserId::from_uuid(p.id.as_uuid()), p.id)
}

pub async fn a_link_is_found_while_live_and_redeemed_once_setting_the_login<S: Storage>(store: S) {
    let (id, pid) = user(&store).await;
    let l = link(id, "camille@example.org", 0);
    let issued = audit(pid, AuditAction::LinkIssued, t0());
    store
        .create_link(&l, std::slice::from_ref(&issued))
        .await
        .unwrap();
    let (found, owner) = store.find_link(&l.id, t0()).await.unwrap().unwrap();
    assert_eq!((found, owner.id), (l.clone(), id));
    assert_eq!(
        store.find_link(&l.id, l.expires_at).await.unwrap(),
        None,
        "not at its expiry"
    );
    let session = SessionRecord {
        id: staff_token_hash(),
        user: id,
        credential: None,
        created_at: t0(),
        last_seen_at: t0(),
        expires_at: t0() + chrono::Duration::hours(12),
    };
    store.create_session(&session).await.unwrap();
    let set = audit(pid, AuditAction::PasswordSet, t0() + mins(1));
    let used = store
        .redeem_link(
            &l.id,
            t0() + mins(1),
            &hash("one"),
            std::slice::from_ref(&set),
        )
        .await
        .unwrap();
    assert_eq!(used, l);
    let (by_email, stored) = store
        .find_login(&email("camille@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_email.id, stored), (id, hash("one")));
    assert_eq!(
        store.find_session(&session.id).await.unwrap(),
        None,
        "sessions end"
    );
    assert_eq!(store.find_link(&l.id, t0()).await.unwrap(), None, "used");
    assert!(matches!(
        store
            .redeem_link(&l.id, t0() + mins(2), &hash("two"), &[])
            .await,
        Err(RepositoryError::NotFound)
    ));
    let trail = crate::audit::AuditLog::recent(&store, pid, 10)
        .await
        .unwrap();
    assert_eq!(&trail[..2], [set, issued]);
}

pub async fn an_expired_link_redeems_nothing_and_is_purged<S: Storage>(store: S) {
    let (id, _) = user(&store).await;
    let old = link(id, "camille@example.org", 0);
    let young = link(id, "camille@example.org", 1);
    for l in [&old, &young] {
        store.create_link(l, &[]).await.unwrap();
    }
    assert!(matches!(
        store
            .redeem_link(&old.id, old.expires_at, &hash("one"), &[])
            .await,
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(
        store
            .find_login(&email("camille@example.org"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.purge_links(old.expires_at).await.unwrap(), 1);
    assert!(store.find_link(&young.id, t0()).await.unwrap().is_some());
    assert_eq!(store.purge_links(old.expires_at).await.unwrap(), 0);
}

pub async fn a_link_for_an_unknown_user_is_not_found_and_a_reused_id_a_duplicate<S: Storage>(
    store: S,
) {
    let (id, pid) = user(&store).await;
    let ghost = link(UserId::from_uuid(new_uuid()), "ghost@example.org", 0);
    assert!(matches!(
        store.create_link(&ghost, &[]).await,
        Err(RepositoryError::NotFound)
    ));
    let l = link(id, "camille@example.org", 0);
    store.create_link(&l, &[]).await.unwrap();
    let mut again = link(id, "other@example.org", 1);
    again.id = l.id.clone();
    let entry = audit(pid, AuditAction::LinkIssued, t0());
    assert!(matches!(
        store
            .create_link(&again, std::slice::from_ref(&entry))
            .await,
        Err(RepositoryError::Duplicate(_))
    ));
    assert_eq!(
        store.find_link(&l.id, t0()).await.unwrap().map(|f| f.0),
        Some(l)
    );
    assert!(
        crate::audit::AuditLog::recent(&store, pid, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.action != AuditAction::LinkIssued),
        "nothing written"
    );
}

pub async fn a_link_whose_email_another_user_signs_in_with_redeems_nothing<S: Storage>(store: S) {
    let (first, _) = user(&store).await;
    let (second, pid) = user(&store).await;
    store
        .set_login(
            first,
            &email("camille@example.org"),
            &hash("first"),
            t0(),
            &[],
        )
        .await
        .unwrap();
    let l = link(second, "camille@example.org", 0);
    store.create_link(&l, &[]).await.unwrap();
    let entry = audit(pid, AuditAction::PasswordSet, t0());
    assert!(matches!(
        store
            .redeem_link(&l.id, t0(), &hash("second"), std::slice::from_ref(&entry))
            .await,
        Err(RepositoryError::Duplicate(_))
    ));
    let (owner, _) = store
        .find_login(&email("camille@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.id, first);
    assert!(
        store.find_link(&l.id, t0()).await.unwrap().is_some(),
        "not spent"
    );
    assert!(
        crate::audit::AuditLog::recent(&store, pid, 10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.action != AuditAction::PasswordSet)
    );
}

pub async fn concurrent_redemptions_of_one_link_let_exactly_one_win<S: Storage>(store: S) {
    let (id, _) = user(&store).await;
    let l = link(id, "camille@example.org", 0);
    store.create_link(&l, &[]).await.unwrap();
    let hashes: Vec<_> = (0..8).map(|i| hash(&format!("p{i}"))).collect();
    let attempts = hashes
        .iter()
        .map(|h| store.redeem_link(&l.id, t0(), h, &[]));
    let mut won = Vec::new();
    for (i, result) in join_all(attempts).await.into_iter().enumerate() {
        match result {
            Ok(_) => won.push(i),
            Err(RepositoryError::NotFound) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let (_, stored) = store
        .find_login(&email("camille@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, hashes[won[0]]);
}

pub async fn redeeming_a_link_spends_the_users_others_and_revoking_them_spends_all<S: Storage>(
    store: S,
) {
    let (id, _) = user(&store).await;
    let (other, _) = user(&store).await;
    let a = link(id, "camille@example.org", 0);
    let b = link(id, "camille@example.org", 1);
    let c = link(other, "roux@example.org", 0);
    for l in [&a, &b, &c] {
        store.create_link(l, &[]).await.unwrap();
    }
    store
        .redeem_link(&a.id, t0(), &hash("one"), &[])
        .await
        .unwrap();
    assert_eq!(store.find_link(&b.id, t0()).await.unwrap(), None);
    assert!(
        store.find_link(&c.id, t0()).await.unwrap().is_some(),
        "not another user's"
    );
    store.replace_tokens(other, None, t0(), &[]).await.unwrap();
    assert_eq!(
        store.find_link(&c.id, t0()).await.unwrap(),
        None,
        "locked out"
    );
}

pub async fn failed_sign_ins_are_counted_per_key_newest_first_cleared_and_purged<S: Storage>(
    store: S,
) {
    let (account, address) = (
        ThrottleKey::account("a@example.org"),
        ThrottleKey::address("192.0.2.1"),
    );
    let other = ThrottleKey::account("b@example.org");
    let micro = chrono::Duration::microseconds(3);
    store
        .record_failure(&[account.clone(), address.clone()], t0() + micro)
        .await
        .unwrap();
    store
        .record_failure(std::slice::from_ref(&account), t0() + mins(2))
        .await
        .unwrap();
    // Concurrent failures at one instant are each counted.
    let burst = (0..4).map(|_| store.record_failure(std::slice::from_ref(&other), t0() + mins(1)));
    for r in join_all(burst).await {
        r.unwrap();
    }
    assert_eq!(
        store.failures_since(&account, t0()).await.unwrap(),
        [t0() + mins(2), t0() + micro]
    );
    assert_eq!(
        store.failures_since(&account, t0() + micro).await.unwrap(),
        [t0() + mins(2)],
        "after `since`, not at it"
    );
    assert_eq!(store.failures_since(&other, t0()).await.unwrap().len(), 4);
    store.clear_failures(&account).await.unwrap();
    assert!(
        store
            .failures_since(&account, t0())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.failures_since(&address, t0()).await.unwrap().len(), 1);
    assert_eq!(store.purge_failures(t0() + mins(1)).await.unwrap(), 5);
    assert!(store.failures_since(&other, t0()).await.unwrap().is_empty());
}

pub async fn an_identity_is_linked_by_a_link_once_per_account_and_unlinked_by_revocation<
    S: Storage,
>(
    store: S,
) {
    let (a, pid) = user(&store).await;
    let (b, _) = user(&store).await;
    let person = crate::identity::Identity {
        issuer: "https://idp.example".into(),
        subject: "248289761001".into(),
    };
    assert_eq!(store.find_by_identity(&person).await.unwrap(), None);
    let la = link(a, "a@example.org", 0);
    let la2 = link(a, "a@example.org", 1);
    let lb = link(b, "b@example.org", 0);
    for l in [&la, &la2, &lb] {
        store.create_link(l, &[]).await.unwrap();
    }
    let entry = audit(pid, AuditAction::IdentityLinked, t0());
    let used = store
        .redeem_link_for_identity(&la.id, t0(), &person, std::slice::from_ref(&entry))
        .await
        .unwrap();
    assert_eq!(used, la);
    assert_eq!(
        store.find_by_identity(&person).await.unwrap().map(|u| u.id),
        Some(a)
    );
    assert_eq!(
        store.find_link(&la2.id, t0()).await.unwrap(),
        None,
        "others spent"
    );
    let other_issuer = crate::identity::Identity {
        issuer: "https://other.example".into(),
        ..person.clone()
    };
    assert_eq!(store.find_by_identity(&other_issuer).await.unwrap(), None);
    // Another account cannot take it; nothing is written then.
    assert!(matches!(
        store
            .redeem_link_for_identity(&lb.id, t0(), &person, &[])
            .await,
        Err(RepositoryError::Duplicate(_))
    ));
    assert!(store.find_link(&lb.id, t0()).await.unwrap().is_some());
    // The same account again (a new link) is not an error.
    let la3 = link(a, "a@example.org", 2);
    store.create_link(&la3, &[]).await.unwrap();
    store
        .redeem_link_for_identity(&la3.id, t0(), &person, &[])
        .await
        .unwrap();
    assert!(matches!(
        store
            .redeem_link_for_identity(&la3.id, t0(), &person, &[])
            .await,
        Err(RepositoryError::NotFound)
    ));
    let trail = crate::audit::AuditLog::recent(&store, pid, 10)
        .await
        .unwrap();
    assert_eq!(trail.iter().filter(|e| **e == entry).count(), 1);
    store.replace_tokens(a, None, t0(), &[]).await.unwrap();
    assert_eq!(
        store.find_by_identity(&person).await.unwrap(),
        None,
        "locked out"
    );
}

pub async fn a_second_factor_is_pending_then_confirmed_and_takes_each_step_once<S: Storage>(
    store: S,
) {
    use crate::second_factor::TotpSecret;
    let (user, pid) = user(&store).await;
    assert_eq!(store.second_factor(user).await.unwrap(), None);
    assert!(matches!(
        store
            .begin_second_factor(
                UserId::from_uuid(new_uuid()),
                &TotpSecret::from_random("x"),
                t0()
            )
            .await,
        Err(RepositoryError::NotFound)
    ));
    let first = TotpSecret::from_random("first");
    let second = TotpSecret::from_random("second");
    store.begin_second_factor(user, &first, t0()).await.unwrap();
    store
        .begin_second_factor(user, &second, t0())
        .await
        .unwrap();
    let pending = store.second_factor(user).await.unwrap().unwrap();
    assert_eq!(
        (pending.secret, pending.confirmed, pending.last_step),
        (second.clone(), false, None)
    );
    assert!(
        !store.use_step(user, 5).await.unwrap(),
        "not before it is confirmed"
    );
    let codes = [staff_token_hash(), staff_token_hash()];
    let entry = audit(pid, AuditAction::SecondFactorEnabled, t0());
    assert!(
        store
            .confirm_second_factor(user, 10, &codes, t0(), std::slice::from_ref(&entry))
            .await
            .unwrap()
    );
    assert!(
        !store
            .confirm_second_factor(user, 11, &codes, t0(), &[])
            .await
            .unwrap(),
        "confirmed once"
    );
    assert!(matches!(
        store.begin_second_factor(user, &first, t0()).await,
        Err(RepositoryError::Conflict)
    ));
    let on = store.second_factor(user).await.unwrap().unwrap();
    assert_eq!(
        (on.secret, on.confirmed, on.last_step),
        (second, true, Some(10))
    );
    // Each step once, only later ones; of concurrent callers with one step, one wins.
    assert!(!store.use_step(user, 10).await.unwrap());
    assert!(!store.use_step(user, 9).await.unwrap());
    let racing = join_all((0..6).map(|_| store.use_step(user, 12))).await;
    assert_eq!(
        racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1
    );
    assert!(!store.use_step(user, 11).await.unwrap());
    // Recovery codes: each once, concurrently too.
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2);
    let spent = join_all((0..4).map(|_| store.use_recovery_code(user, &codes[0], t0()))).await;
    assert_eq!(
        spent.into_iter().filter(|r| *r.as_ref().unwrap()).count(),
        1
    );
    assert!(
        !store
            .use_recovery_code(user, &staff_token_hash(), t0())
            .await
            .unwrap()
    );
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 1);
    let off = audit(pid, AuditAction::SecondFactorDisabled, t0() + mins(1));
    store
        .remove_second_factor(user, std::slice::from_ref(&off))
        .await
        .unwrap();
    assert_eq!(store.second_factor(user).await.unwrap(), None);
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 0);
    assert!(
        !store
            .use_recovery_code(user, &codes[1], t0())
            .await
            .unwrap()
    );
    let trail = crate::audit::AuditLog::recent(&store, pid, 10)
        .await
        .unwrap();
    assert_eq!(&trail[..2], [off, entry]);
}
