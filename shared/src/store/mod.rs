//! DynamoDB adapters and the ports they implement.

pub mod messages;

use aws_sdk_dynamodb::types::AttributeValue;

/// A storage call failed. Only `Rejected` and `Corrupt` are permanent: a retry cannot help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} failed: {message}")]
    Aws { operation: &'static str, message: String },
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("rejected: {0}")]
    Rejected(&'static str),
}

impl StoreError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected(_) | Self::Corrupt(_))
    }

    pub fn aws(operation: &'static str, err: impl std::error::Error + 'static) -> Self {
        Self::Aws { operation, message: crate::aws::describe(err) }
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
