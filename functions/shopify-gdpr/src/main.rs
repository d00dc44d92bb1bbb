//! Lambda bootstrap: the composition root in lib.rs, then the Runtime API loop.

#[tokio::main]
async fn main() -> Result<(), concierge::function::Error> {
    concierge::function::serve(shopify_gdpr::FUNCTION).await
}
