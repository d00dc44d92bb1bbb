//! The tamper-evident audit trail: per tenant, append-only, hash-chained
//! (`h_n = SHA-256(h_{n-1} || canonical entry)`), holding hashed subject ids only. A verifier
//! recomputes the chain and names the first entry that does not fit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    PurgeRun,
    Export,
    Erasure,
    TenantWipe,
    Suspension,
    ConsentChange,
    TenantConfigChange,
}

/// One entry, as appended. `subject` is a keyed hash, never a phone number or email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub action: AuditAction,
    /// Who did it: a function name, an operator, a provider webhook.
    pub actor: String,
    pub subject: Option<String>,
    pub counts: BTreeMap<String, u64>,
}

/// An entry in its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1 for a tenant's first entry.
    pub seq: u64,
    pub entry: AuditEntry,
    /// Hex; 64 zeros before the first entry.
    pub prev_hash: String,
    pub hash: String,
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes hashed for an entry: its sequence number and fields in a fixed order (JSON of a
/// struct with declared field order and sorted maps, so the same entry always hashes alike).
fn canonical(seq: u64, entry: &AuditEntry) -> Vec<u8> {
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: u64,
        at_ms: i64,
        action: AuditAction,
        actor: &'a str,
        subject: Option<&'a str>,
        counts: &'a BTreeMap<String, u64>,
    }
    let c = Canonical {
        seq,
        at_ms: entry.at_ms,
        action: entry.action,
        actor: &entry.actor,
        subject: entry.subject.as_deref(),
        counts: &entry.counts,
    };
    serde_json::to_vec(&c).expect("plain data serialises")
}

pub fn chain_hash(prev_hash: &str, seq: u64, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical(seq, entry));
    hex::encode(h.finalize())
}

impl AuditRecord {
    /// The record that follows `prev` (or starts the chain).
    pub fn next(prev: Option<&AuditRecord>, entry: AuditEntry) -> Self {
        let (seq, prev_hash) = prev.map_or((1, GENESIS.to_owned()), |p| (p.seq + 1, p.hash.clone()));
        let hash = chain_hash(&prev_hash, seq, &entry);
        Self { seq, entry, prev_hash, hash }
    }
}

/// Why a chain does not verify, naming the first bad entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: expected sequence number {expected} (an entry is missing or out of order)")]
    Sequence { seq: u64, expected: u64 },
    #[error("entry {seq}: does not link to the entry before it")]
    Link { seq: u64 },
    #[error("entry {seq}: its content does not match its hash (changed after it was written)")]
    Content { seq: u64 },
    #[error("entry {seq}: the entries before it are missing and no anchor vouches for where the chain starts")]
    Unanchored { seq: u64 },
    #[error("entry {seq}: does not match the hash anchored for it (the trail was rewritten)")]
    Anchor { seq: u64 },
    #[error("entry {seq}: missing, but it was anchored (entries were deleted from the end)")]
    Truncated { seq: u64 },
}

/// A chain position written where nobody can change or delete it (S3 Object Lock, compliance
/// mode): the head after each purge run, and the last entry before the ones the retention
/// removes (so a chain that no longer starts at 1 still starts where an anchor says).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
    pub kind: AnchorKind,
}

/// What an anchor vouches for. Only a `Start` anchor (written by the retention trim just before
/// it deletes the entries up to it) lets a chain begin after entry 1; a `Head` anchor only says
/// the chain reached that far, so deleting the entries up to a head anchor is still detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    Head,
    Start,
}

impl AnchorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Head => "head",
            Self::Start => "start",
        }
    }
}

/// Verifies a tenant's whole stored chain against its anchors: the chain itself (as `verify`),
/// where it starts (genesis, or an anchor for the entry before its first), and every anchor
/// that falls inside it or after it. Names the first bad entry.
pub fn verify_anchored(records: &[AuditRecord], anchors: &[Anchor]) -> Result<u64, ChainBreak> {
    let start = match records.first() {
        Some(first) if first.seq > 1 => {
            let vouched = anchors
                .iter()
                .any(|a| a.kind == AnchorKind::Start && a.seq + 1 == first.seq && a.hash == first.prev_hash);
            if !vouched {
                return Err(ChainBreak::Unanchored { seq: first.seq });
            }
            Some((first.seq, first.prev_hash.as_str()))
        }
        _ => None,
    };
    let count = verify(records, start)?;
    let first_seq = records.first().map_or(1, |r| r.seq);
    let head = records.last().map_or(0, |r| r.seq);
    let mut anchors: Vec<&Anchor> = anchors.iter().filter(|a| a.seq >= first_seq).collect();
    anchors.sort_by_key(|a| a.seq);
    for a in anchors {
        if a.seq > head {
            return Err(ChainBreak::Truncated { seq: head + 1 });
        }
        let record = &records[(a.seq - first_seq) as usize];
        if record.hash != a.hash {
            return Err(ChainBreak::Anchor { seq: a.seq });
        }
    }
    Ok(count)
}

