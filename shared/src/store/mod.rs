//! Storage: ports (small traits speaking domain types, one per capability), each with a
//! DynamoDB adapter and an in-memory one for fast unit tests. Only the DynamoDB adapters know
//! attribute names; every key format is in `keys`.

pub mod audit;
pub mod batch;
#[doc(hidden)]
pub mod conformance;
pub mod contacts;
pub mod keys;
pub mod messages;
pub mod requests;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

/// A storage call failed. Every variant but `Conflict` means the caller should try again later
/// (or, for `Corrupt` and a refused request, that a person must look: it will not pass by itself).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{operation} failed: {message}")]
    Aws { operation: &'static str, message: String },
    /// DynamoDB refused the request as invalid: a bug or a misconfiguration, never data to skip.
    #[error("{operation} refused by DynamoDB: {message}")]
    Invalid { operation: &'static str, message: String },
    #[error("stored item is not readable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("conflict: {0}")]
    Conflict(String),
}

impl StoreError {
    pub fn aws<E, R>(operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let invalid = err.as_service_error().and_then(|e| e.code()) == Some("ValidationException");
        let message = crate::aws::describe(err);
        if invalid { Self::Invalid { operation, message } } else { Self::Aws { operation, message } }
    }

    pub fn corrupt(what: &str, err: impl std::fmt::Display) -> Self {
        Self::Corrupt(format!("{what}: {err}"))
    }
}

pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A number attribute without going through the formatting machinery (ingest's hot path).
pub(crate) fn int(v: i64) -> AttributeValue {
    AttributeValue::N(itoa::Buffer::new().format(v).to_owned())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

pub(crate) fn to_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::corrupt("item", e))
}

pub(crate) fn from_item<T: serde::de::DeserializeOwned>(what: &str, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::corrupt(what, e))
}

/// Every item of partition `pk` (or those whose sort key starts with `prefix`), page after page,
/// read consistently; `projection` limits the attributes read.
pub(crate) async fn query_partition(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    pk: &str,
    prefix: Option<&str>,
    projection: Option<&str>,
    what: &'static str,
) -> Result<Vec<Item>, StoreError> {
    let request = client.query().table_name(table).expression_attribute_values(":pk", s(pk));
    let request = match prefix {
        Some(prefix) => request
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":prefix", s(prefix)),
        None => request.key_condition_expression("pk = :pk"),
    };
    request
        .set_projection_expression(projection.map(str::to_owned))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| StoreError::aws(what, e))
}

/// An S3 call that failed (S3 errors carry no DynamoDB-style validation code to tell apart).
pub(crate) fn s3_error<E: std::error::Error + Send + Sync + 'static>(operation: &'static str, e: E) -> StoreError {
    StoreError::Aws { operation, message: crate::aws::describe(e) }
}

/// Whether an SDK error is a failed condition (an expected outcome, not a failure).
pub(crate) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// Whether a transaction was cancelled because another request touched one of its items at the
/// same time (a retry resolves it).
pub(crate) fn transaction_conflicted(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, impl std::fmt::Debug>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            e.cancellation_reasons().iter().any(|r| r.code() == Some("TransactionConflict"))
        }
        _ => false,
    }
}

/// Whether a transaction was cancelled because one of its conditions failed (and not, say,
/// for a conflict with another transaction, which a retry resolves).
pub(crate) fn transaction_condition_failed(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, impl std::fmt::Debug>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            e.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
        }
        _ => false,
    }
}

pub mod objects;

/// A table key as `BatchWriteItem` takes it: `pk`, and `sk` for tables with a sort key.
pub fn table_key(pk: impl Into<String>, sk: Option<&str>) -> Item {
    let mut key = Item::with_capacity(2);
    key.insert("pk".to_owned(), s(pk));
    if let Some(sk) = sk {
        key.insert("sk".to_owned(), s(sk));
    }
    key
}
