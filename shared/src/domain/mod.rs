//! The domain: identifiers and messages, free of any provider's wire format.

pub mod ids;
pub mod message;

pub use ids::{ContactId, E164, InvalidId, ProviderMessageId, TenantId};
pub use message::{Attachment, Channel, Content, DeliveryStatus, InboundMessage, MediaKind, StatusUpdate};
