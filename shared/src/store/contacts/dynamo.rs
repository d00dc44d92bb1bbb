//! The DynamoDB adapter of `ContactsTable`.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use super::{AppointmentStore, Booking, ContactState, ContactStore, InboundActivity, LeadStore};
use crate::domain::{
    Appointment, AppointmentStatus, Channel, Consent, ConsentChange, ConsentSource, Contact, ContactId, Conversation,
    Lead, LeadStage, Mode, RecordId, Slot, TenantId,
};
use crate::privacy::{Expiry, Pseudonymizer};
use crate::store::{
    Item, StoreError, condition_failed, from_item, get_n, get_s, keys, n, s, to_item, transaction_condition_failed,
};

mod subject;

pub use subject::{ContactRecords, ExportRecord};

/// Index names (template.yaml).
pub const BY_TIME_INDEX: &str = "byTime";

const NEWER_ACTIVITY: &str = "attribute_not_exists(last_inbound_at) OR last_inbound_at <= :at";

#[derive(Debug, Clone)]
pub struct DynamoContacts {
    client: Client,
    table: String,
    /// Files a lead's email (and a phone other than the contact's) in the identity index.
    identities: Option<Pseudonymizer>,
}

impl DynamoContacts {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table, identities: None }
    }

    /// Leads saved from now on file their identifiers in the identity index (so a privacy
    /// request naming an email finds the contact), in the same write as the lead.
    pub fn with_identity_index(mut self, pseudonyms: Pseudonymizer) -> Self {
        self.identities = Some(pseudonyms);
        self
    }

    /// Every item of a partition, or those whose sort key starts with `prefix`.
    async fn query_prefix(&self, pk: &str, prefix: Option<&str>, what: &'static str) -> Result<Vec<Item>, StoreError> {
        crate::store::query_partition(&self.client, &self.table, pk, prefix, None, what).await
    }

    /// Up to `limit` items of one `byTime` partition, latest first (page after page).
    async fn query_index(&self, pk: &str, limit: usize, what: &'static str) -> Result<Vec<Item>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_TIME_INDEX)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 1000) as i32)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while items.len() < limit {
            match pages.next().await {
                Some(item) => items.push(item.map_err(|e| StoreError::aws(what, e))?),
                None => break,
            }
        }
        Ok(items)
    }

    fn update(&self, pk: &str, sk: &str) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder().table_name(&self.table).key("pk", s(pk)).key("sk", s(sk))
    }
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, StoreError> {
    built.map_err(|e| StoreError::corrupt("request", e))
}

fn contact_of(item: &Item) -> Result<Contact, StoreError> {
    let id = get_s(item, "contact")
        .and_then(|c| ContactId::parse_key(c).ok())
        .ok_or_else(|| StoreError::Corrupt("contact id".into()))?;
    Ok(Contact {
        id,
        profile_name: get_s(item, "profile_name").map(str::to_owned),
        consent: match get_s(item, "consent") {
            Some("opted_out") => Consent::OptedOut,
            _ => Consent::OptedIn,
        },
        consent_at_ms: get_n(item, "consent_at"),
        first_seen: get_n(item, "first_seen").unwrap_or(0),
        last_inbound_at: get_n(item, "last_inbound_at").unwrap_or(0),
    })
}

