//! Plays API Gateway (HTTP API, payload 2.0) and the Lambda Invoke API in front of the
//! in-process functions: requests become the same event JSON AWS would send, and go through
//! lambda_http's own decoding, so the handlers see what they would see in Lambda.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

use crate::functions::LocalFunction;

/// One route of the template: `GET /webhooks/meta` → its function.
struct Route {
    method: String,
    segments: Vec<String>,
    key: String,
    function: Arc<LocalFunction>,
}

/// The HTTP routes of every function.
pub struct Gateway {
    routes: Vec<Route>,
    requests: AtomicU64,
}

impl Gateway {
    pub fn new(functions: &[Arc<LocalFunction>]) -> Self {
        let mut routes = Vec::new();
        for f in functions {
            for r in &f.def.http_routes {
                routes.push(Route {
                    method: r.method.clone(),
                    segments: segments(&r.path),
                    key: format!("{} {}", r.method, r.path),
                    function: f.clone(),
                });
            }
        }
        Self { routes, requests: AtomicU64::new(0) }
    }

    /// The function, route key and path parameters for a request, as API Gateway matches them.
    fn route(&self, method: &str, path: &str) -> Option<(Arc<LocalFunction>, String, BTreeMap<String, String>)> {
        let actual = segments(path);
        self.routes.iter().find_map(|route| {
            if route.method != method && route.method != "ANY" || route.segments.len() != actual.len() {
                return None;
            }
            let mut params = BTreeMap::new();
            for (t, a) in route.segments.iter().zip(&actual) {
                match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) => {
                        params.insert(name.to_owned(), a.clone());
                    }
                    None if t == a => {}
                    None => return None,
                }
            }
            Some((route.function.clone(), route.key.clone(), params))
        })
    }

    /// The API Gateway v2 event for one HTTP request.
    pub fn event(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        route_key: &str,
        params: &BTreeMap<String, String>,
    ) -> serde_json::Value {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut header_map = serde_json::Map::new();
        for (name, value) in headers {
            push_joined(
                &mut header_map,
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
        let query = uri.query().unwrap_or_default();
        let mut query_map = serde_json::Map::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            push_joined(&mut query_map, k.into_owned(), v.into_owned());
        }
        // HTTP APIs pass text, JSON, XML and JavaScript bodies as they are and base64-encode
        // everything else, form posts (Twilio's webhooks) and bodies without a type included.
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let textual = media_type.starts_with("text/")
            || ["application/json", "application/javascript", "application/xml"].contains(&media_type.as_str())
            || media_type.ends_with("+json")
            || media_type.ends_with("+xml");
        let (body, encoded) = match std::str::from_utf8(body) {
            _ if body.is_empty() => (serde_json::Value::Null, false),
            Ok(text) if textual => (json!(text), false),
            _ => (json!(BASE64.encode(body)), true),
        };
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": uri.path(),
            "rawQueryString": query,
            "headers": header_map,
            "queryStringParameters": if query_map.is_empty() { serde_json::Value::Null } else { json!(query_map) },
            "pathParameters": if params.is_empty() { serde_json::Value::Null } else { json!(params) },
            "requestContext": {
                "accountId": "000000000000",
                "apiId": "local",
                "domainName": host,
                "domainPrefix": "local",
                "http": {
                    "method": method,
                    "path": uri.path(),
                    "protocol": "HTTP/1.1",
                    "sourceIp": "127.0.0.1",
                    "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
                },
                "requestId": format!("local-{n}"),
                "routeKey": route_key,
                "stage": "$default",
                "time": "",
                "timeEpoch": now.as_millis() as i64,
            },
            "body": body,
            "isBase64Encoded": encoded,
        })
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// API Gateway joins repeated headers and query parameters with commas.
fn push_joined(map: &mut serde_json::Map<String, serde_json::Value>, key: String, value: String) {
    map.entry(key)
        .and_modify(|v| *v = json!(format!("{},{value}", v.as_str().unwrap_or_default())))
        .or_insert(json!(value));
}

impl Gateway {
    /// Routes one HTTP request to its function through an API Gateway event. `None`: no route.
    pub async fn dispatch(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<anyhow::Result<lambda_http::Response<lambda_http::Body>>> {
        let (function, route_key, params) = self.route(method, uri.path())?;
        let event = self.event(method, uri, headers, body, &route_key, &params);
        Some(match lambda_http::request::from_str(&event.to_string()) {
            Ok(request) => function.call_http(request).await,
            Err(e) => Err(anyhow::anyhow!("event did not decode: {e}")),
        })
    }
}

/// `127.0.0.1:3000`: every route of the template.
pub async fn api(
    State(gateway): State<Arc<Gateway>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match gateway.dispatch(method.as_str(), &uri, &headers, &body).await {
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))).into_response(),
        Some(Ok(response)) => into_axum(response),
        Some(Err(e)) => {
            tracing::error!(error = %e, "function failed");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"message": "Internal Server Error"}))).into_response()
        }
    }
}

fn into_axum(response: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = body.as_ref().to_vec();
    let mut out = Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in &parts.headers {
        out.headers_mut().append(name, value.clone());
    }
    out
}

/// The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so
/// `aws lambda invoke --endpoint-url http://127.0.0.1:3001 --function-name WebhookIngestFunction`
/// works with the files in `events/`.
pub async fn invoke(
    State(functions): State<Arc<Vec<Arc<LocalFunction>>>>,
    Path(name): Path<String>,
    payload: Bytes,
) -> Response {
    let Some(function) = functions.iter().find(|f| f.def.logical_id == name || f.def.binary == name) else {
        let mut r = (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"Type": "User", "Message": format!("Function not found: {name}")})),
        )
            .into_response();
        r.headers_mut().insert("x-amzn-errortype", "ResourceNotFoundException".parse().expect("static header"));
        return r;
    };
    if !function.is_http() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"Type": "User", "Message": "only HTTP functions can be invoked directly for now"})),
        )
            .into_response();
    }
    let text = String::from_utf8_lossy(&payload);
    let request = match lambda_http::request::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return unhandled(format!("payload is not an API Gateway event: {e}"));
        }
    };
    match function.call_http(request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut out = ApiGatewayV2httpResponse::default();
            out.status_code = i64::from(parts.status.as_u16());
            out.headers = parts.headers;
            out.is_base64_encoded = matches!(body, lambda_http::Body::Binary(_));
            out.body = match body {
                lambda_http::Body::Empty => None,
                lambda_http::Body::Binary(b) => Some(lambda_http::Body::Text(BASE64.encode(b))),
                other => Some(other),
            };
            axum::Json(out).into_response()
        }
        Err(e) => unhandled(e.to_string()),
    }
}

/// Lambda reports a function error with 200 and `X-Amz-Function-Error: Unhandled`.
fn unhandled(message: String) -> Response {
    let mut r = axum::Json(json!({"errorType": "Error", "errorMessage": message})).into_response();
    r.headers_mut().insert("x-amz-function-error", "Unhandled".parse().expect("static header"));
    r
}
