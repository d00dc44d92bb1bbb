//! DynamoDB adapters and the ports they implement.

pub mod messages;

use aws_sdk_dynamodb::types::AttributeValue;

/// A storage call failed. `retryable` says whether the provider should be asked to try again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("conflict: {0}")]
    Conflict(String),
}

impl StoreError {
    pub fn aws(operation: &'static str, err: impl std::error::Error + 'static) -> Self {
        Self::Aws {
            operation,
            message: aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string(),
        }
    }
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
