//! Reading a message item that does not parse as documented, as well as it can be read: a
//! message is stored rather than dropped whenever its id and sender can be made out. Meta's
//! JSON can carry escapes that are not valid UTF-16 (a lone `\ud800` in a text), which serde
//! refuses; those become U+FFFD, as a lossy decoder would make them.

use serde_json::Value;

use super::payload::{Contact, Message};
use crate::domain::{Content, InboundMessage};

/// The item's JSON with lone surrogate escapes replaced by `\ufffd`; `None` if it had none.
pub fn sanitize_escapes(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let hex_at = |i: usize| -> Option<u16> {
        let digits = raw.get(i..i + 4)?;
        u16::from_str_radix(digits, 16).ok()
    };
    let is_escape_u = |i: usize| bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u');
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2; // any other escape, `\\` included, is two bytes
            continue;
        }
        let Some(unit) = hex_at(i + 2) else {
            i += 2;
            continue;
        };
        let high = (0xD800..0xDC00).contains(&unit);
        let low = (0xDC00..0xE000).contains(&unit);
        let paired = high && is_escape_u(i + 6) && hex_at(i + 8).is_some_and(|u| (0xDC00..0xE000).contains(&u));
        if paired {
            i += 12;
        } else if high || low {
            let o = out.get_or_insert_with(|| String::with_capacity(raw.len()));
            o.push_str(&raw[copied..i]);
            o.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    out.map(|mut o| {
        o.push_str(&raw[copied..]);
        o
    })
}

/// A message item that failed the documented shape, read as far as it goes.
pub fn message(raw: &str, contacts: &[&Contact<'_>]) -> Option<InboundMessage> {
    let sanitized = sanitize_escapes(raw);
    let text = sanitized.as_deref().unwrap_or(raw);
    if let Ok(m) = serde_json::from_str::<Message<'_>>(text) {
        return super::inbound(&m, contacts);
    }
    // Some field has an unexpected type: keep what identifies the message, and its text if
    // it has one; its content is otherwise kept as an unsupported item of its type.
    let value: Value = serde_json::from_str(text).ok()?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let timestamp = match value.get("timestamp") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return None,
    };
    let kind = field("type").unwrap_or_else(|| "unknown".into());
    let skeleton = serde_json::json!({
        "id": field("id"),
        "from": field("from"),
        "user_id": field("user_id").or_else(|| field("from_user_id")),
        "timestamp": timestamp,
        "type": "unsupported",
    })
    .to_string();
    let m: Message<'_> = serde_json::from_str(&skeleton).ok()?;
    let mut message = super::inbound(&m, contacts)?;
    message.content = match value.pointer("/text/body").and_then(Value::as_str) {
        Some(body) if kind == "text" && !body.is_empty() => Content::Text { body: body.to_owned() },
        _ => Content::Unsupported { kind: kind.chars().take(40).collect() },
    };
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_replaced_and_pairs_and_other_escapes_kept() {
        assert_eq!(sanitize_escapes(r#"{"a":"x"}"#), None);
        assert_eq!(sanitize_escapes(r#""\ud83d\ude00""#), None, "a valid pair stays");
        assert_eq!(sanitize_escapes(r#""a\ud800b""#).as_deref(), Some(r#""a\ufffdb""#));
        assert_eq!(sanitize_escapes(r#""\udc00\ud800""#).as_deref(), Some(r#""\ufffd\ufffd""#));
        assert_eq!(sanitize_escapes(r#""\\ud800""#), None, "an escaped backslash is not an escape");
        assert_eq!(sanitize_escapes(r#""\ud800\u0041""#).as_deref(), Some(r#""\ufffd\u0041""#));
        let fixed = sanitize_escapes(r#"{"t":"K\u00e4se \ud800!"}"#).unwrap();
        let v: Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v["t"], "Käse \u{FFFD}!");
    }

    #[test]
    fn a_message_with_a_lone_surrogate_keeps_its_text() {
        let raw = r#"{"from":"4915112345678","id":"wamid.s","timestamp":"5","type":"text","text":{"body":"hi \ud800 there"}}"#;
        let m = message(raw, &[]).unwrap();
        assert_eq!(m.id.as_str(), "wamid.s");
        assert_eq!(m.content, Content::Text { body: "hi \u{FFFD} there".into() });
    }

    #[test]
    fn a_message_with_a_mistyped_field_is_kept_as_unsupported_of_its_type() {
        let raw = r#"{"from":"4915112345678","id":"wamid.l","timestamp":7,"type":"location","location":{"latitude":"north"}}"#;
        let m = message(raw, &[]).unwrap();
        assert_eq!((m.id.as_str(), m.sent_at), ("wamid.l", 7));
        assert_eq!(m.content, Content::Unsupported { kind: "location".into() });
        assert!(message(r#"{"from":"4915112345678","type":"text"}"#, &[]).is_none(), "no id: nothing to key it on");
    }
}
