//! Dashboard sessions: stored by hash, bound to the staff token they were opened
//! with, gone once ended.

use crate::access::StaffUser;
use crate::audit::AuditAction;
use crate::ids::{PractitionerId, UserId};
use crate::money::Currency;
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;
use crate::session::SessionRecord;
use crate::staff::UserRepository;

use super::fixtures::*;
use crate::Storage;

/// A practitioner's user signed in with `token`.
async fn user_with<S: Storage>(store: &S, token: &TokenHash) -> StaffUser {
    let p = Practitioner::new(
        PractitionerId::from_uuid(new_uuid()),
        name("Dr Estival"),
        TimeZone::default(),
        Currency::Eur,
        t0(),
    );
    UserRepository::create_practitioner(
        store,
        &p,
        token,
        &audit(p.id, AuditAction::UserCreated, t0()),
    )
    .await
    .unwrap();
    store
        .get_user(UserId::from_uuid(p.id.as_uuid()))
        .await
        .unwrap()
}

fn session(user: UserId, credential: &TokenHash, minute: i64) -> SessionRecord {
    SessionRecord {
        id: staff_token_hash(),
        user,
        credential: Some(credential.clone()),
        created_at: t0() + mins(minute),
        last_seen_at: t0() + mins(minute),
        expires_at: t0() + mins(minute) + chrono::Duration::hours(12),
    }
}

pub async fn a_session_is_found_by_its_hash_with_its_user_until_ended<S: Storage>(store: S) {
    let token = staff_token_hash();
    let user = user_with(&store, &token).await;
    let s = session(user.id, &token, 0);
    store.create_session(&s).await.unwrap();
    assert_eq!(
        store.find_session(&s.id).await.unwrap(),
        Some((s.clone(), user.clone()))
    );
    assert_eq!(store.find_session(&staff_token_hash()).await.unwrap(), None);
    assert!(store.end_session(&s.id).await.unwrap());
    assert_eq!(store.find_session(&s.id).await.unwrap(), None);
    assert!(!store.end_session(&s.id).await.unwrap(), "ended once");
}

