//! The Cloud API webhook body, as typed structs. Strings borrow from the body where they carry no
//! escapes. The containers are generic over how their list items are read: all in one pass
//! (`StrictNotification`, the fast path for well-formed bodies) or each on its own
//! (`TolerantNotification`, where an item without its documented shape becomes `None`), so one
//! odd item cannot make a batch of 1,000 unreadable. Fields inside an item are optional or
//! defaulted; `mod.rs` decides what an item needs.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

type Str<'a> = Cow<'a, str>;

pub type StrictNotification<'a> = Notification<'a, ChangeValue<'a, Contact<'a>, Message<'a>, Status<'a>>>;
pub type TolerantNotification<'a> =
    Notification<'a, Lenient<ChangeValue<'a, Lenient<Contact<'a>>, Lenient<Message<'a>>, Lenient<Status<'a>>>>>;

/// An item read on its own: `None` when it does not have its documented shape.
#[derive(Debug)]
pub struct Lenient<T>(pub Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Self(serde_json::from_str(raw.get()).ok()))
    }
}

/// A list item, however it was read.
pub trait Item<T> {
    fn item(&self) -> Option<&T>;
}

impl<T> Item<T> for T {
    fn item(&self) -> Option<&T> {
        Some(self)
    }
}

impl<T> Item<T> for Lenient<T> {
    fn item(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Notification<'a, V> {
    #[serde(borrow)]
    pub object: Str<'a>,
    #[serde(default = "Vec::new")]
    pub entry: Vec<Entry<'a, V>>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Entry<'a, V> {
    #[serde(default = "Vec::new", borrow)]
    pub changes: Vec<Change<'a, V>>,
}

/// `V` is the change's value: a `ChangeValue`, or a `Lenient` one when read on its own.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct Change<'a, V> {
    #[serde(borrow)]
    pub field: Str<'a>,
    #[serde(default = "Option::default")]
    pub value: Option<V>,
}

/// The `value` of a `messages` change (other fields share the metadata/contacts shape).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>, M: Deserialize<'de>, S: Deserialize<'de>"))]
pub struct ChangeValue<'a, C, M, S> {
    #[serde(default, borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(default = "Vec::new")]
    pub contacts: Vec<C>,
    #[serde(default = "Vec::new")]
    pub messages: Vec<M>,
    #[serde(default = "Vec::new")]
    pub statuses: Vec<S>,
    /// Tiny and rarely present: always read item by item.
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
