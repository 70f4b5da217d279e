//! The storage operations behind accounts, members, keys with limits and the audit log.

use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{
    CodeCheck, Email, Invitation, LoginCode, Membership, Session, User, code_hash,
};
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{DynStore, Refusal, StoreError};

use super::new_workspace;
use super::support::now_ms;

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

async fn user(store: &DynStore, address: &str) -> User {
    store
        .upsert_user(&User {
            id: UserId::generate(now_ms()),
            email: email(address),
            created_ms: now_ms(),
            reports_opt_out: false,
        })
        .await
        .unwrap()
}

pub async fn users_codes_and_sessions(store: DynStore) {
    let ada = user(&store, "ada@example.com").await;
    // The same email is the same user.
    let again = user(&store, "ada@example.com").await;
    assert_eq!(again.id, ada.id);
    assert_eq!(store.user(&ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store
            .user_by_email(&email("ada@example.com"))
            .await
            .unwrap(),
        Some(ada.clone())
    );
    assert_eq!(
        store
            .user_by_email(&email("nobody@example.com"))
            .await
            .unwrap(),
        None
    );

    let now = now_ms();
    let e = email("ada@example.com");
    let code = LoginCode {
        email: e.clone(),
        hash: code_hash(&e, "123456"),
        expires_ms: now + 600_000,
        attempts: 0,
    };
    store.put_login_code(&code).await.unwrap();
    assert_eq!(
        store
            .check_login_code(&e, &code_hash(&e, "999999"), now)
            .await
            .unwrap(),
        CodeCheck::Wrong
    );
    assert_eq!(
        store
            .check_login_code(&e, &code.hash, now + 700_000)
            .await
            .unwrap(),
        CodeCheck::Missing,
        "expired"
    );
    assert_eq!(
        store.check_login_code(&e, &code.hash, now).await.unwrap(),
        CodeCheck::Valid
    );
    assert_eq!(
        store.check_login_code(&e, &code.hash, now).await.unwrap(),
        CodeCheck::Missing,
        "used up"
    );
    store.put_login_code(&code).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            store
                .check_login_code(&e, &code_hash(&e, "000000"), now)
                .await
                .unwrap(),
            CodeCheck::Wrong
        );
    }
    assert_eq!(
        store.check_login_code(&e, &code.hash, now).await.unwrap(),
        CodeCheck::Missing,
        "void after 5 wrong tries"
    );

    for n in 1..=3 {
        assert_eq!(
            store
                .hit_rate_limit("code:ada", 1_000, 900_000, 1)
                .await
                .unwrap(),
            n
        );
    }
    assert_eq!(
        store
            .hit_rate_limit("code:ada", 901_000, 900_000, 1)
            .await
            .unwrap(),
        1,
        "a new window"
    );
    // Looking counts nothing; several hits count at once.
    for _ in 0..2 {
        assert_eq!(
            store
                .hit_rate_limit("code:ada", 901_000, 900_000, 0)
                .await
                .unwrap(),
            1
        );
    }
    assert_eq!(
        store
            .hit_rate_limit("code:ada", 901_000, 900_000, 3)
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        store
            .hit_rate_limit("nobody-yet", 901_000, 900_000, 0)
            .await
            .unwrap(),
        0
    );

    let sessions: Vec<Session> = (0..2)
        .map(|i| Session {
            hash: format!("{i:064}"),
            user_id: ada.id.clone(),
            created_ms: now,
            expires_ms: now + 1_000,
        })
        .collect();
    for s in &sessions {
        store.create_session(s).await.unwrap();
    }
    assert_eq!(
        store.session(&sessions[0].hash).await.unwrap(),
        Some(sessions[0].clone())
    );
    store.delete_session(&sessions[0].hash).await.unwrap();
    assert_eq!(store.session(&sessions[0].hash).await.unwrap(), None);
    assert_eq!(store.delete_user_sessions(&ada.id).await.unwrap(), 1);
    assert_eq!(store.session(&sessions[1].hash).await.unwrap(), None);
}

