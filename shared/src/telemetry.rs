//! Structured JSON logs. The level comes from `RUST_LOG` (a level name), else Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`, else info. A level, not a filter expression: the directive parser
//! would bring a regex engine into every binary for nothing we use.
//! No field anywhere carries message text, names, phone numbers or emails.

use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Libraries whose debug and trace output holds request and response bodies (message text,
/// phone numbers, tokens): never below info, whatever the level. Targets match by prefix, so
/// `aws_` covers every SDK, smithy and config crate and `lambda_` the runtime and its HTTP layer.
const CHATTY: [&str; 9] = ["aws_", "lambda_", "hyper", "h2", "rustls", "reqwest", "tower", "tokio_rustls", "axum"];

pub fn filter(level: LevelFilter) -> Targets {
    CHATTY
        .iter()
        .fold(Targets::new().with_default(level), |t, target| t.with_target(*target, level.min(LevelFilter::INFO)))
}

pub fn level_from(value: Option<&str>) -> LevelFilter {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(LevelFilter::INFO)
}

/// The production subscriber, writing to `writer` (tests capture what production would log).
pub fn subscriber<W>(level: LevelFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .with_writer(writer)
        .finish()
        .with(filter(level))
}

pub fn init() {
    let level = std::env::var("RUST_LOG").or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL")).ok();
    // `try_init`: the local runner hosts several functions in one process.
    let _ = subscriber(level_from(level.as_deref()), std::io::stdout).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_in_either_case_and_a_safe_default() {
        assert_eq!(level_from(Some("DEBUG")), LevelFilter::DEBUG);
        assert_eq!(level_from(Some("warn")), LevelFilter::WARN);
        assert_eq!(level_from(Some("webhook=trace,foo")), LevelFilter::INFO);
        assert_eq!(level_from(None), LevelFilter::INFO);
    }

    #[test]
    fn libraries_that_log_bodies_never_log_below_info() {
        use tracing::Level;
        let f = filter(LevelFilter::TRACE);
        assert!(f.would_enable("webhook_ingest", &Level::TRACE));
        for target in [
            "aws_smithy_runtime::client::orchestrator",
            "aws_sdk_dynamodb::operation",
            "aws_sdk_secretsmanager",
            "aws_config::imds",
            "lambda_runtime::layers::trace",
            "lambda_http::request",
            "lambda_runtime_api_client",
            "hyper_util::client",
            "reqwest::connect",
        ] {
            assert!(!f.would_enable(target, &Level::DEBUG), "{target}");
            assert!(f.would_enable(target, &Level::INFO), "{target}");
        }
    }
}
