//! Shopify's mandatory compliance webhooks (and `app/uninstalled`): headers, topics and the
//! payloads as Shopify documents them (PLATFORM.md). Parsed at the edge into what the handler
//! acts on; errors carry no input, so they can be logged.

pub mod signature;

use serde::Deserialize;

use crate::privacy::requests::{RequestKind, Subject};

/// Compliance payloads are small; `orders_requested` of a customer with many orders is the
/// largest part (~20,000 order ids fit).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub const TOPIC_HEADER: &str = "x-shopify-topic";
pub const SHOP_DOMAIN_HEADER: &str = "x-shopify-shop-domain";
pub const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";

/// What a webhook asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `customers/data_request`: a copy of the customer's data (export).
    CustomersDataRequest,
    /// `customers/redact`: the customer's data erased.
    CustomersRedact,
    /// `shop/redact`: the shop's data erased (48 hours after uninstall).
    ShopRedact,
    /// `app/uninstalled`: the tenant suspended.
    AppUninstalled,
    /// Any other topic: acknowledged and ignored.
    Other,
}

impl Topic {
    pub fn parse(header: &str) -> Self {
        match header.trim() {
            "customers/data_request" => Self::CustomersDataRequest,
            "customers/redact" => Self::CustomersRedact,
            "shop/redact" => Self::ShopRedact,
            "app/uninstalled" => Self::AppUninstalled,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CustomersDataRequest => "customers/data_request",
            Self::CustomersRedact => "customers/redact",
            Self::ShopRedact => "shop/redact",
            Self::AppUninstalled => "app/uninstalled",
            Self::Other => "other",
        }
    }

    /// The privacy request a topic creates, if it creates one.
    pub fn request_kind(self) -> Option<RequestKind> {
        match self {
            Self::CustomersDataRequest => Some(RequestKind::Export),
            Self::CustomersRedact => Some(RequestKind::Erasure),
            Self::ShopRedact => Some(RequestKind::Wipe),
            Self::AppUninstalled | Self::Other => None,
        }
    }
}

/// Why a correctly signed webhook cannot be acted on. Carries no input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("header {0} missing or malformed")]
    Header(&'static str),
    #[error("body is not the documented JSON")]
    Body,
    /// Correctly signed JSON, but not the payload of the topic the header names (a body
    /// replayed under another topic, or a payload Shopify changed).
    #[error("body is not the payload of its topic")]
    WrongTopic,
    #[error("the customer carries no id, email or phone")]
    NoSubject,
    #[error("the body names another shop than the header")]
    ShopMismatch,
}

/// The headers the handler needs, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers<'a> {
    pub topic: Topic,
    /// Lower case, as the routes table keys it.
    pub shop_domain: String,
    pub webhook_id: &'a str,
}

impl<'a> Headers<'a> {
    /// From a header lookup (case-insensitive in the caller's map).
    pub fn parse(get: impl Fn(&'static str) -> Option<&'a str>) -> Result<Self, WebhookError> {
        let topic = get(TOPIC_HEADER).filter(|t| !t.trim().is_empty()).ok_or(WebhookError::Header(TOPIC_HEADER))?;
        let shop = get(SHOP_DOMAIN_HEADER)
            .map(str::trim)
            .filter(|d| {
                (3..=255).contains(&d.len())
                    && d.contains('.')
                    && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            })
            .ok_or(WebhookError::Header(SHOP_DOMAIN_HEADER))?;
        let webhook_id = get(WEBHOOK_ID_HEADER)
            .map(str::trim)
            .filter(|id| (1..=256).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(WebhookError::Header(WEBHOOK_ID_HEADER))?;
        Ok(Self { topic: Topic::parse(topic), shop_domain: shop.to_ascii_lowercase(), webhook_id })
    }
}

#[derive(Deserialize)]
struct CustomerPayload {
    customer: Customer,
}

#[derive(Deserialize)]
struct Customer {
    #[serde(default)]
    id: Option<NumberOrString>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    Text(String),
}

fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The subject of `customers/data_request` and `customers/redact`: the customer's phone (as
/// given), email and Shopify id, whichever are present (a redact may carry only an email).
pub fn customer_subject(body: &[u8]) -> Result<Subject, WebhookError> {
    let payload: CustomerPayload = serde_json::from_slice(body).map_err(|_| WebhookError::Body)?;
    let c = payload.customer;
    let subject = Subject {
        phone: present(c.phone),
        email: present(c.email),
        shopify_customer_id: present(c.id.map(|id| match id {
            NumberOrString::Number(n) => n.to_string(),
            NumberOrString::Text(s) => s,
        })),
        contact: None,
    };
    if subject.is_empty() { Err(WebhookError::NoSubject) } else { Ok(subject) }
}

/// The top-level keys a topic's body must have, and those it must not have. Shopify's HMAC
/// covers the body only, so the (unsigned) topic header could be swapped on a captured body;
/// each topic's shape is told apart from every other topic we subscribe to by a key it alone
/// carries, and refuses the keys that mark the others. Other keys are tolerated: Shopify may
/// add fields, and refusing them would stop every webhook of that topic.
struct Shape {
    required: &'static [&'static str],
    forbidden: &'static [&'static str],
}