fn conversation_of(item: &Item) -> Result<Conversation, StoreError> {
    let channel = get_s(item, "channel")
        .and_then(Channel::parse)
        .ok_or_else(|| StoreError::Corrupt("conversation channel".into()))?;
    let mode = match get_s(item, "mode") {
        Some("human") => Mode::Human {
            since: get_n(item, "mode_since").unwrap_or(0),
            reason: get_s(item, "mode_reason").map(str::to_owned),
        },
        _ => Mode::Assistant,
    };
    Ok(Conversation {
        channel,
        mode,
        last_inbound_at: get_n(item, "last_inbound_at"),
        needs_template: item.get("needs_template").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

#[derive(Serialize, Deserialize)]
struct ConsentItem {
    pk: String,
    sk: String,
    consent: Consent,
    at_ms: i64,
    source: ConsentSource,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

impl ContactStore for DynamoContacts {
    async fn state(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
    ) -> Result<ContactState, StoreError> {
        let pk = keys::contact_pk(tenant, &contact.key());
        let key = |sk: String| [("pk".to_owned(), s(pk.as_str())), ("sk".to_owned(), s(sk))].into_iter().collect();
        let keys_and_attributes = build(
            KeysAndAttributes::builder()
                .keys(key(keys::CONTACT_SK.to_owned()))
                .keys(key(keys::conversation_item_sk(channel)))
                .consistent_read(true)
                .build(),
        )?;
        // DynamoDB may leave keys unprocessed (throttling) and still succeed: a missing item
        // would read as "no opt-out", "not in human mode". Ask again for those, or fail.
        let mut request = Some(keys_and_attributes);
        let mut items = Vec::new();
        for attempt in 0..5u32 {
            let Some(keys_and_attributes) = request.take() else { break };
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys_and_attributes)
                .send()
                .await
                .map_err(|e| StoreError::aws("BatchGetItem contact", e))?;
            items.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            request = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys().is_empty());
        }
        if request.is_some() {
            return Err(StoreError::Aws {
                operation: "BatchGetItem contact",
                message: "keys left unprocessed after retries".into(),
            });
        }
        let mut state = ContactState::default();
        for item in items {
            match get_s(&item, "sk") {
                Some(keys::CONTACT_SK) => state.contact = Some(contact_of(&item)?),
                Some(_) => state.conversation = Some(conversation_of(&item)?),
                None => {}
            }
        }
        Ok(state)
    }

    async fn record_activity(
        &self,
        tenant: &TenantId,
        a: InboundActivity<'_>,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let contact_key = a.contact.key();
        let pk = keys::contact_pk(tenant, &contact_key);
        let mut contact = self
            .update(&pk, keys::CONTACT_SK)
            .update_expression(if a.profile_name.is_some() {
                "SET contact = :c, first_seen = if_not_exists(first_seen, :at), last_inbound_at = :at, \
                 consent = if_not_exists(consent, :in), expires_at = :ttl, exp_pk = :bucket, exp_sk = :start, profile_name = :name"
            } else {
                "SET contact = :c, first_seen = if_not_exists(first_seen, :at), last_inbound_at = :at, \
                 consent = if_not_exists(consent, :in), expires_at = :ttl, exp_pk = :bucket, exp_sk = :start"
            })
            .expression_attribute_values(":c", s(contact_key.as_str()))
            .expression_attribute_values(":at", n(a.at))
            .expression_attribute_values(":in", s(Consent::OptedIn.as_str()))
            .expression_attribute_values(":ttl", n(expiry.ttl))
            .expression_attribute_values(":bucket", s(expiry.bucket(&pk)))
            .expression_attribute_values(":start", n(expiry.start))
            // Activity only moves forward (a message queued again late is older news): the
            // 24-hour window and the retention clock it restarts never go back.
            .condition_expression(NEWER_ACTIVITY);
        if let Some(name) = a.profile_name {
            contact = contact.expression_attribute_values(":name", s(name));
        }
        let conversation_sk = keys::conversation_item_sk(a.channel);
        let conversation = self
            .update(&pk, &conversation_sk)
            // A message from the contact reopens the free-form window.
            .update_expression(
                "SET channel = :ch, last_inbound_at = :at, #mode = if_not_exists(#mode, :assistant), \
                 needs_template = :no, expires_at = :ttl, exp_pk = :bucket, exp_sk = :start",
            )
            .expression_attribute_names("#mode", "mode")
            .expression_attribute_values(":ch", s(a.channel.as_str()))
            .expression_attribute_values(":at", n(a.at))
            .expression_attribute_values(":assistant", s("assistant"))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":ttl", n(expiry.ttl))
            .expression_attribute_values(":bucket", s(expiry.bucket(&format!("{pk}#{conversation_sk}"))))
            .expression_attribute_values(":start", n(expiry.start))
            .condition_expression(NEWER_ACTIVITY);
        let (contact, conversation) = (build(contact.build())?, build(conversation.build())?);
        let together = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(contact.clone()).build())
            .transact_items(TransactWriteItem::builder().update(conversation.clone()).build())
            .send()
            .await;
        match together {
            Ok(_) => Ok(()),
            // One of the two has newer activity (another channel's, say): each on its own.
            Err(e) if transaction_condition_failed(&e) => {
                for update in [contact, conversation] {
                    let result = self
                        .client
                        .update_item()
                        .table_name(update.table_name())
                        .set_key(Some(update.key().clone()))
                        .update_expression(update.update_expression())
                        .set_condition_expression(update.condition_expression().map(str::to_owned))
                        .set_expression_attribute_names(update.expression_attribute_names().cloned())
                        .set_expression_attribute_values(update.expression_attribute_values().cloned())
                        .send()
                        .await;
                    match result {
                        Err(e) if condition_failed(&e) => {}
                        other => other.map(|_| ()).map_err(|e| StoreError::aws("UpdateItem activity", e))?,
                    }
                }
                Ok(())
            }
            Err(e) => Err(StoreError::aws("TransactWriteItems activity", e)),
        }
    }

    async fn set_consent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        change: ConsentChange,
        expiry: &Expiry,
    ) -> Result<bool, StoreError> {
        let contact_key = contact.key();
        let pk = keys::contact_pk(tenant, &contact_key);
        let sk = keys::consent_sk(change.at_ms);
        let history = ConsentItem {
            exp_pk: expiry.bucket(&format!("{pk}#{sk}")),
            exp_sk: expiry.start,
            pk: pk.clone(),
            sk,
            consent: change.consent,
            at_ms: change.at_ms,
            source: change.source,
            expires_at: expiry.ttl,
        };
        let history = build(Put::builder().table_name(&self.table).set_item(Some(to_item(&history)?)).build())?;
        let current = self
            .update(&pk, keys::CONTACT_SK)
            .update_expression(
                "SET contact = :c, consent = :consent, consent_at = :at, first_seen = if_not_exists(first_seen, :secs), \
                 last_inbound_at = if_not_exists(last_inbound_at, :secs), expires_at = :ttl, exp_pk = :bucket, exp_sk = :start",
            )
            // A change that arrives after a later one keeps its place in history, but does not win.
            .condition_expression("attribute_not_exists(consent_at) OR consent_at < :at")
            .expression_attribute_values(":c", s(contact_key.as_str()))
            .expression_attribute_values(":consent", s(change.consent.as_str()))
            .expression_attribute_values(":at", n(change.at_ms))
            .expression_attribute_values(":secs", n(change.at_ms.div_euclid(1000)))
            .expression_attribute_values(":ttl", n(expiry.ttl))
            .expression_attribute_values(":bucket", s(expiry.bucket(&pk)))
            .expression_attribute_values(":start", n(expiry.start));
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(build(current.build())?).build())
            .transact_items(TransactWriteItem::builder().put(history.clone()).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if transaction_condition_failed(&e) => {
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(history.item().clone()))
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("PutItem consent history", e))?;
                Ok(false)
            }
            Err(e) => Err(StoreError::aws("TransactWriteItems consent", e)),
        }
    }

    async fn consent_history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<ConsentChange>, StoreError> {
        let items = self
            .query_prefix(&keys::contact_pk(tenant, &contact.key()), Some(keys::CONSENT_SK_PREFIX), "Query consent")
            .await?;
        items
            .into_iter()
            .map(|item| {
                let c: ConsentItem = from_item("consent", item)?;
                Ok(ConsentChange { consent: c.consent, at_ms: c.at_ms, source: c.source })
            })
            .collect()
    }

    async fn set_mode(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        mode: &Mode,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let (set, remove) = match mode {
            Mode::Assistant => ("#mode = :m", " REMOVE mode_since, mode_reason"),
            Mode::Human { reason: Some(_), .. } => ("#mode = :m, mode_since = :since, mode_reason = :r", ""),
            Mode::Human { reason: None, .. } => ("#mode = :m, mode_since = :since", " REMOVE mode_reason"),
        };
        let mut request = self
            .update_conversation(tenant, contact, channel, expiry, set, remove)
            .expression_attribute_values(":m", s(if matches!(mode, Mode::Assistant) { "assistant" } else { "human" }));
        if let Mode::Human { since, reason } = mode {
            request = request.expression_attribute_values(":since", n(*since));
            if let Some(r) = reason {
                request = request.expression_attribute_values(":r", s(r.as_str()));
            }
        }
        request.send().await.map_err(|e| StoreError::aws("UpdateItem mode", e))?;
        Ok(())
    }

    async fn set_needs_template(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        needs: bool,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        self.update_conversation(
            tenant,
            contact,
            channel,
            expiry,
            "needs_template = :v, #mode = if_not_exists(#mode, :m)",
            "",
        )
        .expression_attribute_values(":v", AttributeValue::Bool(needs))
        .expression_attribute_values(":m", s("assistant"))
        .send()
        .await
        .map_err(|e| StoreError::aws("UpdateItem needs_template", e))?;
        Ok(())
    }
}

