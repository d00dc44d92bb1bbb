//! Audit anchors in `AuditAnchorBucket`: S3 Object Lock in compliance mode, so for their
//! retention nobody — not the account's root user — can overwrite or delete them. A rewrite of
//! the whole `AuditTable` (hashes recomputed) still disagrees with them.
//!
//! The kind, sequence number and hash are the object's key (`<tenant>/<head|start>/<seq, 20
//! digits>-<hash>`), so the verifier needs one listing, not a read per anchor. It lists object *versions*: in a
//! versioned bucket (Object Lock needs versioning) a plain DELETE only adds a delete marker that
//! hides a locked object from an ordinary listing.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;

use crate::domain::{Anchor, AnchorKind, TenantId};
use crate::privacy::retention::DAY;
use crate::store::{StoreError, s3_error};

/// Anchors outlive the entries they vouch for by this much.
const EXTRA_DAYS: i64 = 31;

#[derive(Debug, Clone)]
pub struct AnchorStore {
    client: Client,
    bucket: String,
}

pub fn anchor_key(tenant: &TenantId, anchor: &Anchor) -> String {
    format!("{tenant}/{}/{:020}-{}", anchor.kind.as_str(), anchor.seq, anchor.hash)
}

fn parse_key(tenant: &TenantId, key: &str) -> Option<Anchor> {
    let rest = key.strip_prefix(tenant.as_str())?.strip_prefix('/')?;
    let (kind, rest) = rest.split_once('/')?;
    let kind = [AnchorKind::Head, AnchorKind::Start].into_iter().find(|k| k.as_str() == kind)?;
    let (seq, hash) = rest.split_once('-')?;
    let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return None;
    }
    Some(Anchor { seq: seq.parse().ok()?, hash: hash.to_owned(), kind })
}

impl AnchorStore {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    /// Writes `anchor`, locked until `now + retention_days` (+ a margin). Writing the same
    /// anchor again is harmless: the key is the content.
    pub async fn put(
        &self,
        tenant: &TenantId,
        anchor: &Anchor,
        now_secs: i64,
        retention_days: u32,
    ) -> Result<(), StoreError> {
        let until = now_secs + (i64::from(retention_days) + EXTRA_DAYS) * DAY;
        let body = serde_json::to_vec(anchor).map_err(|e| StoreError::corrupt("anchor", e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(anchor_key(tenant, anchor))
            .body(ByteStream::from(body))
            .content_type("application/json")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .send()
            .await
            .map_err(|e| s3_error("PutObject anchor", e))?;
        Ok(())
    }

    /// Every anchor of `tenant`, delete markers notwithstanding.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Anchor>, StoreError> {
        let prefix = format!("{tenant}/");
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(|e| s3_error("ListObjectVersions anchors", e))?;
            out.extend(page.versions().iter().filter_map(|v| parse_key(tenant, v.key()?)));
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        out.sort_by_key(|a| (a.seq, a.kind == AnchorKind::Start));
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_anchor_and_parse_back() {
        let t = TenantId::parse("acme").unwrap();
        let a = Anchor { seq: 42, hash: "ab".repeat(32), kind: AnchorKind::Start };
        let key = anchor_key(&t, &a);
        assert_eq!(key, format!("acme/start/00000000000000000042-{}", "ab".repeat(32)));
        assert_eq!(parse_key(&t, &key), Some(a));
        assert_eq!(parse_key(&TenantId::parse("acme-2").unwrap(), &key), None);
        assert_eq!(parse_key(&t, "acme/head/00000000000000000042-zz"), None);
        assert_eq!(parse_key(&t, &format!("acme/tail/00000000000000000042-{}", "ab".repeat(32))), None);
    }
}
