//! One contact's messages, both directions, page by page through the `conversation` index,
//! for privacy requests: an export streams them, an erasure deletes them (with the records
//! that hang off them) page by page, so neither holds a whole history in memory.

use std::fmt;

use super::{DynamoMessageLog, inbound_of, outbound_of};
use crate::domain::{ContactId, TenantId};
use crate::store::messages::ConversationEntry;
use crate::store::{Item, StoreError, get_s};

/// Messages per page: well under the 1 MB a Query page stops at for typical messages.
pub const PAGE_SIZE: i32 = 500;

/// One stored message of a conversation. `Debug` shows no personal data.
#[derive(Clone)]
pub struct SubjectMessage {
    /// Its key in `MessagesTable`.
    pub key: String,
    /// `None` when the stored item does not parse (it is still deleted by an erasure).
    pub entry: Option<ConversationEntry>,
    /// The delivery record the provider's id maps to (an outbound message the provider took).
    pub delivery_key: Option<String>,
}

impl fmt::Debug for SubjectMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectMessage").field("key", &self.key).finish_non_exhaustive()
    }
}

/// Where the next page starts (DynamoDB's last evaluated key).
#[derive(Clone)]
pub struct PageCursor(Item);

#[derive(Debug, Clone)]
pub struct ConversationPage {
    /// Oldest first.
    pub messages: Vec<SubjectMessage>,
    pub next: Option<PageCursor>,
}

impl fmt::Debug for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PageCursor(..)")
    }
}

impl DynamoMessageLog {
    /// One page of a contact's conversation, oldest first, from `after` (the start when `None`).
    pub async fn conversation_page(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        after: Option<PageCursor>,
    ) -> Result<ConversationPage, StoreError> {
        let out = self
            .conversation_query(tenant, contact)
            .limit(PAGE_SIZE)
            .set_exclusive_start_key(after.map(|c| c.0))
            .send()
            .await
            .map_err(|e| StoreError::aws("Query conversation page", e))?;
        let next = out.last_evaluated_key.filter(|k| !k.is_empty()).map(PageCursor);
        let messages = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                let key = get_s(item, "pk")?.to_owned();
                let entry = if key.contains("#OUT#") {
                    outbound_of(item).ok().map(ConversationEntry::Outbound)
                } else {
                    inbound_of(item).ok().map(|(_, m)| ConversationEntry::Inbound(m))
                };
                let delivery_key = match &entry {
                    Some(ConversationEntry::Outbound(m)) => {
                        m.provider_id.as_ref().map(|p| self.delivery_key(tenant, m.channel, p))
                    }
                    _ => None,
                };
                Some(SubjectMessage { key, entry, delivery_key })
            })
            .collect();
        Ok(ConversationPage { messages, next })
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
