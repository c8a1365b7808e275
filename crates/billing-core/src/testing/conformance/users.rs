use std::collections::BTreeSet;

use crate::access::{Role, StaffUser};
use crate::audit::{AuditAction, AuditActor, AuditEntry, AuditLog};
use crate::ids::{EventId, PractitionerId, UserId};
use crate::money::Currency;
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::practitioner::ports::PractitionerRepository;
use crate::repository::RepositoryError;

use super::fixtures::*;
use crate::Storage;

fn new_practitioner() -> Practitioner {
    Practitioner::new(
        PractitionerId::from_uuid(new_uuid()),
        name("Dr Camille Martin"),
        "America/Montreal".parse::<TimeZone>().unwrap(),
        Currency::Cad,
        t0(),
    )
}

pub async fn a_fresh_database_has_no_user<S: Storage>(store: S) {
    assert_eq!(store.count().await.unwrap(), 0);
}

pub async fn a_practitioners_user_shares_their_id_and_is_found_by_token_hash<S: Storage>(store: S) {
    let p = new_practitioner();
    let token = staff_token_hash();
    store
        .create_practitioner(&p, &token, &audit(p.id, AuditAction::UserCreated, t0()))
        .await
        .unwrap();
    assert_eq!(PractitionerRepository::get(&store, p.id).await.unwrap(), p);
    assert_eq!(
        store.find_by_token(&token).await.unwrap(),
        Some(StaffUser {
            id: UserId::from_uuid(p.id.as_uuid()),
            name: "Dr Camille Martin".into(),
            role: Role::Practitioner(p.id),
        })
    );
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(
        store.find_by_token(&staff_token_hash()).await.unwrap(),
        None
    );
    assert_eq!(
        AuditLog::recent(&store, p.id, 10).await.unwrap()[0].action,
        AuditAction::UserCreated
    );
}

