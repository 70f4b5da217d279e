//! The weekly digest's subscribers: stored with the workspace, read back exactly, changed only
//! from the version they were read at, apart from the budgets' and prices' versions; and the use
//! case that turns a person's digest on and off.

use super::*;
use llmtrack_shared::domain::ids::UserId;
use llmtrack_shared::ports::DigestSubscribers;
use llmtrack_shared::usecases::set_digest;

pub(crate) async fn digest_subscribers_change_only_from_the_version_read(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let read = |store: DynStore, ws: WorkspaceId| async move {
        store.workspace(&ws).await.unwrap().unwrap().digest
    };
    assert_eq!(
        read(store.clone(), ws.clone()).await,
        DigestSubscribers::default()
    );
    let (ann, bob) = (UserId::generate(now_ms()), UserId::generate(now_ms() + 1));

    let first = DigestSubscribers {
        version: 1,
        users: vec![ann.clone()],
    };
    assert!(store.set_digest(&ws, &first).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, first);

    // Two changes made from version 1: the first lands, the second is refused.
    let a = DigestSubscribers {
        version: 2,
        users: vec![ann.clone(), bob.clone()],
    };
    let b = DigestSubscribers {
        version: 2,
        users: vec![],
    };
    assert!(store.set_digest(&ws, &a).await.unwrap());
    assert!(!store.set_digest(&ws, &b).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    // A version skipped is refused too.
    let skip = DigestSubscribers { version: 4, ..b };
    assert!(!store.set_digest(&ws, &skip).await.unwrap());

    // Versioned apart from the budgets; renaming the workspace keeps them.
    let budgets = llmtrack_shared::domain::budget::WorkspaceBudgets {
        version: 1,
        items: vec![],
    };
    assert!(store.set_budgets(&ws, &budgets).await.unwrap());
    let mut renamed = store.workspace(&ws).await.unwrap().unwrap();
    renamed.name = "Acme Corp".into();
    assert!(store.update_workspace(&renamed).await.unwrap());
    let back = store.workspace(&ws).await.unwrap().unwrap();
    assert_eq!((&back.digest, &back.budgets), (&a, &budgets));

    // The use case: on twice is on once, off takes one person out, each change one version.
    assert!(set_digest(store.as_ref(), &ws, &bob, true).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    assert!(set_digest(store.as_ref(), &ws, &ann, false).await.unwrap());
    assert_eq!(
        read(store.clone(), ws.clone()).await,
        DigestSubscribers {
            version: 3,
            users: vec![bob.clone()],
        }
    );

    // Another workspace has nobody; no workspace, nothing to change.
    let other = new_workspace(&store, Plan::Pro).await;
    assert_eq!(
        read(store.clone(), other.clone()).await,
        DigestSubscribers::default()
    );
    let missing = WorkspaceId::generate(now_ms());
    assert!(!store.set_digest(&missing, &first).await.unwrap());
    assert!(
        !set_digest(store.as_ref(), &missing, &ann, true)
            .await
            .unwrap()
    );
}