/// Verifies records read in order. `start` is where the chain is expected to begin: the
/// sequence number and previous hash of the first record kept (older ones may have been purged
/// by retention; an anchor vouches for that point), or `None` for a chain from its genesis.
pub fn verify<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
    start: Option<(u64, &str)>,
) -> Result<u64, ChainBreak> {
    let (mut expected_seq, mut expected_prev) =
        start.map_or((1, GENESIS.to_owned()), |(seq, prev)| (seq, prev.to_owned()));
    let mut count = 0;
    for r in records {
        if r.seq != expected_seq {
            return Err(ChainBreak::Sequence { seq: r.seq, expected: expected_seq });
        }
        if r.prev_hash != expected_prev {
            return Err(ChainBreak::Link { seq: r.seq });
        }
        if chain_hash(&r.prev_hash, r.seq, &r.entry) != r.hash {
            return Err(ChainBreak::Content { seq: r.seq });
        }
        expected_seq += 1;
        expected_prev = r.hash.clone();
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            at_ms: n as i64 * 1000,
            action: AuditAction::PurgeRun,
            actor: "retention-purge".into(),
            subject: None,
            counts: BTreeMap::from([("messages".into(), n)]),
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let next = AuditRecord::next(out.last(), entry(i));
            out.push(next);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5), None), Ok(5));
        let c = chain(5);
        assert_eq!(verify(&c[2..], Some((3, c[1].hash.as_str()))), Ok(3));
    }

    #[test]
    fn changing_deleting_or_reordering_any_entry_names_that_entry() {
        for i in 0..5 {
            let mut changed = chain(5);
            changed[i].entry.counts.insert("messages".into(), 999);
            assert_eq!(verify(&changed, None), Err(ChainBreak::Content { seq: i as u64 + 1 }));

            let mut deleted = chain(5);
            deleted.remove(i);
            let expected =
                if i == 4 { Ok(4) } else { Err(ChainBreak::Sequence { seq: i as u64 + 2, expected: i as u64 + 1 }) };
            assert_eq!(verify(&deleted, None), expected);
        }
        let mut swapped = chain(5);
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, None), Err(ChainBreak::Sequence { seq: 3, expected: 2 }));
        // A rewritten entry with a recomputed hash no longer links to its successor.
        let mut rewritten = chain(5);
        rewritten[1].entry.actor = "someone".into();
        rewritten[1].hash = chain_hash(&rewritten[1].prev_hash, 2, &rewritten[1].entry);
        assert_eq!(verify(&rewritten, None), Err(ChainBreak::Link { seq: 3 }));
    }

    fn anchor(r: &AuditRecord) -> Anchor {
        Anchor { seq: r.seq, hash: r.hash.clone(), kind: AnchorKind::Head }
    }

    fn start(r: &AuditRecord) -> Anchor {
        Anchor { kind: AnchorKind::Start, ..anchor(r) }
    }

    #[test]
    fn anchors_catch_a_rewritten_trail_a_cut_end_and_an_unvouched_start() {
        let c = chain(5);
        assert_eq!(verify_anchored(&c, &[anchor(&c[2]), anchor(&c[4])]), Ok(5));
        // Every entry rewritten with consistent hashes: the chain alone verifies, the anchor does not.
        let mut forged: Vec<AuditRecord> = Vec::new();
        for r in &c {
            let mut e = r.entry.clone();
            e.actor = "forger".into();
            let next = AuditRecord::next(forged.last(), e);
            forged.push(next);
        }
        assert_eq!(verify(&forged, None), Ok(5));
        assert_eq!(verify_anchored(&forged, &[anchor(&c[2])]), Err(ChainBreak::Anchor { seq: 3 }));
        // The last entry deleted after the head was anchored.
        assert_eq!(verify_anchored(&c[..4], &[anchor(&c[4])]), Err(ChainBreak::Truncated { seq: 5 }));
        // The oldest entries removed: fine with an anchor for the entry before the first kept,
        // refused without one.
        assert_eq!(verify_anchored(&c[2..], &[start(&c[1])]), Ok(3));
        assert_eq!(verify_anchored(&c[2..], &[]), Err(ChainBreak::Unanchored { seq: 3 }));
        assert_eq!(verify_anchored(&c[2..], &[start(&c[0])]), Err(ChainBreak::Unanchored { seq: 3 }));
        // The entries up to a *head* anchor deleted: a head anchor does not vouch for a start.
        assert_eq!(verify_anchored(&c[2..], &[anchor(&c[1])]), Err(ChainBreak::Unanchored { seq: 3 }));
    }
}
