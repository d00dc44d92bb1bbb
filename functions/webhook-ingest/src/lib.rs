//! `webhook-ingest`: the HTTP entry point for Meta and Twilio webhooks. Verifies each request
//! over the exact bytes received, routes it to its tenant, stores every message once and queues
//! it for the reply worker, and answers fast.

mod meta;
mod respond;
mod twilio;

use concierge::aws::{AwsClients, RequestCounter};
use concierge::clock::unix_now;
use concierge::config::{ConfigError, IngestConfig, MasterKeySource, Secret};
use concierge::crypto::{CryptoError, MasterKey};
use concierge::ingest::Ingest;
use concierge::privacy::Pseudonymizer;
use concierge::queue::SqsInboundQueue;
use concierge::store::messages::DynamoMessageLog;
use concierge::tenants::{DynamoTenantDirectory, TenantDirectory};
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

pub type Pipeline = Ingest<DynamoTenantDirectory, DynamoMessageLog, SqsInboundQueue>;

/// Everything built once per cold start.
pub struct App {
    pipeline: Pipeline,
    meta_app_secret: Secret,
    meta_verify_token: Secret,
    public_base_url: Option<String>,
    requests: RequestCounter,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] CryptoError),
}

impl App {
    pub fn new(config: IngestConfig, aws: AwsClients) -> Result<Self, InitError> {
        let master_key = match &config.master_key {
            MasterKeySource::File(path) => MasterKey::from_key_file(path)?,
            MasterKeySource::Kms(key_id) => MasterKey::kms(aws.kms.clone(), key_id.clone()),
        };
        let pipeline = Ingest {
            directory: DynamoTenantDirectory::new(
                aws.dynamodb.clone(),
                config.tenants_table,
                config.routes_table,
                master_key,
            ),
            log: DynamoMessageLog::new(aws.dynamodb.clone(), config.messages_table),
            queue: SqsInboundQueue::new(aws.sqs.clone(), config.inbound_queue_url),
            pseudonyms: Pseudonymizer::new(config.contact_hash_key.expose().as_bytes()),
        };
        Ok(Self {
            pipeline,
            meta_app_secret: config.meta_app_secret,
            meta_verify_token: config.meta_verify_token,
            public_base_url: config.public_base_url,
            requests: aws.requests,
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

    /// AWS requests made by this instance so far (all clients, retries included).
    pub fn aws_requests(&self) -> u64 {
        self.requests.get()
    }

    /// The same, per operation (`DynamoDB:PutItem`, `SQS:SendMessage`, …).
    pub fn aws_requests_by_operation(&self) -> std::collections::BTreeMap<String, u64> {
        self.requests.by_operation()
    }
}

/// The Lambda handler. Every outcome is an HTTP response; internals never reach the caller.
pub async fn handle(app: &App, req: Request) -> Result<Response<Body>, lambda_http::Error> {
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
        let before = app.aws_requests();
        let response = match (route, req.method()) {
            (Route::Meta, &Method::GET) => meta::verify(app, &req),
            (Route::Meta, &Method::POST) => meta::notify(app, &req, unix_now()).await,
            (Route::Twilio { tenant, status }, &Method::POST) => {
                twilio::receive(app, &req, &tenant, status, unix_now()).await
            }
            (Route::NotFound, _) => respond::error(404, "not found"),
            _ => respond::error(405, "method not allowed"),
        };
        tracing::info!(
            status = response.status().as_u16(),
            aws_requests = app.aws_requests() - before,
            "webhook handled"
        );
        Ok(response)
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