fn shape(topic: Topic) -> Option<Shape> {
    // `myshopify_domain`/`id` mark the shop object `app/uninstalled` sends; `data_request`,
    // `orders_requested` and `orders_to_redact` mark the two customer topics.
    match topic {
        Topic::CustomersDataRequest => Some(Shape {
            required: &["shop_domain", "customer", "data_request"],
            forbidden: &["orders_to_redact", "myshopify_domain", "id"],
        }),
        Topic::CustomersRedact => Some(Shape {
            required: &["shop_domain", "customer", "orders_to_redact"],
            forbidden: &["data_request", "orders_requested", "myshopify_domain", "id"],
        }),
        Topic::ShopRedact => Some(Shape {
            required: &["shop_domain"],
            forbidden: &["customer", "data_request", "orders_requested", "orders_to_redact", "myshopify_domain", "id"],
        }),
        Topic::AppUninstalled => Some(Shape {
            required: &["id", "myshopify_domain"],
            forbidden: &["shop_domain", "shop_id", "customer", "data_request", "orders_requested", "orders_to_redact"],
        }),
        Topic::Other => None,
    }
}

/// Checks that the signed body is the documented payload of the topic the (unsigned) headers
/// name, for the shop they name, and returns the customer for the customer topics. Without
/// this, one captured body replayed with another topic or shop header would erase a customer,
/// wipe a shop or suspend a tenant.
pub fn check_body(topic: Topic, shop_domain: &str, body: &[u8]) -> Result<Option<Subject>, WebhookError> {
    let Ok(serde_json::Value::Object(payload)) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Err(WebhookError::Body);
    };
    let Some(shape) = shape(topic) else { return Ok(None) };
    let has = |key: &str| payload.contains_key(key);
    let shaped = shape.required.iter().all(|k| has(k)) && !shape.forbidden.iter().any(|k| has(k));
    if !shaped {
        return Err(WebhookError::WrongTopic);
    }
    // The compliance topics name their shop as `shop_domain`; the shop object of
    // `app/uninstalled` as `myshopify_domain`.
    let key = if topic == Topic::AppUninstalled { "myshopify_domain" } else { "shop_domain" };
    let named = payload.get(key).and_then(|v| v.as_str()).ok_or(WebhookError::Body)?;
    if !named.eq_ignore_ascii_case(shop_domain) {
        return Err(WebhookError::ShopMismatch);
    }
    match topic {
        Topic::CustomersDataRequest | Topic::CustomersRedact => customer_subject(body).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The payloads of PLATFORM.md, as Shopify documents them.
    const DATA_REQUEST: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com","orders_requested":[299938,280263,220458],"customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"data_request":{"id":9999}}"#;
    const REDACT: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com","customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"orders_to_redact":[299938,280263,220458]}"#;
    const SHOP_REDACT: &str = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com"}"#;
    // `app/uninstalled` sends the shop object (abridged).
    const UNINSTALLED: &str = r#"{"id":954889,"name":"Acme Dental","email":"owner@acme.example","domain":"acme.example","myshopify_domain":"acme-dental.myshopify.com","plan_name":"basic"}"#;

    #[test]
    fn topics_map_to_what_they_ask() {
        assert_eq!(Topic::parse("customers/data_request").request_kind(), Some(RequestKind::Export));
        assert_eq!(Topic::parse("customers/redact").request_kind(), Some(RequestKind::Erasure));
        assert_eq!(Topic::parse("shop/redact").request_kind(), Some(RequestKind::Wipe));
        assert_eq!(Topic::parse("app/uninstalled"), Topic::AppUninstalled);
        assert_eq!(Topic::parse("app/uninstalled").request_kind(), None);
        for other in ["orders/create", "customers/redact/", "Customers/Redact", ""] {
            assert_eq!(Topic::parse(other), Topic::Other, "{other:?}");
        }
        for t in [Topic::CustomersDataRequest, Topic::CustomersRedact, Topic::ShopRedact, Topic::AppUninstalled] {
            assert_eq!(Topic::parse(t.as_str()), t);
        }
    }

    #[test]
    fn the_documented_customer_payloads_give_their_subject() {
        for body in [DATA_REQUEST, REDACT] {
            let s = customer_subject(body.as_bytes()).unwrap();
            assert_eq!(
                (s.phone.as_deref(), s.email.as_deref(), s.shopify_customer_id.as_deref(), s.contact),
                (Some("555-625-1199"), Some("john@example.com"), Some("191167"), None)
            );
        }
        assert_eq!(check_body(Topic::ShopRedact, "acme-dental.myshopify.com", SHOP_REDACT.as_bytes()), Ok(None));
    }

    #[test]
    fn a_signed_body_replayed_under_another_topic_or_shop_is_refused() {
        let shop = "acme-dental.myshopify.com";
        assert!(check_body(Topic::CustomersDataRequest, shop, DATA_REQUEST.as_bytes()).unwrap().is_some());
        assert!(check_body(Topic::CustomersRedact, shop, REDACT.as_bytes()).unwrap().is_some());
        // A data request's body under the redact or shop/redact topic.
        assert_eq!(check_body(Topic::CustomersRedact, shop, DATA_REQUEST.as_bytes()), Err(WebhookError::WrongTopic));
        assert_eq!(check_body(Topic::ShopRedact, shop, DATA_REQUEST.as_bytes()), Err(WebhookError::WrongTopic));
        assert_eq!(
            check_body(Topic::CustomersDataRequest, shop, SHOP_REDACT.as_bytes()),
            Err(WebhookError::WrongTopic)
        );
        // Another shop's header on this shop's body.
        for (topic, body) in [
            (Topic::CustomersDataRequest, DATA_REQUEST),
            (Topic::CustomersRedact, REDACT),
            (Topic::ShopRedact, SHOP_REDACT),
        ] {
            let other = check_body(topic, "bella.myshopify.com", body.as_bytes());
            assert_eq!(other, Err(WebhookError::ShopMismatch), "{topic:?}");
        }
        // A compliance body that names no shop at all, or an empty one.
        assert_eq!(check_body(Topic::ShopRedact, shop, b"{}"), Err(WebhookError::WrongTopic));
        assert_eq!(check_body(Topic::AppUninstalled, shop, b"{}"), Err(WebhookError::WrongTopic));
        assert_eq!(
            check_body(Topic::AppUninstalled, "bella.myshopify.com", UNINSTALLED.as_bytes()),
            Err(WebhookError::ShopMismatch)
        );
    }

    #[test]
    fn the_shop_object_of_an_uninstall_and_the_compliance_bodies_never_stand_in_for_each_other() {
        let shop = "acme-dental.myshopify.com";
        assert_eq!(check_body(Topic::AppUninstalled, shop, UNINSTALLED.as_bytes()), Ok(None));
        // The uninstall's shop object under `shop/redact` (a wipe) or a customer topic.
        for topic in [Topic::ShopRedact, Topic::CustomersRedact, Topic::CustomersDataRequest] {
            assert_eq!(check_body(topic, shop, UNINSTALLED.as_bytes()), Err(WebhookError::WrongTopic), "{topic:?}");
        }
        // Any compliance body under `app/uninstalled` (a suspension).
        for body in [DATA_REQUEST, REDACT, SHOP_REDACT] {
            assert_eq!(
                check_body(Topic::AppUninstalled, shop, body.as_bytes()),
                Err(WebhookError::WrongTopic),
                "{body}"
            );
        }
        // A redact's body under the data request topic.
        assert_eq!(check_body(Topic::CustomersDataRequest, shop, REDACT.as_bytes()), Err(WebhookError::WrongTopic));
        // A key that marks another topic is refused even beside the right ones; a field Shopify
        // might add is not.
        let padded = r#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com","myshopify_domain":"acme-dental.myshopify.com"}"#;
        assert_eq!(check_body(Topic::ShopRedact, shop, padded.as_bytes()), Err(WebhookError::WrongTopic));
        let grown = r#"{"shop_domain":"acme-dental.myshopify.com","redacted_at":"2027-01-01T00:00:00Z"}"#;
        assert_eq!(check_body(Topic::ShopRedact, shop, grown.as_bytes()), Ok(None));
        // A topic we do not act on is acknowledged whatever its shape.
        assert_eq!(check_body(Topic::Other, shop, UNINSTALLED.as_bytes()), Ok(None));
    }

    #[test]
    fn a_customer_with_only_an_email_is_enough_one_with_nothing_is_not() {
        let only_email = r#"{"customer":{"id":null,"email":"john@example.com","phone":null}}"#;
        let s = customer_subject(only_email.as_bytes()).unwrap();
        assert_eq!((s.email.as_deref(), s.phone, s.shopify_customer_id), (Some("john@example.com"), None, None));
        let string_id = r#"{"customer":{"id":"gid://shopify/Customer/1"}}"#;
        assert_eq!(
            customer_subject(string_id.as_bytes()).unwrap().shopify_customer_id.as_deref(),
            Some("gid://shopify/Customer/1")
        );
        for nobody in [r#"{"customer":{}}"#, r#"{"customer":{"email":"  ","phone":""}}"#] {
            assert_eq!(customer_subject(nobody.as_bytes()), Err(WebhookError::NoSubject), "{nobody}");
        }
        for broken in ["", "{", "[]", r#"{"shop_id":1}"#, r#"{"customer":"john@example.com"}"#] {
            assert_eq!(customer_subject(broken.as_bytes()), Err(WebhookError::Body), "{broken}");
        }
        for broken in ["", "[1]", "\"x\"", "{"] {
            assert_eq!(
                check_body(Topic::AppUninstalled, "a.myshopify.com", broken.as_bytes()),
                Err(WebhookError::Body)
            );
        }
    }

    #[test]
    fn headers_are_checked_and_the_shop_lower_cased() {
        let headers = |topic: Option<&'static str>, shop: Option<&'static str>, id: Option<&'static str>| {
            Headers::parse(move |name| match name {
                TOPIC_HEADER => topic,
                SHOP_DOMAIN_HEADER => shop,
                WEBHOOK_ID_HEADER => id,
                _ => None,
            })
        };
        let ok = headers(Some("shop/redact"), Some("Acme-Dental.myshopify.com"), Some("b54557e4")).unwrap();
        assert_eq!(
            (ok.topic, ok.shop_domain.as_str(), ok.webhook_id),
            (Topic::ShopRedact, "acme-dental.myshopify.com", "b54557e4")
        );
        assert_eq!(headers(None, Some("a.myshopify.com"), Some("1")), Err(WebhookError::Header(TOPIC_HEADER)));
        assert_eq!(headers(Some("shop/redact"), None, Some("1")), Err(WebhookError::Header(SHOP_DOMAIN_HEADER)));
        assert_eq!(
            headers(Some("shop/redact"), Some("a.myshopify.com"), None),
            Err(WebhookError::Header(WEBHOOK_ID_HEADER))
        );
        for bad_shop in ["", "shop", "a/b.myshopify.com", "a#b.myshopify.com"] {
            let leaked: &'static str = Box::leak(bad_shop.to_owned().into_boxed_str());
            assert!(headers(Some("shop/redact"), Some(leaked), Some("1")).is_err(), "{bad_shop:?}");
        }
        assert!(headers(Some("shop/redact"), Some("a.myshopify.com"), Some("with space")).is_err());
    }
}
