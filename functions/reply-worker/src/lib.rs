//! `reply-worker`: consumes the inbound FIFO queue and answers customers (see
//! `concierge::reply` for what one job does). Batches report partial failures with FIFO
//! semantics: within a message group, the first failure fails the rest of that group too, so a
//! contact's messages are never answered out of order; other groups go on.

mod batch;

use std::sync::Arc;

use concierge::assistant::knowledge::KnowledgeCache;
use concierge::assistant::model::{AnyModel, ModelConfig, Retrying};
use concierge::assistant::prompt::Budget;
use concierge::channels::outbound::{Endpoints, HttpSender};
use concierge::config::{CONTACT_HASH_KEY, LLM_API_KEY, MasterKeySource, PlatformSecrets};
use concierge::crypto::MasterKey;
use concierge::function::{BoxFuture, Error, Event, Function, FunctionEntry, Setup};
use concierge::media::{MediaFetcher, S3MediaStore};
use concierge::privacy::Pseudonymizer;
use concierge::reply::ReplyWorker;
use concierge::store::audit::DynamoAuditLog;
use concierge::store::contacts::DynamoContacts;
use concierge::store::messages::DynamoMessageLog;
use concierge::tenants::DynamoTenantDirectory;
use lambda_runtime::Context;
use serde_json::Value;

pub type Worker = ReplyWorker<
    DynamoMessageLog,
    DynamoContacts,
    DynamoTenantDirectory,
    Retrying<AnyModel>,
    HttpSender,
    S3MediaStore,
    DynamoAuditLog,
>;

/// How the template names this function's binary, and its composition root.
pub const FUNCTION: FunctionEntry = FunctionEntry { binary: "reply-worker", build: |setup| Box::pin(build(setup)) };

/// The composition root: configuration, secrets, adapters, the model.
pub async fn build(setup: Setup) -> Result<Arc<dyn Function>, Error> {
    let env = &setup.env;
    let secrets = PlatformSecrets::load_with(env, &setup.aws.secrets, &[CONTACT_HASH_KEY], &[LLM_API_KEY]).await?;
    let model_config = ModelConfig::from_env(env)?;
    let api_key = secrets.find(LLM_API_KEY).map(|k| k.expose().to_owned());
    let model =
        AnyModel::new(&model_config, api_key, concierge::assistant::model::http_client()?, || setup.aws.bedrock())?;
    let master_key = match env.master_key()? {
        MasterKeySource::File(path) => MasterKey::from_key_file(&path)?,
        MasterKeySource::Kms(key_id) => MasterKey::kms(setup.aws.kms.clone(), key_id),
    };
    let dynamodb = setup.aws.dynamodb.clone();
    let endpoints = Endpoints::from_env(env)?;
    let pseudonyms = Pseudonymizer::new(secrets.get(CONTACT_HASH_KEY).expose().as_bytes());
    let worker: Worker = ReplyWorker {
        log: DynamoMessageLog::new(dynamodb.clone(), env.required("MESSAGES_TABLE")?, pseudonyms.clone()),
        contacts: DynamoContacts::new(dynamodb.clone(), env.required("CONTACTS_TABLE")?)
            .with_identity_index(pseudonyms.clone()),
        audit: DynamoAuditLog::new(dynamodb.clone(), env.required("AUDIT_TABLE")?),
        tenants: DynamoTenantDirectory::new(
            dynamodb,
            env.required("TENANTS_TABLE")?,
            env.required("ROUTES_TABLE")?,
            master_key,
        ),
        model: Retrying::new(model),
        sender: HttpSender::new(endpoints.clone())?,
        media: S3MediaStore::new(setup.aws.s3(), env.required("DATA_BUCKET")?),
        fetcher: MediaFetcher::new(endpoints)?,
        knowledge: KnowledgeCache::default(),
        pseudonyms,
        clock: setup.clock,
        budget: Budget::default(),
        public_base_url: env.public_base_url()?,
    };
    tracing::info!(provider = %model_config.kind, "reply worker ready");
    Ok(Arc::new(Handler(Arc::new(worker))))
}

struct Handler(Arc<Worker>);

impl Function for Handler {
    fn invoke(&self, event: Event, _context: Context) -> BoxFuture<'_, Result<Value, Error>> {
        Box::pin(async move {
            let event = serde_json::from_str(event.get()).map_err(|_| "expected an SQS event")?;
            let response = batch::handle(&event, |body| {
                let worker = self.0.clone();
                async move { worker.handle(&body).await }
            })
            .await?;
            Ok(serde_json::to_value(response)?)
        })
    }
}
