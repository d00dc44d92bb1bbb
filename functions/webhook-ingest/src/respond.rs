//! Response builders. Error bodies are fixed strings: nothing from inside is echoed.

use lambda_http::{Body, Response};

pub fn with(status: u16, content_type: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .expect("static status and header values are valid")
}

pub fn error(status: u16, message: &'static str) -> Response<Body> {
    with(status, "application/json", format!("{{\"error\":\"{message}\"}}"))
}

pub fn ok_text(body: impl Into<Body>) -> Response<Body> {
    with(200, "text/plain", body)
}