pub async fn a_reused_session_id_is_a_duplicate_and_an_unknown_users_is_not_found<S: Storage>(
    store: S,
) {
    let token = staff_token_hash();
    let user = user_with(&store, &token).await;
    let s = session(user.id, &token, 0);
    store.create_session(&s).await.unwrap();
    let mut again = session(user.id, &token, 5);
    again.id = s.id.clone();
    assert!(matches!(
        store.create_session(&again).await,
        Err(RepositoryError::Duplicate(_))
    ));
    assert_eq!(
        store.find_session(&s.id).await.unwrap().map(|f| f.0),
        Some(s)
    );
    let ghost = session(UserId::from_uuid(new_uuid()), &token, 0);
    assert!(matches!(
        store.create_session(&ghost).await,
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(store.find_session(&ghost.id).await.unwrap(), None);
}

pub async fn a_session_ends_when_the_token_it_was_opened_with_is_revoked<S: Storage>(store: S) {
    let first = staff_token_hash();
    let user = user_with(&store, &first).await;
    let old = session(user.id, &first, 0);
    store.create_session(&old).await.unwrap();
    let second = staff_token_hash();
    store
        .replace_tokens(user.id, Some(second.clone()), t0() + mins(1), &[])
        .await
        .unwrap();
    assert_eq!(store.find_session(&old.id).await.unwrap(), None);
    assert!(store.sessions_of(user.id).await.unwrap().is_empty());
    // A session somehow opened with the revoked token is never found either.
    let stale = session(user.id, &first, 1);
    store.create_session(&stale).await.unwrap();
    assert_eq!(store.find_session(&stale.id).await.unwrap(), None);
    assert!(store.sessions_of(user.id).await.unwrap().is_empty());
    let new = session(user.id, &second, 2);
    store.create_session(&new).await.unwrap();
    assert!(store.find_session(&new.id).await.unwrap().is_some());
    store
        .replace_tokens(user.id, None, t0() + mins(3), &[])
        .await
        .unwrap();
    assert_eq!(store.find_session(&new.id).await.unwrap(), None);
}

pub async fn ending_every_session_of_a_user_leaves_the_others_signed_in<S: Storage>(store: S) {
    let (a_token, b_token) = (staff_token_hash(), staff_token_hash());
    let a = user_with(&store, &a_token).await;
    let b = user_with(&store, &b_token).await;
    let a1 = session(a.id, &a_token, 0);
    let mut a2 = session(a.id, &a_token, 1);
    a2.last_seen_at = t0() + mins(30);
    let b1 = session(b.id, &b_token, 0);
    for s in [&a1, &a2, &b1] {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(
        store.sessions_of(a.id).await.unwrap(),
        [a2.clone(), a1.clone()],
        "most recently used first"
    );
    assert_eq!(store.end_sessions(a.id).await.unwrap(), 2);
    assert!(store.sessions_of(a.id).await.unwrap().is_empty());
    assert_eq!(store.find_session(&a1.id).await.unwrap(), None);
    assert!(store.find_session(&b1.id).await.unwrap().is_some());
    assert_eq!(store.end_sessions(a.id).await.unwrap(), 0);
}

pub async fn touching_a_session_moves_only_its_last_use<S: Storage>(store: S) {
    let token = staff_token_hash();
    let user = user_with(&store, &token).await;
    let s = session(user.id, &token, 0);
    store.create_session(&s).await.unwrap();
    let at = t0() + mins(42) + chrono::Duration::microseconds(7);
    store.touch_session(&s.id, at).await.unwrap();
    let (found, _) = store.find_session(&s.id).await.unwrap().unwrap();
    assert_eq!(
        found,
        SessionRecord {
            last_seen_at: at,
            ..s.clone()
        }
    );
    store.end_session(&s.id).await.unwrap();
    store.touch_session(&s.id, at).await.unwrap();
    assert_eq!(
        store.find_session(&s.id).await.unwrap(),
        None,
        "not revived"
    );
}

pub async fn sessions_that_are_over_are_purged_and_open_ones_kept<S: Storage>(store: S) {
    let token = staff_token_hash();
    let user = user_with(&store, &token).await;
    let now = t0() + chrono::Duration::hours(12);
    let idle_since = now - chrono::Duration::hours(1);
    // Signed in at t0: its lifetime ends exactly now.
    let expired = session(user.id, &token, 0);
    // Last used exactly an hour ago: idle.
    let mut idle = session(user.id, &token, 60);
    idle.last_seen_at = idle_since;
    // Used a microsecond later, within its lifetime: open.
    let mut open = session(user.id, &token, 60);
    open.last_seen_at = idle_since + chrono::Duration::microseconds(1);
    for s in [&expired, &idle, &open] {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(store.purge_sessions(now, idle_since).await.unwrap(), 2);
    assert_eq!(store.sessions_of(user.id).await.unwrap(), [open]);
    assert_eq!(store.purge_sessions(now, idle_since).await.unwrap(), 0);
}

pub async fn a_login_is_found_by_its_email_and_setting_one_ends_the_users_sessions<S: Storage>(
    store: S,
) {
    let token = staff_token_hash();
    let user = user_with(&store, &token).await;
    let email = crate::contact::EmailAddress::parse("camille@example.org").unwrap();
    let hash = crate::password::PasswordHash::from_stored("$argon2id$v=19$first".into());
    let s = session(user.id, &token, 0);
    store.create_session(&s).await.unwrap();
    let mut by_password = session(user.id, &token, 1);
    by_password.credential = None;
    store.create_session(&by_password).await.unwrap();
    store
        .set_login(user.id, &email, &hash, t0() + mins(2), &[])
        .await
        .unwrap();
    assert_eq!(
        store.find_login(&email).await.unwrap(),
        Some((user.clone(), hash))
    );
    assert!(
        store.sessions_of(user.id).await.unwrap().is_empty(),
        "every session ended"
    );
    // A session without a token lives until it is ended.
    let mut fresh = session(user.id, &token, 3);
    fresh.credential = None;
    store.create_session(&fresh).await.unwrap();
    assert_eq!(
        store.find_session(&fresh.id).await.unwrap().map(|f| f.0),
        Some(fresh)
    );
    // A new password replaces the old one.
    let second = crate::password::PasswordHash::from_stored("$argon2id$v=19$second".into());
    store
        .set_login(user.id, &email, &second, t0() + mins(4), &[])
        .await
        .unwrap();
    assert_eq!(
        store.find_login(&email).await.unwrap().map(|f| f.1),
        Some(second)
    );
    // Rotating the token keeps the password; revoking without a replacement removes it.
    store
        .replace_tokens(user.id, Some(staff_token_hash()), t0() + mins(5), &[])
        .await
        .unwrap();
    assert!(store.find_login(&email).await.unwrap().is_some());
    store
        .replace_tokens(user.id, None, t0() + mins(6), &[])
        .await
        .unwrap();
    assert_eq!(store.find_login(&email).await.unwrap(), None);
    let unknown = crate::contact::EmailAddress::parse("nobody@example.org").unwrap();
    assert_eq!(store.find_login(&unknown).await.unwrap(), None);
}

pub async fn an_email_signs_in_one_user_and_an_unknown_user_gets_none<S: Storage>(store: S) {
    let (a_token, b_token) = (staff_token_hash(), staff_token_hash());
    let a = user_with(&store, &a_token).await;
    let b = user_with(&store, &b_token).await;
    let email = crate::contact::EmailAddress::parse("desk@example.org").unwrap();
    let hash = crate::password::PasswordHash::from_stored("$argon2id$v=19$a".into());
    store
        .set_login(a.id, &email, &hash, t0(), &[])
        .await
        .unwrap();
    let b_session = session(b.id, &b_token, 0);
    store.create_session(&b_session).await.unwrap();
    assert!(matches!(
        store.set_login(b.id, &email, &hash, t0(), &[]).await,
        Err(RepositoryError::Duplicate(_))
    ));
    assert!(
        store.find_session(&b_session.id).await.unwrap().is_some(),
        "nothing written"
    );
    assert_eq!(
        store.find_login(&email).await.unwrap().map(|f| f.0.id),
        Some(a.id)
    );
    assert!(matches!(
        store
            .set_login(UserId::from_uuid(new_uuid()), &email, &hash, t0(), &[])
            .await,
        Err(RepositoryError::NotFound)
    ));
}
