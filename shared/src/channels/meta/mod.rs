//! Meta WhatsApp Cloud API webhooks: verification handshake, signature, and the translation of
//! a (possibly 1,000-update) notification into domain messages grouped by receiving number.

pub mod payload;
mod recover;
pub mod signature;

use crate::channels::MalformedPayload;
use crate::domain::{
    Attachment, Channel, ContactId, Content, DeliveryStatus, InboundMessage, MediaKind, ProviderMessageId, StatusUpdate,
};
use payload::{ChangeValue, Contact, Item, Message, Notification, Status, StrictNotification, TolerantNotification};

/// Meta's documented ceiling for one webhook body.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Everything one notification said to one of our numbers.
#[derive(Debug, Default, PartialEq)]
pub struct NumberUpdates {
    pub phone_number_id: String,
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Items that could not be read (no id, bad contact…); counted, never fatal to the batch.
    pub skipped: usize,
    /// Error codes Meta attached to the change itself.
    pub error_codes: Vec<i64>,
}

/// Parses a verified body. Only a body that is not the documented JSON at all is an error;
/// unknown fields, message types and objects are tolerated, and an item without its documented
/// shape is skipped alone.
pub fn parse_notification(body: &[u8]) -> Result<Vec<NumberUpdates>, MalformedPayload> {
    // Fast path: every item as documented, in one pass. Otherwise read each item on its own.
    match serde_json::from_slice::<StrictNotification<'_>>(body) {
        Ok(notification) => Ok(collect(notification)),
        Err(_) => serde_json::from_slice::<TolerantNotification<'_>>(body)
            .map(collect)
            .map_err(|_| MalformedPayload("not a WhatsApp webhook notification")),
    }
}

fn collect<'a, V, C, M, S>(notification: Notification<'a, V>) -> Vec<NumberUpdates>
where
    V: Item<ChangeValue<'a, C, M, S>>,
    C: Item<Contact<'a>>,
    M: Item<Message<'a>>,
    S: Item<Status<'a>>,
{
    if notification.object != "whatsapp_business_account" {
        return Vec::new();
    }
    let mut out: Vec<NumberUpdates> = Vec::new();
    for change in notification.entry.iter().flat_map(|e| &e.changes) {
        if change.field != "messages" {
            continue;
        }
        let Some(value) = change.value.as_ref() else { continue };
        let Some(value) = value.item() else {
            // Not even its number can be read: nothing to route, but worth knowing about.
            tracing::warn!("a messages change without its documented shape was skipped");
            continue;
        };
        let Some(metadata) = &value.metadata else {
            continue;
        };
        let mut updates = NumberUpdates { phone_number_id: metadata.phone_number_id.to_string(), ..Default::default() };
        let contacts: Vec<&Contact<'_>> = value.contacts.iter().filter_map(Item::item).collect();
        for message in &value.messages {
            let read = match (message.item(), message.unread()) {
                (Some(m), _) => inbound(m, &contacts),
                // Not as documented: stored as well as it can be read, never dropped silently.
                (None, Some(raw)) => recover::message(raw, &contacts),
                (None, None) => None,
            };
            match read {
                Some(m) => updates.messages.push(m),
                None => {
                    tracing::warn!("a message without a readable id or sender was skipped");
                    updates.skipped += 1
                }
            }
        }
        for status in &value.statuses {
            match status.item().and_then(status_update) {
                Some(s) => updates.statuses.push(s),
                None => updates.skipped += 1,
            }
        }
        updates.error_codes.extend(value.errors.iter().filter_map(|e| e.0.as_ref().ok()?.code));
        // One notification may hold several changes for the same number: keep one group each.
        match out.iter_mut().find(|u| u.phone_number_id == updates.phone_number_id) {
            Some(existing) => {
                existing.messages.append(&mut updates.messages);
                existing.statuses.append(&mut updates.statuses);
                existing.skipped += updates.skipped;
                existing.error_codes.append(&mut updates.error_codes);
            }
            None => out.push(updates),
        }
    }
    out
}

pub(crate) fn inbound(m: &Message<'_>, contacts: &[&Contact<'_>]) -> Option<InboundMessage> {
    let id = ProviderMessageId::parse(m.id.as_deref()?).ok()?;
    let sent_at = m.timestamp.as_deref()?.parse::<i64>().ok()?;
    let from = m.from.as_deref();
    let profile = contacts
        .iter()
        .find(|c| {
            (from.is_some() && c.wa_id.as_deref() == from)
                || (m.user_id.is_some() && c.user_id.as_deref() == m.user_id.as_deref())
        })
        .or(if contacts.len() == 1 { contacts.first() } else { None })
        .copied();
    let user_id = m.user_id.as_deref().or_else(|| profile.and_then(|c| c.user_id.as_deref()));
    let contact = ContactId::from_parts(from, user_id).ok()?;
    Some(InboundMessage {
        channel: Channel::Meta,
        id,
        contact,
        profile_name: profile.and_then(|c| c.profile.as_ref()?.name.as_deref().map(str::to_owned)),
        sent_at,
        reply_to: m.context.as_ref().and_then(|c| c.id.as_deref().map(str::to_owned)),
        content: content(m),
    })
}

