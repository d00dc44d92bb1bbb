//! Subject export: every item about a contact (their profile, conversations, consent history,
//! leads, appointments, and every message either way with links to its media) as one JSON
//! document and four CSV files under `<tenant>/exports/<request id>/`. Messages are read page
//! by page from the `conversation` index and written straight into the objects, which go up as
//! multipart uploads one part at a time: memory holds a page and a part per file, never the
//! history. Objects are tagged for the bucket's 7-day lifecycle rule; links are presigned for
//! 7 days. The export is recorded in the contact's partition *before* its objects are written,
//! so an erasure always finds them, even those of an export that crashed half-way.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use serde::Serialize;
use serde_json::json;

use super::csv;
use super::retention::{Category, RetentionDays};
use crate::domain::{ContactId, Content, TenantId};
use crate::privacy::Expiry;
use crate::store::StoreError;
use crate::store::contacts::DynamoContacts;
use crate::store::contacts::dynamo::{ContactRecords, ExportRecord};
use crate::store::keys;
use crate::store::messages::dynamo::SubjectMessage;
use crate::store::messages::{ConversationEntry, DynamoMessageLog};
use crate::store::objects::{MIN_PART_SIZE, ObjectWriter, S3Part};

/// How long the links (and, through the bucket's lifecycle rule, the objects) last.
pub const LINK_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The tag the bucket's `ExpireSubjectExports` rule selects.
pub const EXPORT_TAGGING: &str = "retention=export-7d";

pub const SUBJECT_JSON: &str = "subject.json";
pub const FILES: [&str; 5] = [SUBJECT_JSON, "messages.csv", "leads.csv", "appointments.csv", "consent.csv"];

/// One object of an export and its link. `Debug` hides the link (it opens the data).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ExportedObject {
    pub key: String,
    pub link: String,
    pub bytes: u64,
    /// Multipart parts it took (0: one `PutObject`).
    pub parts: i32,
}

impl std::fmt::Debug for ExportedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedObject")
            .field("key", &self.key)
            .field("bytes", &self.bytes)
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOutcome {
    pub objects: Vec<ExportedObject>,
    pub counts: BTreeMap<String, u64>,
}

/// Writes subject exports into the data bucket.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub messages: DynamoMessageLog,
    pub contacts: DynamoContacts,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// Bytes per multipart part (at least S3's 5 MiB).
    pub part_size: usize,
}

type Writer = ObjectWriter<S3Part>;

impl Exporter {
    pub fn new(messages: DynamoMessageLog, contacts: DynamoContacts, s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { messages, contacts, s3, bucket, part_size: MIN_PART_SIZE }
    }

    fn writer(&self, key: &str, content_type: &'static str) -> Writer {
        let sink = S3Part::new(self.s3.clone(), &self.bucket, key, content_type, Some(EXPORT_TAGGING));
        ObjectWriter::new(sink, self.part_size.max(MIN_PART_SIZE))
    }