impl DynamoContacts {
    /// An update of a conversation item that creates it, stamped, if it does not exist yet.
    fn update_conversation(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        expiry: &Expiry,
        set: &str,
        remove: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        let pk = keys::contact_pk(tenant, &contact.key());
        let sk = keys::conversation_item_sk(channel);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk.as_str()))
            .key("sk", s(sk.as_str()))
            .update_expression(format!(
                "SET channel = :ch, expires_at = if_not_exists(expires_at, :ttl), \
                 exp_pk = if_not_exists(exp_pk, :bucket), exp_sk = if_not_exists(exp_sk, :start), {set}{remove}"
            ))
            .expression_attribute_names("#mode", "mode")
            .expression_attribute_values(":ch", s(channel.as_str()))
            .expression_attribute_values(":ttl", n(expiry.ttl))
            .expression_attribute_values(":bucket", s(expiry.bucket(&format!("{pk}#{sk}"))))
            .expression_attribute_values(":start", n(expiry.start))
    }
}

#[derive(Serialize, Deserialize)]
struct LeadItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    id: RecordId,
    contact: ContactId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interest: Option<String>,
    score: u8,
    stage: LeadStage,
    created_at_ms: i64,
    updated_at_ms: i64,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

impl From<LeadItem> for Lead {
    fn from(i: LeadItem) -> Self {
        Lead {
            id: i.id,
            contact: i.contact,
            name: i.name,
            email: i.email,
            phone: i.phone,
            interest: i.interest,
            score: i.score,
            stage: i.stage,
            created_at_ms: i.created_at_ms,
            updated_at_ms: i.updated_at_ms,
        }
    }
}

