//! An in-memory `ContactsTable` with the DynamoDB adapter's semantics (a slot taken at most
//! once, a booking all or nothing, consent that never moves back in time).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{AppointmentStore, Booking, ContactState, ContactStore, InboundActivity, LeadStore};
use crate::domain::{
    Appointment, AppointmentStatus, Channel, Consent, ConsentChange, Contact, ContactId, Conversation, Lead, LeadStage,
    Mode, RecordId, Slot, TenantId,
};
use crate::privacy::Expiry;
use crate::store::StoreError;

type ContactKey = (TenantId, String);

#[derive(Debug, Default)]
struct Tables {
    contacts: BTreeMap<ContactKey, Contact>,
    conversations: BTreeMap<(ContactKey, Channel), Conversation>,
    consent: BTreeMap<ContactKey, Vec<ConsentChange>>,
    leads: BTreeMap<(ContactKey, RecordId), Lead>,
    appointments: BTreeMap<(ContactKey, RecordId), Appointment>,
    /// `(tenant, date, time)` → appointment.
    slots: BTreeMap<(TenantId, String, String), RecordId>,
}

#[derive(Debug, Default)]
pub struct MemoryContacts {
    tables: Mutex<Tables>,
}

impl MemoryContacts {
    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        f(&mut self.tables.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn key(tenant: &TenantId, contact: &ContactId) -> ContactKey {
    (tenant.clone(), contact.key())
}

fn new_contact(id: &ContactId, at: i64) -> Contact {
    Contact {
        id: id.clone(),
        profile_name: None,
        consent: Consent::OptedIn,
        consent_at_ms: None,
        first_seen: at,
        last_inbound_at: at,
    }
}

impl ContactStore for MemoryContacts {
    async fn state(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
    ) -> Result<ContactState, StoreError> {
        let k = key(tenant, contact);
        Ok(self.with(|t| ContactState {
            contact: t.contacts.get(&k).cloned(),
            conversation: t.conversations.get(&(k.clone(), channel)).cloned(),
        }))
    }

    async fn record_activity(&self, tenant: &TenantId, a: InboundActivity<'_>, _: &Expiry) -> Result<(), StoreError> {
        let k = key(tenant, a.contact);
        self.with(|t| {
            // Activity only moves forward.
            let contact = t.contacts.entry(k.clone()).or_insert_with(|| new_contact(a.contact, a.at));
            if contact.last_inbound_at <= a.at {
                contact.last_inbound_at = a.at;
                if let Some(name) = a.profile_name {
                    contact.profile_name = Some(name.to_owned());
                }
            }
            let conversation = t.conversations.entry((k, a.channel)).or_insert_with(|| Conversation::new(a.channel));
            if conversation.last_inbound_at.is_none_or(|at| at <= a.at) {
                conversation.last_inbound_at = Some(a.at);
                conversation.needs_template = false;
            }
        });
        Ok(())
    }

    async fn set_consent(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        change: ConsentChange,
        _: &Expiry,
    ) -> Result<bool, StoreError> {
        let k = key(tenant, contact);
        Ok(self.with(|t| {
            let history = t.consent.entry(k.clone()).or_default();
            history.push(change);
            history.sort_by_key(|c| c.at_ms);
            let current = t.contacts.entry(k).or_insert_with(|| new_contact(contact, change.at_ms.div_euclid(1000)));
            if current.consent_at_ms.is_some_and(|at| at >= change.at_ms) {
                return false;
            }
            current.consent = change.consent;
            current.consent_at_ms = Some(change.at_ms);
            true
        }))
    }

    async fn consent_history(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<ConsentChange>, StoreError> {
        Ok(self.with(|t| t.consent.get(&key(tenant, contact)).cloned().unwrap_or_default()))
    }

    async fn set_mode(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        mode: &Mode,
        _: &Expiry,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            t.conversations.entry((key(tenant, contact), channel)).or_insert_with(|| Conversation::new(channel)).mode =
                mode.clone();
        });
        Ok(())
    }

    async fn set_needs_template(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        channel: Channel,
        needs: bool,
        _: &Expiry,
    ) -> Result<(), StoreError> {
        self.with(|t| {
            t.conversations
                .entry((key(tenant, contact), channel))
                .or_insert_with(|| Conversation::new(channel))
                .needs_template = needs;
        });
        Ok(())
    }
}

impl LeadStore for MemoryContacts {
    async fn save_lead(&self, tenant: &TenantId, lead: &Lead, _: &Expiry) -> Result<(), StoreError> {
        self.with(|t| t.leads.insert((key(tenant, &lead.contact), lead.id.clone()), lead.clone()));
        Ok(())
    }

