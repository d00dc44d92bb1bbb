//! The local stack: the AWS emulator, the template's resources, every function of the template
//! in-process behind an API Gateway, a Lambda Invoke API, SQS event source mappings and
//! schedules on loopback. `make run` starts it; the end-to-end tests build the same stack, one
//! per test, against one emulator.

pub mod emulator;
pub mod event_sources;
pub mod functions;
pub mod gateway;
pub mod provision;
pub mod registry;
pub mod sandbox;
pub mod schedules;
pub mod template;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use aws_config::SdkConfig;
use concierge::clock::{Clock, SystemClock};
use concierge::crypto::MasterKey;
use concierge::tenants::{TenantLoader, TenantsFile};

use functions::{EnvOverrides, EnvSources, LocalFunction, resolve_environment};
use gateway::Gateway;
use provision::{Provisioned, provision};
use template::Template;

/// The repository root (this crate lives in `infra/local`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Where shell variables come from (the process environment; tests pass their own).
pub type Shell = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub fn process_shell() -> Shell {
    Arc::new(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
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
    /// The shell's variables, which win over the template and the env-vars file.
    pub shell: Shell,
    pub clock: Arc<dyn Clock>,
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
            shell: process_shell(),
            clock: Arc::new(SystemClock),
        }
    }
}

pub struct LocalStack {
    pub outbox: Arc<sandbox::Outbox>,
    pub sdk: SdkConfig,
    pub provisioned: Provisioned,
    pub functions: Vec<Arc<LocalFunction>>,
    pub master_key: MasterKey,
    pub clock: Arc<dyn Clock>,
}

impl LocalStack {
    pub async fn build(sdk: SdkConfig, options: &StackOptions) -> Result<Self> {
        let template = Template::load(&options.template)?;
        let provisioned = provision(&template, &sdk, &options.prefix).await?;
        let master_key = MasterKey::ensure_key_file(&options.key_file)?;
        // Tenants first: functions warm up against them at init.
        let stack = Self {
            outbox: Arc::default(),
            sdk: sdk.clone(),
            provisioned,
            functions: Vec::new(),
            master_key,
            clock: options.clock.clone(),
        };
        if let Some(tenants) = &options.tenants {
            stack.load_tenants(tenants).await?;
        }
        let overrides = EnvOverrides::load(&options.env_vars)?;
        let mut parameters = template.parameter_defaults();
        parameters.insert("PublicBaseUrl".into(), options.public_base_url.clone());
        let mut local = vec![("SECRETS_KEY_FILE", options.key_file.display().to_string())];
        // Outbound calls go to the sandbox unless real base URLs are given.
        local.extend(sandbox::base_urls(&options.public_base_url));
        let sources = EnvSources {
            provisioned: &stack.provisioned,
            parameters: &parameters,
            local: &local,
            overrides: &overrides,
            shell: &*options.shell,
        };
        let mut functions = Vec::new();
        for def in template.functions()? {
            let env = resolve_environment(&def, &sources)?;
            functions.push(Arc::new(LocalFunction::build(def, env, &sdk, options.clock.clone()).await?));
        }
        Ok(Self { functions, ..stack })
    }

    /// Loads (or reloads) a tenants file into the stack's tables.
    pub async fn load_tenants(&self, path: &Path) -> Result<usize> {
        let file = TenantsFile::load(path)?;
        self.load_tenants_file(&file).await
    }

    pub async fn load_tenants_file(&self, file: &TenantsFile) -> Result<usize> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let audit = concierge::store::audit::DynamoAuditLog::new(client.clone(), self.table("AuditTable")?.to_owned());
        let loader = TenantLoader {
            client: &client,
            tenants_table: self.table("TenantsTable")?,
            routes_table: self.table("RoutesTable")?,
            master_key: &self.master_key,
            audit: &audit,
        };
        loader.load(file, self.clock.now()).await.context("loading tenants")
    }

    pub fn table(&self, logical_id: &str) -> Result<&str> {
        self.provisioned.reference(logical_id).ok_or_else(|| anyhow!("{logical_id} is not in the template"))
    }

    pub fn function(&self, logical_id: &str) -> Option<&Arc<LocalFunction>> {
        self.functions.iter().find(|f| f.def.logical_id == logical_id)
    }

    /// The template's SQS event sources, each bound to its function.
    pub fn sqs_mappings(&self) -> Result<Vec<event_sources::SqsMapping>> {
        let mut mappings = Vec::new();
        for f in &self.functions {
            for source in &f.def.sqs_sources {
                let provisioned = |attribute: Option<&str>| {
                    attribute.map(str::to_owned).ok_or_else(|| anyhow!("{} is not provisioned", source.queue))
                };
                mappings.push(event_sources::SqsMapping {
                    function: f.clone(),
                    queue_url: provisioned(self.provisioned.reference(&source.queue))?,
                    queue_arn: provisioned(self.provisioned.attribute(&source.queue, "Arn"))?,
                    batch_size: source.batch_size,
                    report_batch_item_failures: source.report_batch_item_failures,
                });
            }
        }
        Ok(mappings)
    }

    /// The template's schedules, each bound to its function.
    pub fn schedules(&self) -> Result<Vec<schedules::Schedule>> {
        let mut out = Vec::new();
        for f in &self.functions {
            for s in &f.def.schedules {
                let expression =
                    s.expression.parse().with_context(|| format!("{}: schedule {}", f.def.logical_id, s.name))?;
                out.push(schedules::Schedule { function: f.clone(), name: s.name.clone(), expression });
            }
        }
        Ok(out)
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

    /// The Lambda Invoke API, and `POST /schedules/{LogicalId}` to fire a schedule now.
    pub fn invoke_router(&self) -> axum::Router {
        axum::Router::new()
            .route("/2015-03-31/functions/{name}/invocations", axum::routing::post(gateway::invoke))
            .route("/schedules/{name}", axum::routing::post(schedules::fire_now))
            .with_state(Arc::new(self.functions.clone()))
            // Lambda's limit for a synchronous invocation payload.
            .layer(axum::extract::DefaultBodyLimit::max(6 * 1024 * 1024))
    }
}
