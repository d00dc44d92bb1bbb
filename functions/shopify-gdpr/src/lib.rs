//! `shopify-gdpr`: Shopify's mandatory compliance webhooks on `POST /webhooks/shopify`.
//! Verifies the HMAC over the exact bytes received (401 when wrong or missing, nothing done),
//! finds the tenant by its shop, records the privacy request (export, erasure, wipe) with the
//! subject sealed, queues a job naming only the tenant and the request, and answers 200 well
//! inside Shopify's 5 s. `app/uninstalled` suspends the tenant. A redelivery (same
//! `X-Shopify-Webhook-Id`) finds its request and queues it only if that never happened.
//!
//! `shop/redact` comes 48 hours after `app/uninstalled`, so it wipes a suspended tenant. For a
//! tenant that is not suspended it is recorded but held (`failed`, with the reason) for an
//! operator to confirm: the webhook id is an unsigned header, so a captured `shop/redact`
//! replayed under a fresh id must not wipe a shop whose uninstall we never saw.

mod respond;

use std::future::Future;
use std::sync::Arc;

use concierge::clock::Clock;
use concierge::config::{CONTACT_HASH_KEY, Env, MasterKeySource, PlatformSecrets, SHOPIFY_CLIENT_SECRET, Secret};
use concierge::crypto::MasterKey;
use concierge::function::{self, BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::invocation;
use concierge::privacy::Pseudonymizer;
use concierge::privacy::intake;
use concierge::privacy::queue::{PrivacyQueue, SqsPrivacyQueue};
use concierge::privacy::requests::{
    PrivacyRequest, RequestKind, RequestSource, RequestState, Subject, shopify_request_id,
};
use concierge::shopify::{self, Headers, Topic, signature};
use concierge::store::StoreError;
use concierge::store::audit::DynamoAuditLog;
use concierge::store::requests::{Created, DynamoPrivacyRequests, PrivacyRequests};
use concierge::tenants::suspension::{DynamoSuspensions, Suspended, Suspensions};
use concierge::tenants::{DynamoTenantDirectory, Tenant};
use lambda_http::http::Method;
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_runtime::Context;
use serde_json::Value;
use tracing::Instrument;

const WARM_UP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a `shop/redact` for a tenant that is not suspended waits for an operator.
pub const WIPE_UNCONFIRMED: &str =
    "shop/redact for a shop that is not uninstalled: confirm with `concierge-admin privacy requeue --confirm-wipe`";

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "shopify-gdpr", build: |setup| Box::pin(build(setup)) };

/// Finding a tenant by its Shopify shop.
pub trait Shops: Send + Sync {
    fn by_shop_domain(&self, domain: &str) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
}

impl Shops for DynamoTenantDirectory {
    async fn by_shop_domain(&self, domain: &str) -> Result<Option<Arc<Tenant>>, StoreError> {
        DynamoTenantDirectory::by_shop_domain(self, domain).await
    }
}

/// The webhook's work, over its ports (unit tests use the in-memory adapters).
pub struct Compliance<D, R, Q, S> {
    pub shops: D,
    pub requests: R,
    pub queue: Q,
    pub suspensions: S,
    /// Seals the subject's identifiers in the request record.
    pub master_key: MasterKey,
    pub client_secret: Secret,
    pub pseudonyms: Pseudonymizer,
    pub clock: Arc<dyn Clock>,
}

pub type App =
    Compliance<DynamoTenantDirectory, DynamoPrivacyRequests, SqsPrivacyQueue, DynamoSuspensions<DynamoAuditLog>>;

/// The composition root: configuration, secrets, adapters, a warm connection.
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let secrets =
        PlatformSecrets::load(&setup.env, &setup.aws.secrets, &[SHOPIFY_CLIENT_SECRET, CONTACT_HASH_KEY]).await?;
    let app = new_app(&setup.env, &secrets, &setup, setup.clock.clone())?;
    warm_up(&app).await;
    Ok(Arc::new(Handler(app)))
}

