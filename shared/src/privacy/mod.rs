//! Data-protection building blocks.

pub mod pseudonym;
pub mod queue;
pub mod requests;
pub mod retention;

pub use pseudonym::Pseudonymizer;
pub use retention::{Expiry, RetentionDays};

// Subject requests: identity lookup, export, erasure, tenant wipe.
pub mod csv;
pub mod identity;
pub mod export;
pub mod erasure;
pub mod wipe;
pub mod jobs;
