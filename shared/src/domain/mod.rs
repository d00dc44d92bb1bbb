//! The domain: identifiers, messages, contacts and what the assistant records about them,
//! free of any provider's wire format and of any storage's attribute names.

pub mod appointment;
pub mod audit;
pub mod contact;
pub mod ids;
pub mod lead;
pub mod message;

pub use appointment::{Appointment, AppointmentStatus, Slot};
pub use audit::{Anchor, AnchorKind, AuditAction, AuditEntry, AuditRecord};
pub use contact::{Consent, ConsentChange, ConsentSource, Contact, Conversation, Mode};
pub use ids::{ContactId, E164, InvalidId, ProviderMessageId, RecordId, TenantId};
pub use lead::{Lead, LeadStage};
pub use message::{
    Attachment, Channel, Content, DeliveryStatus, InboundMessage, MediaKind, OutboundMessage, Stage, StatusUpdate,
};
