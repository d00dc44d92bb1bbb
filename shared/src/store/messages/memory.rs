//! An in-memory `MessagesTable` with the DynamoDB adapter's semantics (conditional writes,
//! monotonic statuses, the pending index), for fast unit tests of the logic above it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    Claim, ConversationEntry, ConversationLog, Delivery, DeliveryLog, InboundLog, InboundState, NewInbound,
    PendingInbound, PendingLog, Recorded, StatusApplied, StoredInbound,
};
use crate::domain::{
    Channel, ContactId, DeliveryStatus, InboundMessage, OutboundMessage, ProviderMessageId, RecordId, Stage,
    StatusUpdate, TenantId,
};
use crate::privacy::Expiry;
use crate::store::{StoreError, keys};

#[derive(Debug, Clone)]
struct Inbound {
    tenant: TenantId,
    message: InboundMessage,
    state: InboundState,
    /// `(shard, due_ms)` while in the pending index.
    pending: Option<(u8, i64)>,
    requeues: u32,
    abandoned_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct DeliveryRecord {
    status: Option<DeliveryStatus>,
    error_code: Option<i64>,
    outbound: Option<RecordId>,
}

/// A delivery record is found by tenant, channel and provider id (the DynamoDB adapter hashes
/// the id into the key; nothing here needs to).
type DeliveryKey = (TenantId, Channel, String);

#[derive(Debug, Default)]
struct Tables {
    inbound: BTreeMap<String, Inbound>,
    outbound: BTreeMap<String, (TenantId, OutboundMessage)>,
    /// Outbound records whose send the provider refused (replaced by the next record).
    unsent: std::collections::BTreeSet<String>,
    deliveries: BTreeMap<DeliveryKey, DeliveryRecord>,
}

fn delivery_key(tenant: &TenantId, channel: Channel, provider_id: &ProviderMessageId) -> DeliveryKey {
    (tenant.clone(), channel, provider_id.as_str().to_owned())
}

#[derive(Debug, Default)]
pub struct MemoryMessageLog {
    tables: Mutex<Tables>,
}

impl MemoryMessageLog {
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        f(&mut self.tables.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every stored inbound message (for assertions).
    pub fn inbound_messages(&self) -> Vec<StoredInbound> {
        self.with(|t| {
            t.inbound
                .values()
                .map(|i| StoredInbound { tenant: i.tenant.clone(), message: i.message.clone(), state: i.state.clone() })
                .collect()
        })
    }

    /// Whether a message is in the pending index, and when it is due.
    pub fn pending_due(&self, key: &str) -> Option<i64> {
        self.with(|t| t.inbound.get(key)?.pending.map(|(_, due)| due))
    }
}

impl InboundLog for MemoryMessageLog {
    async fn record_inbound(&self, new: &NewInbound<'_>) -> Result<Recorded, StoreError> {
        Ok(self.with(|t| {
            if let Some(existing) = t.inbound.get(new.key) {
                return Recorded::Existing(existing.state.clone());
            }
            t.inbound.insert(
                new.key.to_owned(),
                Inbound {
                    tenant: new.tenant.clone(),
                    message: new.message.clone(),
                    state: InboundState {
                        stage: Stage::Received,
                        received_at: new.received_at,
                        attempt: Some(new.attempt.to_owned()),
                        lease_until_ms: new.lease_until_ms,
                    },
                    pending: Some((keys::shard_of(new.key), new.sweep_at_ms)),
                    requeues: 0,
                    abandoned_at: None,
                },
            );
            Recorded::New
        }))
    }

    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(i) = t.inbound.get_mut(key)
                && i.state.stage == Stage::Received
            {
                i.state.stage = Stage::Queued;
            }
        });
        Ok(())
    }

    async fn inbound_state(&self, key: &str) -> Result<Option<InboundState>, StoreError> {
        Ok(self.with(|t| t.inbound.get(key).map(|i| i.state.clone())))
    }

    async fn inbound(&self, key: &str) -> Result<Option<StoredInbound>, StoreError> {
        Ok(self.with(|t| {
            t.inbound.get(key).map(|i| StoredInbound {
                tenant: i.tenant.clone(),
                message: i.message.clone(),
                state: i.state.clone(),
            })
        }))
    }

    async fn claim(&self, key: &str, now_ms: i64, lease_until_ms: i64) -> Result<Claim, StoreError> {
        Ok(self.with(|t| {
            let Some(i) = t.inbound.get_mut(key) else { return Claim::Missing };
            match i.state.stage {
                Stage::Answered => Claim::Answered,
                Stage::Answering if i.state.lease_until_ms >= now_ms => {
                    Claim::Busy { until_ms: i.state.lease_until_ms }
                }
                _ => {
                    i.state.stage = Stage::Answering;
                    i.state.lease_until_ms = lease_until_ms;
                    Claim::Claimed(Box::new(StoredInbound {
                        tenant: i.tenant.clone(),
                        message: i.message.clone(),
                        state: i.state.clone(),
                    }))
                }
            }
        }))
    }

    async fn set_content(&self, key: &str, content: &crate::domain::Content) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(i) = t.inbound.get_mut(key) {
                i.message.content = content.clone();
            }
        });
        Ok(())
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(i) = t.inbound.get_mut(key) {
                i.state.stage = Stage::Answered;
                i.pending = None;
            }
        });
        Ok(())
    }
}

impl DeliveryLog for MemoryMessageLog {
    async fn apply_status(
        &self,
        tenant: &TenantId,
        status: &StatusUpdate,
        _: &Expiry,
    ) -> Result<StatusApplied, StoreError> {
        let key = delivery_key(tenant, status.channel, &status.id);
        Ok(self.with(|t| {
            let record = t.deliveries.entry(key).or_default();
            if record.status.is_some_and(|s| s.rank() >= status.status.rank()) {
                return StatusApplied::Stale;
            }
            record.status = Some(status.status);
            if status.error_code.is_some() {
                record.error_code = status.error_code;
            }
            StatusApplied::Applied
        }))
    }

