//! Lambda bootstrap: the composition root in lib.rs, then the Runtime API loop.

// Ingest allocates many small strings per message (the SDK's item maps); glibc's allocator was
// the largest single cost in the profile of that path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), concierge::function::Error> {
    concierge::function::serve(webhook_ingest::FUNCTION).await
}
