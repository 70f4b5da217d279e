//! Structured logs: JSON on Lambda (CloudWatch), compact text locally. Level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    init_at("info");
}

/// A one-shot command's logs: warnings and errors on stderr unless `RUST_LOG` says otherwise,
/// so what it prints on stdout is its answer alone.
pub fn init_for_command() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}

fn init_at(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
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
