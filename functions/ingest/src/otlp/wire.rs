//! The part of the OTLP trace messages ingest reads, decoded by prost without copying: every
//! string stays a slice of the request body (`Bytes`), and fields ingest never reads (events,
//! links, scopes, trace state, arrays and maps in attributes) are skipped unparsed. Decoding an
//! export into `opentelemetry-proto`'s full messages allocated a `String` for every attribute
//! key and value and cost two thirds of the CPU of an LLM span (docs/PERFORMANCE.md, "OTLP").
//!
//! Field numbers are those of opentelemetry/proto/{collector/trace,trace,resource,common}/v1 (the
//! `opentelemetry-proto` crate's own messages encode the same bytes; the API tests build their
//! requests with them). A string field read as `bytes` has the same wire encoding.

use bytes::Bytes;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Span {
    #[prost(bytes = "bytes", tag = "1")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub span_id: Bytes,
    /// UTF-8 text on the wire.
    #[prost(bytes = "bytes", tag = "5")]
    pub name: Bytes,
    #[prost(fixed64, tag = "7")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    pub end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    pub status: Option<Status>,
}

/// `Status.code`: 2 is ERROR.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "3")]
    pub code: i32,
}

pub const STATUS_ERROR: i32 = 2;

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    /// UTF-8 text on the wire.
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    pub value: Option<Value>,
}

/// The scalar kinds of `AnyValue`; arrays, maps and bytes values decode as no value.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    /// UTF-8 text on the wire.
    #[prost(bytes = "bytes", tag = "1")]
    String(Bytes),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

impl Span {
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }
}

impl AnyValue {
    /// The value as text, if it is a non-empty string.
    pub fn text(&self) -> Option<&str> {
        match &self.value {
            Some(Value::String(b)) if !b.is_empty() => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}
