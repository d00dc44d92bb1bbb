//! What a customer sent and what became of what we sent, independent of the provider.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{ContactId, ProviderMessageId, RecordId};

/// The channel a message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Meta,
    Twilio,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::Twilio => "twilio",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "meta" => Some(Self::Meta),
            "twilio" => Some(Self::Twilio),
            _ => None,
        }
    }
}

/// One message from a contact, as received. Personal data: `Debug` shows only its shape.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub channel: Channel,
    pub id: ProviderMessageId,
    pub contact: ContactId,
    /// The display name the contact chose (personal data: stored, never logged).
    pub profile_name: Option<String>,
    /// When the contact sent it (provider clock, unix seconds).
    pub sent_at: i64,
    /// The message this one replies to, if any.
    pub reply_to: Option<String>,
    pub content: Content,
}

impl fmt::Debug for InboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("channel", &self.channel)
            .field("id", &self.id)
            .field("sent_at", &self.sent_at)
            .field("content", &self.content)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaKind {
    pub fn from_type(kind: &str) -> Option<Self> {
        Some(match kind {
            "image" => Self::Image,
            "audio" | "voice" => Self::Audio,
            "video" => Self::Video,
            "document" => Self::Document,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    /// Twilio only gives a MIME type.
    pub fn from_mime(mime: &str) -> Self {
        match mime.split('/').next().unwrap_or_default() {
            "image" if mime == "image/webp" => Self::Sticker,
            "image" => Self::Image,
            "audio" => Self::Audio,
            "video" => Self::Video,
            _ => Self::Document,
        }
    }
}

/// Where the bytes of an attachment can be fetched: a Meta media id (valid 7 days) or a Twilio URL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub media_id: Option<String>,
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
    /// Our copy in the data bucket (`<tenant>/media/…`), once the reply worker made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
}

/// What a message says. Personal data: `Debug` shows only its type.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        body: String,
    },
    Media {
        kind: MediaKind,
        caption: Option<String>,
        attachments: Vec<Attachment>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// Shared contact cards, kept as the provider sent them.
    Contacts {
        cards: serde_json::Value,
    },
    /// A tap on a reply button or list row of an interactive message.
    InteractiveReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A tap on a template's quick-reply button.
    Button {
        payload: Option<String>,
        text: String,
    },
    Reaction {
        message_id: String,
        /// Absent when the reaction was removed.
        emoji: Option<String>,
    },
    Order {
        order: serde_json::Value,
    },
    System {
        body: Option<String>,
    },
    /// A type we do not handle (or do not know yet); kept so nothing is silently lost.
    Unsupported {
        kind: String,
    },
}

impl Content {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Media { .. } => "media",
            Self::Location { .. } => "location",
            Self::Contacts { .. } => "contacts",
            Self::InteractiveReply { .. } => "interactive_reply",
            Self::Button { .. } => "button",
            Self::Reaction { .. } => "reaction",
            Self::Order { .. } => "order",
            Self::System { .. } => "system",
            Self::Unsupported { .. } => "unsupported",
        }
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content::{}(..)", self.kind())
    }
}

/// Where an inbound message is on its way to an answer. Only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Stored; not yet known to be on the queue.
    Received,
    /// On the inbound queue (an attempt saw its send succeed).
    Queued,
    /// A reply worker holds it under a lease.
    Answering,
    /// Answered, or covered by an answer to a later message of the same burst.
    Answered,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Answering => "answering",
            Self::Answered => "answered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "queued" => Self::Queued,
            "answering" => Self::Answering,
            "answered" => Self::Answered,
            _ => return None,
        })
    }
}

/// A message we send to a contact, recorded under our own id before the provider is called,
/// so that a crash can never leave a send we do not know about.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub id: RecordId,
    pub channel: Channel,
    pub contact: ContactId,
    /// Unix seconds.
    pub created_at: i64,
    pub content: Content,
    /// The inbound message this answers (threading on Meta).
    pub in_reply_to: Option<ProviderMessageId>,
    /// Set once the provider accepted it.
    pub provider_id: Option<ProviderMessageId>,
}

impl fmt::Debug for OutboundMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundMessage")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("created_at", &self.created_at)
            .field("content", &self.content)
            .field("provider_id", &self.provider_id)
            .finish_non_exhaustive()
    }
}

/// A provider's report on a message we sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub channel: Channel,
    pub id: ProviderMessageId,
    pub status: DeliveryStatus,
    /// Provider clock, unix seconds.
    pub at: i64,
    pub error_code: Option<i64>,
}

/// Delivery progress. Providers report it out of order, so it only ever moves forward:
/// `rank` orders it and `failed` is terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" | "queued" | "scheduled" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" | "undelivered" | "canceled" => Self::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
        }
    }

    pub fn rank(self) -> u8 {
        match self {
            Self::Queued => 1,
            Self::Sending => 2,
            Self::Sent => 3,
            Self::Delivered => 4,
            Self::Read => 5,
            Self::Played => 6,
            Self::Failed => 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_outranks_every_other_status_and_read_outranks_delivered() {
        let all = ["queued", "sending", "sent", "delivered", "read", "played"];
        for s in all {
            assert!(DeliveryStatus::parse(s).unwrap().rank() < DeliveryStatus::Failed.rank());
        }
        assert!(DeliveryStatus::Read.rank() > DeliveryStatus::Delivered.rank());
        assert_eq!(DeliveryStatus::parse("undelivered"), Some(DeliveryStatus::Failed));
        assert_eq!(DeliveryStatus::parse("warning"), None);
    }

    #[test]
    fn debug_shows_the_shape_of_a_message_never_its_text_or_sender() {
        let m = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse("wamid.1").unwrap(),
            contact: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: Some("Jana Novak".into()),
            sent_at: 1,
            reply_to: None,
            content: Content::Text { body: "my card is 4111 1111 1111 1111".into() },
        };
        let printed = format!("{m:?}");
        for secret in ["4915112345678", "Jana", "4111"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("Content::text"), "{printed}");
    }

    #[test]
    fn stages_only_order_forward() {
        assert!(Stage::Received < Stage::Queued && Stage::Queued < Stage::Answering);
        assert_eq!(Stage::parse(Stage::Answered.as_str()), Some(Stage::Answered));
    }

    #[test]
    fn twilio_mime_types_map_to_kinds() {
        assert_eq!(MediaKind::from_mime("image/jpeg"), MediaKind::Image);
        assert_eq!(MediaKind::from_mime("image/webp"), MediaKind::Sticker);
        assert_eq!(MediaKind::from_mime("audio/ogg"), MediaKind::Audio);
        assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::Document);
    }
}
