//! Twilio Programmable Messaging webhooks (WhatsApp and SMS): form parameters into domain types.

pub mod signature;

use std::borrow::Cow;

use crate::channels::MalformedPayload;
use crate::domain::{
    Attachment, Channel, ContactId, Content, DeliveryStatus, E164, InboundMessage, MediaKind, ProviderMessageId,
    StatusUpdate,
};

/// Twilio's own limit on a message request is far below this; anything larger is not Twilio.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The `<Response/>` Twilio expects when we do not answer inline.
pub const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

/// The decoded form, in the order received (all of it is signed).
pub struct Form<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Form<'a> {
    pub fn parse(body: &'a [u8]) -> Self {
        Self { pairs: form_urlencoded::parse(body).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref()).filter(|v| !v.is_empty())
    }

    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect()
    }
}

fn owned(v: Option<&str>) -> Option<String> {
    v.map(str::to_owned)
}

/// An inbound message. Twilio sends no send time, so the caller passes the receive time.
pub fn inbound_message(form: &Form<'_>, received_at: i64) -> Result<InboundMessage, MalformedPayload> {
    let id = form
        .get("MessageSid")
        .and_then(|s| ProviderMessageId::parse(s).ok())
        .ok_or(MalformedPayload("MessageSid missing"))?;
    let contact = match form.get("WaId") {
        Some(wa_id) => E164::parse(wa_id),
        None => E164::parse(form.get("From").unwrap_or_default()),
    }
    .map(ContactId::Phone)
    .map_err(|_| MalformedPayload("From is not a phone number"))?;
    Ok(InboundMessage {
        channel: Channel::Twilio,
        id,
        contact,
        profile_name: owned(form.get("ProfileName")),
        sent_at: received_at,
        reply_to: owned(form.get("OriginalRepliedMessageSid")),
        content: content(form),
    })
}

fn content(form: &Form<'_>) -> Content {
    let body = form.get("Body");
    let media_count: usize = form.get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0).min(10);
    if media_count > 0 {
        let attachments: Vec<Attachment> = (0..media_count)
            .map(|i| Attachment {
                media_id: None,
                url: owned(form.get(&format!("MediaUrl{i}"))),
                mime_type: owned(form.get(&format!("MediaContentType{i}"))),
                sha256: None,
                filename: None,
                stored: None,
            })
            .collect();
        let kind = MediaKind::from_mime(attachments[0].mime_type.as_deref().unwrap_or_default());
        return Content::Media { kind, caption: owned(body), attachments };
    }
    if let (Some(lat), Some(lon)) = (form.get("Latitude"), form.get("Longitude"))
        && let (Ok(latitude), Ok(longitude)) = (lat.parse(), lon.parse())
    {
        return Content::Location {
            latitude,
            longitude,
            name: owned(form.get("Label")),
            address: owned(form.get("Address")),
        };
    }
    if let Some(text) = form.get("ButtonText") {
        return Content::Button { payload: owned(form.get("ButtonPayload")), text: text.to_owned() };
    }
    match body {
        Some(body) => Content::Text { body: body.to_owned() },
        None => Content::Unsupported { kind: form.get("MessageType").unwrap_or("empty").chars().take(40).collect() },
    }
}

/// A status callback for a message we sent. `None` for a status that says nothing about
/// delivery (`receiving`, `partially_delivered`, …): acknowledged, not recorded.
pub fn status_update(form: &Form<'_>, received_at: i64) -> Result<Option<StatusUpdate>, MalformedPayload> {
    let id = form
        .get("MessageSid")
        .and_then(|s| ProviderMessageId::parse(s).ok())
        .ok_or(MalformedPayload("MessageSid missing"))?;
    let status = form.get("MessageStatus").ok_or(MalformedPayload("MessageStatus missing"))?;
    Ok(DeliveryStatus::parse(status).map(|status| StatusUpdate {
        channel: Channel::Twilio,
        id,
        status,
        at: received_at,
        error_code: form.get("ErrorCode").and_then(|c| c.parse().ok()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whatsapp_text_keys_the_contact_on_wa_id() {
        let body = b"MessageSid=SM123&AccountSid=AC1&From=whatsapp%3A%2B14155550100&To=whatsapp%3A%2B14155550199&Body=Hello+there&NumMedia=0&ProfileName=Sam&WaId=14155550100";
        let m = inbound_message(&Form::parse(body), 42).unwrap();
        assert_eq!(m.contact.key(), "+14155550100");
        assert_eq!(m.content, Content::Text { body: "Hello there".into() });
        assert_eq!(m.profile_name.as_deref(), Some("Sam"));
        assert_eq!(m.sent_at, 42);
    }

    #[test]
    fn media_location_and_buttons_are_read() {
        let media = b"MessageSid=MM1&From=whatsapp%3A%2B14155550100&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm0&MediaContentType0=image%2Fjpeg&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm1&MediaContentType1=application%2Fpdf&Body=see";
        match inbound_message(&Form::parse(media), 0).unwrap().content {
            Content::Media { kind: MediaKind::Image, caption: Some(c), attachments } => {
                assert_eq!(c, "see");
                assert_eq!(attachments.len(), 2);
                assert_eq!(attachments[1].mime_type.as_deref(), Some("application/pdf"));
            }
            other => panic!("{other:?}"),
        }
        let location = b"MessageSid=SM2&From=%2B14155550100&Latitude=52.52&Longitude=13.40&Label=Office";
        assert!(matches!(inbound_message(&Form::parse(location), 0).unwrap().content, Content::Location { .. }));
        let button = b"MessageSid=SM3&From=%2B14155550100&ButtonText=Yes&ButtonPayload=confirm&Body=Yes";
        assert!(matches!(inbound_message(&Form::parse(button), 0).unwrap().content, Content::Button { .. }));
    }

    #[test]
    fn missing_sid_or_sender_is_malformed() {
        assert!(inbound_message(&Form::parse(b"From=%2B14155550100&Body=x"), 0).is_err());
        assert!(inbound_message(&Form::parse(b"MessageSid=SM1&From=nobody&Body=x"), 0).is_err());
    }

    #[test]
    fn status_callbacks_map_onto_delivery_statuses() {
        let s = status_update(&Form::parse(b"MessageSid=SM9&MessageStatus=undelivered&ErrorCode=63016"), 7)
            .unwrap()
            .unwrap();
        assert_eq!(s.status, DeliveryStatus::Failed);
        assert_eq!(s.error_code, Some(63016));
        assert_eq!(status_update(&Form::parse(b"MessageSid=SM9&MessageStatus=partially_delivered"), 7), Ok(None));
        assert!(status_update(&Form::parse(b"MessageSid=SM9"), 7).is_err());
    }
}
