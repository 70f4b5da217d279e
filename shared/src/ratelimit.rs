//! Request rates per API key (or signed-in person) and per client address, on ingest and on
//! queries. In memory, per process: on one server that is the whole picture; on Lambda each
//! instance counts its own share, and API Gateway's stage throttling caps the total (see
//! docs/SECURITY.md). Limits that must hold across instances (sign-in, invitations, running
//! exports) are counted in the store instead.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::ApiError;
use crate::extract::Peer;

/// A rate: a sustained number of requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    fn quota(self) -> Quota {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(nz(self.per_second)).allow_burst(nz(self.burst))
    }
}

/// Ingest: a key may send 1,000 batches a second, about what one server can store (50,000
/// events a second in batches of 100), so one tenant cannot starve the others of the writer for
/// long; the per-address rate also covers requests with a wrong key.
pub const INGEST_PER_KEY: Rate = Rate {
    per_second: 1000,
    burst: 2000,
};
pub const INGEST_PER_ADDRESS: Rate = Rate {
    per_second: 2000,
    burst: 4000,
};
/// Queries: a dashboard page asks about ten at once; scripts should not need more than this.
pub const QUERY_PER_CALLER: Rate = Rate {
    per_second: 20,
    burst: 60,
};
pub const QUERY_PER_ADDRESS: Rate = Rate {
    per_second: 50,
    burst: 120,
};

/// The limiters of one router.
pub struct RequestLimits {
    per_caller: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: Vec<ipnet::IpNet>,
    checks: AtomicU64,
}

pub type DynLimits = Arc<RequestLimits>;

impl RequestLimits {
    pub fn new(
        per_caller: Rate,
        per_address: Rate,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> DynLimits {
        Arc::new(RequestLimits {
            per_caller: governor::RateLimiter::keyed(per_caller.quota()),
            per_address: governor::RateLimiter::keyed(per_address.quota()),
            trusted_proxies,
            checks: AtomicU64::new(0),
        })
    }

    pub fn ingest(trusted_proxies: Vec<ipnet::IpNet>) -> DynLimits {
        RequestLimits::new(INGEST_PER_KEY, INGEST_PER_ADDRESS, trusted_proxies)
    }

    pub fn query(trusted_proxies: Vec<ipnet::IpNet>) -> DynLimits {
        RequestLimits::new(QUERY_PER_CALLER, QUERY_PER_ADDRESS, trusted_proxies)
    }

    /// One request of a caller (`key:…` or `user:…`); 429 with `Retry-After` past the rate.
    pub fn caller(&self, who: &str) -> Result<(), ApiError> {
        self.tidy();
        self.per_caller
            .check_key(&who.to_owned())
            .map_err(|not_until| refused(not_until, "for this API key or account"))
    }

    fn address(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.tidy();
        self.per_address
            .check_key(&ip)
            .map_err(|not_until| refused(not_until, "from this address"))
    }

    /// Forgets idle keys now and then, so the maps stay the size of the recent callers.
    fn tidy(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.per_caller.retain_recent();
            self.per_address.retain_recent();
            self.per_caller.shrink_to_fit();
            self.per_address.shrink_to_fit();
        }
    }
}

fn refused(
    not_until: governor::NotUntil<<DefaultClock as governor::clock::Clock>::Instant>,
    whom: &str,
) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::TooManyRequests {
        message: format!(
            "too many requests {whom}; slow down and retry after the time in Retry-After"
        ),
        retry_after_s: wait.as_secs().max(1) as i64,
    }
}

/// Middleware: the per-address rate, before anything else is done for the request.
pub async fn per_address(
    State(limits): State<DynLimits>,
    peer: Peer,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if let Some(ip) = crate::auth::client_ip(&headers, peer.0, &limits.trusted_proxies)
        && let Err(e) = limits.address(ip)
    {
        return e.into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_past_its_burst_is_refused_with_a_wait() {
        let limits = RequestLimits::new(
            Rate {
                per_second: 1,
                burst: 3,
            },
            INGEST_PER_ADDRESS,
            vec![],
        );
        for _ in 0..3 {
            limits.caller("key:a").unwrap();
        }
        match limits.caller("key:a") {
            Err(ApiError::TooManyRequests { retry_after_s, .. }) => assert!(retry_after_s >= 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // Another caller is not held back by the first.
        limits.caller("key:b").unwrap();
    }
}
