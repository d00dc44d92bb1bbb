//! A message log made to behave like AWS in trouble, for unit tests of the logic above it:
//! every call of ingest's path takes `latency` (AWS's own, with its unlimited parallelism),
//! storing the message keyed `fail_key` fails while `failing` is set, and tying an answer to
//! its provider id fails once when `fail_attach` is set (a crash right after the provider
//! accepted a send).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{
    Claim, ConversationEntry, ConversationLog, Delivery, DeliveryLog, InboundLog, InboundState, NewInbound, Recorded,
    StatusApplied, StoredInbound,
};
use crate::domain::{
    Channel, ContactId, Content, OutboundMessage, ProviderMessageId, RecordId, StatusUpdate, TenantId,
};
use crate::privacy::Expiry;
use crate::store::StoreError;

#[derive(Default)]
pub struct Faulty<T> {
    pub inner: T,
    pub latency: Duration,
    pub fail_key: Option<String>,
    pub failing: AtomicBool,
    pub fail_attach: AtomicBool,
}

impl<T> Faulty<T> {
    /// Every call 10 ms slower.
    pub fn slow(inner: T) -> Self {
        Self {
            inner,
            latency: Duration::from_millis(10),
            fail_key: None,
            failing: false.into(),
            fail_attach: false.into(),
        }
    }

    /// Storing `key` fails until told otherwise.
    pub fn failing_on(inner: T, key: String) -> Self {
        Self { inner, latency: Duration::ZERO, fail_key: Some(key), failing: true.into(), fail_attach: false.into() }
    }

    pub async fn delay(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

impl<T: InboundLog> InboundLog for Faulty<T> {
    async fn record_inbound(&self, new: &NewInbound<'_>) -> Result<Recorded, StoreError> {
        self.delay().await;
        if self.fail_key.as_deref() == Some(new.key) && self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Aws { operation: "PutItem", message: "unavailable".into() });
        }
        self.inner.record_inbound(new).await
    }
    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        self.delay().await;
        self.inner.mark_queued(key).await
    }
    async fn inbound_state(&self, key: &str) -> Result<Option<InboundState>, StoreError> {
        self.delay().await;
        self.inner.inbound_state(key).await
    }
    async fn inbound(&self, key: &str) -> Result<Option<StoredInbound>, StoreError> {
        self.inner.inbound(key).await
    }
    async fn claim(&self, key: &str, now: i64, until: i64) -> Result<Claim, StoreError> {
        self.inner.claim(key, now, until).await
    }
    async fn set_content(&self, key: &str, content: &Content) -> Result<(), StoreError> {
        self.inner.set_content(key, content).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.complete(key).await
    }
}

impl<T: DeliveryLog> DeliveryLog for Faulty<T> {
    async fn apply_status(&self, t: &TenantId, s: &StatusUpdate, e: &Expiry) -> Result<StatusApplied, StoreError> {
        self.delay().await;
        self.inner.apply_status(t, s, e).await
    }
    async fn record_outbound(
        &self,
        t: &TenantId,
        m: &OutboundMessage,
        e: &Expiry,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.inner.record_outbound(t, m, e).await
    }
    async fn discard_outbound(&self, t: &TenantId, id: &RecordId) -> Result<(), StoreError> {
        self.inner.discard_outbound(t, id).await
    }
    async fn attach_provider_id(
        &self,
        t: &TenantId,
        id: &RecordId,
        c: Channel,
        p: &ProviderMessageId,
        e: &Expiry,
        done: &[&str],
    ) -> Result<(), StoreError> {
        if self.fail_attach.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Aws { operation: "TransactWriteItems", message: "injected crash".into() });
        }
        self.inner.attach_provider_id(t, id, c, p, e, done).await
    }
    async fn outbound(&self, t: &TenantId, id: &RecordId) -> Result<Option<OutboundMessage>, StoreError> {
        self.inner.outbound(t, id).await
    }
    async fn delivery(&self, t: &TenantId, c: Channel, p: &ProviderMessageId) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(t, c, p).await
    }
}

impl<T: ConversationLog> ConversationLog for Faulty<T> {
    async fn recent(&self, t: &TenantId, c: &ContactId, limit: usize) -> Result<Vec<ConversationEntry>, StoreError> {
        self.inner.recent(t, c, limit).await
    }
}
