//! Provider wire formats: one module per provider, each owning its signature scheme (tested
//! against the vendor's own vectors) and its translation into the domain.

pub mod meta;
pub mod outbound;
pub mod twilio;

/// A signature header was missing or did not match. Deliberately says no more than that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header missing")]
    Missing,
    #[error("signature does not match")]
    Mismatch,
}

/// A correctly signed body that is not what the provider documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed payload: {0}")]
pub struct MalformedPayload(pub &'static str);
