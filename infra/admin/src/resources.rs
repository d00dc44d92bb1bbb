//! Which stack the CLI works on: the SDK configuration, each resource's name (a flag, its
//! environment variable, or the local runner's default `<prefix>-<LogicalId>`), the master key,
//! and a first cheap call on each resource so that a wrong name is told apart from an
//! unreachable AWS.

use std::path::PathBuf;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use concierge::aws::{AwsClients, RequestCounter, describe};
use concierge::crypto::MasterKey;

use crate::cli::ResourceArgs;
use crate::failure::Failure;

/// The local runner's prefix (`make run`).
pub const DEFAULT_PREFIX: &str = "concierge";
/// The local runner's key file (`make run`, state dir `.local`).
pub const DEFAULT_KEY_FILE: &str = ".local/master.key";
/// What the local stack documents for the emulator (it signs nothing).
const LOCAL_REGION: &str = "us-east-1";

pub struct Stack {
    pub aws: AwsClients,
    args: ResourceArgs,
    /// Set when names default to the local runner's.
    prefix: Option<String>,
}

/// A resource: its flag, its variable, and how the local runner names it.
struct Resource {
    flag: &'static str,
    var: &'static str,
    local: fn(&str) -> String,
}

const TENANTS: Resource =
    Resource { flag: "--tenants-table", var: "TENANTS_TABLE", local: |p| format!("{p}-TenantsTable") };
const MESSAGES: Resource =
    Resource { flag: "--messages-table", var: "MESSAGES_TABLE", local: |p| format!("{p}-MessagesTable") };
const CONTACTS: Resource =
    Resource { flag: "--contacts-table", var: "CONTACTS_TABLE", local: |p| format!("{p}-ContactsTable") };
const AUDIT: Resource = Resource { flag: "--audit-table", var: "AUDIT_TABLE", local: |p| format!("{p}-AuditTable") };
const DATA: Resource = Resource { flag: "--data-bucket", var: "DATA_BUCKET", local: |p| format!("{p}-databucket") };
const ANCHORS: Resource =
    Resource { flag: "--anchor-bucket", var: "AUDIT_ANCHOR_BUCKET", local: |p| format!("{p}-auditanchorbucket") };
/// The local runner names a standard queue `<prefix>-<LogicalId>`; its URL is looked up.
const PRIVACY_QUEUE_NAME: fn(&str) -> String = |p| format!("{p}-PrivacyJobsQueue");

fn env_is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// An answer saying the resource is not there (a wrong name) versus anything else (no
/// answer at all, a refusal).
fn probe_failed<E, R>(what: String, err: SdkError<E, R>, not_found: impl Fn(&E) -> bool, hint: &str) -> Failure
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) if not_found(e) => Failure::Usage(format!("{what} does not exist ({hint})")),
        _ => Failure::Aws(format!("{what}: {}", describe(err))),
    }
}

