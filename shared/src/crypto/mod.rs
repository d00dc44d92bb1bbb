//! Envelope encryption for secrets at rest (channel tokens): each value gets its own AES-256-GCM
//! data key, and only the data key is wrapped by the master key (KMS in AWS, a key file locally).
//! The context (tenant and field) is bound as associated data, so a sealed token copied into
//! another tenant's record does not open.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("KMS call failed: {0}")]
    Kms(String),
    #[error("sealed value does not open with this key and context")]
    Tampered,
}

/// A sealed value as stored: all parts base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub wrapped_key: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The key that wraps data keys. `Debug` never shows the key itself.
#[derive(Clone)]
pub enum MasterKey {
    Local { key_id: String, key: [u8; 32] },
    Kms { client: aws_sdk_kms::Client, key_id: String },
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { key_id, .. } => {
                f.debug_struct("MasterKey::Local").field("key_id", key_id).finish_non_exhaustive()
            }
            Self::Kms { key_id, .. } => {
                f.debug_struct("MasterKey::Kms").field("key_id", key_id).finish_non_exhaustive()
            }
        }
    }
}

const KMS_CONTEXT_KEY: &str = "concierge";

impl MasterKey {
    /// Reads a local key file holding 64 hex characters.
    pub fn from_key_file(path: &Path) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::KeyFile { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| err("expected 64 hex characters".into()))?;
        Ok(Self::Local { key_id: format!("local:{}", path.file_name().unwrap_or_default().to_string_lossy()), key })
    }

    /// Creates a random key file unless one exists (local stack only), readable by its owner only.
    pub fn ensure_key_file(path: &Path) -> Result<Self, CryptoError> {
        if !path.exists() {
            let err =
                |e: std::io::Error| CryptoError::KeyFile { path: path.display().to_string(), reason: e.to_string() };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let key = Aes256Gcm::generate_key(OsRng);
            std::fs::write(path, hex::encode(key)).map_err(err)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
            }
        }
        Self::from_key_file(path)
    }

    pub fn kms(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self::Kms { client, key_id: key_id.into() }
    }

    fn key_id(&self) -> &str {
        match self {
            Self::Local { key_id, .. } | Self::Kms { key_id, .. } => key_id,
        }
    }

    async fn new_data_key(&self, context: &str) -> Result<([u8; 32], Vec<u8>), CryptoError> {
        match self {
            Self::Local { key, .. } => {
                let data_key: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
                let wrapped = seal_with(key, &data_key, context);
                Ok((data_key, wrapped))
            }
            Self::Kms { client, key_id } => {
                let out = client
                    .generate_data_key()
                    .key_id(key_id)
                    .key_spec(DataKeySpec::Aes256)
                    .encryption_context(KMS_CONTEXT_KEY, context)
                    .send()
                    .await
                    .map_err(|e| CryptoError::Kms(crate::aws::describe(e)))?;
                let plain = out.plaintext().ok_or_else(|| CryptoError::Kms("no plaintext key".into()))?;
                let wrapped = out.ciphertext_blob().ok_or_else(|| CryptoError::Kms("no wrapped key".into()))?;
                let data_key: [u8; 32] =
                    plain.as_ref().try_into().map_err(|_| CryptoError::Kms("data key is not 32 bytes".into()))?;
                Ok((data_key, wrapped.as_ref().to_vec()))
            }
        }
    }

    async fn unwrap_data_key(&self, wrapped: &[u8], context: &str) -> Result<[u8; 32], CryptoError> {
        match self {
            Self::Local { key, .. } => open_with(key, wrapped, context)?.try_into().map_err(|_| CryptoError::Tampered),
            Self::Kms { client, .. } => {
                let out = client
                    .decrypt()
                    .ciphertext_blob(Blob::new(wrapped))
                    .encryption_context(KMS_CONTEXT_KEY, context)
                    .send()
                    .await
                    .map_err(decrypt_error)?;
                let plain = out.plaintext().ok_or(CryptoError::Tampered)?;
                plain.as_ref().try_into().map_err(|_| CryptoError::Tampered)
            }
        }
    }

    /// Encrypts `plaintext` under a fresh data key, bound to `context` (e.g. `tenant#twilio.auth_token`).
    pub async fn seal(&self, plaintext: &[u8], context: &str) -> Result<Sealed, CryptoError> {
        let (data_key, wrapped) = self.new_data_key(context).await?;
        let sealed = seal_with(&data_key, plaintext, context);
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        Ok(Sealed {
            key_id: self.key_id().to_owned(),
            wrapped_key: BASE64.encode(wrapped),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(ciphertext),
        })
    }

    pub async fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, CryptoError> {
        let decode = |s: &str| BASE64.decode(s).map_err(|_| CryptoError::Tampered);
        let data_key = self.unwrap_data_key(&decode(&sealed.wrapped_key)?, context).await?;
        let mut joined = decode(&sealed.nonce)?;
        joined.extend(decode(&sealed.ciphertext)?);
        open_with(&data_key, &joined, context)
    }
}

