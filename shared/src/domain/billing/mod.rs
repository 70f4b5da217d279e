//! Billing: what we keep of a workspace's Stripe subscription, how Stripe's webhook events move
//! it, and which plan it entitles the workspace to at a given moment. Pure: the billing function
//! does the I/O (verifying deliveries, storing, emailing, calling Stripe).
//!
//! We store only the Stripe customer id, subscription id, plan, status and period dates: never
//! card data (the privacy policy, section 7).
//!
//! `entitlement` holds the record and its rules, `stripe_events` the reading of Stripe's events;
//! everything is re-exported here, so callers name `domain::billing::X` whichever file holds it.

mod entitlement;
mod stripe_events;

pub use entitlement::{
    Applied, Billing, GRACE_PERIOD_MS, Notice, Prices, SubscriptionStatus, apply,
};
pub use stripe_events::{EventError, EventObject, StripeEvent, parse_event};