    async fn link(&self, key: &str) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(LINK_VALIDITY).map_err(|e| StoreError::corrupt("presigning", e))?;
        let request = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| StoreError::aws("presign GetObject", e))?;
        Ok(request.uri().to_owned())
    }

    /// Exports everything about `contacts` (the ones a subject resolved to) for `request`.
    /// Running it again for the same request writes the same objects again.
    pub async fn export(
        &self,
        tenant: &TenantId,
        request: &str,
        contacts: &[ContactId],
        now_ms: i64,
        retention: &RetentionDays,
    ) -> Result<ExportOutcome, StoreError> {
        let prefix = keys::export_prefix(tenant, request);
        let object_keys: Vec<String> = FILES.iter().map(|f| format!("{prefix}{f}")).collect();
        let expiry = Expiry::new(tenant, Category::Exports, now_ms / 1000, retention);
        let mut all_records = Vec::with_capacity(contacts.len());
        for contact in contacts {
            let records = self.contacts.records_of(tenant, contact).await?;
            let record =
                ExportRecord { request: request.to_owned(), objects: object_keys.clone(), created_at_ms: now_ms };
            self.contacts.record_export(tenant, contact, &record, &expiry).await?;
            all_records.push(records);
        }
        let mut writers: Vec<Writer> = vec![
            self.writer(&object_keys[0], "application/json"),
            self.writer(&object_keys[1], "text/csv"),
            self.writer(&object_keys[2], "text/csv"),
            self.writer(&object_keys[3], "text/csv"),
            self.writer(&object_keys[4], "text/csv"),
        ];
        let result = self.write_all(&mut writers, tenant, request, contacts, &all_records, now_ms).await;
        let counts = match result {
            Ok(counts) => counts,
            Err(e) => {
                for w in writers {
                    w.abort().await;
                }
                return Err(e);
            }
        };
        let mut objects = Vec::with_capacity(FILES.len());
        for (writer, key) in writers.into_iter().zip(object_keys) {
            let (bytes, parts) = writer.finish().await?;
            objects.push(ExportedObject { link: self.link(&key).await?, key, bytes, parts });
        }
        Ok(ExportOutcome { objects, counts })
    }

    async fn write_all(
        &self,
        w: &mut [Writer],
        tenant: &TenantId,
        request: &str,
        contacts: &[ContactId],
        records: &[ContactRecords],
        now_ms: i64,
    ) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        let head =
            json!({"request": request, "tenant": tenant.as_str(), "generated_at": crate::clock::rfc3339(now_ms)});
        let head = serde_json::to_string(&head).map_err(|e| StoreError::corrupt("export", e))?;
        // `{"request":…,"contacts":[` — the document stays open while messages stream into it.
        w[0].write(format!("{},\"contacts\":[", &head[..head.len() - 1]).as_bytes()).await?;
        w[1].write(&csv::row(["contact", "at", "direction", "channel", "type", "text", "media_links"])).await?;
        w[2].write(&csv::row([
            "contact",
            "id",
            "name",
            "email",
            "phone",
            "interest",
            "score",
            "stage",
            "created_at",
            "updated_at",
        ]))
        .await?;
        w[3].write(&csv::row(["contact", "id", "service", "start", "end", "status", "created_at"])).await?;
        w[4].write(&csv::row(["contact", "at", "consent", "source"])).await?;
        for (i, (contact, r)) in contacts.iter().zip(records).enumerate() {
            let key = contact.key();
            let about = json!({
                "contact": key,
                "profile": r.contact.as_ref().map(|c| json!({
                    "profile_name": c.profile_name,
                    "consent": c.consent,
                    "consent_at": c.consent_at_ms.map(crate::clock::rfc3339),
                    "first_seen": crate::clock::rfc3339(c.first_seen * 1000),
                    "last_inbound_at": crate::clock::rfc3339(c.last_inbound_at * 1000),
                })),
                "conversations": r.conversations,
                "consent_history": r.consent,
                "leads": r.leads,
                "appointments": r.appointments,
            });
            let about = serde_json::to_string(&about).map_err(|e| StoreError::corrupt("export", e))?;
            let sep = if i > 0 { "," } else { "" };
            w[0].write(format!("{sep}{},\"messages\":[", &about[..about.len() - 1]).as_bytes()).await?;
            for lead in &r.leads {
                let o = |v: &Option<String>| v.clone().unwrap_or_default();
                w[2].write(&csv::row([
                    key.clone(),
                    lead.id.as_str().to_owned(),
                    o(&lead.name),
                    o(&lead.email),
                    o(&lead.phone),
                    o(&lead.interest),
                    lead.score.to_string(),
                    lead.stage.as_str().to_owned(),
                    crate::clock::rfc3339(lead.created_at_ms),
                    crate::clock::rfc3339(lead.updated_at_ms),
                ]))
                .await?;
            }
            for a in &r.appointments {
                let status = serde_json::to_value(a.status).ok().and_then(|v| v.as_str().map(str::to_owned));
                w[3].write(&csv::row([
                    key.clone(),
                    a.id.as_str().to_owned(),
                    a.service.clone(),
                    crate::clock::rfc3339(a.start * 1000),
                    crate::clock::rfc3339(a.end * 1000),
                    status.unwrap_or_default(),
                    crate::clock::rfc3339(a.created_at * 1000),
                ]))
                .await?;
            }
            for c in &r.consent {
                let source = serde_json::to_value(c.source).ok().and_then(|v| v.as_str().map(str::to_owned));
                w[4].write(&csv::row([
                    key.clone(),
                    crate::clock::rfc3339(c.at_ms),
                    c.consent.as_str().to_owned(),
                    source.unwrap_or_default(),
                ]))
                .await?;
            }
            *counts.entry("leads".to_owned()).or_default() += r.leads.len() as u64;
            *counts.entry("appointments".to_owned()).or_default() += r.appointments.len() as u64;
            *counts.entry("consent_changes".to_owned()).or_default() += r.consent.len() as u64;
            let mut first = true;
            let mut held = !r.sort_keys.is_empty();
            let mut cursor = None;
            loop {
                let page = self.messages.conversation_page(tenant, contact, cursor).await?;
                for m in &page.messages {
                    let Some((doc, row)) = self.message(&key, m).await? else { continue };
                    w[0].write(if first { b"" } else { b"," }).await?;
                    first = false;
                    w[0].write(&doc).await?;
                    w[1].write(&row).await?;
                    *counts.entry("messages".to_owned()).or_default() += 1;
                    held = true;
                }
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            w[0].write(b"]}").await?;
            // Contacts we hold anything about (0: the request's identifiers found nobody).
            *counts.entry("contacts".to_owned()).or_default() += u64::from(held);
        }
        w[0].write(b"]}").await?;
        Ok(counts)
    }

    /// A message as a JSON document and a CSV row, its stored media as presigned links.
    async fn message(&self, contact: &str, m: &SubjectMessage) -> Result<Option<(Vec<u8>, Vec<u8>)>, StoreError> {
        let Some(entry) = &m.entry else { return Ok(None) };
        let (direction, channel, at_secs, content) = match entry {
            ConversationEntry::Inbound(i) => ("inbound", i.channel, i.sent_at, &i.content),
            ConversationEntry::Outbound(o) => ("outbound", o.channel, o.created_at, &o.content),
        };
        let mut links = Vec::new();
        if let Content::Media { attachments, .. } = content {
            for stored in attachments.iter().filter_map(|a| a.stored.as_deref()) {
                links.push(self.link(stored).await?);
            }
        }
        let at = crate::clock::rfc3339(at_secs * 1000);
        let doc = json!({
            "at": at,
            "direction": direction,
            "channel": channel.as_str(),
            "content": content,
            "media_links": links,
        });
        let doc = serde_json::to_vec(&doc).map_err(|e| StoreError::corrupt("export", e))?;
        let row = csv::row([
            contact.to_owned(),
            at,
            direction.to_owned(),
            channel.as_str().to_owned(),
            content.kind().to_owned(),
            text_of(content),
            links.join(" "),
        ]);
        Ok(Some((doc, row)))
    }
}

/// The words of a message, for the CSV (the JSON document has the whole content).
pub fn text_of(content: &Content) -> String {
    let parts: Vec<&str> = match content {
        Content::Text { body } => vec![body],
        Content::Media { caption, .. } => caption.iter().map(String::as_str).collect(),
        Content::Location { name, address, .. } => name.iter().chain(address).map(String::as_str).collect(),
        Content::InteractiveReply { title, description, .. } => {
            std::iter::once(title.as_str()).chain(description.as_deref()).collect()
        }
        Content::Button { text, .. } => vec![text],
        Content::Reaction { emoji, .. } => emoji.iter().map(String::as_str).collect(),
        Content::System { body } => body.iter().map(String::as_str).collect(),
        Content::Contacts { .. } | Content::Order { .. } | Content::Unsupported { .. } => Vec::new(),
    };
    parts.join(" ")
}