    async fn leads_of(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Lead>, StoreError> {
        let k = key(tenant, contact);
        Ok(self.with(|t| t.leads.iter().filter(|((c, _), _)| *c == k).map(|(_, l)| l.clone()).collect()))
    }

    async fn leads_in_stage(&self, tenant: &TenantId, stage: LeadStage, limit: usize) -> Result<Vec<Lead>, StoreError> {
        Ok(self.with(|t| {
            let mut leads: Vec<Lead> = t
                .leads
                .iter()
                .filter(|((c, _), l)| &c.0 == tenant && l.stage == stage)
                .map(|(_, l)| l.clone())
                .collect();
            leads.sort_by(|a, b| (b.updated_at_ms, &b.id).cmp(&(a.updated_at_ms, &a.id)));
            leads.truncate(limit);
            leads
        }))
    }
}

impl AppointmentStore for MemoryContacts {
    async fn book(&self, tenant: &TenantId, a: &Appointment, _: &Expiry) -> Result<Booking, StoreError> {
        super::check_slots(a)?;
        Ok(self.with(|t| {
            let k = (key(tenant, &a.contact), a.id.clone());
            let slot_keys: Vec<_> = a.slots.iter().map(|s| (tenant.clone(), s.date.clone(), s.time.clone())).collect();
            if t.appointments.contains_key(&k) || slot_keys.iter().any(|s| t.slots.contains_key(s)) {
                return Booking::SlotTaken;
            }
            for s in slot_keys {
                t.slots.insert(s, a.id.clone());
            }
            t.appointments.insert(k, Appointment { status: AppointmentStatus::Booked, ..a.clone() });
            Booking::Booked
        }))
    }

    async fn cancel(
        &self,
        tenant: &TenantId,
        contact: &ContactId,
        id: &RecordId,
    ) -> Result<Option<Appointment>, StoreError> {
        Ok(self.with(|t| {
            let a = t.appointments.get_mut(&(key(tenant, contact), id.clone()))?;
            if a.status != AppointmentStatus::Booked {
                return None;
            }
            a.status = AppointmentStatus::Cancelled;
            let a = a.clone();
            for s in &a.slots {
                let slot = (tenant.clone(), s.date.clone(), s.time.clone());
                if t.slots.get(&slot) == Some(id) {
                    t.slots.remove(&slot);
                }
            }
            Some(a)
        }))
    }

    async fn appointments_of(&self, tenant: &TenantId, contact: &ContactId) -> Result<Vec<Appointment>, StoreError> {
        let k = key(tenant, contact);
        Ok(self.with(|t| t.appointments.iter().filter(|((c, _), _)| *c == k).map(|(_, a)| a.clone()).collect()))
    }

    async fn due_in_hour(&self, tenant: &TenantId, hour: &str) -> Result<Vec<Appointment>, StoreError> {
        Ok(self.with(|t| {
            let mut due: Vec<Appointment> = t
                .appointments
                .iter()
                .filter(|((c, _), a)| {
                    &c.0 == tenant
                        && a.status == AppointmentStatus::Booked
                        && crate::store::keys::utc_hour(a.start) == hour
                })
                .map(|(_, a)| a.clone())
                .collect();
            due.sort_by_key(|a| a.start);
            due
        }))
    }

    async fn taken_slots(&self, tenant: &TenantId, date: &str) -> Result<Vec<Slot>, StoreError> {
        Ok(self.with(|t| {
            t.slots
                .keys()
                .filter(|(tn, d, _)| tn == tenant && d == date)
                .map(|(_, d, time)| Slot { date: d.clone(), time: time.clone() })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn behaves_like_the_table() {
        let store = std::sync::Arc::new(MemoryContacts::default());
        crate::store::conformance::contacts(store, &TenantId::parse("acme").unwrap()).await;
    }
}
