//! `MessagesTable`: inbound messages keyed by the provider's id (a retry finds what its first
//! delivery wrote), outbound messages keyed by our own id (written before the provider is
//! called), and the delivery record a provider's id maps to. GSIs: `conversation` (one
//! contact's messages in time order), `pending` (inbound messages not yet answered, by when the
//! sweeper should look at them again) and `expiry` (the purge job's month buckets).

pub mod dynamo;
#[cfg(test)]
pub(crate) mod faulty;
pub mod memory;

use std::future::Future;

use crate::domain::{
    Channel, ContactId, Content, DeliveryStatus, InboundMessage, OutboundMessage, ProviderMessageId, RecordId, Stage,
    StatusUpdate, TenantId,
};
use crate::privacy::Expiry;
use crate::store::StoreError;

pub use dynamo::DynamoMessageLog;
pub use memory::MemoryMessageLog;

/// What ingest stores for one inbound message. `Debug` shows no personal data.
#[derive(Clone, Copy)]
pub struct NewInbound<'a> {
    pub tenant: &'a TenantId,
    pub message: &'a InboundMessage,
    /// `keys::message_key` of the message.
    pub key: &'a str,
    /// `ContactId::key` of the sender.
    pub contact: &'a str,
    /// Unix seconds.
    pub received_at: i64,
    pub expiry: &'a Expiry,
    /// Which attempt wrote it, and until when that attempt may still be working (unix ms): a
    /// duplicate delivery waits for it to finish, or takes over once it is surely over.
    pub attempt: &'a str,
    pub lease_until_ms: i64,
    /// When the sweeper should first look at it, if it is still unanswered then (unix ms).
    pub sweep_at_ms: i64,
}

impl std::fmt::Debug for NewInbound<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewInbound")
            .field("message", self.message)
            .field("received_at", &self.received_at)
            .field("attempt", &self.attempt)
            .field("lease_until_ms", &self.lease_until_ms)
            .finish_non_exhaustive()
    }
}

/// What the stored copy of an inbound message says about its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundState {
    pub stage: Stage,
    pub received_at: i64,
    pub attempt: Option<String>,
    pub lease_until_ms: i64,
}

/// What the conditional write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First time we see this message: it is stored now.
    New,
    /// Stored before; this is what the stored copy says.
    Existing(InboundState),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusApplied {
    Applied,
    /// An equal or later status was already recorded (statuses arrive out of order).
    Stale,
}

/// An inbound message as stored, with its progress.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInbound {
    pub tenant: TenantId,
    pub message: InboundMessage,
    pub state: InboundState,
}

/// One message of a conversation, either way.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEntry {
    Inbound(InboundMessage),
    Outbound(OutboundMessage),
}

/// An inbound message waiting for an answer longer than it should. `Debug` hides the contact.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingInbound {
    pub key: String,
    pub channel: Channel,
    /// `ContactId::key` of the sender.
    pub contact: String,
    pub received_at: i64,
    /// How often the sweeper queued it again already.
    pub requeues: u32,
}

impl std::fmt::Debug for PendingInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingInbound")
            .field("key", &self.key)
            .field("received_at", &self.received_at)
            .field("requeues", &self.requeues)
            .finish_non_exhaustive()
    }
}

/// What the provider said about a message we sent, under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub status: Option<DeliveryStatus>,
    pub error_code: Option<i64>,
    /// Our outbound message, once the reply worker attached the provider's id.
    pub outbound: Option<RecordId>,
}

/// The outcome of a reply worker's claim on an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Ours until the lease ends: the message as stored (read consistently by the claim itself).
    Claimed(Box<StoredInbound>),
    /// Another worker holds it.
    Busy { until_ms: i64 },
    /// Answered already (or covered by a burst's answer).
    Answered,
    /// No such message.
    Missing,
}