/// An id that repeats neither within this process nor across processes: 96 random bits drawn
/// once per process, then a counter (no system call per id on the hot path).
pub fn unique_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use aes_gcm::aead::rand_core::RngCore;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 12];
        OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    });
    format!("{prefix}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

const NONCE_LEN: usize = 12;

/// KMS refusing the wrapped key itself (another context, another key, changed bytes) is the
/// value not opening, as the local key reports it: retrying cannot help. Anything else (an
/// outage, throttling, a missing permission) may pass.
fn decrypt_error(e: aws_sdk_kms::error::SdkError<aws_sdk_kms::operation::decrypt::DecryptError>) -> CryptoError {
    use aws_sdk_kms::operation::decrypt::DecryptError;
    match e.as_service_error() {
        Some(DecryptError::InvalidCiphertextException(_) | DecryptError::IncorrectKeyException(_)) => {
            CryptoError::Tampered
        }
        _ => CryptoError::Kms(crate::aws::describe(e)),
    }
}

/// `nonce || ciphertext+tag`.
fn seal_with(key: &[u8; 32], plaintext: &[u8], aad: &str) -> Vec<u8> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad: aad.as_bytes() })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = nonce.to_vec();
    out.extend(ciphertext);
    out
}

fn open_with(key: &[u8; 32], sealed: &[u8], aad: &str) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Tampered);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
        .map_err(|_| CryptoError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> MasterKey {
        MasterKey::Local { key_id: "local:test".into(), key: [7u8; 32] }
    }

    #[tokio::test]
    async fn seals_and_opens_under_the_same_context() {
        let key = local();
        let sealed = key.seal(b"twilio-token", "acme#twilio.auth_token").await.unwrap();
        assert!(!sealed.ciphertext.contains("twilio-token"));
        assert_eq!(key.open(&sealed, "acme#twilio.auth_token").await.unwrap(), b"twilio-token");
    }

    #[tokio::test]
    async fn another_tenants_context_or_key_or_a_flipped_bit_does_not_open() {
        let key = local();
        let sealed = key.seal(b"secret", "acme#meta.access_token").await.unwrap();
        assert!(matches!(key.open(&sealed, "globex#meta.access_token").await, Err(CryptoError::Tampered)));
        let other = MasterKey::Local { key_id: "local:other".into(), key: [8u8; 32] };
        assert!(matches!(other.open(&sealed, "acme#meta.access_token").await, Err(CryptoError::Tampered)));
        let mut bytes = BASE64.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let tampered = Sealed { ciphertext: BASE64.encode(bytes), ..sealed };
        assert!(matches!(key.open(&tampered, "acme#meta.access_token").await, Err(CryptoError::Tampered)));
    }

    #[test]
    fn debug_never_prints_the_master_key() {
        let printed = format!("{:?}", MasterKey::Local { key_id: "local:test".into(), key: [0xAB; 32] });
        assert!(printed.contains("local:test"), "{printed}");
        assert!(!printed.contains("171") && !printed.to_ascii_lowercase().contains("ab, "), "{printed}");
    }

    #[test]
    fn unique_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| unique_id()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn key_files_are_created_once_and_reread() {
        let dir = std::env::temp_dir().join(format!("concierge-key-{}", std::process::id()));
        let path = dir.join("master.key");
        let first = MasterKey::ensure_key_file(&path).unwrap();
        let again = MasterKey::ensure_key_file(&path).unwrap();
        match (first, again) {
            (MasterKey::Local { key: a, .. }, MasterKey::Local { key: b, .. }) => assert_eq!(a, b),
            _ => unreachable!(),
        }
        std::fs::write(&path, "short").unwrap();
        assert!(MasterKey::from_key_file(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
