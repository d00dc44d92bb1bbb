//! Data-protection building blocks.

pub mod intake;
pub mod pseudonym;
pub mod queue;
pub mod requests;
pub mod retention;

pub use pseudonym::Pseudonymizer;
pub use retention::{Expiry, RetentionDays};
