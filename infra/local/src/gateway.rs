//! Plays API Gateway (HTTP API, payload 2.0) and the Lambda Invoke API in front of the
//! in-process functions: requests become the same event JSON AWS would send, and the function's
//! JSON answer becomes the HTTP response, as API Gateway would make it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

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

/// An HTTP response as API Gateway returns it.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
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
    ) -> Value {
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
            _ if body.is_empty() => (Value::Null, false),
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
            "queryStringParameters": if query_map.is_empty() { Value::Null } else { json!(query_map) },
            "pathParameters": if params.is_empty() { Value::Null } else { json!(params) },
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

    /// Routes one HTTP request to its function through an API Gateway event. `None`: no route.
    /// A function error becomes a 500, as API Gateway makes it.
    pub async fn dispatch(&self, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Option<HttpReply> {
        let (function, route_key, params) = self.route(method, uri.path())?;
        let event = self.event(method, uri, headers, body, &route_key, &params);
        Some(match function.invoke_json(&event).await {
            Ok(result) => from_lambda_result(&result).unwrap_or_else(|e| {
                tracing::error!(function = %function.def.logical_id, error = %e, "malformed function response");
                internal_error()
            }),
            Err(e) => {
                tracing::error!(function = %function.def.logical_id, error = %e, "function failed");
                internal_error()
            }
        })
    }
}

fn internal_error() -> HttpReply {
    HttpReply {
        status: 500,
        headers: HeaderMap::from_iter([(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        body: br#"{"message":"Internal Server Error"}"#.to_vec(),
    }
}

/// What API Gateway makes of a function's answer (payload 2.0 response format).
fn from_lambda_result(result: &Value) -> Result<HttpReply, String> {
    let status = result.get("statusCode").and_then(Value::as_u64).ok_or("no statusCode")? as u16;
    let mut headers = HeaderMap::new();
    for (name, value) in result.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let value = value.as_str().ok_or("a header value is not a string")?;
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?,
            HeaderValue::from_str(value).map_err(|e| e.to_string())?,
        );
    }
    let body = result.get("body").and_then(Value::as_str).unwrap_or_default();
    let body = if result.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        BASE64.decode(body).map_err(|e| e.to_string())?
    } else {
        body.as_bytes().to_vec()
    };
    Ok(HttpReply { status, headers, body })
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// API Gateway joins repeated headers and query parameters with commas.
fn push_joined(map: &mut serde_json::Map<String, Value>, key: String, value: String) {
    map.entry(key)
        .and_modify(|v| *v = json!(format!("{},{value}", v.as_str().unwrap_or_default())))
        .or_insert(json!(value));
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
        Some(reply) => {
            let mut out = Response::new(axum::body::Body::from(reply.body));
            *out.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            *out.headers_mut() = reply.headers;
            out
        }
    }
}

/// The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`): any function with
/// any event, as `aws lambda invoke --endpoint-url http://127.0.0.1:3001` sends it.
pub async fn invoke(
    State(functions): State<Arc<Vec<Arc<LocalFunction>>>>,
    Path(name): Path<String>,
    payload: Bytes,
) -> Response {
    let name = name.rsplit(':').next().unwrap_or(&name).to_owned(); // a full ARN works too
    let Some(function) = functions.iter().find(|f| f.def.logical_id == name || f.def.binary == name) else {
        let mut r = (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"Type": "User", "Message": format!("Function not found: {name}")})),
        )
            .into_response();
        r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("ResourceNotFoundException"));
        return r;
    };
    // An empty payload is `{}` to Lambda.
    let text = if payload.is_empty() { "{}".to_owned() } else { String::from_utf8_lossy(&payload).into_owned() };
    let event = match serde_json::value::RawValue::from_string(text) {
        Ok(event) => event,
        Err(_) => {
            let mut r = (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"Type": "User", "Message": "Could not parse request body into json"})),
            )
                .into_response();
            r.headers_mut().insert("x-amzn-errortype", HeaderValue::from_static("InvalidRequestContentException"));
            return r;
        }
    };
    match function.invoke(event).await {
        Ok(result) => axum::Json(result).into_response(),
        // Lambda reports a function error with 200 and `X-Amz-Function-Error: Unhandled`.
        Err(message) => {
            let mut r = axum::Json(json!({"errorType": "Error", "errorMessage": message})).into_response();
            r.headers_mut().insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
            r
        }
    }
}
