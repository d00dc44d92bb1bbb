//! Structured JSON logs. Level from `RUST_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else info.
//! No field anywhere carries message text, names, phone numbers or emails.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            EnvFilter::try_new(std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|_| "info".into()).to_lowercase())
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init`: the local runner hosts several functions in one process.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .try_init();
}
