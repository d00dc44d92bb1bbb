//! `webhook-ingest`: the HTTP entry point for Meta and Twilio webhooks. Verifies each request
//! over the exact bytes received, routes it to its tenant, stores every message once and queues
//! it for the reply worker, and answers as soon as that is done.

mod meta;
mod respond;
mod twilio;

use std::sync::Arc;

use concierge::aws::AwsClients;
use concierge::clock::Clock;
use concierge::config::{
    CONTACT_HASH_KEY, Env, META_APP_SECRET, META_VERIFY_TOKEN, MasterKeySource, PlatformSecrets, Secret,
};
use concierge::crypto::MasterKey;
use concierge::function::{self, BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::ingest::Ingest;
use concierge::invocation;
use concierge::privacy::Pseudonymizer;
use concierge::queue::SqsInboundQueue;
use concierge::store::messages::DynamoMessageLog;
use concierge::tenants::{DynamoTenantDirectory, TenantDirectory};
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::Context;
use serde_json::Value;
use tracing::Instrument;

const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

pub type Pipeline = Ingest<DynamoTenantDirectory, DynamoMessageLog, SqsInboundQueue>;

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "webhook-ingest", build: |setup| Box::pin(build(setup)) };

/// Everything built once per cold start.
pub struct App {
    pipeline: Pipeline,
    meta_app_secret: Secret,
    meta_verify_token: Secret,
    public_base_url: Option<String>,
    clock: Arc<dyn Clock>,
}

/// The composition root: configuration, secrets, adapters, a warm connection.
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let secrets =
        PlatformSecrets::load(&setup.env, &setup.aws.secrets, &[META_APP_SECRET, META_VERIFY_TOKEN, CONTACT_HASH_KEY])
            .await?;
    let app = App::new(&setup.env, &secrets, &setup.aws, setup.clock)?;
    app.warm_up().await;
    Ok(Arc::new(app))
}

impl App {
    pub fn new(env: &Env, secrets: &PlatformSecrets, aws: &AwsClients, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        let master_key = match env.master_key()? {
            MasterKeySource::File(path) => MasterKey::from_key_file(&path)?,
            MasterKeySource::Kms(key_id) => MasterKey::kms(aws.kms.clone(), key_id),
        };
        let pseudonyms = Pseudonymizer::new(secrets.get(CONTACT_HASH_KEY).expose().as_bytes());
        let pipeline = Ingest {
            directory: DynamoTenantDirectory::new(
                aws.dynamodb.clone(),
                env.required("TENANTS_TABLE")?,
                env.required("ROUTES_TABLE")?,
                master_key,
            ),
            log: DynamoMessageLog::new(aws.dynamodb.clone(), env.required("MESSAGES_TABLE")?, pseudonyms.clone()),
            queue: SqsInboundQueue::new(aws.sqs.clone(), env.required("INBOUND_QUEUE_URL")?),
            pseudonyms,
            clock: clock.clone(),
        };
        Ok(Self {
            pipeline,
            meta_app_secret: secrets.get(META_APP_SECRET),
            meta_verify_token: secrets.get(META_VERIFY_TOKEN),
            public_base_url: env.public_base_url()?,
            clock,
        })
    }

    /// Opens the connections to DynamoDB and SQS during init, so the first webhook does not pay
    /// for TLS set-up. Bounded: if AWS is slow the cold start does not wait, and a failure is
    /// only logged (requests connect on their own).
    pub async fn warm_up(&self) {
        let calls =
            async { futures::join!(self.pipeline.directory.by_meta_number("warm-up"), self.pipeline.queue.probe()) };
        match tokio::time::timeout(WARM_UP_LIMIT, calls).await {
            Ok((Ok(_), Ok(()))) => {}
            _ => tracing::warn!("connection warm-up failed or timed out; continuing"),
        }
    }
}

impl Function for App {
    fn invoke(&self, event: Event, context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let request = function::http::request(&event, context)?;
            function::http::response(handle(self, request).await)
        })
    }
}

/// The HTTP handler. Every outcome is an HTTP response; internals never reach the caller.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .filter(|id| !id.is_empty())
        .or_else(|| match req.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.request_id.clone(),
            _ => None,
        })
        .unwrap_or_default();
    let path = req.raw_http_path().to_owned();
    let route = Route::parse(&path);
    let span = tracing::info_span!("webhook", route = route.name(), request_id = %request_id);
    async move {
        let response = match (route, req.method()) {
            (Route::Meta, &Method::GET) => meta::verify(app, &req),
            (Route::Meta, &Method::POST) => meta::notify(app, &req).await,
            (Route::Twilio { tenant, status }, &Method::POST) => twilio::receive(app, &req, &tenant, status).await,
            (Route::NotFound, _) => respond::error(404, "not found"),
            _ => respond::error(405, "method not allowed"),
        };
        tracing::info!(
            status = response.status().as_u16(),
            aws_requests = invocation::current().map_or(0, |s| s.requests()),
            "webhook handled"
        );
        response
    }
    .instrument(span)
    .await
}

/// The routes of template.yaml. Matched on the path's tail so a stage or custom-domain prefix
/// in front does not matter.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Meta,
    Twilio { tenant: String, status: bool },
    NotFound,
}

impl Route {
    fn parse(path: &str) -> Self {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let Some(at) = segments.iter().rposition(|s| *s == "webhooks") else {
            return Self::NotFound;
        };
        match &segments[at + 1..] {
            ["meta"] => Self::Meta,
            ["twilio", tenant] => Self::Twilio { tenant: (*tenant).to_owned(), status: false },
            ["twilio", tenant, "status"] => Self::Twilio { tenant: (*tenant).to_owned(), status: true },
            _ => Self::NotFound,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Twilio { status: false, .. } => "twilio",
            Self::Twilio { status: true, .. } => "twilio-status",
            Self::NotFound => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn routes_match_with_or_without_a_stage_prefix() {
        assert_eq!(Route::parse("/webhooks/meta"), Route::Meta);
        assert_eq!(Route::parse("/prod/webhooks/meta/"), Route::Meta);
        assert_eq!(Route::parse("/webhooks/twilio/acme"), Route::Twilio { tenant: "acme".into(), status: false });
        assert_eq!(Route::parse("/webhooks/twilio/acme/status"), Route::Twilio { tenant: "acme".into(), status: true });
        for other in ["/", "/webhooks", "/webhooks/twilio", "/webhooks/meta/x", "/other/meta"] {
            assert_eq!(Route::parse(other), Route::NotFound, "{other}");
        }
    }
}
