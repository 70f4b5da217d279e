//! Stripe's webhook events, read to the few fields billing uses: `parse_event` turns a delivery's
//! body into a `StripeEvent`, or into an `EventError` naming the field that is wrong (a 400).
//! Both the API shapes before and after 2025-03-31 are read.

use serde::{Deserialize, Deserializer};

/// A Stripe event, parsed to the fields we use. Unknown fields are ignored, so a newer Stripe API
/// version does not break the webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct StripeEvent {
    /// `evt_...`: processed once.
    pub id: String,
    /// e.g. `customer.subscription.updated`.
    pub kind: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub object: EventObject,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventObject {
    /// `checkout.session.completed`: `data.object` is a Checkout Session.
    CheckoutSession {
        customer: Option<String>,
        subscription: Option<String>,
        /// We set it to the workspace id.
        client_reference_id: Option<String>,
        /// `metadata.plan`, set by us at checkout.
        plan: Option<String>,
    },
    /// `customer.subscription.*`: a Subscription.
    Subscription {
        id: String,
        customer: String,
        status: String,
        /// Every `items.data[].price.id`.
        price_ids: Vec<String>,
        /// Seconds: the subscription's `current_period_end`, or (API 2025-03-31 and later)
        /// the latest `items.data[].current_period_end`.
        current_period_end: Option<i64>,
        cancel_at_period_end: bool,
        /// `metadata.workspace`, set by us at checkout.
        workspace: Option<String>,
    },
    /// `invoice.*`: an Invoice.
    Invoice {
        customer: String,
        /// `subscription`, or (API 2025-03-31 and later) `parent.subscription_details.subscription`.
        subscription: Option<String>,
    },
    /// Any other object: the event is acknowledged and ignored.
    Other,
}

/// Why a delivery's body is not a Stripe event (a 400): what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// The value at `at` is not of its type.
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{0} must be {1}")]
    Not(&'static str, &'static str),
}

/// Parses a delivery's body. `Err` says what is wrong (a 400).
pub fn parse_event(body: &[u8]) -> Result<StripeEvent, EventError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw: RawEvent = serde_path_to_error::deserialize(&mut de).map_err(|e| describe(e, ""))?;
    de.end().map_err(|e| EventError::NotJson(e.to_string()))?;

    let id = required_str(raw.id, "id")?;
    let kind = required_str(raw.kind, "type")?;
    let created = required(raw.created, "created")?;
    let object = required(required(raw.data, "data")?.object, "data.object")?;
    let Some(fields) = object.as_object() else {
        return Err(EventError::Not("data.object", "an object"));
    };
    let object_kind = match fields.get("object") {
        None | Some(serde_json::Value::Null) => {
            return Err(EventError::Missing("data.object.object"));
        }
        Some(serde_json::Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(EventError::Not("data.object.object", "a string")),
    };

    let object = match object_kind {
        "checkout.session" => {
            let session: RawCheckoutSession = from_object(&object)?;
            EventObject::CheckoutSession {
                customer: session.customer.map(|c| c.0),
                subscription: session.subscription.map(|s| s.0),
                client_reference_id: session.client_reference_id,
                plan: session.metadata.and_then(|m| m.plan),
            }
        }
        "subscription" => {
            let sub: RawSubscription = from_object(&object)?;
            let items = sub.items.and_then(|i| i.data).unwrap_or_default();
            let items_period_end = items.iter().filter_map(|i| i.current_period_end).max();
            EventObject::Subscription {
                id: required_str(sub.id, "data.object.id")?,
                customer: required_str(sub.customer.map(|c| c.0), "data.object.customer")?,
                status: required(sub.status, "data.object.status")?,
                price_ids: items
                    .into_iter()
                    .filter_map(|i| i.price.map(|p| p.0))
                    .collect(),
                current_period_end: sub.current_period_end.or(items_period_end),
                cancel_at_period_end: sub.cancel_at_period_end.unwrap_or(false),
                workspace: sub.metadata.and_then(|m| m.workspace),
            }
        }
        "invoice" => {
            let invoice: RawInvoice = from_object(&object)?;
            let parent_subscription = invoice
                .parent
                .and_then(|p| p.subscription_details)
                .and_then(|d| d.subscription);
            EventObject::Invoice {
                customer: required_str(invoice.customer.map(|c| c.0), "data.object.customer")?,
                subscription: invoice.subscription.or(parent_subscription).map(|s| s.0),
            }
        }
        _ => EventObject::Other,
    };
    Ok(StripeEvent {
        id,
        kind,
        created,
        object,
    })
}

