//! A local HTTP server that answers the two Stripe API calls billing makes the way Stripe does:
//! form-encoded requests with a bearer secret key, JSON objects back (with every field the real
//! objects have that a client may require), and Stripe's error shape for bad requests. It keeps
//! every request so tests can check what the app sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_51LLMtrackFakeKey";

/// One request as the server saw it: the form fields in order, and the headers that matter.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub form: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
}

impl Seen {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct FakeStripe {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub base: String,
}

impl FakeStripe {
    pub async fn start() -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeStripe {
            seen: Arc::default(),
            base,
        };
        let app = Router::new()
            .route("/v1/checkout/sessions", post(checkout))
            .route("/v1/billing_portal/sessions", post(portal))
            .route("/v1/subscriptions/{id}", axum::routing::delete(cancel))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn requests(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

fn stripe_error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"type": kind, "message": message, "param": param,
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_fake"}}),
        ),
    )
        .into_response()
}

/// Checks the secret key and records the request; `Err` is Stripe's 401.
fn receive(
    fake: &FakeStripe,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, Box<Response>> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {SECRET_KEY}") {
        return Err(Box::new(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
            None,
        )));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    fake.seen.lock().unwrap().push(Seen {
        path: path.to_owned(),
        form: form.clone(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    Ok(form.into_iter().collect())
}

/// `DELETE /v1/subscriptions/{id}`: the subscription, now cancelled. Ids starting `sub_gone`
/// are unknown, as Stripe answers for one deleted long ago.
async fn cancel(
    State(fake): State<FakeStripe>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = receive(&fake, &format!("/v1/subscriptions/{id}"), &headers, &body) {
        return *r;
    }
    if id.starts_with("sub_gone") {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such subscription: '{id}'"),
            Some("id"),
        );
    }
    axum::Json(json!({
        "id": id, "object": "subscription", "status": "canceled",
        "cancel_at_period_end": false, "canceled_at": 1_790_000_000, "ended_at": 1_790_000_000,
        "customer": "cus_fake", "livemode": false, "metadata": {},
    }))
    .into_response()
}

fn metadata(form: &BTreeMap<String, String>, prefix: &str) -> Value {
    let map: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(prefix)?.strip_suffix(']')?;
            Some((key.to_owned(), Value::String(v.clone())))
        })
        .collect();
    Value::Object(map)
}

async fn checkout(State(fake): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match receive(&fake, "/v1/checkout/sessions", &headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let mode = form.get("mode").cloned().unwrap_or_default();
    if mode != "subscription" && mode != "payment" && mode != "setup" {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: mode.",
            Some("mode"),
        );
    }
    if mode == "subscription" && !form.contains_key("line_items[0][price]") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "You must provide at least one recurring price in `subscription` mode when using prices.",
            Some("line_items"),
        );
    }
    if form.contains_key("customer") && form.contains_key("customer_email") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "You may only specify one of these parameters: customer, customer_email.",
            Some("customer"),
        );
    }
    let n = fake.seen.lock().unwrap().len();
    let id = format!("cs_test_a1{n:08}");
    let created = chrono::Utc::now().timestamp();
    axum::Json(json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": true},
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": 2900,
        "amount_total": 2900,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null,
        "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"),
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": created,
        "currency": "usd",
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": form.get("customer"),
        "customer_creation": if form.contains_key("customer") { Value::Null } else { json!("always") },
        "customer_details": form.get("customer_email").map(|e| json!({"email": e, "address": null, "name": null, "phone": null, "tax_exempt": "none", "tax_ids": null})),
        "customer_email": form.get("customer_email"),
        "discounts": [],
        "expires_at": created + 86_400,
        "invoice": null,
        "invoice_creation": null,
        "livemode": false,
        "locale": null,
        "metadata": metadata(&form, "metadata["),
        "mode": mode,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "always",
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false},
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": form.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": format!("https://checkout.stripe.com/c/pay/{id}#fidkdWxOYHwnPyd1blpxYHZxWjA0"),
        "wallet_options": null
    }))
    .into_response()
}

async fn portal(State(fake): State<FakeStripe>, headers: HeaderMap, body: Bytes) -> Response {
    let form = match receive(&fake, "/v1/billing_portal/sessions", &headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let Some(customer) = form.get("customer") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: customer.",
            Some("customer"),
        );
    };
    let n = fake.seen.lock().unwrap().len();
    axum::Json(json!({
        "id": format!("bps_1LLM{n:08}"),
        "object": "billing_portal.session",
        "configuration": "bpc_1LLMtrackDefault",
        "created": chrono::Utc::now().timestamp(),
        "customer": customer,
        "customer_account": null,
        "flow": null,
        "livemode": false,
        "locale": null,
        "on_behalf_of": null,
        "return_url": form.get("return_url"),
        "url": format!("https://billing.stripe.com/p/session/test_{n:08}")
    }))
    .into_response()
}
