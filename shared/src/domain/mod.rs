//! Pure domain logic: no I/O, no clocks read directly (time comes in as arguments).

pub mod access;
pub mod account;
pub mod alert;
pub mod analytics;
pub mod apikey;
pub mod audit;
pub mod billing;
pub mod budget;
pub mod cursor;
pub mod deletion;
pub mod event;
pub mod forecast;
pub mod ids;
pub mod names;
pub mod plan;
pub mod pricing;
pub mod privacy;
pub mod reconciliation;
pub mod report;
pub mod repricing;
pub mod retention;
pub mod rollup;
pub mod signature;
pub mod sketch;
pub mod spans;
pub mod time;
