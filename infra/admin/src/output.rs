//! What the operator sees: a human summary, or (`--json`) one JSON document for scripts, and
//! progress on long jobs (on stderr, only on a terminal and never with `--json`).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A spinner with a message; hidden with `--json` (and by indicatif when stderr is not a
    /// terminal).
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        if self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"));
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Prints the result: `human` as it is, or `json` as one document.
    pub fn emit(&self, human: impl FnOnce() -> String, json: &impl Serialize) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(json).expect("plain data serialises"));
        } else {
            println!("{}", human());
        }
    }
}

/// Unix milliseconds as RFC 3339 (UTC, to the second).
pub fn time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms.div_euclid(1000) * 1000) {
        Ok(t) => t.to_string(),
        Err(_) => ms.to_string(),
    }
}

/// `messages=3, leads=1` (empty: `nothing`).
pub fn counts<'a>(counts: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let parts: Vec<String> = counts.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() { "nothing".into() } else { parts.join(", ") }
}