fn owned(s: &Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

fn content(m: &Message<'_>) -> Content {
    let kind = m.kind.as_deref().unwrap_or("unknown");
    let unsupported = || Content::Unsupported { kind: kind.chars().take(40).collect() };
    match kind {
        "text" => m
            .text
            .as_ref()
            .filter(|t| !t.body.is_empty())
            .map_or_else(unsupported, |t| Content::Text { body: t.body.to_string() }),
        "image" | "audio" | "video" | "document" | "sticker" => {
            let media = match kind {
                "image" => &m.image,
                "audio" => &m.audio,
                "video" => &m.video,
                "document" => &m.document,
                _ => &m.sticker,
            };
            let (Some(media), Some(media_kind)) = (media, MediaKind::from_type(kind)) else {
                return unsupported();
            };
            Content::Media {
                kind: media_kind,
                caption: owned(&media.caption),
                attachments: vec![Attachment {
                    media_id: owned(&media.id),
                    url: None,
                    mime_type: owned(&media.mime_type),
                    sha256: owned(&media.sha256),
                    filename: owned(&media.filename),
                    stored: None,
                }],
            }
        }
        "location" => match m.location.as_ref() {
            Some(l @ payload::Location { latitude: Some(latitude), longitude: Some(longitude), .. }) => {
                Content::Location {
                    latitude: *latitude,
                    longitude: *longitude,
                    name: owned(&l.name),
                    address: owned(&l.address),
                }
            }
            _ => unsupported(),
        },
        "contacts" => m.contacts.clone().map_or_else(unsupported, |cards| Content::Contacts { cards }),
        "interactive" => {
            let choice = m
                .interactive
                .as_ref()
                .and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref()))
                .filter(|c| !c.id.is_empty());
            choice.map_or_else(unsupported, |c| Content::InteractiveReply {
                id: c.id.to_string(),
                title: c.title.to_string(),
                description: owned(&c.description),
            })
        }
        "button" => m
            .button
            .as_ref()
            .map_or_else(unsupported, |b| Content::Button { payload: owned(&b.payload), text: b.text.to_string() }),
        "reaction" => m.reaction.as_ref().filter(|r| !r.message_id.is_empty()).map_or_else(unsupported, |r| {
            Content::Reaction { message_id: r.message_id.to_string(), emoji: owned(&r.emoji).filter(|e| !e.is_empty()) }
        }),
        "order" => m.order.clone().map_or_else(unsupported, |order| Content::Order { order }),
        "system" => Content::System { body: m.system.as_ref().and_then(|s| owned(&s.body)) },
        _ => unsupported(),
    }
}