pub async fn a_secretary_works_for_each_of_their_practitioners<S: Storage>(store: S) {
    let a = practitioner(&store).await;
    let b = practitioner(&store).await;
    let user = secretary(&[a.id, b.id]);
    let token = staff_token_hash();
    store
        .create_secretary(
            &user,
            &token,
            t0(),
            &audit(a.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let found = store.find_by_token(&token).await.unwrap().unwrap();
    assert_eq!(found, user);
    assert_eq!(found.role, Role::Secretary(BTreeSet::from([a.id, b.id])));
    assert_eq!(store.count().await.unwrap(), 3);
}

pub async fn a_secretary_of_an_unknown_practitioner_is_not_found_and_nothing_is_written<
    S: Storage,
>(
    store: S,
) {
    let a = practitioner(&store).await;
    let user = secretary(&[a.id, PractitionerId::from_uuid(new_uuid())]);
    let token = staff_token_hash();
    let err = store
        .create_secretary(
            &user,
            &token,
            t0(),
            &audit(a.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound), "{err:?}");
    assert_eq!(store.find_by_token(&token).await.unwrap(), None);
    assert_eq!(
        store.count().await.unwrap(),
        1,
        "only the practitioner's user"
    );
}

pub async fn a_reused_token_hash_is_a_duplicate_and_the_practitioner_is_not_created<S: Storage>(
    store: S,
) {
    let first = new_practitioner();
    let token = staff_token_hash();
    store
        .create_practitioner(
            &first,
            &token,
            &audit(first.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let second = new_practitioner();
    let err = store
        .create_practitioner(
            &second,
            &token,
            &audit(second.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
    assert!(matches!(
        PractitionerRepository::get(&store, second.id).await,
        Err(RepositoryError::NotFound)
    ));
    assert_eq!(store.count().await.unwrap(), 1);

    let err = store
        .create_secretary(
            &secretary(&[first.id]),
            &token,
            t0(),
            &audit(first.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
    assert_eq!(store.count().await.unwrap(), 1);
}

pub async fn a_reused_practitioner_or_user_id_is_a_duplicate<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let err = store
        .create_practitioner(
            &p,
            &staff_token_hash(),
            &audit(p.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
    let s = secretary(&[p.id]);
    store
        .create_secretary(
            &s,
            &staff_token_hash(),
            t0(),
            &audit(p.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let err = store
        .create_secretary(
            &s,
            &staff_token_hash(),
            t0(),
            &audit(p.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
}

pub async fn the_audit_trail_reads_back_newest_first_per_practitioner<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let other = practitioner(&store).await;
    let actors = [
        AuditActor::User(UserId::from_uuid(new_uuid())),
        AuditActor::Patient,
        AuditActor::Stripe(Some(EventId::parse("evt_1").unwrap())),
        AuditActor::Stripe(None),
        AuditActor::System,
    ];
    let mut written = Vec::new();
    for (i, actor) in actors.into_iter().enumerate() {
        let minute = i64::try_from(i).unwrap();
        let entry = AuditEntry::new(t0() + mins(minute), p.id, actor, AuditAction::ALL[i])
            .subject(new_uuid())
            .detail(format!("18.0{i} EUR"));
        store.append(&entry).await.unwrap();
        written.push(entry);
    }
    // Two entries at the same instant come back in reverse order of writing.
    let twin = AuditEntry::new(
        t0() + mins(4),
        p.id,
        AuditActor::System,
        AuditAction::Expired,
    );
    store.append(&twin).await.unwrap();
    written.push(twin);
    store
        .append(&audit(other.id, AuditAction::Refunded, t0() + mins(9)))
        .await
        .unwrap();

    let recent = AuditLog::recent(&store, p.id, 3).await.unwrap();
    let mut newest_first: Vec<_> = written.iter().rev().cloned().collect();
    newest_first.truncate(3);
    assert_eq!(recent, newest_first);
    let everything = AuditLog::recent(&store, p.id, 100).await.unwrap();
    assert_eq!(
        everything.len(),
        written.len() + 1,
        "and the user's creation"
    );
}

pub async fn an_audit_entry_about_an_unknown_practitioner_is_not_found<S: Storage>(store: S) {
    let ghost = PractitionerId::from_uuid(new_uuid());
    assert!(matches!(
        store
            .append(&audit(ghost, AuditAction::Expired, t0()))
            .await,
        Err(RepositoryError::NotFound)
    ));
}

fn user_of(p: &Practitioner) -> UserId {
    UserId::from_uuid(p.id.as_uuid())
}

pub async fn replacing_tokens_revokes_every_live_one_and_the_replacement_signs_in<S: Storage>(
    store: S,
) {
    let p = new_practitioner();
    let (first, second) = (staff_token_hash(), staff_token_hash());
    store
        .create_practitioner(&p, &first, &audit(p.id, AuditAction::UserCreated, t0()))
        .await
        .unwrap();
    let s = secretary(&[p.id]);
    let theirs = staff_token_hash();
    store
        .create_secretary(
            &s,
            &theirs,
            t0(),
            &audit(p.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();

    let rotated = audit(p.id, AuditAction::TokenRotated, t0() + mins(1));
    let revoked = store
        .replace_tokens(
            user_of(&p),
            Some(second.clone()),
            t0() + mins(1),
            &[rotated],
        )
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    assert_eq!(store.find_by_token(&first).await.unwrap(), None);
    assert_eq!(
        store.find_by_token(&second).await.unwrap().map(|u| u.id),
        Some(user_of(&p))
    );
    assert_eq!(
        store.find_by_token(&theirs).await.unwrap(),
        Some(s.clone()),
        "another user's token is untouched"
    );
    assert_eq!(
        AuditLog::recent(&store, p.id, 1).await.unwrap()[0].action,
        AuditAction::TokenRotated
    );

    // Revoking without a replacement locks the user out; doing it again revokes nothing.
    let lock = [audit(p.id, AuditAction::TokensRevoked, t0() + mins(2))];
    assert_eq!(
        store
            .replace_tokens(user_of(&p), None, t0() + mins(2), &lock)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.find_by_token(&second).await.unwrap(), None);
    assert_eq!(
        store
            .replace_tokens(user_of(&p), None, t0() + mins(3), &lock)
            .await
            .unwrap(),
        0
    );
    // A revoked hash stays taken: it can never sign in again.
    let err = store
        .replace_tokens(user_of(&p), Some(first), t0() + mins(4), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
}

pub async fn replacing_tokens_of_an_unknown_user_or_with_a_taken_hash_writes_nothing<S: Storage>(
    store: S,
) {
    let err = store
        .replace_tokens(
            UserId::from_uuid(new_uuid()),
            Some(staff_token_hash()),
            t0(),
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound), "{err:?}");

    let p = new_practitioner();
    let mine = staff_token_hash();
    store
        .create_practitioner(&p, &mine, &audit(p.id, AuditAction::UserCreated, t0()))
        .await
        .unwrap();
    let s = secretary(&[p.id]);
    let theirs = staff_token_hash();
    store
        .create_secretary(
            &s,
            &theirs,
            t0(),
            &audit(p.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let err = store
        .replace_tokens(
            user_of(&p),
            Some(theirs.clone()),
            t0() + mins(1),
            &[audit(p.id, AuditAction::TokenRotated, t0() + mins(1))],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Duplicate(_)), "{err:?}");
    assert!(
        store.find_by_token(&mine).await.unwrap().is_some(),
        "the revocation rolled back with the failed insert"
    );
    assert_eq!(store.find_by_token(&theirs).await.unwrap(), Some(s));
    assert_eq!(
        AuditLog::recent(&store, p.id, 1).await.unwrap()[0].action,
        AuditAction::UserCreated
    );
}

pub async fn users_are_read_by_id_and_listed_oldest_first_with_their_live_tokens<S: Storage>(
    store: S,
) {
    let a = new_practitioner();
    store
        .create_practitioner(
            &a,
            &staff_token_hash(),
            &audit(a.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let mut b = new_practitioner();
    b.created_at = t0() + mins(1);
    store
        .create_practitioner(
            &b,
            &staff_token_hash(),
            &audit(b.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let s = secretary(&[b.id, a.id]);
    store
        .create_secretary(
            &s,
            &staff_token_hash(),
            t0() + mins(2),
            &audit(a.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    store
        .replace_tokens(user_of(&b), None, t0() + mins(3), &[])
        .await
        .unwrap();

    assert_eq!(store.get_user(s.id).await.unwrap(), s);
    assert_eq!(
        store.get_user(user_of(&a)).await.unwrap().role,
        Role::Practitioner(a.id)
    );
    assert!(matches!(
        store.get_user(UserId::from_uuid(new_uuid())).await,
        Err(RepositoryError::NotFound)
    ));

    let listed = store.list_users().await.unwrap();
    let seen: Vec<_> = listed
        .iter()
        .map(|r| (r.user.clone(), r.created_at, r.live_tokens))
        .collect();
    assert_eq!(
        seen,
        [
            (store.get_user(user_of(&a)).await.unwrap(), t0(), 1),
            (
                store.get_user(user_of(&b)).await.unwrap(),
                t0() + mins(1),
                0
            ),
            (s, t0() + mins(2), 1),
        ]
    );
}

pub async fn personal_tokens_are_added_listed_newest_first_touched_and_revoked_one_by_one<
    S: Storage,
>(
    store: S,
) {
    use crate::staff::AccessToken;
    let p = new_practitioner();
    let first = staff_token_hash();
    store
        .create_practitioner(&p, &first, &audit(p.id, AuditAction::UserCreated, t0()))
        .await
        .unwrap();
    let user = UserId::from_uuid(p.id.as_uuid());
    let token = |name: &str, minute: i64| AccessToken {
        id: staff_token_hash(),
        name: Some(name.into()),
        created_at: t0() + mins(minute),
        last_used_at: None,
    };
    let ci = token("CI", 5);
    let laptop = token("Laptop", 10);
    let entry = audit(p.id, AuditAction::TokenCreated, t0() + mins(5));
    store
        .add_token(user, &ci, std::slice::from_ref(&entry))
        .await
        .unwrap();
    store.add_token(user, &laptop, &[]).await.unwrap();
    assert!(matches!(
        store
            .add_token(UserId::from_uuid(new_uuid()), &token("Ghost", 1), &[])
            .await,
        Err(RepositoryError::NotFound)
    ));
    let mut dup = token("Dup", 1);
    dup.id = ci.id.clone();
    assert!(matches!(
        store.add_token(user, &dup, &[]).await,
        Err(RepositoryError::Duplicate(_))
    ));
    let listed = store.tokens_of(user).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(&listed[..2], [laptop.clone(), ci.clone()], "newest first");
    assert_eq!(
        (listed[2].id.clone(), listed[2].name.clone()),
        (first.clone(), None)
    );
    assert_eq!(
        store.find_by_token(&ci.id).await.unwrap().map(|u| u.id),
        Some(user)
    );
    let used = t0() + mins(20) + chrono::Duration::microseconds(3);
    store.touch_token(&ci.id, used).await.unwrap();
    store.touch_token(&staff_token_hash(), used).await.unwrap();
    let touched = store.tokens_of(user).await.unwrap();
    assert_eq!(touched[1].last_used_at, Some(used));
    // Revoked one by one, by its holder only.
    let other = new_practitioner();
    let theirs = staff_token_hash();
    store
        .create_practitioner(
            &other,
            &theirs,
            &audit(other.id, AuditAction::UserCreated, t0()),
        )
        .await
        .unwrap();
    let stranger = UserId::from_uuid(other.id.as_uuid());
    assert!(
        !store
            .revoke_token(stranger, &ci.id, t0(), &[])
            .await
            .unwrap()
    );
    let revoked = audit(p.id, AuditAction::TokenRevoked, t0() + mins(30));
    assert!(
        store
            .revoke_token(
                user,
                &ci.id,
                t0() + mins(30),
                std::slice::from_ref(&revoked)
            )
            .await
            .unwrap()
    );
    assert!(
        !store.revoke_token(user, &ci.id, t0(), &[]).await.unwrap(),
        "once"
    );
    assert_eq!(store.find_by_token(&ci.id).await.unwrap(), None);
    assert!(store.find_by_token(&laptop.id).await.unwrap().is_some());
    assert_eq!(store.tokens_of(user).await.unwrap().len(), 2);
    let trail = AuditLog::recent(&store, p.id, 10).await.unwrap();
    assert_eq!(&trail[..2], [revoked, entry]);
}
