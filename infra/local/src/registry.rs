//! The functions this workspace builds, by the binary name the template gives them
//! (`Metadata.BuildProperties.Binary`). Each entry is the same composition root its `main.rs`
//! calls: the runner wires nothing itself. A new function is one line here.

use concierge::function::FunctionEntry;

pub const FUNCTIONS: &[FunctionEntry] = &[
    webhook_ingest::FUNCTION,
    inbound_sweeper::FUNCTION,
    reply_worker::FUNCTION,
    retention_purge::FUNCTION,
    shopify_gdpr::FUNCTION,
    privacy_worker::FUNCTION,
];

pub fn entry(binary: &str) -> Option<FunctionEntry> {
    FUNCTIONS.iter().find(|f| f.binary == binary).copied()
}
