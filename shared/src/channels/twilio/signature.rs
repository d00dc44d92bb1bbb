//! `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + sorted POST params as name+value)).
//! The URL is the public one Twilio called, rebuilt from configuration by the caller.
//! JSON bodies carry a `bodySHA256` query parameter instead, and only the URL is signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::channels::SignatureError;

type HmacSha1 = Hmac<Sha1>;

pub const HEADER: &str = "x-twilio-signature";

fn mac(auth_token: &str, url: &str, params: &[(&str, &str)]) -> HmacSha1 {
    let mut sorted = params.to_vec();
    // As Twilio's own libraries compute it: parameters sorted by name, a repeated name's values
    // sorted, and a value repeated under the same name signed once.
    sorted.sort_unstable();
    sorted.dedup();
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// The header value Twilio would send (for tools, fixtures and tests).
pub fn sign(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Checks a form-encoded request: every parameter counts, including ones Twilio adds later.
pub fn verify(
    auth_token: &str,
    url: &str,
    params: &[(&str, &str)],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = BASE64.decode(header.trim()).map_err(|_| SignatureError::Mismatch)?;
    mac(auth_token, url, params).verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

/// Checks a JSON request: the URL (with its `bodySHA256` parameter) is signed, and that
/// parameter must be the SHA-256 of the body.
pub fn verify_json(
    auth_token: &str,
    url: &str,
    body_sha256: &str,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    verify(auth_token, url, &[], header)?;
    let actual = hex::encode(Sha256::digest(body));
    if subtle::ConstantTimeEq::ct_eq(actual.as_bytes(), body_sha256.to_ascii_lowercase().as_bytes()).into() {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Twilio's documented example (PLATFORM.md).
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PARAMS: [(&str, &str); 5] = [
        ("Digits", "1234"),
        ("To", "+18005551212"),
        ("From", "+12349013030"),
        ("Caller", "+12349013030"),
        ("CallSid", "CA1234567890ABCDE"),
    ];
    const EXPECTED: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    #[test]
    fn twilios_documented_vector_verifies() {
        assert_eq!(sign("12345", URL, &PARAMS), EXPECTED);
        assert_eq!(verify("12345", URL, &PARAMS, Some(EXPECTED)), Ok(()));
    }

    #[test]
    fn one_flipped_byte_fails() {
        let flipped_value = [("Digits", "1235"), PARAMS[1], PARAMS[2], PARAMS[3], PARAMS[4]];
        assert_eq!(verify("12345", URL, &flipped_value, Some(EXPECTED)), Err(SignatureError::Mismatch));
        let flipped_url = URL.replace("foo=1", "foo=2");
        assert_eq!(verify("12345", &flipped_url, &PARAMS, Some(EXPECTED)), Err(SignatureError::Mismatch));
        let flipped_sig = EXPECTED.replacen('0', "1", 1);
        assert_eq!(verify("12345", URL, &PARAMS, Some(&flipped_sig)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_added_parameter_or_another_token_fails() {
        let mut more = PARAMS.to_vec();
        more.push(("NewField", "x"));
        assert_eq!(verify("12345", URL, &more, Some(EXPECTED)), Err(SignatureError::Mismatch));
        assert_eq!(verify("54321", URL, &PARAMS, Some(EXPECTED)), Err(SignatureError::Mismatch));
        assert_eq!(verify("12345", URL, &PARAMS, None), Err(SignatureError::Missing));
        assert_eq!(verify("12345", URL, &PARAMS, Some("%%%")), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_parameter_repeated_with_the_same_value_is_signed_once_and_different_values_each() {
        // What Twilio's library signs for `To=a&To=a&To=b`: "To" + "a", then "To" + "b".
        let mut mac = HmacSha1::new_from_slice(b"12345").unwrap();
        mac.update(format!("{URL}ToaTob").as_bytes());
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(verify("12345", URL, &[("To", "b"), ("To", "a"), ("To", "a")], Some(&expected)), Ok(()));
        assert_eq!(verify("12345", URL, &[("To", "a")], Some(&expected)), Err(SignatureError::Mismatch));
    }

    #[test]
    fn json_bodies_are_bound_by_their_hash() {
        let body = br#"{"a":1}"#;
        let digest = hex::encode(Sha256::digest(body));
        let url = format!("https://example.com/hook?bodySHA256={digest}");
        let header = sign("tok", &url, &[]);
        assert_eq!(verify_json("tok", &url, &digest, body, Some(&header)), Ok(()));
        assert_eq!(verify_json("tok", &url, &digest, br#"{"a":2}"#, Some(&header)), Err(SignatureError::Mismatch));
    }
}
