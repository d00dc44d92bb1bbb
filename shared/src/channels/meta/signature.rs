//! `X-Hub-Signature-256`: `sha256=` + lowercase hex HMAC-SHA256(app secret, raw body).
//! Meta signs the bytes it sent (non-ASCII escaped as `\u00e4`), so we hash exactly what arrived.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::channels::SignatureError;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "x-hub-signature-256";

/// Checks the header against the raw body in constant time.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header.trim().strip_prefix("sha256=").ok_or(SignatureError::Mismatch)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body` (for tools, fixtures and tests).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(app_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The body exactly as Meta sends it: "Grüße" escaped as ASCII.
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"text":{"body":"Gr\u00fc\u00dfe, K\u00e4se?"}}]}}]}]}"#;

    #[test]
    fn verifies_over_the_escaped_bytes_not_a_reserialisation() {
        let header = sign(b"app-secret", BODY);
        assert_eq!(verify(b"app-secret", BODY, Some(&header)), Ok(()));

        // Re-serialising turns the escapes into UTF-8 and breaks the signature: the reason to
        // hash the raw bytes.
        let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let reserialised = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialised, BODY);
        assert_eq!(verify(b"app-secret", &reserialised, Some(&header)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn one_flipped_byte_fails() {
        let header = sign(b"app-secret", BODY);
        for i in [0, BODY.len() / 2, BODY.len() - 1] {
            let mut tampered = BODY.to_vec();
            tampered[i] ^= 0x01;
            assert_eq!(verify(b"app-secret", &tampered, Some(&header)), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256 test case 2 of RFC 4231 (key "Jefe").
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn missing_malformed_or_wrong_secret_headers_fail() {
        let good = sign(b"app-secret", BODY);
        assert_eq!(verify(b"app-secret", BODY, None), Err(SignatureError::Missing));
        assert_eq!(verify(b"other", BODY, Some(&good)), Err(SignatureError::Mismatch));
        for bad in ["", "sha256=", "sha1=abc", "sha256=zz", &good[..good.len() - 2]] {
            assert_eq!(verify(b"app-secret", BODY, Some(bad)), Err(SignatureError::Mismatch), "{bad:?}");
        }
    }
}
