//! Lambda bootstrap: the composition root in lib.rs, then the Runtime API loop.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), concierge::function::Error> {
    concierge::function::serve(privacy_worker::FUNCTION).await
}
