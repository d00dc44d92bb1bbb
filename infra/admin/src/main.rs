use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors exit 2 (clap's own code), as `--help` documents.
    let cli = concierge_admin::cli::Cli::parse();
    concierge_admin::run(cli).await
}