impl LeadStore for DynamoContacts {
    async fn save_lead(&self, tenant: &TenantId, lead: &Lead, expiry: &Expiry) -> Result<(), StoreError> {
        let pk = keys::contact_pk(tenant, &lead.contact.key());
        let sk = keys::lead_sk(lead.id.as_str());
        let item = LeadItem {
            gsi1pk: keys::leads_by_stage_pk(tenant, lead.stage.as_str()),
            gsi1sk: keys::by_time_sk(lead.updated_at_ms, lead.id.as_str()),
            exp_pk: expiry.bucket(&format!("{pk}#{sk}")),
            exp_sk: expiry.start,
            pk,
            sk,
            id: lead.id.clone(),
            contact: lead.contact.clone(),
            name: lead.name.clone(),
            email: lead.email.clone(),
            phone: lead.phone.clone(),
            interest: lead.interest.clone(),
            score: lead.score,
            stage: lead.stage,
            created_at_ms: lead.created_at_ms,
            updated_at_ms: lead.updated_at_ms,
            expires_at: expiry.ttl,
        };
        let identities =
            self.identities.as_ref().map(|p| subject::lead_identities(p, tenant, lead)).unwrap_or_default();
        if !identities.is_empty() {
            return self.save_lead_with_identities(tenant, lead, to_item(&item)?, &identities, expiry).await;
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(&item)?))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem lead", e))?;
        Ok(())
    }

    async fn leads_of(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Lead>, StoreError> {
        let items = self
            .query_prefix(&keys::contact_pk(tenant, &contact.key()), Some(keys::LEAD_SK_PREFIX), "Query leads")
            .await?;
        items.into_iter().map(|i| from_item::<LeadItem>("lead", i).map(Lead::from)).collect()
    }

    async fn leads_in_stage(&self, tenant: &TenantId, stage: LeadStage, limit: usize) -> Result<Vec<Lead>, StoreError> {
        let items =
            self.query_index(&keys::leads_by_stage_pk(tenant, stage.as_str()), limit, "Query leads by stage").await?;
        items.into_iter().map(|i| from_item::<LeadItem>("lead", i).map(Lead::from)).collect()
    }
}

