use concierge::crypto::{CryptoError, MasterKey};
use concierge_e2e::*;

/// The AWS path of the envelope encryption, through the real KMS client against the emulator:
/// a data key per value, wrapped by KMS under an encryption context naming tenant and field.
#[tokio::test]
async fn channel_tokens_sealed_with_kms_open_only_under_their_own_tenant_and_field() {
    let t = TestStack::spawn().await;
    let kms = aws_sdk_kms::Client::new(&t.stack.sdk);
    let key_id = kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let master = MasterKey::kms(kms, key_id);

    let sealed = master.seal(b"twilio-token", "acme-dental#twilio.auth_token").await.unwrap();
    assert!(!sealed.ciphertext.contains("twilio-token"));
    assert_eq!(master.open(&sealed, "acme-dental#twilio.auth_token").await.unwrap(), b"twilio-token");
    // Refused by KMS as the value not opening (what the privacy worker records as a failure
    // rather than retrying), not as an outage.
    for other in ["bella-salon#twilio.auth_token", "acme-dental#meta.access_token"] {
        let refused = master.open(&sealed, other).await;
        assert!(matches!(refused, Err(CryptoError::Tampered)), "{other}: {refused:?}");
    }
}
