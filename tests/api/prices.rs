//! Workspace prices through the API: an admin adds a negotiated discount and a price for an
//! in-house model, events are priced with them (after a sent cost, before the table), every
//! change is audited, bad rules are refused naming the field, and another workspace sees none.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::CostSource;
use llmtrack_shared::domain::ids::WorkspaceId;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn workspace_prices_price_new_events_and_every_change_is_audited() {
    let app = spawn_app().await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    let ingest = app.key(&id, Scope::Ingest, "production").await;
    let prices = format!("/v1/workspaces/{ws}/prices");

    let (status, empty) = owner.get(&prices).await;
    assert_eq!((status, &empty["rules"]), (200, &json!([])), "{empty}");

    // Refused, naming the field.
    for (body, field) in [
        (
            json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 120}),
            "percent",
        ),
        (
            json!({"provider": "openai", "model": "gpt-4o", "kind": "rates", "rates": {"input": -1, "output": 1}}),
            "rates.input",
        ),
        (
            json!({"provider": "openai", "model": "", "kind": "discount", "percent": 10}),
            "model",
        ),
        (
            json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 10,
                "effective_from": "2026-02-30"}),
            "effective_from",
        ),
    ] {
        let (status, err) = owner.post(&prices, body).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "invalid_price_rule", "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {err}"
        );
    }

    let (status, discount) = owner
        .post(
            &prices,
            json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 20,
                   "note": "Enterprise agreement"}),
        )
        .await;
    assert_eq!(status, 201, "{discount}");
    let discount_id = discount["id"].as_str().unwrap().to_owned();
    assert!(discount_id.starts_with("pr_"), "{discount}");
    let (status, own) = owner
        .post(
            &prices,
            json!({"provider": "acme", "model": "in-house-*", "kind": "rates",
                   "rates": {"input": 0.5, "output": 1.5}}),
        )
        .await;
    assert_eq!(status, 201, "{own}");

    let (status, body) = app
        .post_events(
            &ingest,
            &json!({"events": [
                // gpt-4o: 1,000 x $2.50/M + 200 x $10/M = $0.0045; 20% off: $0.0036.
                {"id": "a", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200},
                // 1,000 x $0.50/M + 200 x $1.50/M = $0.0008, and not unpriced any more.
                {"id": "b", "provider": "acme", "model": "in-house-7b", "input_tokens": 1000, "output_tokens": 200},
                // A sent cost still wins.
                {"id": "c", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.01},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["unpriced"], 0, "{body}");
    let stored = all_events(app.store.as_ref(), &id).await;
    let by_id = |i: &str| stored.iter().find(|e| e.id == i).unwrap();
    assert_eq!(by_id("a").cost_pico, Some(3_600_000_000));
    assert_eq!(by_id("a").cost_source, Some(CostSource::WorkspacePrice));
    assert_eq!(
        by_id("a").price.as_ref().unwrap().rule.as_deref(),
        Some(discount_id.as_str())
    );
    assert_eq!(by_id("b").cost_pico, Some(800_000_000));
    assert_eq!(by_id("c").cost_source, Some(CostSource::Client));
    assert_eq!(by_id("c").computed_cost_pico, Some(3_600_000_000));

    // Replaced (same id), then removed: events from then on are priced by the table again.
    let one = format!("{prices}/{discount_id}");
    let (status, replaced) = owner
        .send(
            "PUT",
            &one,
            Some(
                json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 50}),
            ),
        )
        .await;
    assert_eq!(
        (status, &replaced["id"]),
        (200, &json!(discount_id)),
        "{replaced}"
    );
    assert_eq!(owner.delete(&one).await.0, 204);
    assert_eq!(owner.delete(&one).await.0, 404);
    let (_, list) = owner.get(&prices).await;
    assert_eq!(list["rules"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["version"], 4, "{list}");
    app.post_events(
        &ingest,
        &json!({"id": "d", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200}),
    )
    .await;
    let stored = all_events(app.store.as_ref(), &id).await;
    let d = stored.iter().find(|e| e.id == "d").unwrap();
    assert_eq!(
        (d.cost_pico, d.cost_source),
        (Some(4_500_000_000), Some(CostSource::Table))
    );

    // Each change is in the audit log, with what it was.
    let (_, audit) = owner.get(&format!("/v1/workspaces/{ws}/audit")).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("price."))
        .collect();
    assert_eq!(
        actions,
        [
            "price.deleted",
            "price.updated",
            "price.created",
            "price.created"
        ],
        "{audit}"
    );
    let created = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "price.updated")
        .unwrap();
    assert!(
        created["target"].as_str().unwrap().contains("50% off"),
        "{created}"
    );

    // Another workspace's rule ids are not found here, and its members see none of these.
    let other = app.sign_in("other@example.com").await;
    assert_eq!(other.get(&prices).await.0, 404);
    let (_, theirs) = other.post("/v1/workspaces", json!({"name": "Other"})).await;
    let own_id = own["id"].as_str().unwrap();
    let theirs = theirs["id"].as_str().unwrap();
    assert_eq!(
        other
            .delete(&format!("/v1/workspaces/{theirs}/prices/{own_id}"))
            .await
            .0,
        404
    );
}
