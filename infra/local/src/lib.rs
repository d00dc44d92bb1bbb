//! The local stack: the AWS emulator, the template's resources, the functions in-process behind
//! an API Gateway and a Lambda Invoke API on loopback. `make run` starts it; the end-to-end
//! tests build the same stack, one per test, against one emulator.

pub mod emulator;
pub mod event_sources;
pub mod functions;
pub mod gateway;
pub mod provision;
pub mod sandbox;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use aws_config::SdkConfig;
use concierge::crypto::MasterKey;
use concierge::tenants::{TenantLoader, TenantsFile};

use functions::{EnvOverrides, LocalFunction, resolve_environment};
use gateway::Gateway;
use provision::{Provisioned, provision};
use template::Template;

/// The repository root (this crate lives in `infra/local`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

pub struct StackOptions {
    pub template: PathBuf,
    /// Secrets and overrides, `sam local invoke --env-vars` format.
    pub env_vars: PathBuf,
    pub tenants: Option<PathBuf>,
    /// Resource names are `<prefix>-<LogicalId>`.
    pub prefix: String,
    /// The local master key (created on first use).
    pub key_file: PathBuf,
    /// What Twilio would have called: the local API's base URL.
    pub public_base_url: String,
}

impl StackOptions {
    pub fn new(prefix: &str, state_dir: &Path, api_port: u16) -> Self {
        let root = repo_root();
        Self {
            template: root.join("template.yaml"),
            env_vars: root.join("infra/local/env.json"),
            tenants: Some(root.join("infra/local/tenants.example.json")),
            prefix: prefix.to_owned(),
            key_file: state_dir.join("master.key"),
            public_base_url: format!("http://127.0.0.1:{api_port}"),
        }
    }
}

pub struct LocalStack {
    pub outbox: Arc<sandbox::Outbox>,
    pub sdk: SdkConfig,
    pub provisioned: Provisioned,
    pub functions: Vec<Arc<LocalFunction>>,
    pub master_key: MasterKey,
}

impl LocalStack {
    pub async fn build(sdk: SdkConfig, options: &StackOptions) -> Result<Self> {
        let template = Template::load(&options.template)?;
        let provisioned = provision(&template, &sdk, &options.prefix).await?;
        let master_key = MasterKey::ensure_key_file(&options.key_file)?;
        let overrides = EnvOverrides::load(&options.env_vars)?;
        let mut parameters = template.parameter_defaults();
        parameters.insert("PublicBaseUrl".into(), options.public_base_url.clone());
        let mut extra = vec![("SECRETS_KEY_FILE", options.key_file.display().to_string())];
        // Outbound calls go to the sandbox unless real base URLs are given.
        for (name, sandbox) in sandbox::base_urls(&options.public_base_url) {
            extra.push((name, std::env::var(name).unwrap_or(sandbox)));
        }
        let mut functions = Vec::new();
        for def in template.functions()? {
            let env = resolve_environment(&def, &provisioned, &parameters, &overrides, &extra)?;
            functions.push(Arc::new(LocalFunction::build(def, env, &sdk).await?));
        }
        let stack = Self { outbox: Arc::default(), sdk, provisioned, functions, master_key };
        if let Some(tenants) = &options.tenants {
            stack.load_tenants(tenants).await?;
        }
        Ok(stack)
    }

    /// Loads (or reloads) a tenants file into the stack's tables.
    pub async fn load_tenants(&self, path: &Path) -> Result<usize> {
        let file = TenantsFile::load(path)?;
        self.load_tenants_file(&file).await
    }

    pub async fn load_tenants_file(&self, file: &TenantsFile) -> Result<usize> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let loader = TenantLoader {
            client: &client,
            tenants_table: self.table("TenantsTable")?,
            routes_table: self.table("RoutesTable")?,
            master_key: &self.master_key,
        };
        let now = concierge::clock::unix_now();
        loader.load(file, now).await.context("loading tenants")
    }

    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.provisioned.reference(logical_id).ok_or_else(|| anyhow!("{logical_id} is not in the template"))
    }

    pub fn function(&self, logical_id: &str) -> Option<&Arc<LocalFunction>> {
        self.functions.iter().find(|f| f.def.logical_id == logical_id)
    }

    /// The template's SQS event sources, each bound to its function's handler.
    pub fn sqs_mappings(&self) -> Result<Vec<event_sources::SqsMapping>> {
        let mut mappings = Vec::new();
        for f in &self.functions {
            for source in &f.def.sqs_sources {
                let handler = f
                    .sqs_handler()
                    .ok_or_else(|| anyhow!("{} has an SQS event but no SQS handler", f.def.logical_id))?;
                mappings.push(event_sources::SqsMapping {
                    function: f.def.logical_id.clone(),
                    queue_url: self
                        .provisioned
                        .reference(&source.queue)
                        .ok_or_else(|| anyhow!("{} is not provisioned", source.queue))?
                        .to_owned(),
                    queue_arn: self
                        .provisioned
                        .attribute(&source.queue, "Arn")
                        .ok_or_else(|| anyhow!("{} is not provisioned", source.queue))?
                        .to_owned(),
                    batch_size: source.batch_size,
                    report_batch_item_failures: source.report_batch_item_failures,
                    handler,
                });
            }
        }
        Ok(mappings)
    }

    pub fn gateway(&self) -> Gateway {
        Gateway::new(&self.functions)
    }

    /// API Gateway on the template's routes, plus the sandbox sink under `/sandbox`.
    pub fn api_router(&self) -> axum::Router {
        sandbox::router(self.outbox.clone())
            .merge(axum::Router::new().fallback(gateway::api).with_state(Arc::new(self.gateway())))
            // API Gateway's payload limit, so the function's own 413 is what a caller sees.
            .layer(axum::extract::DefaultBodyLimit::max(10 * 1024 * 1024))
    }

    /// The Lambda Invoke API.
    pub fn invoke_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(gateway::invoke))
            .with_state(Arc::new(self.functions.clone()))
            // Lambda's limit for a synchronous invocation payload.
            .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
    }
}