impl Stack {
    pub async fn connect(args: ResourceArgs) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &args.endpoint_url {
            loader = loader.endpoint_url(endpoint);
            // The emulator checks no signature: the dummy region and credentials the local
            // stack uses, unless the shell gives others.
            if !env_is_set("AWS_REGION") && !env_is_set("AWS_DEFAULT_REGION") {
                loader = loader.region(Region::new(LOCAL_REGION));
            }
            if !env_is_set("AWS_ACCESS_KEY_ID") {
                loader = loader.credentials_provider(Credentials::new("local", "local", None, None, "concierge-admin"));
            }
        }
        let sdk = loader.load().await;
        let prefix = args.prefix.clone().or_else(|| args.endpoint_url.as_ref().map(|_| DEFAULT_PREFIX.to_owned()));
        Self { aws: AwsClients::new(&sdk, RequestCounter::default()), args, prefix }
    }

    fn name(&self, given: &Option<String>, r: &Resource) -> Result<String, Failure> {
        if let Some(name) = given {
            return Ok(name.clone());
        }
        match &self.prefix {
            Some(prefix) => Ok((r.local)(prefix)),
            None => Err(Failure::Usage(format!(
                "{} (or {}) is needed against AWS: the stack's Outputs give it (or use --prefix / AWS_ENDPOINT_URL for a local stack)",
                r.flag, r.var
            ))),
        }
    }

    fn hint(&self, r: &Resource) -> String {
        match &self.prefix {
            Some(prefix) => format!("check --prefix (now {prefix}) or {}", r.var),
            None => format!("check {} / {}", r.flag, r.var),
        }
    }

    /// A table's name, checked to exist.
    async fn table(&self, given: &Option<String>, r: &Resource) -> Result<String, Failure> {
        let name = self.name(given, r)?;
        let probe = self.aws.dynamodb.describe_table().table_name(&name).send().await;
        match probe {
            Ok(_) => Ok(name),
            Err(e) => {
                Err(probe_failed(format!("table {name}"), e, |e| e.is_resource_not_found_exception(), &self.hint(r)))
            }
        }
    }

    /// A bucket's name, checked to exist.
    async fn bucket(&self, given: &Option<String>, r: &Resource) -> Result<String, Failure> {
        let name = self.name(given, r)?;
        let probe = self.aws.s3().head_bucket().bucket(&name).send().await;
        match probe {
            Ok(_) => Ok(name),
            Err(e) => Err(probe_failed(format!("bucket {name}"), e, |e| e.is_not_found(), &self.hint(r))),
        }
    }

    pub async fn tenants_table(&self) -> Result<String, Failure> {
        self.table(&self.args.tenants_table, &TENANTS).await
    }

    pub async fn messages_table(&self) -> Result<String, Failure> {
        self.table(&self.args.messages_table, &MESSAGES).await
    }

    pub async fn contacts_table(&self) -> Result<String, Failure> {
        self.table(&self.args.contacts_table, &CONTACTS).await
    }

    pub async fn audit_table(&self) -> Result<String, Failure> {
        self.table(&self.args.audit_table, &AUDIT).await
    }

    pub async fn data_bucket(&self) -> Result<String, Failure> {
        self.bucket(&self.args.data_bucket, &DATA).await
    }

    pub async fn anchor_bucket(&self) -> Result<String, Failure> {
        self.bucket(&self.args.anchor_bucket, &ANCHORS).await
    }

    /// The privacy-jobs queue's URL: given (and checked), or looked up by the local runner's name.
    pub async fn privacy_queue_url(&self) -> Result<String, Failure> {
        let hint = "check --prefix or PRIVACY_QUEUE_URL";
        if let Some(url) = &self.args.privacy_queue_url {
            let probe = self.aws.sqs.get_queue_attributes().queue_url(url).send().await;
            return match probe {
                Ok(_) => Ok(url.clone()),
                Err(e) => Err(probe_failed(format!("queue {url}"), e, |e| e.is_queue_does_not_exist(), hint)),
            };
        }
        let Some(prefix) = &self.prefix else {
            return Err(Failure::Usage(
                "--privacy-queue-url (or PRIVACY_QUEUE_URL) is needed against AWS: the stack's PrivacyJobsQueueUrl output"
                    .into(),
            ));
        };
        let name = PRIVACY_QUEUE_NAME(prefix);
        match self.aws.sqs.get_queue_url().queue_name(&name).send().await {
            Ok(out) => out.queue_url.ok_or_else(|| Failure::Aws(format!("queue {name}: no URL in the answer"))),
            Err(e) => Err(probe_failed(format!("queue {name}"), e, |e| e.is_queue_does_not_exist(), hint)),
        }
    }

    /// The key that seals a request's subject: KMS when a key id is given, else the key file
    /// (never created here: a new key could not open what the stack sealed).
    pub fn master_key(&self) -> Result<MasterKey, Failure> {
        if let Some(key_id) = &self.args.kms_key_id {
            return Ok(MasterKey::kms(self.aws.kms.clone(), key_id.clone()));
        }
        let path = match (&self.args.key_file, &self.prefix) {
            (Some(path), _) => path.clone(),
            (None, Some(_)) => PathBuf::from(DEFAULT_KEY_FILE),
            (None, None) => {
                return Err(Failure::Usage(
                    "--kms-key-id (or KMS_KEY_ID) is needed against AWS: the stack's SecretsKeyId output".into(),
                ));
            }
        };
        MasterKey::from_key_file(&path).map_err(|e| Failure::Usage(e.to_string()))
    }
}
