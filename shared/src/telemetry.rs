//! Structured JSON logs. The level comes from `RUST_LOG` (a level name), else Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`, else info. A level, not a filter expression: the directive parser
//! would bring a regex engine into every binary for nothing we use.
//! No field anywhere carries message text, names, phone numbers or emails.

use tracing_subscriber::filter::LevelFilter;

pub fn level_from(value: Option<&str>) -> LevelFilter {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(LevelFilter::INFO)
}

pub fn init() {
    let level = std::env::var("RUST_LOG").or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL")).ok();
    // `try_init`: the local runner hosts several functions in one process.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(level_from(level.as_deref()))
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
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
}