#[derive(Serialize, Deserialize)]
struct AppointmentItem {
    pk: String,
    sk: String,
    /// Only while booked: reminders find booked appointments by start hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    id: RecordId,
    contact: ContactId,
    service: String,
    start: i64,
    end: i64,
    slots: Vec<Slot>,
    status: AppointmentStatus,
    created_at: i64,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

impl From<AppointmentItem> for Appointment {
    fn from(i: AppointmentItem) -> Self {
        Appointment {
            id: i.id,
            contact: i.contact,
            service: i.service,
            start: i.start,
            end: i.end,
            slots: i.slots,
            status: i.status,
            created_at: i.created_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SlotItem {
    pk: String,
    sk: String,
    appointment: RecordId,
    expires_at: i64,
    exp_pk: String,
    exp_sk: i64,
}

impl AppointmentStore for DynamoContacts {
    async fn book(&self, tenant: &TenantId, a: &Appointment, expiry: &Expiry) -> Result<Booking, StoreError> {
        super::check_slots(a)?;
        let pk = keys::contact_pk(tenant, &a.contact.key());
        let sk = keys::appointment_sk(a.id.as_str());
        let item = AppointmentItem {
            gsi1pk: Some(keys::appointments_due_pk(tenant, &keys::utc_hour(a.start))),
            gsi1sk: Some(keys::by_time_sk(a.start, a.id.as_str())),
            exp_pk: expiry.bucket(&format!("{pk}#{sk}")),
            exp_sk: expiry.start,
            pk,
            sk,
            id: a.id.clone(),
            contact: a.contact.clone(),
            service: a.service.clone(),
            start: a.start,
            end: a.end,
            slots: a.slots.clone(),
            status: AppointmentStatus::Booked,
            created_at: a.created_at,
            expires_at: expiry.ttl,
        };
        let put = |item: Item| {
            build(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build(),
            )
            .map(|p| TransactWriteItem::builder().put(p).build())
        };
        let mut request = self.client.transact_write_items().transact_items(put(to_item(&item)?)?);
        for slot in &a.slots {
            let slot_pk = keys::slot_pk(tenant, &slot.date);
            let slot_item = SlotItem {
                exp_pk: expiry.bucket(&format!("{slot_pk}#{}", slot.time)),
                exp_sk: expiry.start,
                pk: slot_pk,
                sk: slot.time.clone(),
                appointment: a.id.clone(),
                expires_at: expiry.ttl,
            };
            request = request.transact_items(put(to_item(&slot_item)?)?);
        }
        match request.send().await {
            Ok(_) => Ok(Booking::Booked),
            Err(e) if transaction_condition_failed(&e) => Ok(Booking::SlotTaken),
            Err(e) => Err(StoreError::aws("TransactWriteItems booking", e)),
        }
    }

    async fn cancel(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        id: &RecordId,
    ) -> Result<Option<Appointment>, StoreError> {
        let pk = keys::contact_pk(tenant, &contact.key());
        let sk = keys::appointment_sk(id.as_str());
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk.as_str()))
            .key("sk", s(sk.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem appointment", e))?;
        let Some(item) = out.item else { return Ok(None) };
        let mut appointment = Appointment::from(from_item::<AppointmentItem>("appointment", item)?);
        if appointment.status != AppointmentStatus::Booked {
            return Ok(None);
        }
        let update = self
            .update(&pk, &sk)
            .update_expression("SET #status = :cancelled REMOVE gsi1pk, gsi1sk")
            .condition_expression("#status = :booked")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":cancelled",
                serde_dynamo::to_attribute_value(AppointmentStatus::Cancelled)
                    .map_err(|e| StoreError::corrupt("status", e))?,
            )
            .expression_attribute_values(
                ":booked",
                serde_dynamo::to_attribute_value(AppointmentStatus::Booked)
                    .map_err(|e| StoreError::corrupt("status", e))?,
            );
        let mut request = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(build(update.build())?).build());
        for slot in &appointment.slots {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(keys::slot_pk(tenant, &slot.date)))
                .key("sk", s(slot.time.as_str()))
                // Only the slot this appointment holds.
                .condition_expression("appointment = :id")
                .expression_attribute_values(":id", s(id.as_str()));
            request = request.transact_items(TransactWriteItem::builder().delete(build(delete.build())?).build());
        }
        match request.send().await {
            Ok(_) => {
                appointment.status = AppointmentStatus::Cancelled;
                Ok(Some(appointment))
            }
            // Cancelled concurrently: nothing left to cancel.
            Err(e) if transaction_condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::aws("TransactWriteItems cancel", e)),
        }
    }

    async fn appointments_of(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Appointment>, StoreError> {
        let items = self
            .query_prefix(
                &keys::contact_pk(tenant, &contact.key()),
                Some(keys::APPOINTMENT_SK_PREFIX),
                "Query appointments",
            )
            .await?;
        items.into_iter().map(|i| from_item::<AppointmentItem>("appointment", i).map(Appointment::from)).collect()
    }

    async fn due_in_hour(&self, tenant: &TenantId, hour: &str) -> Result<Vec<Appointment>, StoreError> {
        let mut items =
            self.query_index(&keys::appointments_due_pk(tenant, hour), usize::MAX, "Query appointments due").await?;
        items.reverse();
        items.into_iter().map(|i| from_item::<AppointmentItem>("appointment", i).map(Appointment::from)).collect()
    }

    async fn taken_slots(&self, tenant: &TenantId, date: &str) -> Result<Vec<Slot>, StoreError> {
        let items = self.query_prefix(&keys::slot_pk(tenant, date), None, "Query slots").await?;
        Ok(items
            .iter()
            .filter_map(|i| Some(Slot { date: date.to_owned(), time: get_s(i, "sk")?.to_owned() }))
            .collect())
    }
}
