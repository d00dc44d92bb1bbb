//! Response builders. Error bodies are fixed strings: nothing from inside is echoed.

use lambda_http::{Body, Response};

fn with(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("static status and header values are valid")
}

pub fn error(status: u16, message: &'static str) -> Response<Body> {
    with(status, format!("{{\"error\":\"{message}\"}}"))
}

pub fn ok() -> Response<Body> {
    with(200, "{\"ok\":true}".into())
}
