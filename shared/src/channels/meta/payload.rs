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
pub type TolerantNotification<'a> = Notification<
    'a,
    Lenient<'a, ChangeValue<'a, Lenient<'a, Contact<'a>>, Lenient<'a, Message<'a>>, Lenient<'a, Status<'a>>>>,
>;

/// An item read on its own: its raw JSON when it does not have its documented shape.
#[derive(Debug)]
pub struct Lenient<'a, T>(pub Result<T, &'a RawValue>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Lenient<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Self(serde_json::from_str(raw.get()).map_err(|_| raw)))
    }
}

/// A list item, however it was read.
pub trait Item<T> {
    fn item(&self) -> Option<&T>;

    /// The item's JSON when it could not be read as documented.
    fn unread(&self) -> Option<&str> {
        None
    }
}

impl<T> Item<T> for T {
    fn item(&self) -> Option<&T> {
        Some(self)
    }
}

impl<T> Item<T> for Lenient<'_, T> {
    fn item(&self) -> Option<&T> {
        self.0.as_ref().ok()
    }

    fn unread(&self) -> Option<&str> {
        self.0.as_ref().err().map(|raw| raw.get())
    }
}

/// A timestamp as Meta documents it (a string of digits), or as a bare number: read without
/// buffering, since it is on the hot path of every message.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Str<'de>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Option<Str<'de>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a timestamp")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Str::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Str::Owned(v.to_owned())))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Str::Owned(v.to_string())))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Str::Owned(v.to_string())))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Str::Owned((v as i64).to_string())))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_option(Visitor)
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
    #[serde(default, borrow)]
    pub errors: Vec<Lenient<'a, ErrorInfo>>,
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
    #[serde(default, borrow, deserialize_with = "string_or_number")]
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
    #[serde(default, borrow)]
    pub errors: Vec<Lenient<'a, ErrorInfo>>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorInfo {
    #[serde(default)]
    pub code: Option<i64>,
}
