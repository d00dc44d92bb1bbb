//! A fault-injecting proxy between the stack and the emulator: a real HTTP server on loopback
//! that forwards every AWS request, and on demand delays, fails or holds the ones that match
//! an operation (`SendMessage`, `PutItem`, … as the SDK names them in `X-Amz-Target`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded after this long (AWS-like latency, or a slow AWS).
    Delay(Duration),
    /// Answered 500 InternalServerError without reaching the emulator.
    Fail,
    /// Answered 400 ValidationException (what DynamoDB says to a malformed request).
    Reject,
    /// Never answered (a hung connection): the client's timeout has to end it.
    Hang,
    /// Answered 200 with this JSON body, as DynamoDB would (e.g. keys left unprocessed).
    Respond(String),
    /// A transaction cancelled because another request wrote one of its items meanwhile
    /// (DynamoDB's `TransactionConflict`; the emulator never produces it).
    TransactionConflict,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Matches operations whose `X-Amz-Target` ends with this (`""` matches everything).
    operation: String,
    fault: Fault,
    /// How many more requests it applies to (`None`: until cleared).
    remaining: Option<usize>,
    /// Only requests whose body holds this (e.g. a key prefix), when set.
    body_contains: Option<String>,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    forwarded: Mutex<Vec<String>>,
    /// Requests held back right now (delayed or hung).
    held: std::sync::atomic::AtomicUsize,
}

/// A running proxy; `endpoint` is what the stack's SDK clients are pointed at.
pub struct FaultProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
}

#[derive(Clone)]
struct ProxyState {
    shared: Arc<Shared>,
    upstream: String,
    client: reqwest::Client,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Arc::new(Shared::default());
        let state = ProxyState {
            shared: shared.clone(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build().expect("HTTP client"),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state)
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { endpoint, shared }
    }

    /// Applies `fault` to every request of `operation` (`""`: every request) until cleared.
    pub fn inject(&self, operation: &str, fault: Fault) {
        self.push(Rule { operation: operation.into(), fault, remaining: None, body_contains: None });
    }

    /// Applies `fault` to every request of `operation` whose body holds `needle`, until cleared
    /// (e.g. only the transaction that touches an outbound message: `"#OUT#"`).
    pub fn inject_where(&self, operation: &str, needle: &str, fault: Fault) {
        self.push(Rule { operation: operation.into(), fault, remaining: None, body_contains: Some(needle.into()) });
    }

    /// The same, for the next `times` such requests only.
    pub fn inject_where_times(&self, operation: &str, needle: &str, fault: Fault, times: usize) {
        self.push(Rule {
            operation: operation.into(),
            fault,
            remaining: Some(times),
            body_contains: Some(needle.into()),
        });
    }

    /// Applies `fault` to the next `times` requests of `operation`.
    pub fn inject_times(&self, operation: &str, fault: Fault, times: usize) {
        self.push(Rule { operation: operation.into(), fault, remaining: Some(times), body_contains: None });
    }

    /// Requests being delayed or held right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn clear(&self) {
        self.shared.rules.lock().expect("rules").clear();
    }

    /// Operations that reached the emulator, in order.
    pub fn forwarded(&self) -> Vec<String> {
        self.shared.forwarded.lock().expect("log").clone()
    }

    fn push(&self, rule: Rule) {
        self.shared.rules.lock().expect("rules").push(rule);
    }
}

/// `DynamoDB_20120810.PutItem` → `PutItem`; requests without a target (S3) are named by method.
fn operation_of(headers: &HeaderMap, method: &Method) -> String {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map_or_else(|| method.as_str().to_owned(), str::to_owned)
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = operation_of(&headers, &method);
    let fault = {
        let mut rules = state.shared.rules.lock().expect("rules");
        let holds = |needle: &Option<String>| {
            needle.as_ref().is_none_or(|n| body.windows(n.len().max(1)).any(|w| w == n.as_bytes()))
        };
        let found = rules
            .iter_mut()
            .find(|r| operation.ends_with(&r.operation) && r.remaining != Some(0) && holds(&r.body_contains));
        found.map(|r| {
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            r.fault.clone()
        })
    };
    match fault {
        Some(Fault::Fail) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", "InternalServerError")],
                r#"{"__type":"com.amazonaws#InternalServerError","message":"injected fault"}"#,
            )
                .into_response();
        }
        Some(Fault::Reject) => {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", "ValidationException")],
                r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"One or more parameter values were invalid"}"#,
            )
                .into_response();
        }
        Some(Fault::TransactionConflict) => {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", "TransactionCanceledException")],
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled","CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}]}"#,
            )
                .into_response();
        }
        Some(Fault::Respond(body)) => {
            return (StatusCode::OK, [("content-type", "application/x-amz-json-1.0")], body).into_response();
        }
        Some(Fault::Hang) => {
            state.shared.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::pending::<()>().await
        }
        Some(Fault::Delay(d)) => {
            state.shared.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(d).await;
            state.shared.held.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        None => {}
    }
    state.shared.forwarded.lock().expect("log").push(operation);
    let url = format!("{}{}", state.upstream, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut request = state.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let headers = upstream.headers().clone();
            let body = upstream.bytes().await.unwrap_or_default();
            let mut response = Response::new(axum::body::Body::from(body));
            *response.status_mut() = status;
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().append(name, value.clone());
                }
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