    async fn record_outbound(
        &self,
        tenant: &TenantId,
        m: &OutboundMessage,
        _: &Expiry,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        let key = keys::outbound_key(tenant, m.id.as_str());
        Ok(self.with(|t| match t.outbound.entry(key.clone()) {
            std::collections::btree_map::Entry::Occupied(mut earlier) if t.unsent.remove(&key) => {
                earlier.insert((tenant.clone(), m.clone()));
                None
            }
            std::collections::btree_map::Entry::Occupied(earlier) => Some(earlier.get().1.clone()),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert((tenant.clone(), m.clone()));
                None
            }
        }))
    }

    async fn discard_outbound(&self, tenant: &TenantId, id: &RecordId) -> Result<(), StoreError> {
        self.with(|t| {
            let key = keys::outbound_key(tenant, id.as_str());
            if t.outbound.get(&key).is_some_and(|(_, m)| m.provider_id.is_none()) {
                t.unsent.insert(key);
            }
        });
        Ok(())
    }

    async fn attach_provider_id(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        channel: Channel,
        provider_id: &ProviderMessageId,
        _: &Expiry,
        answered: &[&str],
    ) -> Result<(), StoreError> {
        self.with(|t| {
            let (_, outbound) = t
                .outbound
                .get_mut(&keys::outbound_key(tenant, id.as_str()))
                .ok_or_else(|| StoreError::Conflict("no such outbound message".into()))?;
            outbound.provider_id = Some(provider_id.clone());
            t.deliveries.entry(delivery_key(tenant, channel, provider_id)).or_default().outbound = Some(id.clone());
            for key in answered {
                if let Some(inbound) = t.inbound.get_mut(*key) {
                    inbound.state.stage = Stage::Answered;
                    inbound.pending = None;
                }
            }
            Ok(())
        })
    }

    async fn outbound(&self, tenant: &TenantId, id: &RecordId) -> Result<Option<OutboundMessage>, StoreError> {
        Ok(self.with(|t| t.outbound.get(&keys::outbound_key(tenant, id.as_str())).map(|(_, m)| m.clone())))
    }

    async fn delivery(
        &self,
        tenant: &TenantId,
        channel: Channel,
        provider_id: &ProviderMessageId,
    ) -> Result<Option<Delivery>, StoreError> {
        Ok(self.with(|t| {
            t.deliveries.get(&delivery_key(tenant, channel, provider_id)).map(|d| Delivery {
                status: d.status,
                error_code: d.error_code,
                outbound: d.outbound.clone(),
            })
        }))
    }
}

impl ConversationLog for MemoryMessageLog {
    async fn recent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        limit: usize,
    ) -> Result<Vec<ConversationEntry>, StoreError> {
        Ok(self.with(|t| {
            let inbound = t.inbound.iter().filter(|(_, i)| &i.tenant == tenant && &i.message.contact == contact).map(
                |(key, i)| {
                    // Ordered as the index orders them: by the ref in the key within a second.
                    let message_ref = keys::parse_message_key(key).map_or("", |(_, _, r)| r);
                    (
                        keys::conversation_sk(i.message.sent_at, true, message_ref),
                        ConversationEntry::Inbound(i.message.clone()),
                    )
                },
            );
            // Answers the provider refused are not part of the conversation.
            let outbound = t
                .outbound
                .iter()
                .filter(|(key, (t_, m))| t_ == tenant && &m.contact == contact && !t.unsent.contains(*key))
                .map(|(_, (_, m))| {
                    (keys::conversation_sk(m.created_at, false, m.id.as_str()), ConversationEntry::Outbound(m.clone()))
                });
            let ordered: BTreeMap<String, ConversationEntry> = inbound.chain(outbound).collect();
            let skip = ordered.len().saturating_sub(limit);
            ordered.into_values().skip(skip).collect()
        }))
    }
}

impl PendingLog for MemoryMessageLog {
    async fn due(
        &self,
        tenant: &TenantId,
        shard: u8,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingInbound>, StoreError> {
        Ok(self.with(|t| {
            let mut due: Vec<(i64, PendingInbound)> = t
                .inbound
                .iter()
                .filter(|(_, i)| &i.tenant == tenant)
                .filter_map(|(key, i)| {
                    let (s, at) = i.pending?;
                    (s == shard && at <= now_ms).then(|| {
                        (
                            at,
                            PendingInbound {
                                key: key.clone(),
                                channel: i.message.channel,
                                contact: i.message.contact.key(),
                                received_at: i.state.received_at,
                                requeues: i.requeues,
                            },
                        )
                    })
                })
                .collect();
            due.sort_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
            due.into_iter().take(limit).map(|(_, p)| p).collect()
        }))
    }

    async fn reschedule(&self, key: &str, next_due_ms: i64, requeues: u32) -> Result<bool, StoreError> {
        Ok(self.with(|t| match t.inbound.get_mut(key) {
            Some(i) if i.pending.is_some() => {
                i.pending = Some((keys::shard_of(key), next_due_ms));
                i.requeues = requeues;
                true
            }
            _ => false,
        }))
    }

    async fn abandon(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        self.with(|t| {
            if let Some(i) = t.inbound.get_mut(key).filter(|i| i.pending.is_some()) {
                i.pending = None;
                i.abandoned_at = Some(at_ms);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_the_table() {
        crate::store::conformance::messages(&MemoryMessageLog::default(), &TenantId::parse("acme").unwrap()).await;
    }
}
