//! `X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256(app client secret, raw body). Checked over
//! exactly the bytes that arrived (API Gateway's base64 undone first), in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::channels::SignatureError;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "x-shopify-hmac-sha256";

/// Checks the header against the raw body; the comparison is constant-time (`verify_slice`).
pub fn verify(client_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = BASE64.decode(header.trim()).map_err(|_| SignatureError::Mismatch)?;
    // An empty secret would make every body "signed" by anyone who guesses that.
    if client_secret.is_empty() || expected.len() != 32 {
        return Err(SignatureError::Mismatch);
    }
    let mut mac = HmacSha256::new_from_slice(client_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// The header value Shopify would send for `body` (tools, fixtures, tests).
pub fn sign(client_secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(client_secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"shop_id":954889,"shop_domain":"acme-dental.myshopify.com"}"#;

    #[test]
    fn known_answer() {
        // HMAC-SHA256 test case 2 of RFC 4231 (key "Jefe"), base64 as Shopify sends it.
        assert_eq!(sign(b"Jefe", b"what do ya want for nothing?"), "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        assert_eq!(
            verify(b"Jefe", b"what do ya want for nothing?", Some("W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=")),
            Ok(())
        );
    }

    #[test]
    fn one_flipped_byte_of_the_body_fails() {
        let header = sign(b"secret", BODY);
        assert_eq!(verify(b"secret", BODY, Some(&header)), Ok(()));
        for i in [0, BODY.len() / 2, BODY.len() - 1] {
            let mut tampered = BODY.to_vec();
            tampered[i] ^= 0x01;
            assert_eq!(verify(b"secret", &tampered, Some(&header)), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn missing_malformed_truncated_or_wrong_secret_headers_fail() {
        let good = sign(b"secret", BODY);
        assert_eq!(verify(b"secret", BODY, None), Err(SignatureError::Missing));
        assert_eq!(verify(b"other", BODY, Some(&good)), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"", BODY, Some(&sign(b"", BODY))), Err(SignatureError::Mismatch), "no secret, no trust");
        // Hex instead of base64 (Meta's form), a truncated MAC, garbage, nothing.
        let hex_form = hex::encode(BASE64.decode(&good).unwrap());
        let truncated = BASE64.encode(&BASE64.decode(&good).unwrap()[..16]);
        for bad in ["", "!!!", "sha256=abc", hex_form.as_str(), truncated.as_str()] {
            assert_eq!(verify(b"secret", BODY, Some(bad)), Err(SignatureError::Mismatch), "{bad:?}");
        }
        // Surrounding whitespace is not a different signature.
        assert_eq!(verify(b"secret", BODY, Some(&format!(" {good} "))), Ok(()));
    }
}
