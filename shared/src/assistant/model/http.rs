//! What the HTTP vendors (OpenAI-compatible, Anthropic) share: one JSON POST, and the mapping of
//! its failures to `ModelError`. Errors keep the status and never the body, which may echo what
//! the customer said.

use std::error::Error as _;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use super::ModelError;

/// Sends a prepared request and parses a successful answer as `T`.
pub(crate) async fn send_json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ModelError> {
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(status_error(status, response.headers()));
    }
    let body = response.bytes().await.map_err(transport)?;
    parse(&body)
}

/// Parses an answer; the error names the position only, since serde's message can quote the
/// offending value.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ModelError> {
    serde_json::from_slice(body).map_err(|e| {
        ModelError::Malformed(format!(
            "unexpected JSON ({:?}) at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// 429 and 5xx (Anthropic's 529 included) may pass; any other refusal will not.
pub(crate) fn status_error(status: StatusCode, headers: &HeaderMap) -> ModelError {
    let code = status.as_u16();
    if code == 429 || status.is_server_error() {
        ModelError::Unavailable { status: code, retry_after_ms: retry_after_ms(headers) }
    } else {
        ModelError::Refused { status: code }
    }
}

/// `Retry-After` in seconds (fractions allowed); the HTTP-date form is ignored, as no model
/// vendor sends it and the retry budget is seconds anyway.
pub(crate) fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let seconds: f64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64)
}

/// A failure before an HTTP status: a timeout, or the connection. The description is the error
/// chain without the URL (reqwest's messages carry no bodies).
pub(crate) fn transport(err: reqwest::Error) -> ModelError {
    if err.is_timeout() {
        return ModelError::Timeout;
    }
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ModelError::Transport(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        h
    }

    #[test]
    fn statuses_map_to_retryable_or_refused() {
        let busy = status_error(StatusCode::TOO_MANY_REQUESTS, &headers("2"));
        assert_eq!(busy, ModelError::Unavailable { status: 429, retry_after_ms: Some(2000) });
        let overloaded = status_error(StatusCode::from_u16(529).unwrap(), &HeaderMap::new());
        assert_eq!(overloaded, ModelError::Unavailable { status: 529, retry_after_ms: None });
        assert_eq!(status_error(StatusCode::BAD_REQUEST, &headers("3")), ModelError::Refused { status: 400 });
        assert_eq!(retry_after_ms(&headers("0.5")), Some(500));
        assert_eq!(retry_after_ms(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn a_malformed_answer_does_not_quote_it() {
        #[derive(serde::Deserialize, Debug)]
        struct Answer {
            #[allow(dead_code)]
            n: u32,
        }
        let err = parse::<Answer>(br#"{"n": "Jane Doe, jane@example.com"}"#).unwrap_err();
        assert!(matches!(err, ModelError::Malformed(_)));
        assert!(!err.to_string().contains("Jane"), "{err}");
    }
}