/// Ingest's side: store once, record that it is queued.
pub trait InboundLog: Send + Sync {
    fn record_inbound(&self, new: &NewInbound<'_>) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
    /// The message is on the queue. Never moves a message back from a later stage.
    fn mark_queued(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The stored progress, read consistently.
    fn inbound_state(&self, key: &str) -> impl Future<Output = Result<Option<InboundState>, StoreError>> + Send;
    /// The stored message, read consistently (the reply worker's first read).
    fn inbound(&self, key: &str) -> impl Future<Output = Result<Option<StoredInbound>, StoreError>> + Send;
    /// A reply worker takes the message until `lease_until_ms`; an expired lease can be taken over.
    fn claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Replaces what the stored message says (media attachments get the key of our copy).
    fn set_content(&self, key: &str, content: &Content) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Answered: the message leaves the pending index for good.
    fn complete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Delivery statuses and our outbound messages.
pub trait DeliveryLog: Send + Sync {
    /// Moves the delivery record of `status.id` forward (never back), creating a stub if the
    /// status overtook our own record of the send.
    fn apply_status(
        &self,
        tenant: &TenantId,
        status: &StatusUpdate,
        stub_expiry: &Expiry,
    ) -> impl Future<Output = Result<StatusApplied, StoreError>> + Send;
    /// Records a message before it is sent. Recording the same id again changes nothing and
    /// returns what was recorded first (a send may have happened since: the caller must not
    /// send it again), unless that first send was refused (`discard_outbound`): then the new
    /// record replaces it.
    fn record_outbound(
        &self,
        tenant: &TenantId,
        message: &OutboundMessage,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<Option<OutboundMessage>, StoreError>> + Send;
    /// The provider refused a recorded message: it is marked unsent (and leaves the
    /// conversation), so a later attempt records and sends it again; `outbound` still finds it,
    /// as proof the answer was attempted.
    fn discard_outbound(&self, tenant: &TenantId, id: &RecordId)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The provider accepted the message under `provider_id`: both records point at each other,
    /// and the inbound messages it answers (`answered`, message keys) are marked answered, all
    /// in one write.
    fn attach_provider_id(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        channel: Channel,
        provider_id: &ProviderMessageId,
        expiry: &Expiry,
        answered: &[&str],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn outbound(
        &self,
        tenant: &TenantId,
        id: &RecordId,
    ) -> impl Future<Output = Result<Option<OutboundMessage>, StoreError>> + Send;
    fn delivery(
        &self,
        tenant: &TenantId,
        channel: Channel,
        provider_id: &ProviderMessageId,
    ) -> impl Future<Output = Result<Option<Delivery>, StoreError>> + Send;
}

/// A contact's conversation, both directions, in time order.
pub trait ConversationLog: Send + Sync {
    /// The last `limit` messages, oldest first.
    fn recent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ConversationEntry>, StoreError>> + Send;
}

/// The sweeper's side: inbound messages still waiting, by when to look at them.
pub trait PendingLog: Send + Sync {
    /// Up to `limit` messages of one shard of a tenant due at `now_ms`, earliest first.
    fn due(
        &self,
        tenant: &TenantId,
        shard: u8,
        now_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<PendingInbound>, StoreError>> + Send;
    /// Looks again at `next_due_ms`; `false` if it was answered meanwhile.
    fn reschedule(
        &self,
        key: &str,
        next_due_ms: i64,
        requeues: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives up on a message (it stays stored, leaves the pending index, and says when).
    fn abandon(&self, key: &str, at_ms: i64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Content, RecordId};
    use crate::privacy::retention::{Category, RetentionDays};

    #[test]
    fn debug_output_of_what_the_store_is_given_holds_no_personal_data() {
        let tenant = TenantId::parse("acme").unwrap();
        let message = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse("wamid.1").unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: Some("Jana Novak".into()),
            sent_at: 1,
            reply_to: None,
            content: Content::Text { body: "jana@example.com".into() },
        };
        let expiry = Expiry::new(&tenant, Category::Messages, 1, &RetentionDays::default());
        let new = NewInbound {
            tenant: &tenant,
            message: &message,
            key: "acme#MSG#meta#wamid.1",
            contact: "+4915112345678",
            received_at: 1,
            expiry: &expiry,
            attempt: "a",
            lease_until_ms: 2,
            sweep_at_ms: 3,
        };
        let pending = PendingInbound {
            key: "k".into(),
            channel: Channel::Meta,
            contact: "+4915112345678".into(),
            received_at: 1,
            requeues: 0,
        };
        let outbound = OutboundMessage {
            id: RecordId::parse("o").unwrap(),
            channel: Channel::Meta,
            contact: message.contact.clone(),
            created_at: 1,
            content: Content::Text { body: "call +4915112345678".into() },
            in_reply_to: None,
            provider_id: None,
        };
        let printed = format!("{new:?} {pending:?} {outbound:?}");
        for personal in ["4915112345678", "Jana", "jana@example.com"] {
            assert!(!printed.contains(personal), "{printed}");
        }
    }
}
