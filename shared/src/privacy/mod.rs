//! Data-protection building blocks.

pub mod intake;
pub mod pseudonym;
pub mod queue;
pub mod requests;
pub mod retention;

pub use pseudonym::Pseudonymizer;
pub use retention::{Expiry, RetentionDays};

// Subject requests: identity lookup, export, erasure, tenant wipe.
pub mod csv;
pub mod erasure;
pub mod export;
pub mod identity;
pub mod jobs;
pub mod wipe;