fn status_update(s: &Status<'_>) -> Option<StatusUpdate> {
    Some(StatusUpdate {
        channel: Channel::Meta,
        id: ProviderMessageId::parse(s.id.as_deref()?).ok()?,
        status: DeliveryStatus::parse(s.status.as_deref()?)?,
        at: s.timestamp.as_deref()?.parse().ok()?,
        error_code: s.errors.iter().find_map(|e| e.0.as_ref().ok()?.code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(changes: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": changes}]}),
        )
        .unwrap()
    }

    fn change(pnid: &str, value: serde_json::Value) -> serde_json::Value {
        let mut value = value;
        value["messaging_product"] = json!("whatsapp");
        value["metadata"] = json!({"display_phone_number": "15550001111", "phone_number_id": pnid});
        json!({"field": "messages", "value": value})
    }

    fn msg(id: &str, kind: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({"from": "4915112345678", "id": id, "timestamp": "1767225600", "type": kind});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        m
    }

    #[test]
    fn every_documented_message_type_is_read() {
        let messages = json!([
            msg("wamid.1", "text", json!({"text": {"body": "hi"}, "context": {"from": "x", "id": "wamid.0"}})),
            msg(
                "wamid.2",
                "image",
                json!({"image": {"id": "M1", "mime_type": "image/jpeg", "sha256": "abc", "caption": "look"}})
            ),
            msg(
                "wamid.3",
                "document",
                json!({"document": {"id": "M2", "mime_type": "application/pdf", "filename": "a.pdf"}})
            ),
            msg("wamid.4", "location", json!({"location": {"latitude": 52.5, "longitude": 13.4, "name": "HQ"}})),
            msg(
                "wamid.5",
                "interactive",
                json!({"interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}})
            ),
            msg(
                "wamid.6",
                "interactive",
                json!({"interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Mon", "description": "9-12"}}})
            ),
            msg("wamid.7", "button", json!({"button": {"payload": "STOP", "text": "Stop promotions"}})),
            msg("wamid.8", "reaction", json!({"reaction": {"message_id": "wamid.out", "emoji": "\u{1F44D}"}})),
            msg("wamid.9", "unsupported", json!({"errors": [{"code": 131051}]})),
            msg("wamid.10", "sticker", json!({"sticker": {"id": "M3", "mime_type": "image/webp"}})),
            msg("wamid.11", "contacts", json!({"contacts": [{"name": {"formatted_name": "A"}}]})),
            msg("wamid.12", "brand_new_type", json!({})),
            msg("wamid.13", "audio", json!({"audio": {"id": "M4", "mime_type": "audio/ogg"}})),
            msg("wamid.14", "system", json!({"system": {"body": "changed number"}})),
        ]);
        let body = notification(json!([change(
            "PN1",
            json!({
                "contacts": [{"profile": {"name": "Jana"}, "wa_id": "4915112345678"}],
                "messages": messages
            })
        )]));
        let updates = parse_notification(&body).unwrap();
        assert_eq!(updates.len(), 1);
        let got = &updates[0];
        assert_eq!(got.skipped, 0);
        assert_eq!(got.messages.len(), 14);
        let c = |i: usize| &got.messages[i].content;
        assert_eq!(c(0), &Content::Text { body: "hi".into() });
        assert_eq!(got.messages[0].reply_to.as_deref(), Some("wamid.0"));
        assert_eq!(got.messages[0].profile_name.as_deref(), Some("Jana"));
        assert_eq!(got.messages[0].contact.key(), "+4915112345678");
        assert!(
            matches!(c(1), Content::Media { kind: MediaKind::Image, caption: Some(cap), attachments } if cap == "look" && attachments[0].media_id.as_deref() == Some("M1"))
        );
        assert!(
            matches!(c(2), Content::Media { kind: MediaKind::Document, attachments, .. } if attachments[0].filename.as_deref() == Some("a.pdf"))
        );
        assert!(matches!(c(3), Content::Location { name: Some(n), .. } if n == "HQ"));
        assert!(matches!(c(4), Content::InteractiveReply { id, .. } if id == "yes"));
        assert!(matches!(c(5), Content::InteractiveReply { description: Some(d), .. } if d == "9-12"));
        assert!(matches!(c(6), Content::Button { payload: Some(p), .. } if p == "STOP"));
        assert!(matches!(c(7), Content::Reaction { emoji: Some(e), .. } if e == "\u{1F44D}"));
        assert_eq!(c(8), &Content::Unsupported { kind: "unsupported".into() });
        assert!(matches!(c(9), Content::Media { kind: MediaKind::Sticker, .. }));
        assert!(matches!(c(10), Content::Contacts { .. }));
        assert_eq!(c(11), &Content::Unsupported { kind: "brand_new_type".into() });
        assert!(matches!(c(12), Content::Media { kind: MediaKind::Audio, .. }));
        assert!(matches!(c(13), Content::System { body: Some(b) } if b == "changed number"));
    }

    #[test]
    fn escaped_text_is_decoded() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"messages":[{"from":"4915112345678","id":"wamid.x","timestamp":"1","type":"text","text":{"body":"K\u00e4se"}}]}}]}]}"#;
        let updates = parse_notification(body).unwrap();
        assert_eq!(updates[0].messages[0].content, Content::Text { body: "Käse".into() });
    }

    #[test]
    fn withheld_phone_number_falls_back_to_business_scoped_id() {
        let body = notification(json!([change(
            "PN1",
            json!({
                "contacts": [{"profile": {"name": "N"}, "user_id": "DE.998877"}],
                "messages": [{"user_id": "DE.998877", "id": "wamid.b", "timestamp": "5", "type": "text", "text": {"body": "x"}}]
            })
        )]));
        let m = &parse_notification(&body).unwrap()[0].messages[0];
        assert_eq!(m.contact, ContactId::BusinessScoped("DE.998877".into()));
        assert_eq!(m.profile_name.as_deref(), Some("N"));
    }

    #[test]
    fn statuses_and_changes_for_several_numbers_are_kept_apart() {
        let body = notification(json!([
            change("PN-A", json!({"statuses": [
                {"id": "wamid.o1", "status": "read", "timestamp": "10", "recipient_id": "4915112345678"},
                {"id": "wamid.o2", "status": "failed", "timestamp": "11", "recipient_id": "4915112345678",
                 "errors": [{"code": 131047, "title": "Re-engagement message"}]},
                {"id": "wamid.o3", "status": "mystery", "timestamp": "12"}
            ]})),
            change("PN-B", json!({"messages": [msg("wamid.b1", "text", json!({"text": {"body": "b"}}))]})),
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
        ]));
        let updates = parse_notification(&body).unwrap();
        assert_eq!(updates.len(), 2);
        let a = &updates[0];
        assert_eq!(a.phone_number_id, "PN-A");
        assert_eq!(a.statuses.len(), 2);
        assert_eq!(a.skipped, 1);
        assert_eq!(a.statuses[1].status, DeliveryStatus::Failed);
        assert_eq!(a.statuses[1].error_code, Some(131047));
        assert_eq!(updates[1].phone_number_id, "PN-B");
        assert_eq!(updates[1].messages.len(), 1);
    }

    #[test]
    fn items_missing_what_they_need_are_skipped_not_fatal() {
        let body = notification(json!([change(
            "PN1",
            json!({"messages": [
                {"from": "4915112345678", "timestamp": "1", "type": "text", "text": {"body": "no id"}},
                {"from": "not-a-phone", "id": "wamid.c", "timestamp": "1", "type": "text", "text": {"body": "x"}},
                msg("wamid.ok", "text", json!({"text": {"body": "fine"}}))
            ]})
        )]));
        let updates = parse_notification(&body).unwrap();
        assert_eq!(updates[0].messages.len(), 1);
        assert_eq!(updates[0].skipped, 2);
    }

    #[test]
    fn a_known_type_with_an_unexpected_shape_is_skipped_alone() {
        let body = notification(json!([change(
            "PN1",
            json!({
                "contacts": [{"profile": "not an object", "wa_id": 4915112345678u64}],
                "messages": [
                    {"from": "4915112345678", "id": "wamid.odd", "timestamp": 1767225600, "type": "text", "text": {"body": "number timestamp"}},
                    msg("wamid.loc", "location", json!({"location": {"name": "no coordinates"}})),
                    msg("wamid.loc2", "location", json!({"location": {"latitude": "north"}})),
                    msg("wamid.ok", "text", json!({"text": {"body": "fine"}}))
                ],
                "statuses": [{"id": "wamid.o", "status": "read", "timestamp": "1", "errors": "oops"}, "garbage"]
            })
        )]));
        let updates = parse_notification(&body).unwrap();
        let u = &updates[0];
        let ids: Vec<&str> = u.messages.iter().map(|m| m.id.as_str()).collect();
        // A numeric timestamp is read; a wrongly typed latitude keeps the message as unsupported.
        assert_eq!(ids, ["wamid.odd", "wamid.loc", "wamid.loc2", "wamid.ok"]);
        assert_eq!(u.messages[0].sent_at, 1767225600);
        assert_eq!(u.messages[0].content, Content::Text { body: "number timestamp".into() });
        assert_eq!(u.messages[1].content, Content::Unsupported { kind: "location".into() });
        assert_eq!(u.messages[2].content, Content::Unsupported { kind: "location".into() });
        // Both statuses are unreadable and skipped one by one.
        assert_eq!((u.statuses.len(), u.skipped), (0, 2));
    }

    #[test]
    fn an_unreadable_change_is_skipped_and_the_others_in_the_batch_kept() {
        let body = notification(json!([
            {"field": "messages", "value": {"metadata": {"display_phone_number": "1"}, "messages": null}},
            {"field": "messages", "value": "not an object"},
            {"field": "account_update", "value": [1, 2, 3]},
            change("PN1", json!({"messages": [msg("wamid.kept", "text", json!({"text": {"body": "x"}}))]})),
        ]));
        let updates = parse_notification(&body).unwrap();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].messages[0].id.as_str(), "wamid.kept");
    }

    #[test]
    fn a_text_with_a_lone_surrogate_is_kept_with_the_rest_of_the_batch() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"PN"},"messages":[{"from":"4915112345678","id":"wamid.bad","timestamp":"1","type":"text","text":{"body":"a\ud800b"}},{"from":"4915112345678","id":"wamid.good","timestamp":"2","type":"text","text":{"body":"fine"}}]}}]}]}"#;
        let updates = parse_notification(body).unwrap();
        let got: Vec<(&str, &Content)> = updates[0].messages.iter().map(|m| (m.id.as_str(), &m.content)).collect();
        assert_eq!(got[0], ("wamid.bad", &Content::Text { body: "a\u{FFFD}b".into() }));
        assert_eq!(got[1].0, "wamid.good");
    }

    #[test]
    fn malformed_json_is_an_error_and_other_objects_are_ignored() {
        assert!(parse_notification(b"{not json").is_err());
        assert!(parse_notification(b"[]").is_err());
        assert_eq!(parse_notification(br#"{"object":"page","entry":[]}"#).unwrap(), vec![]);
    }
}
