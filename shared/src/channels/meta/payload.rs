//! The Cloud API webhook body, as typed structs. Strings borrow from the body where they carry no
//! escapes. Each message, status and contact is read on its own (`Lenient`), and every field
//! inside is optional or defaulted, so one odd item cannot make a batch of 1,000 unreadable;
//! `mod.rs` decides what an item needs.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

type Str<'a> = Cow<'a, str>;

/// An item read on its own: `None` when it does not have its documented shape.
#[derive(Debug)]
pub struct Lenient<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Self(serde_json::from_str(raw.get()).ok()))
    }
}

#[derive(Debug, Deserialize)]
pub struct Notification<'a> {
    #[serde(borrow)]
    pub object: Str<'a>,
    #[serde(default, borrow)]
    pub entry: Vec<Entry<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    #[serde(default, borrow)]
    pub changes: Vec<Change<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    #[serde(borrow)]
    pub field: Str<'a>,
    #[serde(default, borrow)]
    pub value: ChangeValue<'a>,
}

/// The `value` of a `messages` change (other fields share the metadata/contacts shape).
#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue<'a> {
    #[serde(default, borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(default, borrow)]
    pub contacts: Vec<Lenient<Contact<'a>>>,
    #[serde(default, borrow)]
    pub messages: Vec<Lenient<Message<'a>>>,
    #[serde(default, borrow)]
    pub statuses: Vec<Lenient<Status<'a>>>,
    #[serde(default)]
    pub errors: Vec<Lenient<ErrorInfo>>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata<'a> {
    #[serde(borrow)]
    pub phone_number_id: Str<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Contact<'a> {
    #[serde(default, borrow)]
    pub profile: Option<Profile<'a>>,
    #[serde(default, borrow)]
    pub wa_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub user_id: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Profile<'a> {
    #[serde(default, borrow)]
    pub name: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(default, borrow)]
    pub from: Option<Str<'a>>,
    /// Business-scoped user id (2026); the only contact key when the phone number is withheld.
    #[serde(default, borrow, alias = "from_user_id")]
    pub user_id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub timestamp: Option<Str<'a>>,
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub context: Option<MessageContext<'a>>,
    #[serde(default, borrow)]
    pub text: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub image: Option<Media<'a>>,
    #[serde(default, borrow)]
    pub audio: Option<Media<'a>>,
    #[serde(default, borrow)]
    pub video: Option<Media<'a>>,
    #[serde(default, borrow)]
    pub document: Option<Media<'a>>,
    #[serde(default, borrow)]
    pub sticker: Option<Media<'a>>,
    #[serde(default, borrow)]
    pub location: Option<Location<'a>>,
    #[serde(default, borrow)]
    pub interactive: Option<Interactive<'a>>,
    #[serde(default, borrow)]
    pub button: Option<Button<'a>>,
    #[serde(default, borrow)]
    pub reaction: Option<Reaction<'a>>,
    #[serde(default, borrow)]
    pub system: Option<System<'a>>,
    #[serde(default)]
    pub contacts: Option<serde_json::Value>,
    #[serde(default)]
    pub order: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct MessageContext<'a> {
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Text<'a> {
    #[serde(default, borrow)]
    pub body: Str<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Media<'a> {
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub mime_type: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub sha256: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub caption: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub filename: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Location<'a> {
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default, borrow)]
    pub name: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub address: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Interactive<'a> {
    #[serde(default, borrow, rename = "type")]
    pub kind: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub button_reply: Option<Choice<'a>>,
    #[serde(default, borrow)]
    pub list_reply: Option<Choice<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Choice<'a> {
    #[serde(default, borrow)]
    pub id: Str<'a>,
    #[serde(default, borrow)]
    pub title: Str<'a>,
    #[serde(default, borrow)]
    pub description: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Button<'a> {
    #[serde(default, borrow)]
    pub payload: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub text: Str<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Reaction<'a> {
    #[serde(default, borrow)]
    pub message_id: Str<'a>,
    #[serde(default, borrow)]
    pub emoji: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct System<'a> {
    #[serde(default, borrow)]
    pub body: Option<Str<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Status<'a> {
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub status: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub timestamp: Option<Str<'a>>,
    #[serde(default)]
    pub errors: Vec<Lenient<ErrorInfo>>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorInfo {
    #[serde(default)]
    pub code: Option<i64>,
}
