//! The command line: commands, their flags, and where each resource name comes from.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  done; for `audit verify`, the chain is intact
  1  the answer is no: the audit chain is broken (the first bad entry is named), or a request
     waited for with `--wait` failed or was not done before `--timeout`
  2  usage or configuration: a bad flag, a resource name missing or naming nothing, an unknown
     tenant, a key file that cannot be read
  3  AWS (or the local emulator) could not be reached, or failed a request";

const RESOURCES: &str = "\
Resources: with `AWS_ENDPOINT_URL` set (the local stack), every name defaults to the local
runner's (`<prefix>-<LogicalId>`, prefix `concierge`) and the key file to `.local/master.key`.
Against AWS, give each name the command needs by flag or by the variable the functions use
(the stack's Outputs list them): TENANTS_TABLE, MESSAGES_TABLE, CONTACTS_TABLE, AUDIT_TABLE,
DATA_BUCKET, AUDIT_ANCHOR_BUCKET, PRIVACY_QUEUE_URL, KMS_KEY_ID.";

/// Operator tasks on a Concierge stack: verify audit trails, file privacy requests, dry-run the
/// retention purge.
#[derive(Debug, Parser)]
#[command(name = "concierge-admin", version, after_help = format!("{EXIT_CODES}\n\n{RESOURCES}"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Machine-readable output: one JSON document on stdout, no progress display.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub resources: ResourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Privacy requests: subject export and erasure, the list of requests.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// What the retention purge would delete at a given time (dry run only).
    #[command(after_help = EXIT_CODES)]
    Purge(PurgeArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recomputes a tenant's hash chain and checks it against its Object Lock anchors.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Files an export of everything about a contact (JSON + CSV, links valid 7 days).
    #[command(after_help = EXIT_CODES)]
    Export(SubjectArgs),
    /// Files the erasure of everything about a contact.
    #[command(after_help = EXIT_CODES)]
    Erase(SubjectArgs),
    /// Lists privacy requests: one tenant's, or every tenant's.
    #[command(after_help = EXIT_CODES)]
    Requests {
        /// Only this tenant's (default: every tenant in the tenant list).
        #[arg(long)]
        tenant: Option<String>,
        /// Only requests not done and past their due date.
        #[arg(long)]
        overdue: bool,
    },
    /// Sends an open request's job to the privacy worker again: one that failed (once its
    /// cause is mended) or whose job was dead-lettered. A done request is left alone.
    #[command(after_help = EXIT_CODES)]
    Requeue {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The request's id (as `privacy requests` lists it).
        #[arg(long)]
        request: String,
        /// Required for a wipe (all of the tenant's data): e.g. a held `shop/redact` you have
        /// checked is the shop's real uninstall, not a replay.
        #[arg(long)]
        confirm_wipe: bool,
    },
}

#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// The tenant's id.
    #[arg(long)]
    pub tenant: String,
    /// The contact's phone number in E.164 (`+34600111222`).
    #[arg(long)]
    pub contact: String,
    /// Wait until the privacy worker has done the request, then print its result.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Seconds between two reads of the request while waiting.
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Count what would go, change nothing. Required: real runs are the RetentionPurgeFunction's.
    #[arg(long)]
    pub dry_run: bool,
    /// The run's "now" (RFC 3339, e.g. `2027-01-01T03:00:00Z`); default: the current time.
    #[arg(long)]
    pub now: Option<String>,
    /// Only this tenant's figures.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Stop counting after this many seconds (the report then says which tenants are incomplete).
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
}

/// Where the stack is. Every flag has the environment variable the functions read.
#[derive(Debug, Args)]
#[command(next_help_heading = "Resources")]
pub struct ResourceArgs {
    /// The emulator (local stack). Unset: AWS, with the usual credential chain.
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    /// Names resources `<prefix>-<LogicalId>` as the local runner does [default with
    /// AWS_ENDPOINT_URL: concierge].
    #[arg(long, env = "CONCIERGE_PREFIX", global = true)]
    pub prefix: Option<String>,
    #[arg(long, env = "TENANTS_TABLE", global = true)]
    pub tenants_table: Option<String>,
    #[arg(long, env = "MESSAGES_TABLE", global = true)]
    pub messages_table: Option<String>,
    #[arg(long, env = "CONTACTS_TABLE", global = true)]
    pub contacts_table: Option<String>,
    #[arg(long, env = "AUDIT_TABLE", global = true)]
    pub audit_table: Option<String>,
    #[arg(long, env = "DATA_BUCKET", global = true)]
    pub data_bucket: Option<String>,
    #[arg(long, env = "AUDIT_ANCHOR_BUCKET", global = true)]
    pub anchor_bucket: Option<String>,
    #[arg(long, env = "PRIVACY_QUEUE_URL", global = true)]
    pub privacy_queue_url: Option<String>,
    /// The local master key (64 hex characters) [default with AWS_ENDPOINT_URL: .local/master.key].
    #[arg(long, env = "SECRETS_KEY_FILE", global = true)]
    pub key_file: Option<PathBuf>,
    /// The KMS key that seals privacy-request subjects in AWS (the stack's SecretsKeyId output).
    #[arg(long, env = "KMS_KEY_ID", global = true)]
    pub kms_key_id: Option<String>,
}
