//! Structured logs: JSON on Lambda (CloudWatch), compact text locally. Level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    init_at("info");
}

/// A one-shot command's logs: warnings and errors on stderr unless `RUST_LOG` says otherwise,
/// so what it prints on stdout is its answer alone.
pub fn init_for_command() {
    let filter =
        capped(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}

/// HTTP clients at trace level log what they send: the AWS SDK a KMS `Encrypt` body (a provider
/// admin key, in base64), hyper and reqwest headers. Whatever `RUST_LOG` asks, they stop at debug.
fn capped(filter: EnvFilter) -> EnvFilter {
    [
        "aws_smithy_runtime",
        "aws_smithy_http",
        "hyper",
        "hyper_util",
        "reqwest",
        "h2",
    ]
    .into_iter()
    .filter_map(|target| format!("{target}=debug").parse().ok())
    .fold(filter, EnvFilter::add_directive)
}

fn init_at(level: &str) {
    let filter =
        capped(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // CloudWatch adds its own timestamps; ANSI colours would be noise there.
        builder
            .json()
            .with_ansi(false)
            .without_time()
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests start several apps in one process) keeps the first subscriber.
    let _ = result;
}

/// Logs that a workspace sent events for a model with no price, once per workspace, provider and
/// model each hour in this process (a busy unpriced model would otherwise log on every batch).
/// Returns whether it logged. The memory is bounded: past 10,000 pairs it starts afresh.
pub fn unpriced_model(workspace: &str, provider: &str, model: &str, now_ms: i64) -> bool {
    use std::sync::{LazyLock, Mutex};
    static LOGGED: LazyLock<Mutex<rustc_hash::FxHashMap<String, i64>>> =
        LazyLock::new(Default::default);
    const MAX_REMEMBERED: usize = 10_000;
    let hour = now_ms.div_euclid(crate::domain::time::HOUR_MS);
    // NUL cannot appear in a workspace id, so the key is unambiguous.
    let key = format!("{workspace}\0{provider}\0{model}");
    let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
    if logged.get(&key) == Some(&hour) {
        return false;
    }
    if logged.len() >= MAX_REMEMBERED {
        logged.clear();
    }
    logged.insert(key, hour);
    drop(logged);
    tracing::warn!(
        workspace,
        provider,
        model,
        "no price for this model: its events are counted as unpriced (cost unknown); add a price or send cost_usd"
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::HOUR_MS;

    #[test]
    fn an_unpriced_model_is_logged_once_an_hour_per_workspace() {
        let t = 1_000 * HOUR_MS;
        assert!(unpriced_model("ws_a", "acme", "tiny-1", t));
        assert!(!unpriced_model("ws_a", "acme", "tiny-1", t + 60_000));
        assert!(unpriced_model("ws_b", "acme", "tiny-1", t + 60_000));
        assert!(unpriced_model("ws_a", "acme", "tiny-2", t + 60_000));
        assert!(unpriced_model("ws_a", "acme", "tiny-1", t + HOUR_MS));
    }
}
