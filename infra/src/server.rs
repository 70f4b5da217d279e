//! The local server's HTTP loop. `axum::serve` sets no timeouts and no connection limit, so a
//! client that sends half its headers, or a body it never finishes, holds a connection (and a
//! file descriptor) for as long as it likes. Here every connection has a deadline for its
//! headers, every request one for its whole handling (body included), and the number of open
//! connections is capped, in all and per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use llmtrack_shared::ApiError;
use tower::ServiceExt as _;

/// What one server allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections in all; past it, new connections are closed at once.
    pub max_connections: usize,
    /// Open connections from one address (not counted for trusted proxies, which carry many
    /// clients' connections).
    pub max_per_address: usize,
    /// Time to send a request's headers, and to start the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Time to handle a request, reading its body included: a 408 past it.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 2048,
            max_per_address: 128,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Open connections per address, released when a connection ends.
#[derive(Default)]
struct Counts(Mutex<(usize, HashMap<IpAddr, usize>)>);

struct Slot {
    counts: Arc<Counts>,
    ip: Option<IpAddr>,
}

impl Counts {
    fn take(self: &Arc<Self>, ip: IpAddr, limits: &Limits, per_address: bool) -> Option<Slot> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 >= limits.max_connections {
            return None;
        }
        if per_address {
            let n = g.1.entry(ip).or_default();
            if *n >= limits.max_per_address {
                return None;
            }
            *n += 1;
        }
        g.0 += 1;
        Some(Slot {
            counts: self.clone(),
            ip: per_address.then_some(ip),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        g.0 -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = g.1.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    trusted_proxies: Vec<ipnet::IpNet>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let request_timeout = limits.request_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| deadline(req, next, request_timeout),
    ));
    let counts = Arc::new(Counts::default());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: wait rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let per_address = !trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
        let Some(slot) = counts.take(peer.ip(), &limits, per_address) else {
            tracing::warn!(peer = %peer.ip(), "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            app.clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    req.map(axum::body::Body::new)
                });
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors here are clients going away or timing out: nothing to act on.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => {
            tracing::warn!("stopping with requests still open");
        }
    }
    Ok(())
}

async fn deadline(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(format!(
            "the request was not completed within {} seconds",
            limit.as_secs()
        ))
        .into_response(),
    }
}