pub async fn members_keep_an_owner_and_their_limit(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let m = |u: &User, role| Membership {
        workspace_id: ws.clone(),
        user_id: u.id.clone(),
        email: u.email.clone(),
        role,
        since_ms: now_ms(),
    };
    store.add_member(&m(&ada, Role::Owner), 2).await.unwrap();
    store.add_member(&m(&bob, Role::Viewer), 2).await.unwrap();
    let cy = user(&store, "cy@example.com").await;
    assert!(matches!(
        store.add_member(&m(&cy, Role::Viewer), 2).await,
        Err(StoreError::Refused(Refusal::MemberLimit))
    ));
    assert_eq!(store.members(&ws).await.unwrap().len(), 2);
    assert_eq!(
        store.memberships(&ada.id).await.unwrap()[0].role,
        Role::Owner
    );

    // The only owner can be neither demoted nor removed; with a second owner, both work.
    assert!(matches!(
        store.set_role(&ws, &ada.id, Role::Admin).await,
        Err(StoreError::Refused(Refusal::LastOwner))
    ));
    assert!(matches!(
        store.remove_member(&ws, &ada.id).await,
        Err(StoreError::Refused(Refusal::LastOwner))
    ));
    assert!(store.set_role(&ws, &bob.id, Role::Owner).await.unwrap());
    assert!(store.set_role(&ws, &ada.id, Role::Viewer).await.unwrap());
    assert!(matches!(
        store.remove_member(&ws, &bob.id).await,
        Err(StoreError::Refused(Refusal::LastOwner))
    ));
    assert!(store.remove_member(&ws, &ada.id).await.unwrap());
    assert_eq!(store.member(&ws, &ada.id).await.unwrap(), None);
    assert!(store.memberships(&ada.id).await.unwrap().is_empty());
    // A freed place can be taken again.
    store.add_member(&m(&cy, Role::Admin), 2).await.unwrap();
    assert!(
        !store
            .set_role(&ws, &UserId::generate(now_ms()), Role::Admin)
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_member(&ws, &UserId::generate(now_ms()))
            .await
            .unwrap()
    );

    let inv = Invitation {
        id: InvitationId::generate(now_ms()),
        workspace_id: ws.clone(),
        email: email("dee@example.com"),
        role: Role::Viewer,
        invited_by: bob.id.clone(),
        created_ms: now_ms(),
        expires_ms: now_ms() + 1_000,
    };
    store.create_invitation(&inv).await.unwrap();
    assert_eq!(
        store.invitation(&ws, &inv.id).await.unwrap(),
        Some(inv.clone())
    );
    assert_eq!(store.invitations(&ws).await.unwrap(), vec![inv.clone()]);
    let other = new_workspace(&store, Plan::Pro).await;
    assert_eq!(
        store.invitation(&other, &inv.id).await.unwrap(),
        None,
        "invitations are per workspace"
    );
    assert!(store.delete_invitation(&ws, &inv.id).await.unwrap());
    assert!(store.invitations(&ws).await.unwrap().is_empty());
}

pub async fn active_keys_stay_within_the_limit(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let key = |ws: &WorkspaceId| {
        let raw = RawKey::generate();
        ApiKey {
            id: KeyId::generate(now_ms()),
            workspace_id: ws.clone(),
            name: "k".into(),
            source: "production".into(),
            scope: Scope::Ingest,
            state: KeyState::Active,
            hash: raw.hash(),
            prefix: raw.display_prefix(),
            created_ms: now_ms(),
            created_by: Some("ada@example.com".into()),
            last_used_ms: None,
        }
    };
    let (a, b, c) = (key(&ws), key(&ws), key(&ws));
    store.create_key(&a, 2).await.unwrap();
    store.create_key(&b, 2).await.unwrap();
    assert!(matches!(
        store.create_key(&c, 2).await,
        Err(StoreError::Refused(Refusal::KeyLimit))
    ));
    assert!(
        store
            .set_key_state(&ws, &a.id, KeyState::Deactivated, 2)
            .await
            .unwrap()
    );
    store.create_key(&c, 2).await.unwrap();
    assert!(matches!(
        store.set_key_state(&ws, &a.id, KeyState::Active, 2).await,
        Err(StoreError::Refused(Refusal::KeyLimit))
    ));
    assert!(store.delete_key(&ws, &b.id).await.unwrap());
    assert!(
        store
            .set_key_state(&ws, &a.id, KeyState::Active, 2)
            .await
            .unwrap()
    );
    let mut keys = store.keys(&ws).await.unwrap();
    keys.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.state == KeyState::Active));
    assert_eq!(keys[0].created_by.as_deref(), Some("ada@example.com"));
}

pub async fn audit_pages_newest_first(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let other = new_workspace(&store, Plan::Free).await;
    for i in 0..7 {
        let e = AuditEntry::new(
            &ws,
            now_ms() + i,
            "usr_x",
            Some("ada@example.com"),
            &format!("a{i}"),
            Some(format!("t{i}")),
            Some("127.0.0.1"),
        );
        store.append_audit(&e).await.unwrap();
    }
    store
        .append_audit(&AuditEntry::new(
            &other,
            now_ms(),
            "cli",
            None,
            "elsewhere",
            None,
            None,
        ))
        .await
        .unwrap();
    let first = store.audit(&ws, None, 4).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["a6", "a5", "a4", "a3"]
    );
    assert_eq!(first[0].ip.as_deref(), Some("127.0.0.1"));
    let rest = store.audit(&ws, Some(&first[3].id), 4).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["a2", "a1", "a0"]
    );
}