// The shapes below read only what we use. Every field is optional at this level so a missing
// one is reported by its path ("data.object.customer is missing") rather than serde's
// "missing field" at the parent; wrong types are reported by serde_path_to_error.

#[derive(Deserialize)]
#[serde(expecting = "a Stripe event object")]
struct RawEvent {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    created: Option<i64>,
    data: Option<RawData>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object with the event's object")]
struct RawData {
    object: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a Checkout Session")]
struct RawCheckoutSession {
    customer: Option<IdRef>,
    subscription: Option<IdRef>,
    client_reference_id: Option<String>,
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
#[serde(expecting = "a Subscription")]
struct RawSubscription {
    id: Option<String>,
    customer: Option<IdRef>,
    status: Option<String>,
    items: Option<RawList<RawSubscriptionItem>>,
    current_period_end: Option<i64>,
    cancel_at_period_end: Option<bool>,
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
#[serde(expecting = "a list object")]
struct RawList<T> {
    data: Option<Vec<T>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a subscription item")]
struct RawSubscriptionItem {
    price: Option<IdRef>,
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
#[serde(expecting = "an Invoice")]
struct RawInvoice {
    customer: Option<IdRef>,
    subscription: Option<IdRef>,
    parent: Option<RawInvoiceParent>,
}

#[derive(Deserialize)]
#[serde(expecting = "an invoice parent")]
struct RawInvoiceParent {
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
#[serde(expecting = "subscription details")]
struct RawSubscriptionDetails {
    subscription: Option<IdRef>,
}

#[derive(Deserialize)]
#[serde(expecting = "a metadata object")]
struct RawMetadata {
    plan: Option<String>,
    workspace: Option<String>,
}

/// A reference to another Stripe object: its id, or the object itself when expanded.
struct IdRef(String);

impl<'de> Deserialize<'de> for IdRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IdRef, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(id) => Ok(IdRef(id)),
            serde_json::Value::Object(fields) => match fields.get("id") {
                Some(serde_json::Value::String(id)) => Ok(IdRef(id.clone())),
                _ => Err(D::Error::custom("an expanded object without a string `id`")),
            },
            _ => Err(D::Error::custom(
                "expected an id string or an expanded object with an `id`",
            )),
        }
    }
}

fn from_object<T: for<'de> Deserialize<'de>>(object: &serde_json::Value) -> Result<T, EventError> {
    serde_path_to_error::deserialize(object).map_err(|e| describe(e, "data.object."))
}

/// Names the path of a deserialization error: `prefix` is where the deserialized value sits.
fn describe(err: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> EventError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return EventError::NotJson(inner.to_string());
    }
    let at = match (path.as_str(), prefix.strip_suffix('.')) {
        (".", None) => "the body".to_owned(),
        (".", Some(parent)) => parent.to_owned(),
        (path, _) => format!("{prefix}{path}"),
    };
    EventError::Invalid {
        at,
        reason: inner.to_string(),
    }
}

fn required<T>(value: Option<T>, path: &'static str) -> Result<T, EventError> {
    value.ok_or(EventError::Missing(path))
}

/// An identifier or name: empty is as good as missing, and would collide as a key.
fn required_str(value: Option<String>, path: &'static str) -> Result<String, EventError> {
    match required(value, path)? {
        s if s.is_empty() => Err(EventError::Empty(path)),
        s => Ok(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::WorkspaceId;

    fn ws() -> WorkspaceId {
        WorkspaceId::parse("ws_01jgz5k8n3q4r5s6t7v8w9x0yz").unwrap()
    }

    /// A `checkout.session.completed` for the workspace `ws()`.
    const CHECKOUT_COMPLETED: &str = include_str!("fixtures/checkout_session_completed.json");

    /// A `customer.subscription.updated` from before API 2025-03-31.
    const SUBSCRIPTION_UPDATED_OLD: &str =
        include_str!("fixtures/customer_subscription_updated_2024-06-20.json");

    /// The same event from API 2025-03-31 on: the period lives on the items.
    const SUBSCRIPTION_UPDATED_NEW: &str =
        include_str!("fixtures/customer_subscription_updated_2025-03-31.json");

    const INVOICE_FAILED_OLD: &str =
        include_str!("fixtures/invoice_payment_failed_2024-06-20.json");

    const INVOICE_FAILED_NEW: &str =
        include_str!("fixtures/invoice_payment_failed_2025-03-31.json");

    fn parse(body: &str) -> StripeEvent {
        parse_event(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(body: &str) -> String {
        match parse_event(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(event) => panic!("{body} parsed as {event:?}"),
        }
    }

    #[test]
    fn parses_checkout_session_completed() {
        let event = parse(CHECKOUT_COMPLETED);
        assert_eq!(event.id, "evt_1QcheckoutAAAA");
        assert_eq!(event.kind, "checkout.session.completed");
        assert_eq!(event.created, 1_735_689_600);
        assert_eq!(
            event.object,
            EventObject::CheckoutSession {
                customer: Some("cus_RAAA".into()),
                subscription: Some("sub_1AAA".into()),
                client_reference_id: Some(ws().to_string()),
                plan: Some("pro".into()),
            }
        );
    }

    #[test]
    fn parses_a_checkout_session_without_customer_or_metadata() {
        let body = include_str!("fixtures/checkout_session_completed_bare.json");
        assert_eq!(
            parse(body).object,
            EventObject::CheckoutSession {
                customer: None,
                subscription: Some("sub_X".into()),
                client_reference_id: None,
                plan: None,
            }
        );
    }

    #[test]
    fn parses_subscription_updated_in_the_old_shape() {
        let event = parse(SUBSCRIPTION_UPDATED_OLD);
        assert_eq!(event.kind, "customer.subscription.updated");
        assert_eq!(
            event.object,
            EventObject::Subscription {
                id: "sub_1AAA".into(),
                customer: "cus_RAAA".into(),
                status: "active".into(),
                price_ids: vec!["price_team".into()],
                current_period_end: Some(1_738_368_000),
                cancel_at_period_end: true,
                workspace: Some("ws_01jgz5k8n3q4r5s6t7v8w9x0yz".into()),
            }
        );
    }

    #[test]
    fn parses_subscription_updated_in_the_new_shape() {
        assert_eq!(
            parse(SUBSCRIPTION_UPDATED_NEW).object,
            EventObject::Subscription {
                id: "sub_1AAA".into(),
                customer: "cus_RAAA".into(),
                status: "past_due".into(),
                price_ids: vec!["price_addon".into(), "price_pro".into()],
                // The latest of the items'.
                current_period_end: Some(1_738_454_400),
                cancel_at_period_end: false,
                workspace: None,
            }
        );
    }

    #[test]
    fn parses_a_minimal_subscription_with_defaults() {
        let body = include_str!("fixtures/customer_subscription_created_minimal.json");
        assert_eq!(
            parse(body).object,
            EventObject::Subscription {
                id: "sub_1".into(),
                customer: "cus_1".into(),
                status: "incomplete".into(),
                price_ids: vec![],
                current_period_end: None,
                cancel_at_period_end: false,
                workspace: None,
            }
        );
    }

    #[test]
    fn parses_invoice_payment_failed_in_the_old_shape() {
        let event = parse(INVOICE_FAILED_OLD);
        assert_eq!(event.kind, "invoice.payment_failed");
        assert_eq!(
            event.object,
            EventObject::Invoice {
                customer: "cus_RAAA".into(),
                subscription: Some("sub_1AAA".into()),
            }
        );
    }

    #[test]
    fn parses_invoice_payment_failed_in_the_new_shape() {
        assert_eq!(
            parse(INVOICE_FAILED_NEW).object,
            EventObject::Invoice {
                customer: "cus_RAAA".into(),
                subscription: Some("sub_1AAA".into()),
            }
        );
    }

    #[test]
    fn parses_invoices_without_a_subscription_or_with_it_expanded() {
        let one_off = include_str!("fixtures/invoice_paid_one_off.json");
        assert_eq!(
            parse(one_off).object,
            EventObject::Invoice {
                customer: "cus_1".into(),
                subscription: None,
            }
        );
        let expanded = include_str!("fixtures/invoice_paid_subscription_expanded.json");
        assert_eq!(
            parse(expanded).object,
            EventObject::Invoice {
                customer: "cus_1".into(),
                subscription: Some("sub_9".into()),
            }
        );
    }

    #[test]
    fn parses_an_unknown_object_as_other() {
        let body = include_str!("fixtures/charge_refunded.json");
        let event = parse(body);
        assert_eq!(event.kind, "charge.refunded");
        assert_eq!(event.object, EventObject::Other);
    }

    #[test]
    fn rejects_malformed_bodies_naming_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("", "not valid JSON"),
            (r#"{"id":"evt_1""#, "not valid JSON"),
            (
                r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{"object":"x"}}} x"#,
                "not valid JSON",
            ),
            ("[]", "the body"),
            ("42", "the body"),
            (
                r#"{"type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id is missing",
            ),
            (
                r#"{"id":"","type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id is empty",
            ),
            (
                r#"{"id":7,"type":"x","created":1,"data":{"object":{"object":"x"}}}"#,
                "id: invalid type",
            ),
            (
                r#"{"id":"e","created":1,"data":{"object":{"object":"x"}}}"#,
                "type is missing",
            ),
            (
                r#"{"id":"e","type":"x","data":{"object":{"object":"x"}}}"#,
                "created is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":"1","data":{"object":{"object":"x"}}}"#,
                "created: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1.5,"data":{"object":{"object":"x"}}}"#,
                "created: invalid type",
            ),
            (r#"{"id":"e","type":"x","created":1}"#, "data is missing"),
            (
                r#"{"id":"e","type":"x","created":1,"data":{}}"#,
                "data.object is missing",
            ),
            (r#"{"id":"e","type":"x","created":1,"data":[]}"#, "data: "),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":"sub_1"}}"#,
                "data.object must be an object",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{}}}"#,
                "data.object.object is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":3}}}"#,
                "data.object.object must be a string",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","customer":"c","status":"active"}}}"#,
                "data.object.id is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","status":"active"}}}"#,
                "data.object.customer is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c"}}}"#,
                "data.object.status is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":5,"status":"active"}}}"#,
                "data.object.customer: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":{"email":"a"},"status":"active"}}}"#,
                "data.object.customer: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c","status":"active","cancel_at_period_end":"yes"}}}"#,
                "data.object.cancel_at_period_end: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"subscription","id":"s","customer":"c","status":"active","items":{"data":[{"current_period_end":"soon"}]}}}}"#,
                "data.object.items.data[0].current_period_end: invalid type",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"invoice","subscription":"s"}}}"#,
                "data.object.customer is missing",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"invoice","customer":"c","parent":{"subscription_details":{"subscription":1}}}}}"#,
                "data.object.parent.subscription_details.subscription: ",
            ),
            (
                r#"{"id":"e","type":"x","created":1,"data":{"object":{"object":"checkout.session","metadata":{"plan":2}}}}"#,
                "data.object.metadata.plan: invalid type",
            ),
        ];
        for (body, expected) in cases {
            let err = parse_err(body);
            assert!(
                err.contains(expected),
                "{body}: {err:?} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn parse_never_panics_on_truncated_or_mangled_input() {
        let bodies = [
            CHECKOUT_COMPLETED,
            SUBSCRIPTION_UPDATED_OLD,
            SUBSCRIPTION_UPDATED_NEW,
            INVOICE_FAILED_NEW,
        ];
        for body in &bodies {
            let bytes = body.as_bytes();
            for end in 0..bytes.len() {
                let _ = parse_event(&bytes[..end]);
                let mut mangled = bytes.to_vec();
                mangled[end] = b'"';
                let _ = parse_event(&mangled);
            }
        }
        let _ = parse_event(&[0xff, 0xfe, b'{']);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let _ = parse_event(deep.as_bytes());
        let deep_object = format!(
            r#"{{"id":"e","type":"x","created":1,"data":{{"object":{{"object":"invoice","customer":{}1{}}}}}}}"#,
            r#"{"id":"#.repeat(1000),
            "}".repeat(1000)
        );
        let _ = parse_event(deep_object.as_bytes());
    }
}