fn new_app(env: &Env, secrets: &PlatformSecrets, setup: &Setup, clock: Arc<dyn Clock>) -> Result<App, Error> {
    let aws = &setup.aws;
    let master_key = match env.master_key()? {
        MasterKeySource::File(path) => MasterKey::from_key_file(&path)?,
        MasterKeySource::Kms(key_id) => MasterKey::kms(aws.kms.clone(), key_id),
    };
    let tenants_table = env.required("TENANTS_TABLE")?;
    Ok(Compliance {
        shops: DynamoTenantDirectory::new(
            aws.dynamodb.clone(),
            tenants_table.clone(),
            env.required("ROUTES_TABLE")?,
            master_key.clone(),
        ),
        requests: DynamoPrivacyRequests::new(aws.dynamodb.clone(), tenants_table.clone()),
        queue: SqsPrivacyQueue::new(aws.sqs.clone(), env.required("PRIVACY_QUEUE_URL")?),
        suspensions: DynamoSuspensions::new(
            aws.dynamodb.clone(),
            tenants_table,
            DynamoAuditLog::new(aws.dynamodb.clone(), env.required("AUDIT_TABLE")?),
        ),
        master_key,
        client_secret: secrets.get(SHOPIFY_CLIENT_SECRET),
        pseudonyms: Pseudonymizer::new(secrets.get(CONTACT_HASH_KEY).expose().as_bytes()),
        clock,
    })
}

/// Opens the DynamoDB and SQS connections during init (bounded; a failure is only logged).
async fn warm_up(app: &App) {
    let calls = async { futures::join!(app.shops.by_shop_domain("warm-up.invalid"), app.queue.probe()) };
    match tokio::time::timeout(WARM_UP_LIMIT, calls).await {
        Ok((Ok(_), Ok(()))) => {}
        _ => tracing::warn!("connection warm-up failed or timed out; continuing"),
    }
}

struct Handler(App);

impl Function for Handler {
    fn invoke(&self, event: Event, context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let request = function::http::request(&event, context)?;
            function::http::response(handle(&self.0, request).await)
        })
    }
}

