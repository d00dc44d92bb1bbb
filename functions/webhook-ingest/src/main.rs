//! Lambda bootstrap: configuration, clients, run.

use concierge::aws::AwsClients;
use concierge::config::IngestConfig;
use lambda_http::{Error, service_fn};

// Ingest allocates many small strings per message (the SDK's item maps); glibc's allocator was
// the largest single cost in the profile of that path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    concierge::telemetry::init();
    let config = IngestConfig::from_env()?;
    let app = webhook_ingest::App::new(config, AwsClients::from_env().await)?;
    app.warm_up().await;
    let app = &app;
    lambda_http::run(service_fn(move |req| webhook_ingest::handle(app, req))).await
}
