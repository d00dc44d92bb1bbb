//! Structured JSON logs. The level comes from `RUST_LOG` (a level name), else Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`, else info. A level, not a filter expression: the directive parser
//! would bring a regex engine into every binary for nothing we use.
//! No field anywhere carries message text, names, phone numbers or emails.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Libraries that log request and response bodies at debug/trace: never below info, whatever
/// the level, since those bodies carry message text and phone numbers.
const CHATTY: [&str; 7] =
    ["aws_smithy_runtime", "aws_smithy_http", "aws_sdk_dynamodb", "aws_sdk_sqs", "aws_sdk_kms", "hyper", "h2"];

pub fn filter(level: LevelFilter) -> Targets {
    CHATTY
        .iter()
        .fold(Targets::new().with_default(level), |t, target| t.with_target(*target, level.min(LevelFilter::INFO)))
}

pub fn level_from(value: Option<&str>) -> LevelFilter {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(LevelFilter::INFO)
}

pub fn init() {
    let level = std::env::var("RUST_LOG").or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL")).ok();
    // `try_init`: the local runner hosts several functions in one process.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .finish()
        .with(filter(level_from(level.as_deref())))
        .try_init();
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
    fn the_sdk_never_logs_below_info() {
        use tracing::Level;
        let f = filter(LevelFilter::TRACE);
        assert!(f.would_enable("webhook_ingest", &Level::TRACE));
        assert!(!f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::DEBUG));
        assert!(f.would_enable("aws_smithy_runtime::client::orchestrator", &Level::INFO));
    }
}
