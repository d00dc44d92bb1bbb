//! A contact of a tenant, their consent, and their conversation with the tenant on one channel.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::ContactId;
use super::message::Channel;

/// Whether the assistant may message the contact. WhatsApp has no carrier STOP handling: the
/// opt-out keywords are ours, and so is keeping the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    OptedIn,
    OptedOut,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptedIn => "opted_in",
            Self::OptedOut => "opted_out",
        }
    }
}

/// Who changed a contact's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// The contact wrote an opt-out or opt-in keyword.
    Keyword,
    /// Meta's `user_preferences` webhook (marketing opt-out).
    Provider,
    /// An operator, through the operator tools.
    Operator,
}

/// One change of consent, as kept in the contact's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    pub consent: Consent,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub source: ConsentSource,
}

/// A contact as the assistant sees them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub profile_name: Option<String>,
    pub consent: Consent,
    /// When consent last changed (unix ms); `None` while it never did.
    pub consent_at_ms: Option<i64>,
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds: the last message from the contact on any channel.
    pub last_inbound_at: i64,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("consent", &self.consent)
            .field("last_inbound_at", &self.last_inbound_at)
            .finish_non_exhaustive()
    }
}

/// Who answers a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    Assistant,
    /// A person took over; the assistant stays silent until released.
    Human {
        since: i64,
        reason: Option<String>,
    },
}

/// The free-form window: a user message opens (or refreshes) 24 hours in which free text may
/// be sent; outside it only approved templates.
pub const SERVICE_WINDOW_SECS: i64 = 24 * 3600;

/// A contact's conversation with the tenant on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub channel: Channel,
    pub mode: Mode,
    /// Unix seconds of the contact's last message here (the 24-hour window).
    pub last_inbound_at: Option<i64>,
    /// A send failed because the window had closed (131047): only a template can reopen it.
    pub needs_template: bool,
}

impl Conversation {
    pub fn new(channel: Channel) -> Self {
        Self { channel, mode: Mode::Assistant, last_inbound_at: None, needs_template: false }
    }

    pub fn window_open(&self, now: i64) -> bool {
        self.last_inbound_at.is_some_and(|at| now < at + SERVICE_WINDOW_SECS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lasts_24_hours_from_the_last_inbound_message() {
        let mut c = Conversation::new(Channel::Meta);
        assert!(!c.window_open(100));
        c.last_inbound_at = Some(100);
        assert!(c.window_open(100 + SERVICE_WINDOW_SECS - 1));
        assert!(!c.window_open(100 + SERVICE_WINDOW_SECS));
    }

    #[test]
    fn debug_hides_name_and_number() {
        let c = Contact {
            id: ContactId::parse_key("+4915112345678").unwrap(),
            profile_name: Some("Jana".into()),
            consent: Consent::OptedIn,
            consent_at_ms: None,
            first_seen: 1,
            last_inbound_at: 2,
        };
        let printed = format!("{c:?}");
        assert!(!printed.contains("Jana") && !printed.contains("4915112345678"), "{printed}");
    }
}
