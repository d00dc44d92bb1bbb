//! `ContactsTable`: everything about one contact of one tenant under one partition key
//! (`<tenant>#C#<contact>`): the contact, their conversation per channel, their consent
//! history, their leads and appointments; plus the slots of a tenant's day (`<tenant>#SLOT#<date>`),
//! each taken at most once. GSIs: `byTime` (a tenant's leads per stage; booked appointments per
//! start hour, for reminders) and `expiry` (the purge job's month buckets).

pub mod dynamo;
pub mod memory;

use std::future::Future;

use crate::domain::{
    Appointment, Channel, ConsentChange, Contact, ContactId, Conversation, Lead, LeadStage, Mode, RecordId, Slot,
    TenantId,
};
use crate::privacy::Expiry;
use crate::store::StoreError;

pub use dynamo::DynamoContacts;
pub use memory::MemoryContacts;

/// A contact and their conversation on one channel, as the reply worker reads them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContactState {
    pub contact: Option<Contact>,
    pub conversation: Option<Conversation>,
}

/// A message from the contact arrived (the reply worker records it once per answer).
/// `Debug` shows no personal data.
#[derive(Clone, Copy)]
pub struct InboundActivity<'a> {
    pub contact: &'a ContactId,
    pub channel: Channel,
    pub profile_name: Option<&'a str>,
    /// Unix seconds.
    pub at: i64,
}

impl std::fmt::Debug for InboundActivity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundActivity").field("channel", &self.channel).field("at", &self.at).finish_non_exhaustive()
    }
}

/// What became of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    Booked,
    /// One of its slots is taken (by anyone): nothing was written.
    SlotTaken,
}

/// An appointment holds each slot once (DynamoDB refuses a transaction touching an item twice).
fn check_slots(appointment: &Appointment) -> Result<(), StoreError> {
    let mut slots: Vec<&Slot> = appointment.slots.iter().collect();
    slots.sort();
    slots.dedup();
    if slots.len() == appointment.slots.len() && !slots.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Conflict("an appointment holds one or more slots, each once".into()))
    }
}

pub trait ContactStore: Send + Sync {
    fn state(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
    ) -> impl Future<Output = Result<ContactState, StoreError>> + Send;
    /// Creates or refreshes the contact and the conversation: last inbound time (the 24-hour
    /// window), profile name, and the retention clock that activity restarts.
    fn record_activity(
        &self,
        tenant: &TenantId,
        activity: InboundActivity<'_>,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Applies a consent change unless a later one is already recorded (`false` then), and
    /// keeps it in the contact's history either way it lands.
    fn set_consent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        change: ConsentChange,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Consent changes, oldest first.
    fn consent_history(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> impl Future<Output = Result<Vec<ConsentChange>, StoreError>> + Send;
    /// Who answers the conversation. `expiry` stamps a conversation this creates (one that
    /// exists keeps its own stamps: its last activity decides).
    fn set_mode(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        mode: &Mode,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn set_needs_template(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        needs: bool,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub trait LeadStore: Send + Sync {
    /// Creates or replaces the lead with this id, under its contact.
    fn save_lead(
        &self,
        tenant: &TenantId,
        lead: &Lead,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn leads_of(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> impl Future<Output = Result<Vec<Lead>, StoreError>> + Send;
    /// A tenant's leads in one stage, most recently changed first.
    fn leads_in_stage(
        &self,
        tenant: &TenantId,
        stage: LeadStage,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Lead>, StoreError>> + Send;
}

pub trait AppointmentStore: Send + Sync {
    /// Books the appointment and every slot it holds, all or nothing.
    fn book(
        &self,
        tenant: &TenantId,
        appointment: &Appointment,
        expiry: &Expiry,
    ) -> impl Future<Output = Result<Booking, StoreError>> + Send;
    /// Cancels `contact`'s appointment `id` and frees its slots. Only that contact's: an id of
    /// someone else's appointment is simply not found. `None` when there is nothing to cancel.
    fn cancel(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        id: &RecordId,
    ) -> impl Future<Output = Result<Option<Appointment>, StoreError>> + Send;
    fn appointments_of(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
    ) -> impl Future<Output = Result<Vec<Appointment>, StoreError>> + Send;
    /// Booked appointments starting in one UTC hour (`yyyy-mm-ddThh`).
    fn due_in_hour(
        &self,
        tenant: &TenantId,
        hour: &str,
    ) -> impl Future<Output = Result<Vec<Appointment>, StoreError>> + Send;
    /// Slots taken on one tenant-local date.
    fn taken_slots(&self, tenant: &TenantId, date: &str) -> impl Future<Output = Result<Vec<Slot>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_an_activity_holds_no_personal_data() {
        let contact = ContactId::parse_key("+4915112345678").unwrap();
        let a = InboundActivity { contact: &contact, channel: Channel::Meta, profile_name: Some("Jana Novak"), at: 1 };
        let printed = format!("{a:?}");
        assert!(!printed.contains("4915112345678") && !printed.contains("Jana"), "{printed}");
    }
}