/// The HTTP handler. Every outcome is an HTTP response; internals never reach the caller.
pub async fn handle<D, R, Q, S>(app: &Compliance<D, R, Q, S>, req: Request) -> Response<Body>
where
    D: Shops,
    R: PrivacyRequests,
    Q: PrivacyQueue,
    S: Suspensions,
{
    let request_id =
        req.lambda_context_ref().map(|c| c.request_id.clone()).filter(|id| !id.is_empty()).unwrap_or_default();
    let span = tracing::info_span!("webhook", route = "shopify", request_id = %request_id);
    async move {
        let response = if req.method() == Method::POST {
            app.receive(&req).await
        } else {
            respond::error(405, "method not allowed")
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

impl<D, R, Q, S> Compliance<D, R, Q, S>
where
    D: Shops,
    R: PrivacyRequests,
    Q: PrivacyQueue,
    S: Suspensions,
{
    async fn receive(&self, req: &Request) -> Response<Body> {
        // API Gateway's base64 encoding is already undone by lambda_http: these are Shopify's bytes.
        let body: &[u8] = req.body().as_ref();
        if body.len() > shopify::MAX_BODY_BYTES {
            return respond::error(413, "body too large");
        }
        let header = |name: &'static str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if signature::verify(self.client_secret.expose().as_bytes(), body, header(signature::HEADER)).is_err() {
            tracing::warn!("shopify hmac missing or invalid");
            return respond::error(401, "invalid signature");
        }
        let headers = match Headers::parse(header) {
            Ok(headers) => headers,
            Err(e) => {
                tracing::warn!(error = %e, "signed shopify webhook without the documented headers");
                return respond::error(400, "missing or malformed shopify headers");
            }
        };
        let topic = headers.topic;
        // What to do, from the body, before anything is read or written.
        if topic == Topic::Other {
            tracing::info!("shopify topic this app does not handle; acknowledged");
            return respond::ok();
        }
        let subject = shopify::check_body(topic, &headers.shop_domain, body);
        let subject = match subject {
            Ok(subject) => subject,
            // Correctly signed yet not this topic's or this shop's body: a replay under another
            // header, or Shopify changed a payload. Either needs a person.
            Err(e @ (shopify::WebhookError::WrongTopic | shopify::WebhookError::ShopMismatch)) => {
                tracing::error!(topic = topic.as_str(), error = %e, "signed shopify webhook refused: not its topic's body");
                return respond::error(400, "malformed webhook");
            }
            Err(e) => {
                tracing::warn!(topic = topic.as_str(), error = %e, "malformed shopify webhook");
                return respond::error(400, "malformed webhook");
            }
        };
        let tenant = match self.shops.by_shop_domain(&headers.shop_domain).await {
            Ok(Some(tenant)) => tenant,
            // Answered 2xx so Shopify does not retry for hours; nothing is stored.
            Ok(None) => {
                tracing::warn!(
                    topic = topic.as_str(),
                    shop = %self.pseudonyms.opaque(&headers.shop_domain),
                    "shopify webhook for a shop no tenant has; ignored"
                );
                return respond::ok();
            }
            Err(e) => return failed("shop lookup", &e),
        };
        match topic.request_kind() {
            Some(kind) => self.request(&tenant, kind, subject, &headers).await,
            None => self.suspend(&tenant).await,
        }
    }

    /// Records the request (the dedupe: its id comes from the webhook id) and queues it unless
    /// an earlier delivery did.
    async fn request(
        &self,
        tenant: &Tenant,
        kind: RequestKind,
        subject: Option<Subject>,
        headers: &Headers<'_>,
    ) -> Response<Body> {
        let id = shopify_request_id(headers.webhook_id);
        let sealed = match &subject {
            Some(subject) => match subject.seal(&self.master_key, &tenant.id, &id).await {
                Ok(sealed) => Some(sealed),
                Err(e) => return failed("sealing the subject", &e),
            },
            None => None,
        };
        let source = RequestSource::Shopify {
            webhook_id: headers.webhook_id.to_owned(),
            topic: headers.topic.as_str().to_owned(),
        };
        let record = PrivacyRequest::received(tenant.id.clone(), id.clone(), kind, source, self.clock.now_ms(), sealed);
        if kind == RequestKind::Wipe && tenant.suspended_at.is_none() {
            // The cached profile may predate a recent uninstall: ask the table.
            match self.suspensions.suspended_since(&tenant.id).await {
                Ok(Some(_)) => {}
                Ok(None) => return self.hold(tenant, record).await,
                Err(e) => return failed("reading the suspension", &e),
            }
        }
        // A redelivery is queued again only if no earlier delivery got that far; a failed send
        // leaves the record `received` for Shopify's retry.
        let submitted = match intake::submit(&self.requests, &self.queue, &record).await {
            Ok(submitted) => submitted,
            Err(e) => {
                tracing::error!(tenant = %tenant.id, request = %id, error = %e, "taking in the privacy request failed; answering 500");
                return respond::error(500, "temporarily unavailable");
            }
        };
        tracing::info!(
            tenant = %tenant.id,
            request = %id,
            kind = kind.as_str(),
            duplicate = submitted.duplicate,
            queued_now = submitted.queued_now,
            "privacy request recorded and queued"
        );
        respond::ok()
    }

    /// Records a wipe that needs an operator's confirmation, without queueing it.
    async fn hold(&self, tenant: &Tenant, mut record: PrivacyRequest) -> Response<Body> {
        record.state = RequestState::Failed;
        record.failure = Some(WIPE_UNCONFIRMED.to_owned());
        match self.requests.create(&record).await {
            Ok(created) => {
                tracing::error!(
                    tenant = %tenant.id,
                    request = %record.id,
                    duplicate = matches!(created, Created::Existing(_)),
                    "shop/redact for a tenant that is not suspended; held for an operator"
                );
                respond::ok()
            }
            Err(e) => failed("recording the privacy request", &e),
        }
    }

    async fn suspend(&self, tenant: &Tenant) -> Response<Body> {
        match self.suspensions.suspend(tenant, self.clock.now_ms()).await {
            Ok(outcome) => {
                let outcome = match outcome {
                    Suspended::Now(_) => "suspended",
                    Suspended::Already(_) => "already suspended",
                    Suspended::NoTenant => "tenant gone",
                };
                tracing::info!(tenant = %tenant.id, outcome, "app uninstalled");
                respond::ok()
            }
            Err(e) => failed("suspending the tenant", &e),
        }
    }
}

/// AWS failed: 500 and an error line (no personal data in these errors), so Shopify retries.
fn failed(what: &'static str, error: &dyn std::fmt::Display) -> Response<Body> {
    tracing::error!(error = %error, "{what} failed; answering 500");
    respond::error(500, "temporarily unavailable")
}

#[cfg(test)]
mod tests;
