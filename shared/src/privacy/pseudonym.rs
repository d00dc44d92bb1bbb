//! Keyed hashes of contact ids: stable enough to follow one person through logs and to group
//! their messages on a queue, useless for recovering the phone number without the key.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::{Channel, ContactId, TenantId};

#[derive(Clone)]
pub struct Pseudonymizer {
    keyed: Hmac<Sha256>,
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Self {
        Self { keyed: Hmac::new_from_slice(key).expect("HMAC accepts keys of any length") }
    }

    /// 24 hex characters (96 bits): collisions stay negligible per tenant.
    pub fn contact(&self, tenant: &TenantId, contact: &ContactId) -> String {
        self.contact_key(tenant, &contact.key())
    }

    /// The same, from the contact's key string (`ContactId::key`) when the caller has it.
    pub fn contact_key(&self, tenant: &TenantId, contact_key: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"#");
        mac.update(contact_key.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..12])
    }

    /// What a provider's message id is stored under: Meta's ids carry the sender's phone number
    /// (a `wamid` is base64 over it), so keys, index keys and queue jobs hold this keyed hash
    /// (128 bits, 32 hex characters) instead, and the id itself only inside its item.
    pub fn message_ref(&self, channel: Channel, provider_id: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(b"msg#");
        mac.update(channel.as_str().as_bytes());
        mac.update(b"#");
        mac.update(provider_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// What the identity index files an identifier under (`kind`: `email`, `phone`, …; the
    /// value normalised by the caller): 128 bits, bound to the tenant and the kind.
    pub fn identity(&self, tenant: &TenantId, kind: &str, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(b"id#");
        mac.update(tenant.as_str().as_bytes());
        mac.update(b"#");
        mac.update(kind.as_bytes());
        mac.update(b"#");
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// For values that are not contacts but still should not be logged verbatim.
    pub fn opaque(&self, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..6])
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_tenant_and_contact_and_hides_the_number() {
        let p = Pseudonymizer::new(b"k");
        let a = TenantId::parse("a").unwrap();
        let b = TenantId::parse("b").unwrap();
        let c = ContactId::parse_key("+4915112345678").unwrap();
        assert_eq!(p.contact(&a, &c), p.contact(&a, &c));
        assert_ne!(p.contact(&a, &c), p.contact(&b, &c));
        assert_ne!(p.contact(&a, &c), Pseudonymizer::new(b"other").contact(&a, &c));
        assert!(!p.contact(&a, &c).contains("4915112345678"));
        assert_eq!(p.contact(&a, &c).len(), 24);
    }

    #[test]
    fn message_refs_hide_the_phone_number_meta_puts_in_its_ids() {
        let p = Pseudonymizer::new(b"k");
        // base64 of a Meta id holding the sender's number 4915112345678
        let wamid = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBEMjc3RTY3QjVGQkYwNjFBAA==";
        let r = p.message_ref(Channel::Meta, wamid);
        assert_eq!(r.len(), 32);
        assert_eq!(r, p.message_ref(Channel::Meta, wamid));
        assert_ne!(r, p.message_ref(Channel::Twilio, wamid));
        assert!(r.bytes().all(|b| b.is_ascii_hexdigit()), "a hash, nothing of the id: {r}");
    }
}
