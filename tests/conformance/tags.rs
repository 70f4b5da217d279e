//! Cost-allocation tag keys: stored with the workspace and changed only from the version read;
//! two ingests that read the record before either admitted new values converge on one set of kept
//! values (the first 100 a key), each event counted under its value or `(other)` as that set
//! says; and tagged events fold into their key's view exactly as the events add up.

use super::*;
use llmtrack_shared::domain::tags::{MAX_TAG_VALUES, OTHER, TagKeys};
use llmtrack_shared::usecases::tag_events;

fn batch(customers: std::ops::Range<usize>, teams: &[&str]) -> Vec<Event> {
    let now = now_ms();
    let raw: Vec<_> = customers
        .enumerate()
        .map(|(i, c)| {
            json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2,
                   "timestamp": now - (i as i64) * 1_000,
                   "metadata": {"customer": format!("c{c:03}"), "team": teams[i % teams.len()]}})
        })
        .collect();
    validated(&raw, "production")
}

pub(crate) async fn tag_values_are_admitted_once_and_fold_into_their_views(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let keys = ["team", "customer"].map(str::to_owned);
    let declared = TagKeys::default()
        .declare(&keys, now_ms() - 3 * 3_600_000)
        .unwrap()
        .unwrap();
    assert!(store.set_tags(&ws, &declared).await.unwrap());
    // A change made from the version before is refused.
    assert!(!store.set_tags(&ws, &declared).await.unwrap());
    assert_eq!(store.workspace(&ws).await.unwrap().unwrap().tags, declared);

    // Two ingests with the record as it was declared: 60 and 80 customers, 20 in common.
    let (mut a, mut b) = (batch(0..60, &["a", "b"]), batch(40..120, &["b", "c"]));
    let (ra, rb) = tokio::join!(
        tag_events(store.as_ref(), &ws, &declared, &mut a),
        tag_events(store.as_ref(), &ws, &declared, &mut b),
    );
    ra.unwrap();
    rb.unwrap();
    let after = store.workspace(&ws).await.unwrap().unwrap().tags;
    let customer = after.get("customer").unwrap();
    assert_eq!(customer.values.len(), MAX_TAG_VALUES);
    assert!(customer.overflowed);
    let mut teams = after.get("team").unwrap().values.clone();
    teams.sort();
    assert_eq!(teams, ["a", "b", "c"]);
    // Every event is counted under its value if the record keeps it, else `(other)`.
    for e in a.iter().chain(&b) {
        let sent = e
            .metadata
            .iter()
            .find(|(k, _)| k == "customer")
            .map(|(_, v)| match v {
                event::MetaValue::String(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .unwrap();
        let counted = &e.tags.iter().find(|(s, _)| *s == customer.slot).unwrap().1;
        if customer.values.contains(&sent) {
            assert_eq!(*counted, sent);
        } else {
            assert_eq!(counted, OTHER);
        }
    }

    stored(store.ingest(&ws, &a, &quota(1_000)).await.unwrap());
    stored(store.ingest(&ws, &b, &quota(1_000)).await.unwrap());
    assert_rollups_match_events(store.as_ref(), &ws).await;
    let now = now_ms();
    let view = store
        .rollups(
            &ws,
            &View::of(customer.dimension()),
            hour_of(now) - 2,
            hour_of(now) + 1,
        )
        .await
        .unwrap();
    let mut by_value: std::collections::BTreeMap<String, u64> = Default::default();
    for (k, r) in view {
        *by_value.entry(k.value).or_default() += r.requests;
    }
    assert_eq!(by_value.values().sum::<u64>(), 140);
    assert_eq!(
        by_value.len(),
        MAX_TAG_VALUES + 1,
        "every kept value and (other)"
    );
    assert_eq!(by_value["c045"], 2, "a customer in both batches");
}
