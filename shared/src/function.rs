//! What every Lambda function of Concierge is to its hosts: one composition root (`build`) that
//! its `main.rs` and the local runner both call, and one handler from the event's JSON to the
//! result's JSON, exactly what Lambda passes. The runner hosts any function through this, with
//! no knowledge of which one it is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use lambda_runtime::{Context, LambdaEvent, service_fn};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::aws::AwsClients;
use crate::clock::{Clock, SystemClock};
use crate::config::Env;
use crate::invocation::{self, Scope};

pub type Error = lambda_runtime::Error;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// An event as Lambda delivers it: JSON, parsed by the function into its own type.
pub type Event = Box<RawValue>;

/// A built function, ready for invocations.
pub trait Function: Send + Sync + 'static {
    fn invoke(&self, event: Event, context: Context) -> BoxFuture<'_, Result<Value, Error>>;
}

/// What a composition root is given.
pub struct Setup {
    pub env: Env,
    pub aws: AwsClients,
    pub clock: Arc<dyn Clock>,
}

impl Setup {
    /// In Lambda: the process environment, environment credentials, the system clock.
    pub async fn from_lambda_environment() -> Self {
        Self { env: Env::from_process(), aws: AwsClients::from_env().await, clock: Arc::new(SystemClock) }
    }
}

/// A composition root: what it is given, the function it builds.
pub type Build = fn(Setup) -> BoxFuture<'static, Result<Arc<dyn Function>, Error>>;

/// A function as the template names it (`Metadata.BuildProperties.Binary`) and its composition root.
#[derive(Clone, Copy)]
pub struct FunctionEntry {
    pub binary: &'static str,
    pub build: Build,
}

impl std::fmt::Debug for FunctionEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionEntry").field("binary", &self.binary).finish_non_exhaustive()
    }
}

/// Runs one invocation inside its scope (deadline from the context, its own request count),
/// and logs the count with the outcome.
pub async fn invoke(
    function: &dyn Function,
    event: Event,
    context: Context,
    clock: &dyn Clock,
) -> Result<Value, Error> {
    let scope = Scope::new(invocation::deadline_from_unix_ms(context.deadline, clock.now_ms()));
    let result = scope.run(function.invoke(event, context)).await;
    if scope.requests() > 0 {
        tracing::debug!(aws_requests = scope.requests(), ok = result.is_ok(), "invocation finished");
    }
    result
}

/// The body of every function's `main.rs`: logs, configuration, clients, then the Runtime API loop.
pub async fn serve(entry: FunctionEntry) -> Result<(), Error> {
    crate::telemetry::init();
    let setup = Setup::from_lambda_environment().await;
    let clock = setup.clock.clone();
    let function = (entry.build)(setup).await?;
    let (function, clock) = (&*function, &*clock);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        invoke(function, event.payload, event.context, clock)
    }))
    .await
}

/// API Gateway HTTP API (payload 2.0) events, through lambda_http's own decoding.
pub mod http {
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
    use lambda_http::{Body, Request, RequestExt, Response};

    use super::*;

    /// The request an API Gateway event describes, with the invocation's context attached.
    pub fn request(event: &RawValue, context: Context) -> Result<Request, Error> {
        let request =
            lambda_http::request::from_str(event.get()).map_err(|e| format!("not an API Gateway event: {e}"))?;
        Ok(request.with_lambda_context(context))
    }

    /// The response as API Gateway expects it back.
    pub fn response(response: Response<Body>) -> Result<Value, Error> {
        let (parts, body) = response.into_parts();
        let mut out = ApiGatewayV2httpResponse::default();
        out.status_code = i64::from(parts.status.as_u16());
        out.headers = parts.headers;
        out.is_base64_encoded = matches!(body, Body::Binary(_));
        out.body = match body {
            Body::Empty => None,
            other => Some(other),
        };
        Ok(serde_json::to_value(out)?)
    }
}

/// EventBridge scheduled events.
pub mod schedule {
    use super::*;

    /// When a scheduled invocation was due: the event's `time` (RFC 3339), which is the run's
    /// "now" (so a run can be replayed for any time, e.g. in tests and by operators).
    pub fn time_ms(event: &RawValue) -> Result<i64, Error> {
        #[derive(serde::Deserialize)]
        struct Scheduled<'a> {
            #[serde(borrow)]
            time: std::borrow::Cow<'a, str>,
        }
        let scheduled: Scheduled<'_> =
            serde_json::from_str(event.get()).map_err(|_| "expected an EventBridge event with a time")?;
        crate::clock::parse_rfc3339_ms(&scheduled.time).ok_or_else(|| "the event's time is not RFC 3339".into())
    }

    /// A scheduled event as EventBridge sends it (the local runner fires these).
    pub fn event(rule_arn: &str, time_ms: i64, id: &str) -> Value {
        serde_json::json!({
            "version": "0",
            "id": id,
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": crate::clock::rfc3339(time_ms),
            "region": "us-east-1",
            "resources": [rule_arn],
            "detail": {}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Function for Echo {
        fn invoke(&self, event: Event, _: Context) -> BoxFuture<'_, Result<Value, Error>> {
            Box::pin(async move {
                let left = invocation::remaining().map(|d| d.as_millis() as u64);
                Ok(serde_json::json!({"event": serde_json::from_str::<Value>(event.get())?, "left_ms": left}))
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_invocation_runs_inside_a_scope_with_the_contexts_deadline() {
        let clock = crate::clock::ManualClock::at(1_000_000);
        let mut context = Context::default();
        context.deadline = 1_004_000;
        let event = RawValue::from_string(r#"{"a":1}"#.into()).unwrap();
        let out = invoke(&Echo, event, context, &clock).await.unwrap();
        assert_eq!(out["event"]["a"], 1);
        assert_eq!(out["left_ms"], 4_000);
    }

    #[test]
    fn scheduled_events_carry_their_time() {
        let event = schedule::event("arn:aws:events:us-east-1:0:rule/x", 1_767_225_600_000, "1");
        let raw = RawValue::from_string(event.to_string()).unwrap();
        assert_eq!(schedule::time_ms(&raw).unwrap(), 1_767_225_600_000);
        let bad = RawValue::from_string(r#"{"time":"soon"}"#.into()).unwrap();
        assert!(schedule::time_ms(&bad).is_err());
    }
}
