//! `concierge-admin`, the operator CLI: `audit verify`, `privacy export|erase|requests|requeue`,
//! `purge --dry-run`. Each command runs against the local stack (`AWS_ENDPOINT_URL`) or AWS
//! (resource names by flag or environment), prints a human summary or `--json`, and ends with
//! the exit code `--help` documents.

pub mod audit;
pub mod cli;
pub mod failure;
pub mod output;
pub mod privacy;
pub mod purge;
pub mod resources;

use std::process::ExitCode;

use concierge::domain::TenantId;
use concierge::privacy::requests::RequestKind;

use crate::cli::{AuditCommand, Cli, Command, PrivacyCommand};
use crate::failure::Failure;
use crate::output::Output;
use crate::resources::Stack;

pub fn parse_tenant(s: &str) -> Result<TenantId, Failure> {
    TenantId::parse(s).map_err(|_| Failure::Usage(format!("--tenant {s:?} is not a tenant id")))
}

/// Runs one command line; errors are printed on stderr (and as JSON on stdout with `--json`).
pub async fn run(cli: Cli) -> ExitCode {
    let out = Output { json: cli.json };
    let stack = Stack::connect(cli.resources).await;
    let result = match &cli.command {
        Command::Audit(AuditCommand::Verify { tenant }) => audit::verify(&stack, out, tenant).await,
        Command::Privacy(PrivacyCommand::Export(args)) => privacy::file(&stack, out, RequestKind::Export, args).await,
        Command::Privacy(PrivacyCommand::Erase(args)) => privacy::file(&stack, out, RequestKind::Erasure, args).await,
        Command::Privacy(PrivacyCommand::Requests { tenant, overdue }) => {
            privacy::list(&stack, out, tenant.as_deref(), *overdue).await
        }
        Command::Privacy(PrivacyCommand::Requeue { tenant, request, confirm_wipe }) => {
            privacy::requeue(&stack, out, tenant, request, *confirm_wipe).await
        }
        Command::Purge(args) => purge::dry_run(&stack, out, args).await,
    };
    match result {
        Ok(verdict) => verdict.exit_code(),
        Err(failure) => {
            eprintln!("concierge-admin: {failure}");
            if out.json {
                let kind = match failure {
                    Failure::Usage(_) => "usage",
                    Failure::Aws(_) => "aws",
                };
                println!("{}", serde_json::json!({ "error": kind, "message": failure.to_string() }));
            }
            failure.exit_code()
        }
    }
}
