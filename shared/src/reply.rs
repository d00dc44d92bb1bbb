//! The reply worker's logic: one inbound job from the FIFO queue to at most one answer.
//!
//! - **Exactly one answer.** The job claims the stored message (`received|queued → answering`
//!   under a lease); a message already `answered` is acknowledged silently, one another worker
//!   holds is retried later. The answer is recorded under an id derived from the message
//!   *before* the provider is called: a retry that finds that record knows a send may have
//!   happened and never sends again (at most once; a crash after the provider's accept leaves
//!   an answer without its provider id, logged, never a second answer).
//! - **Bursts.** After the quiet window, later unanswered messages of the same contact are
//!   claimed too and answered together; their own jobs then find them answered.
//! - **Keywords first**, no model involved: opt-out, opt-in, handoff.
//! - **Consent and mode are read again right before the send.**
//! - **The model sees redacted text only**; its answer and tool arguments are restored.
//! - **The customer is never left without an answer**: a model that fails gets a polite
//!   fallback and a handoff to a person; the inbound message stays stored either way.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::assistant::keywords::{self, Keyword};
use crate::assistant::knowledge::{KnowledgeCache, KnowledgeDoc};
use crate::assistant::model::{ChatModel, ModelError, Turn};
use crate::assistant::prompt::{self, Budget, PromptInput};
use crate::assistant::redact::Vault;
use crate::assistant::tools::{self, Effect};
use crate::channels::outbound::{Account, ChannelSender, OutboundBody, OutboundRequest, SendError, send_with_retries};
use crate::clock::Clock;
use crate::domain::{
    Channel, Consent, ConsentChange, ConsentSource, ContactId, Content, InboundMessage, Mode, OutboundMessage,
    RecordId, TenantId,
};
use crate::invocation;
use crate::media::{MediaFetcher, MediaStore, copy_attachments};
use crate::privacy::retention::Category;
use crate::privacy::{Expiry, Pseudonymizer};
use crate::queue::InboundJob;
use crate::store::StoreError;
use crate::store::contacts::{AppointmentStore, ContactState, ContactStore, InboundActivity, LeadStore};
use crate::store::keys;
use crate::store::messages::{Claim, ConversationEntry, ConversationLog, DeliveryLog, InboundLog, StoredInbound};
use crate::tenants::Tenant;

/// Conversation entries read for the burst check and the prompt's history.
const RECENT: usize = 20;
/// A burst never holds the answer back longer than this, however the messages keep coming.
const MAX_BURST_WAIT_MS: i64 = 10_000;
/// Nor grows beyond this many messages (its answer and their completion are one transaction,
/// which DynamoDB caps at 100 items); later ones get their own answer.
const MAX_BURST: usize = 25;
/// Tool rounds per answer: enough to check, book and confirm; a model looping longer is cut off.
const MAX_TOOL_ROUNDS: usize = 4;
/// A lease outlives the invocation by this much (clocks of instances disagree a little).
const LEASE_MARGIN_MS: i64 = 5_000;
/// Without an invocation deadline (tests, tools), a job gives itself this long.
const DEFAULT_BUDGET_MS: i64 = 60_000;

/// What the worker needs to know about tenants: who they are, how to reach their customers,
/// what they know.
pub trait TenantAccess: Send + Sync {
    fn tenant(&self, id: &TenantId) -> impl Future<Output = Result<Option<Arc<Tenant>>, StoreError>> + Send;
    fn account(
        &self,
        tenant: &Tenant,
        channel: Channel,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;
    fn knowledge(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<KnowledgeDoc>, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another worker holds the message: try again once its lease is over.
    #[error("another worker is answering this message")]
    Busy,
    #[error("send failed: {0}")]
    Send(SendError),
}

/// How a job ended, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered (by the model, a keyword flow or the fallback).
    Answered,
    /// Already answered, or covered by a burst's answer: nothing sent.
    AlreadyAnswered,
    /// The contact opted out, or a person answers the conversation: nothing sent.
    Silent,
    /// Outside the 24-hour window with no template to send: nothing sent.
    WindowClosed,
    /// The message is gone (erased) or its tenant is.
    Gone,
    /// The tenant is suspended (it uninstalled the app): acknowledged, nothing sent.
    Suspended,
}

/// Why a message goes out: what the checks right before the send allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Needs consent and the assistant in charge.
    Answer,
    /// The confirmation of an opt-out or opt-in: the keyword itself is the contact's say-so.
    ConsentConfirmation,
    /// Needs consent; sent as the conversation goes to a person.
    HandoffNotice,
}

/// The fixed texts of the keyword flows (the model is never asked for these).
pub struct Phrases;

impl Phrases {
    pub const OPTED_OUT: &'static str =
        "You will not receive further messages from us. Reply START at any time to hear from us again.";
    pub const OPTED_IN: &'static str = "Welcome back! You will receive our replies again. How can we help?";
    pub const HANDOFF: &'static str = "Thanks, a member of our team will get back to you here shortly.";
    pub const MEDIA: &'static str =
        "Thanks, we received it. A member of our team will look at it and get back to you here shortly.";
    pub const FALLBACK: &'static str =
        "Sorry, I cannot answer that right now. A member of our team will get back to you here shortly.";
}

pub struct ReplyWorker<L, C, T, M, S, Md> {
    pub log: L,
    pub contacts: C,
    pub tenants: T,
    pub model: M,
    pub sender: S,
    /// Where inbound media is copied while the provider's link is valid.
    pub media: Md,
    pub fetcher: MediaFetcher,
    pub knowledge: KnowledgeCache,
    pub pseudonyms: Pseudonymizer,
    pub clock: Arc<dyn Clock>,
    pub budget: Budget,
    /// Where Twilio reaches our webhooks (`PUBLIC_BASE_URL`): each Twilio send names its status
    /// callback there, so delivery statuses come back to the message. `None`: the account's own.
    pub public_base_url: Option<String>,
}

/// One claimed message of the burst being answered.
struct Claimed {
    key: String,
    stored: StoredInbound,
}

impl<L, C, T, M, S, Md> ReplyWorker<L, C, T, M, S, Md>
where
    L: InboundLog + DeliveryLog + ConversationLog,
    C: ContactStore + LeadStore + AppointmentStore,
    T: TenantAccess,
    M: ChatModel,
    S: ChannelSender,
    Md: MediaStore,
{
    /// Handles one queue job (its JSON body).
    pub async fn handle(&self, body: &str) -> Result<Outcome, ReplyError> {
        let Ok(job) = serde_json::from_str::<InboundJob>(body) else {
            // Retrying cannot make it readable, and it would hold up its contact's group.
            tracing::error!("a queue job that is not an inbound job; dropped");
            return Ok(Outcome::Gone);
        };
        // The key names the tenant; a job cannot point one tenant's worker at another's data.
        if keys::parse_message_key(&job.message_key).is_none_or(|(tenant, _, _)| tenant != job.tenant_id) {
            tracing::error!("queue job and message key disagree about the tenant; dropped");
            return Ok(Outcome::Gone);
        }
        let now_ms = self.clock.now_ms();
        let budget = invocation::remaining().map_or(DEFAULT_BUDGET_MS, |d| d.as_millis() as i64);
        let lease_until = now_ms + budget + LEASE_MARGIN_MS;
        let first = match self.log.claim(&job.message_key, now_ms, lease_until).await? {
            Claim::Claimed(stored) => Claimed { key: job.message_key.clone(), stored: *stored },
            Claim::Answered => return Ok(Outcome::AlreadyAnswered),
            Claim::Missing => return Ok(Outcome::Gone),
            Claim::Busy { .. } => return Err(ReplyError::Busy),
        };
        let Some(tenant) = self.tenants.tenant(&first.stored.tenant).await? else {
            self.log.complete(&first.key).await?;
            return Ok(Outcome::Gone);
        };
        if tenant.is_suspended() {
            // The business uninstalled the app: its customers' messages are kept (until
            // `shop/redact` or the cancellation retention) but the assistant no longer speaks
            // for it. Acknowledged, so neither the queue nor the sweeper brings them back.
            self.log.complete(&first.key).await?;
            tracing::info!(outcome = ?Outcome::Suspended, "inbound handled");
            return Ok(Outcome::Suspended);
        }
        let (burst, recent) = self.gather_burst(&tenant, first, lease_until).await?;
        let (covered, mut burst) = self.split_answered(&tenant, burst).await?;
        for claimed in &covered {
            self.log.complete(&claimed.key).await?;
        }
        if burst.is_empty() {
            return Ok(Outcome::AlreadyAnswered);
        }
        for claimed in &mut burst {
            self.copy_media(&tenant, claimed).await;
        }
        let (outcome, completed) = self.answer(&tenant, &burst, recent).await?;
        if !completed {
            for claimed in &burst {
                self.log.complete(&claimed.key).await?;
            }
        }
        tracing::info!(
            contact = %self.pseudonyms.contact(&tenant.id, &burst[0].stored.message.contact),
            messages = burst.len(),
            outcome = ?outcome,
            "inbound handled"
        );
        Ok(outcome)
    }

    /// Waits out the quiet window and claims the contact's later unanswered messages, so a
    /// burst gets one answer. Returns the burst oldest first (at least the first message), and
    /// the conversation as last read (the prompt's history, saving a second read).
    async fn gather_burst(
        &self,
        tenant: &Tenant,
        first: Claimed,
        lease_until: i64,
    ) -> Result<(Vec<Claimed>, Option<Vec<ConversationEntry>>), ReplyError> {
        let quiet = i64::from(tenant.settings.burst.quiet_window_ms);
        let contact = first.stored.message.contact.clone();
        let started = self.clock.now_ms();
        // Arrival is stored in seconds: counted from the end of that second, the window is never
        // shorter than configured.
        let arrived_ms = |c: &StoredInbound| c.state.received_at * 1000 + 999;
        let mut newest_ms = arrived_ms(&first.stored);
        let mut burst = vec![first];
        if quiet == 0 {
            return Ok((burst, None));
        }
        let mut seen: HashSet<String> = burst.iter().map(|c| c.key.clone()).collect();
        loop {
            let now = self.clock.now_ms();
            let wait = (newest_ms + quiet - now).min(started + MAX_BURST_WAIT_MS - now);
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
            let mut found = false;
            let entries = self.log.recent(&tenant.id, &contact, RECENT).await?;
            for entry in &entries {
                let ConversationEntry::Inbound(m) = entry else { continue };
                let key =
                    keys::message_key(&tenant.id, m.channel, &self.pseudonyms.message_ref(m.channel, m.id.as_str()));
                if burst.len() >= MAX_BURST || m.sent_at < burst[0].stored.message.sent_at || !seen.insert(key.clone())
                {
                    continue;
                }
                if let Claim::Claimed(stored) = self.log.claim(&key, self.clock.now_ms(), lease_until).await? {
                    newest_ms = newest_ms.max(arrived_ms(&stored));
                    burst.push(Claimed { key, stored: *stored });
                    found = true;
                }
            }
            if !found || self.clock.now_ms() >= started + MAX_BURST_WAIT_MS {
                burst.sort_by_key(|c| (c.stored.message.sent_at, c.stored.state.received_at));
                return Ok((burst, Some(entries)));
            }
        }
    }

    /// A burst can differ between attempts (a message arrived meanwhile): members an earlier
    /// attempt already answered, with everything before them, are set apart so the answer is
    /// never repeated; the rest is answered. Only bursts pay for this check (the answer to a
    /// single message is guarded by its own record).
    async fn split_answered(
        &self,
        tenant: &Tenant,
        mut burst: Vec<Claimed>,
    ) -> Result<(Vec<Claimed>, Vec<Claimed>), ReplyError> {
        if burst.len() < 2 {
            return Ok((Vec::new(), burst));
        }
        let mut last_answered = None;
        for (i, claimed) in burst.iter().enumerate().take(burst.len() - 1) {
            if self.log.outbound(&tenant.id, &answer_id(&claimed.key)).await?.is_some() {
                last_answered = Some(i);
            }
        }
        let rest = match last_answered {
            Some(i) => burst.split_off(i + 1),
            None => return Ok((Vec::new(), burst)),
        };
        Ok((burst, rest))
    }

    /// Copies a message's attachments into the bucket under the tenant's prefix and records
    /// where. Never holds up the answer: a copy that fails is logged and the attachment keeps
    /// its provider reference (Meta's media ids live 7 days).
    async fn copy_media(&self, tenant: &Tenant, claimed: &mut Claimed) {
        let message = &mut claimed.stored.message;
        let Content::Media { attachments, .. } = &mut message.content else { return };
        if attachments.iter().all(|a| a.stored.is_some() || (a.media_id.is_none() && a.url.is_none())) {
            return;
        }
        let account = match self.tenants.account(tenant, message.channel).await {
            Ok(Some(account)) => account,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "media not copied: no account");
                return;
            }
        };
        let message_ref = keys::parse_message_key(&claimed.key).map_or("unknown", |(_, _, r)| r);
        match copy_attachments(&self.fetcher, &self.media, &account, &tenant.id, message_ref, attachments).await {
            Ok(stored) => {
                for (attachment, key) in attachments.iter_mut().zip(stored) {
                    attachment.stored = attachment.stored.take().or(key);
                }
                if let Err(e) = self.log.set_content(&claimed.key, &message.content).await {
                    tracing::warn!(error = %e, "media copied but not recorded on its message");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retryable = e.retryable(), "media could not be copied; answering without it")
            }
        }
    }

    async fn answer(
        &self,
        tenant: &Tenant,
        burst: &[Claimed],
        recent: Option<Vec<ConversationEntry>>,
    ) -> Result<(Outcome, bool), ReplyError> {
        let latest = &burst[burst.len() - 1].stored.message;
        let contact = &latest.contact;
        let channel = latest.channel;
        let now_ms = self.clock.now_ms();
        let expiry = Expiry::new(&tenant.id, Category::Messages, now_ms / 1000, &tenant.retention);
        let activity = InboundActivity {
            contact,
            channel,
            profile_name: latest.profile_name.as_deref(),
            at: burst.iter().map(|c| c.stored.message.sent_at).max().unwrap_or(now_ms / 1000),
        };
        self.contacts.record_activity(&tenant.id, activity, &expiry).await?;
        let texts: Vec<&str> = burst.iter().filter_map(|c| text_of(&c.stored.message)).collect();
        // The last keyword of the burst decides ("STOP" then "START" leaves the contact opted in).
        let keyword = texts.iter().rev().find_map(|t| keywords::detect(t, &tenant.settings));
        let state = self.contacts.state(&tenant.id, contact, channel).await?;
        let opted_out = state.contact.as_ref().is_some_and(|c| c.consent == Consent::OptedOut);
        let human = state.conversation.as_ref().is_some_and(|c| matches!(c.mode, Mode::Human { .. }));
        // Changes apply in time order; one right after another (same millisecond) still comes later.
        let at_ms = now_ms.max(state.contact.as_ref().and_then(|c| c.consent_at_ms).map_or(0, |at| at + 1));
        let consent = |consent| ConsentChange { consent, at_ms, source: ConsentSource::Keyword };
        // Already opted out, or with a person: a repeated STOP or "human" gets silence, unless
        // this very answer was attempted before (its record exists): then the change was this
        // answer's own, and its confirmation goes (again if the provider refused it; never twice).
        let repeated = match keyword {
            Some(Keyword::OptOut) => opted_out,
            Some(Keyword::Handoff) => human && !opted_out,
            _ => false,
        };
        let attempted =
            repeated && self.log.outbound(&tenant.id, &answer_id(&burst[burst.len() - 1].key)).await?.is_some();
        // Every change is recorded *before* its confirmation is sent: an opt-out holds even when
        // the confirmation cannot go out.
        let reply = match keyword {
            Some(Keyword::OptOut) if opted_out && !attempted => return Ok((Outcome::Silent, false)),
            Some(Keyword::OptOut) => {
                if !opted_out {
                    self.contacts.set_consent(&tenant.id, contact, consent(Consent::OptedOut), &expiry).await?;
                }
                Reply::fixed(Phrases::OPTED_OUT, Purpose::ConsentConfirmation)
            }
            Some(Keyword::OptIn) => {
                if opted_out {
                    self.contacts.set_consent(&tenant.id, contact, consent(Consent::OptedIn), &expiry).await?;
                }
                Reply::fixed(Phrases::OPTED_IN, Purpose::ConsentConfirmation)
            }
            _ if opted_out => return Ok((Outcome::Silent, false)),
            Some(Keyword::Handoff) if !human || attempted => {
                if !human {
                    self.hand_off(tenant, contact, channel, Some("asked for a person".into()), &expiry).await?;
                }
                Reply::fixed(Phrases::HANDOFF, Purpose::HandoffNotice)
            }
            _ if human => return Ok((Outcome::Silent, false)),
            // A photo, voice note or document with no words: the assistant cannot read it, a
            // person can (the copy is in the bucket).
            _ if texts.is_empty() && burst.iter().any(|c| needs_a_person(&c.stored.message.content)) => {
                self.hand_off(tenant, contact, channel, Some("sent media without text".into()), &expiry).await?;
                Reply::fixed(Phrases::MEDIA, Purpose::HandoffNotice)
            }
            // Reactions, stickers, system notices: nothing to answer.
            _ if texts.is_empty() => return Ok((Outcome::Silent, false)),
            // Read too late for free text: the template (if any) is all that can go, so the
            // model is not asked.
            _ if !state.conversation.as_ref().is_some_and(|c| c.window_open(now_ms / 1000)) => {
                Reply { body: String::new(), purpose: Purpose::Answer, modelled: false }
            }
            _ => {
                let account = self.account(tenant, channel).await?;
                if let Some(account) = &account
                    && let Err(e) = self.sender.mark_read(account, &latest.id).await
                {
                    // Read receipt and typing indicator (while the model thinks) are courtesy.
                    tracing::debug!(error = %e, "mark as read failed");
                }
                let (text, handoff) = self.ask_model(tenant, burst, &texts, recent).await?;
                match handoff {
                    Some(reason) => {
                        self.hand_off(tenant, contact, channel, reason, &expiry).await?;
                        Reply { body: text, purpose: Purpose::HandoffNotice, modelled: true }
                    }
                    None => Reply { body: text, purpose: Purpose::Answer, modelled: true },
                }
            }
        };
        self.send(tenant, burst, reply, &expiry).await
    }

    /// The channel account, or `None` (logged) when the tenant has none on that channel.
    async fn account(&self, tenant: &Tenant, channel: Channel) -> Result<Option<Account>, ReplyError> {
        let account = self.tenants.account(tenant, channel).await?;
        if account.is_none() {
            tracing::error!(channel = channel.as_str(), "tenant has no account on the message's channel");
        }
        Ok(account)
    }

    /// Whether a newer message of the contact (not yet in this burst) asks to stop or for a
    /// person: then the answer prepared meanwhile is not sent (that message's own job confirms).
    /// Best effort: the conversation index trails writes by a moment.
    async fn overtaken(&self, tenant: &Tenant, burst: &[Claimed]) -> Result<bool, StoreError> {
        let latest = &burst[burst.len() - 1].stored.message;
        let in_burst: HashSet<&str> = burst.iter().map(|c| c.stored.message.id.as_str()).collect();
        let recent = self.log.recent(&tenant.id, &latest.contact, 5).await?;
        Ok(recent.iter().any(|entry| match entry {
            ConversationEntry::Inbound(m) if m.sent_at >= latest.sent_at && !in_burst.contains(m.id.as_str()) => {
                text_of(m).and_then(|t| keywords::detect(t, &tenant.settings)).is_some_and(|k| k != Keyword::OptIn)
            }
            _ => false,
        }))
    }

    async fn hand_off(
        &self,
        tenant: &Tenant,
        contact: &ContactId,
        channel: Channel,
        reason: Option<String>,
        expiry: &Expiry,
    ) -> Result<(), StoreError> {
        let mode = Mode::Human { since: self.clock.now(), reason };
        self.contacts.set_mode(&tenant.id, contact, channel, &mode, expiry).await
    }

    /// The model's answer (restored), and whether it handed the conversation to a person.
    /// A model that keeps failing yields the fallback and a handoff.
    async fn ask_model(
        &self,
        tenant: &Tenant,
        burst: &[Claimed],
        texts: &[&str],
        recent: Option<Vec<ConversationEntry>>,
    ) -> Result<(String, Option<Option<String>>), ReplyError> {
        let latest = &burst[burst.len() - 1].stored.message;
        let in_burst: HashSet<&str> = burst.iter().map(|c| c.stored.message.id.as_str()).collect();
        let recent = match recent {
            Some(entries) => entries,
            None => self.log.recent(&tenant.id, &latest.contact, RECENT).await?,
        };
        let history: Vec<ConversationEntry> = recent
            .into_iter()
            .filter(|e| !matches!(e, ConversationEntry::Inbound(m) if in_burst.contains(m.id.as_str())))
            .collect();
        let question = texts.join("\n");
        let version = tenant.knowledge_version.clone().unwrap_or_default();
        let language = &tenant.settings.language;
        let index = self
            .knowledge
            .get_or_build_in(&tenant.id, &version, language, || self.tenants.knowledge(&tenant.id))
            .await?;
        let passages = index.search(&question, self.budget.max_passages);
        let mut vault = Vault::default();
        let scope_seed = answer_id(&burst[burst.len() - 1].key).to_string();
        let tools = tools::specs(tenant);
        let input = PromptInput {
            business_name: &tenant.name,
            settings: &tenant.settings,
            now: jiff::Timestamp::from_millisecond(self.clock.now_ms()).unwrap_or_default(),
            passages: &passages,
            history: &history,
            current: texts,
            tools,
            budget: self.budget,
        };
        let built = prompt::assemble(input, &mut |t: &str| vault.redact(t));
        tracing::info!(
            prompt_tokens = built.estimated_tokens,
            passages = built.passages_used,
            history = built.history_used,
            "prompt assembled"
        );
        let mut request = built.request;
        let scope =
            tools::Scope { tenant, contact: &latest.contact, now_ms: self.clock.now_ms(), id_seed: &scope_seed };
        let mut handoff: Option<Option<String>> = None;
        for _ in 0..MAX_TOOL_ROUNDS {
            let response = match self.model.complete(&request).await {
                Ok(r) => r,
                Err(e) => return Ok(self.fallback(&e)),
            };
            tracing::info!(
                model = self.model.name(),
                prompt_tokens = response.usage.prompt_tokens,
                completion_tokens = response.usage.completion_tokens,
                tool_calls = response.tool_calls.len(),
                "model answered"
            );
            if response.tool_calls.is_empty() {
                let text = response.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
                return Ok(match text {
                    Some(t) => (vault.restore(t), handoff),
                    None => self.fallback(&ModelError::Malformed("an empty answer".into())),
                });
            }
            let mut results = Vec::with_capacity(response.tool_calls.len());
            for call in &response.tool_calls {
                let mut arguments: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                vault.restore_json(&mut arguments);
                let outcome = tools::run(&self.contacts, &scope, call, arguments).await?;
                // The name is the model's text: only ours are logged as they are.
                let tool = tools::NAMES.iter().find(|n| **n == call.name).copied().unwrap_or("unknown");
                tracing::info!(tool, error = outcome.result.is_error, "tool ran");
                if let Effect::Handoff { reason } = outcome.effect {
                    handoff = Some(reason);
                }
                let mut result = outcome.result;
                // Tool results may hold what the customer said (a restored email): redacted again.
                result.content = vault.redact(&result.content);
                results.push(result);
            }
            request.turns.push(Turn::Assistant { text: response.text.clone(), tool_calls: response.tool_calls });
            request.turns.push(Turn::ToolResults(results));
        }
        tracing::warn!("the model kept calling tools; falling back");
        Ok(self.fallback(&ModelError::Malformed("too many tool rounds".into())))
    }

    fn fallback(&self, error: &ModelError) -> (String, Option<Option<String>>) {
        tracing::warn!(model = self.model.name(), error = %error, "model failed; fallback answer and handoff");
        (Phrases::FALLBACK.to_owned(), Some(Some("the assistant could not answer".into())))
    }

    /// Records the answer under an id derived from the message it answers, checks consent,
    /// mode and the 24-hour window, sends it, ties it to the provider's id and marks the burst
    /// answered (one write). What the reply confirms (consent, mode) is recorded before.
    async fn send(
        &self,
        tenant: &Tenant,
        burst: &[Claimed],
        reply: Reply,
        expiry: &Expiry,
    ) -> Result<(Outcome, bool), ReplyError> {
        let answered = &burst[burst.len() - 1];
        let message = &answered.stored.message;
        let now = self.clock.now();
        // Right before the send: the contact may have opted out, or a person may have taken over.
        let state = self.contacts.state(&tenant.id, &message.contact, message.channel).await?;
        if !allowed(&state, reply.purpose) || (reply.modelled && self.overtaken(tenant, burst).await?) {
            return Ok((Outcome::Silent, false));
        }
        let window_open = state.conversation.as_ref().is_some_and(|c| c.window_open(now));
        let template = tenant.settings.outside_window_template.as_ref();
        let (content, outbound_body) = match (window_open, template) {
            (true, _) => (Content::Text { body: reply.body.clone() }, OutboundBody::Text(&reply.body)),
            // A confirmation is no occasion for a marketing-style template: nothing goes out
            // (the change it confirms is recorded already).
            (false, Some(_)) if reply.purpose != Purpose::Answer => return Ok((Outcome::WindowClosed, false)),
            (false, Some(t)) => {
                (Content::Unsupported { kind: format!("template:{}", t.name) }, OutboundBody::Template(t))
            }
            (false, None) => {
                self.contacts.set_needs_template(&tenant.id, &message.contact, message.channel, true, expiry).await?;
                return Ok((Outcome::WindowClosed, false));
            }
        };
        let id = answer_id(&answered.key);
        let outbound = OutboundMessage {
            id: id.clone(),
            channel: message.channel,
            contact: message.contact.clone(),
            created_at: now,
            content,
            in_reply_to: Some(message.id.clone()),
            provider_id: None,
        };
        // The account first: a failure to open its token must not leave a record that would
        // stop every later attempt from sending.
        let Some(account) = self.account(tenant, message.channel).await? else {
            return Ok((Outcome::Gone, false));
        };
        if let Some(earlier) = self.log.record_outbound(&tenant.id, &outbound, expiry).await? {
            // An earlier attempt recorded this answer and may have sent it: never twice.
            if earlier.provider_id.is_none() {
                tracing::warn!(outbound = %earlier.id, "an earlier attempt's send is unconfirmed; not sending again");
            }
            return Ok((Outcome::Answered, false));
        }
        let callback = match (message.channel, &self.public_base_url) {
            (Channel::Twilio, Some(base)) => Some(format!("{base}/webhooks/twilio/{}/status", tenant.id)),
            _ => None,
        };
        let request = OutboundRequest {
            to: &message.contact,
            body: outbound_body,
            reply_to: Some(&message.id),
            status_callback: callback.as_deref(),
        };
        let outcome = match send_with_retries(&self.sender, &account, &request).await {
            Ok(provider_id) => {
                let keys: Vec<&str> = burst.iter().map(|c| c.key.as_str()).collect();
                self.log.attach_provider_id(&tenant.id, &id, message.channel, &provider_id, expiry, &keys).await?;
                return Ok((Outcome::Answered, true));
            }
            Err(SendError::OutsideWindow) => {
                // 131047: only a template reopens the conversation; free text is never retried.
                self.contacts.set_needs_template(&tenant.id, &message.contact, message.channel, true, expiry).await?;
                self.log.discard_outbound(&tenant.id, &id).await?;
                Outcome::WindowClosed
            }
            Err(e @ SendError::Rejected { status: 401 | 403, .. }) => {
                // The tenant's token or account is refused: nothing went out; retried (and
                // dead-lettered if it stays so) rather than dropped, so a fixed token answers.
                tracing::error!(error = %e, "the tenant's channel credentials were refused");
                self.log.discard_outbound(&tenant.id, &id).await?;
                return Err(ReplyError::Send(e));
            }
            Err(e @ SendError::Rejected { .. }) => {
                // Refused for good (bad number, blocked): retrying cannot help; the message stays stored.
                tracing::error!(error = %e, "provider refused the answer");
                self.log.discard_outbound(&tenant.id, &id).await?;
                Outcome::Silent
            }
            Err(e) if e.retryable() => {
                // Busy, failing, or never connected: nothing went out, so a later attempt may send it.
                self.log.discard_outbound(&tenant.id, &id).await?;
                return Err(ReplyError::Send(e));
            }
            Err(e) => {
                // A timeout or an accept without an id: it may have gone out. The record stays,
                // so it is never sent twice; the burst counts as answered.
                tracing::warn!(error = %e, "send unconfirmed; not sending again");
                Outcome::Answered
            }
        };
        Ok((outcome, false))
    }
}

struct Reply {
    body: String,
    purpose: Purpose,
    /// Prepared by the model (which takes a while: a newer message may have overtaken it).
    modelled: bool,
}

impl Reply {
    fn fixed(body: &str, purpose: Purpose) -> Self {
        Self { body: body.to_owned(), purpose, modelled: false }
    }
}

fn allowed(state: &ContactState, purpose: Purpose) -> bool {
    let opted_out = state.contact.as_ref().is_some_and(|c| c.consent == Consent::OptedOut);
    let human = state.conversation.as_ref().is_some_and(|c| matches!(c.mode, Mode::Human { .. }));
    match purpose {
        Purpose::ConsentConfirmation => true,
        Purpose::HandoffNotice => !opted_out,
        Purpose::Answer => !opted_out && !human,
    }
}

/// The answer to a message has one id, whichever attempt computes it: the message's own key
/// ref (a keyed hash, unique per message) under a prefix.
pub fn answer_id(message_key: &str) -> RecordId {
    let (channel, message_ref) = keys::parse_message_key(message_key)
        .map_or(("x", message_key), |(_, channel, message_ref)| (channel.as_str(), message_ref));
    RecordId::parse(&format!("re-{channel}-{message_ref}")).unwrap_or_else(|_| RecordId::generate())
}

/// Media a person should look at (stickers are just friendly).
fn needs_a_person(content: &Content) -> bool {
    matches!(content, Content::Media { kind, .. } if *kind != crate::domain::MediaKind::Sticker)
}

fn text_of(message: &InboundMessage) -> Option<&str> {
    let text = match &message.content {
        Content::Text { body } => body.as_str(),
        Content::Media { caption: Some(c), .. } => c.as_str(),
        Content::InteractiveReply { title, .. } => title.as_str(),
        Content::Button { text, .. } => text.as_str(),
        _ => return None,
    };
    let text = text.trim();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use tokio::sync::Notify;

    use super::*;
    use crate::assistant::model::{ChatRequest, ChatResponse, StopReason, ToolCall, Usage};
    use crate::channels::outbound::{Endpoints, MetaAccount};
    use crate::clock::TokioClock;
    use crate::domain::ProviderMessageId;
    use crate::ingest::{self, Attempt};
    use crate::media::MemoryMediaStore;
    use crate::queue::InboundJob;
    use crate::store::contacts::MemoryContacts;
    use crate::store::messages::MemoryMessageLog;
    use crate::store::messages::faulty::Faulty;

    const T0_MS: i64 = 1_772_362_800_000;
    const JANA: &str = "+34600111222";

    struct Tenants(Arc<Tenant>);

    impl TenantAccess for Tenants {
        async fn tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, StoreError> {
            Ok((id == &self.0.id).then(|| self.0.clone()))
        }
        async fn account(&self, _: &Tenant, _: Channel) -> Result<Option<Account>, StoreError> {
            Ok(Some(Account::Meta(MetaAccount { phone_number_id: "1".into(), access_token: "t".into() })))
        }
        async fn knowledge(&self, _: &TenantId) -> Result<Vec<KnowledgeDoc>, StoreError> {
            Ok(vec![KnowledgeDoc {
                title: "Opening hours".into(),
                text: "We are open Monday to Friday, 9 to 5.".into(),
            }])
        }
    }

    /// Answers from a script (the last answer repeats); a `None` answer is a failure.
    #[derive(Default)]
    struct Model {
        script: Vec<Option<ChatResponse>>,
        calls: AtomicUsize,
        requests: Mutex<Vec<ChatRequest>>,
        /// Holds the call: says it started, then waits to be released (so a test can act
        /// while the model "thinks").
        gate: Option<(Notify, Notify)>,
    }

    impl ChatModel for Model {
        fn name(&self) -> &'static str {
            "scripted"
        }
        async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ModelError> {
            self.requests.lock().unwrap().push(request.clone());
            if let Some((started, release)) = &self.gate {
                started.notify_one();
                release.notified().await;
            }
            let i = self.calls.fetch_add(1, Ordering::SeqCst).min(self.script.len() - 1);
            self.script[i].clone().ok_or(ModelError::Unavailable { status: 500, retry_after_ms: None })
        }
    }

    fn says(text: &str) -> Option<ChatResponse> {
        Some(ChatResponse {
            text: Some(text.into()),
            tool_calls: vec![],
            stop: StopReason::EndTurn,
            usage: Usage::default(),
        })
    }

    fn calls(name: &str, arguments: Value) -> Option<ChatResponse> {
        let call = ToolCall { id: "c1".into(), name: name.into(), arguments: arguments.to_string() };
        Some(ChatResponse { text: None, tool_calls: vec![call], stop: StopReason::ToolUse, usage: Usage::default() })
    }

    #[derive(Default)]
    struct Sender {
        sent: Mutex<Vec<String>>,
        /// The next sends fail with these, in order (each still counted as an attempt).
        failures: Mutex<Vec<SendError>>,
        attempts: AtomicUsize,
    }

    impl ChannelSender for Sender {
        async fn mark_read(&self, _: &Account, _: &ProviderMessageId) -> Result<(), SendError> {
            Ok(())
        }
        async fn send(&self, _: &Account, request: &OutboundRequest<'_>) -> Result<ProviderMessageId, SendError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if let Some(e) = self.failures.lock().unwrap().pop() {
                return Err(e);
            }
            let mut sent = self.sent.lock().unwrap();
            sent.push(match request.body {
                OutboundBody::Text(t) => t.to_owned(),
                OutboundBody::Template(t) => format!("template:{}", t.name),
            });
            Ok(ProviderMessageId::parse(&format!("wamid.out{}", sent.len())).unwrap())
        }
    }

    /// The in-memory log; its provider-id record fails on demand (a crash right after the
    /// provider accepted a send).
    type Log = Faulty<MemoryMessageLog>;

    type Worker = ReplyWorker<Log, MemoryContacts, Tenants, Model, Sender, MemoryMediaStore>;

    fn worker(script: Vec<Option<ChatResponse>>, quiet_window_ms: u32) -> Worker {
        let mut tenant = Tenant::new(TenantId::parse("acme").unwrap());
        tenant.settings.burst.quiet_window_ms = quiet_window_ms;
        tenant.settings.opening_hours.insert("mon".into(), vec!["09:00-17:00".into()]);
        tenant.knowledge_version = Some("v1".into());
        ReplyWorker {
            log: Log::default(),
            contacts: MemoryContacts::default(),
            tenants: Tenants(Arc::new(tenant)),
            model: Model { script, ..Model::default() },
            sender: Sender::default(),
            media: MemoryMediaStore::default(),
            fetcher: MediaFetcher::new(Endpoints::default()).unwrap(),
            knowledge: KnowledgeCache::default(),
            pseudonyms: Pseudonymizer::new(b"k"),
            clock: Arc::new(TokioClock::starting_at(T0_MS)),
            budget: Budget::default(),
            public_base_url: None,
        }
    }

    /// Stores a text from Jana as ingest would; returns its queue job.
    async fn inbound(w: &Worker, id: &str, body: &str) -> String {
        let tenant = w.tenants.0.clone();
        let message = InboundMessage {
            channel: Channel::Meta,
            id: ProviderMessageId::parse(id).unwrap(),
            contact: ContactId::parse_key(JANA).unwrap(),
            profile_name: Some("Jana".into()),
            sent_at: w.clock.now(),
            reply_to: None,
            content: Content::Text { body: body.into() },
        };
        let key = keys::message_key(&tenant.id, Channel::Meta, &w.pseudonyms.message_ref(Channel::Meta, id));
        let contact = message.contact.key();
        let attempt = Attempt::new(&tenant, &*w.clock);
        let prepared = ingest::prepare(&tenant, &message, &key, &contact, "g", &attempt);
        w.log.record_inbound(&prepared.new).await.unwrap();
        let job = InboundJob { tenant_id: tenant.id.clone(), channel: Channel::Meta, message_key: key, received_at: 0 };
        serde_json::to_string(&job).unwrap()
    }

    fn sent(w: &Worker) -> Vec<String> {
        w.sender.sent.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_redelivered_job_is_acknowledged_without_a_second_answer() {
        let w = worker(vec![says("Monday to Friday, 9 to 5.")], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::AlreadyAnswered);
        assert_eq!(sent(&w), ["Monday to Friday, 9 to 5."]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspended_tenants_messages_are_acknowledged_without_an_answer() {
        let mut w = worker(vec![says("Monday to Friday, 9 to 5.")], 0);
        let suspended = Tenant { suspended_at: Some(T0_MS / 1000 - 60), ..(*w.tenants.0).clone() };
        w.tenants = Tenants(Arc::new(suspended));
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Suspended);
        assert!(sent(&w).is_empty());
        assert_eq!(w.model.calls.load(Ordering::SeqCst), 0, "the model is not asked");
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::AlreadyAnswered, "acknowledged: never handled again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_between_the_providers_accept_and_our_record_never_sends_twice() {
        let w = worker(vec![says("Monday to Friday, 9 to 5.")], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        w.log.fail_attach.store(true, Ordering::SeqCst);
        assert!(w.handle(&job).await.is_err(), "the provider accepted, then the record failed");
        // The redelivery comes once the crashed attempt's lease is over.
        tokio::time::advance(Duration::from_millis((DEFAULT_BUDGET_MS + LEASE_MARGIN_MS + 1) as u64)).await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w).len(), 1, "no second reply: {:?}", sent(&w));
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::AlreadyAnswered);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_within_the_quiet_window_gets_one_answer_and_covers_the_rest() {
        let w = worker(vec![says("Hello! We open Monday to Friday.")], 2_000);
        let first = inbound(&w, "wamid.1", "Hi").await;
        tokio::time::advance(Duration::from_millis(800)).await;
        let second = inbound(&w, "wamid.2", "are you open on Monday?").await;
        tokio::time::advance(Duration::from_millis(800)).await;
        let third = inbound(&w, "wamid.3", "and until when?").await;
        assert_eq!(w.handle(&first).await.unwrap(), Outcome::Answered);
        assert_eq!(w.handle(&second).await.unwrap(), Outcome::AlreadyAnswered);
        assert_eq!(w.handle(&third).await.unwrap(), Outcome::AlreadyAnswered);
        assert_eq!(sent(&w).len(), 1);
        // The one answer addressed all three.
        let request = w.model.requests.lock().unwrap()[0].clone();
        let Some(Turn::User(asked)) = request.turns.last() else { panic!("the last turn is the customer's") };
        for part in ["Hi", "are you open on Monday?", "and until when?"] {
            assert!(asked.contains(part), "{asked}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_after_the_quiet_window_gets_its_own_answer() {
        let w = worker(vec![says("Hello!")], 1_000);
        let first = inbound(&w, "wamid.1", "Hi").await;
        assert_eq!(w.handle(&first).await.unwrap(), Outcome::Answered);
        tokio::time::advance(Duration::from_millis(5_000)).await;
        let second = inbound(&w, "wamid.2", "hello?").await;
        assert_eq!(w.handle(&second).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_model_gets_the_fallback_and_a_handoff_and_the_message_is_kept() {
        let w = worker(vec![None], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w), [Phrases::FALLBACK]);
        let tenant = &w.tenants.0.id;
        let jana = ContactId::parse_key(JANA).unwrap();
        let state = w.contacts.state(tenant, &jana, Channel::Meta).await.unwrap();
        assert!(matches!(state.conversation.unwrap().mode, Mode::Human { .. }));
        let key: InboundJob = serde_json::from_str(&job).unwrap();
        assert!(w.log.inbound(&key.message_key).await.unwrap().is_some(), "the inbound is kept");
        // Now a person answers: the assistant stays silent.
        let next = inbound(&w, "wamid.2", "Hello?").await;
        assert_eq!(w.handle(&next).await.unwrap(), Outcome::Silent);
        assert_eq!(sent(&w).len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn consent_is_read_again_right_before_the_send() {
        let mut w = worker(vec![says("Monday to Friday.")], 0);
        w.model.gate = Some((Notify::new(), Notify::new()));
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        // While the model thinks, the same contact's STOP is handled elsewhere.
        let stop_meanwhile = async {
            let (started, release) = w.model.gate.as_ref().unwrap();
            started.notified().await;
            let jana = ContactId::parse_key(JANA).unwrap();
            let tenant = &w.tenants.0.id;
            let change = ConsentChange { consent: Consent::OptedOut, at_ms: T0_MS + 1, source: ConsentSource::Keyword };
            let expiry = Expiry::new(tenant, Category::Messages, 0, &Default::default());
            w.contacts.set_consent(tenant, &jana, change, &expiry).await.unwrap();
            release.notify_one();
        };
        let (outcome, ()) = tokio::join!(w.handle(&job), stop_meanwhile);
        assert_eq!(outcome.unwrap(), Outcome::Silent);
        assert!(sent(&w).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_models_handoff_tool_sends_its_answer_then_the_assistant_is_silent() {
        let w = worker(
            vec![calls("handoff_to_human", json!({"reason": "complaint"})), says("A colleague will take over.")],
            0,
        );
        let job = inbound(&w, "wamid.1", "This is unacceptable, I want to complain").await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        let next = inbound(&w, "wamid.2", "hello?").await;
        assert_eq!(w.handle(&next).await.unwrap(), Outcome::Silent);
        assert_eq!(sent(&w), ["A colleague will take over."]);
    }

    #[tokio::test(start_paused = true)]
    async fn keywords_never_reach_the_model() {
        let w = worker(vec![says("should not be asked")], 0);
        for (id, text) in
            [("wamid.1", "STOP"), ("wamid.2", "When are you open?"), ("wamid.3", "START"), ("wamid.4", "human")]
        {
            let job = inbound(&w, id, text).await;
            w.handle(&job).await.unwrap();
        }
        assert_eq!(sent(&w), [Phrases::OPTED_OUT, Phrases::OPTED_IN, Phrases::HANDOFF]);
        assert!(w.model.requests.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn outside_the_window_the_contact_needs_a_template_and_free_text_is_never_retried() {
        let w = worker(vec![says("Monday to Friday.")], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        w.sender.failures.lock().unwrap().push(SendError::OutsideWindow);
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::WindowClosed);
        assert_eq!(w.sender.attempts.load(Ordering::SeqCst), 1, "131047 is not retried");
        let jana = ContactId::parse_key(JANA).unwrap();
        let state = w.contacts.state(&w.tenants.0.id, &jana, Channel::Meta).await.unwrap();
        assert!(state.conversation.unwrap().needs_template);
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::AlreadyAnswered, "and not as a redelivery either");
        assert!(sent(&w).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_the_provider_refused_for_now_is_sent_by_the_retry() {
        let w = worker(vec![says("Monday to Friday.")], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        // Busy three times (every attempt of this invocation), then fine.
        for _ in 0..3 {
            w.sender.failures.lock().unwrap().push(SendError::Retryable { status: 503, retry_after_ms: None });
        }
        assert!(w.handle(&job).await.is_err());
        tokio::time::advance(Duration::from_millis((DEFAULT_BUDGET_MS + LEASE_MARGIN_MS + 1) as u64)).await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w), ["Monday to Friday."]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_read_a_day_late_is_not_answered_with_free_text() {
        let mut w = worker(vec![says("Monday to Friday.")], 0);
        let job = inbound(&w, "wamid.1", "When are you open?").await;
        tokio::time::advance(Duration::from_secs(25 * 3600)).await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::WindowClosed);
        assert!(sent(&w).is_empty());
        // With an approved template configured, the template goes instead.
        let mut tenant = (*w.tenants.0).clone();
        tenant.settings.outside_window_template =
            Some(crate::tenants::settings::TemplateRef { name: "follow_up".into(), language: "en".into() });
        w.tenants = Tenants(Arc::new(tenant));
        let late = inbound(&w, "wamid.2", "Hello?").await;
        tokio::time::advance(Duration::from_secs(25 * 3600)).await;
        assert_eq!(w.handle(&late).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w), ["template:follow_up"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_whose_confirmation_failed_is_confirmed_by_the_retry() {
        let w = worker(vec![says("unused")], 0);
        let job = inbound(&w, "wamid.1", "STOP").await;
        for _ in 0..3 {
            w.sender.failures.lock().unwrap().push(SendError::Retryable { status: 503, retry_after_ms: None });
        }
        assert!(w.handle(&job).await.is_err());
        tokio::time::advance(Duration::from_millis((DEFAULT_BUDGET_MS + LEASE_MARGIN_MS + 1) as u64)).await;
        assert_eq!(w.handle(&job).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w), [Phrases::OPTED_OUT]);
        let jana = ContactId::parse_key(JANA).unwrap();
        let history = w.contacts.consent_history(&w.tenants.0.id, &jana).await.unwrap();
        assert_eq!(history.len(), 1, "recorded once, after its confirmation went out");
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_that_grew_between_attempts_is_not_answered_twice() {
        let w = worker(vec![says("Answer")], 1_000);
        let first = inbound(&w, "wamid.1", "Hi").await;
        let second = inbound(&w, "wamid.2", "when are you open?").await;
        // The answer to both goes out, then recording it fails (a crash).
        w.log.fail_attach.store(true, Ordering::SeqCst);
        assert!(w.handle(&first).await.is_err());
        assert_eq!(sent(&w).len(), 1);
        // Meanwhile the customer wrote again; the redelivery finds a bigger burst.
        tokio::time::advance(Duration::from_millis((DEFAULT_BUDGET_MS + LEASE_MARGIN_MS + 1) as u64)).await;
        let third = inbound(&w, "wamid.3", "and on Saturday?").await;
        assert_eq!(w.handle(&first).await.unwrap(), Outcome::Answered);
        // Only the new message got an answer of its own; the first two were not answered again.
        assert_eq!(sent(&w).len(), 2);
        let asked = w.model.requests.lock().unwrap().last().cloned().unwrap();
        let Some(Turn::User(question)) = asked.turns.last() else { panic!("a customer turn") };
        assert!(question.contains("and on Saturday?") && !question.contains("when are you open?"), "{question}");
        for job in [second, third] {
            assert_eq!(w.handle(&job).await.unwrap(), Outcome::AlreadyAnswered);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_opt_out_holds_even_while_its_confirmation_cannot_be_sent() {
        let w = worker(vec![says("should not be sent")], 0);
        let stop = inbound(&w, "wamid.1", "STOP").await;
        for _ in 0..3 {
            w.sender.failures.lock().unwrap().push(SendError::Retryable { status: 503, retry_after_ms: None });
        }
        assert!(w.handle(&stop).await.is_err(), "the confirmation could not go out");
        tokio::time::advance(Duration::from_secs(5)).await;
        let question = inbound(&w, "wamid.2", "When are you open?").await;
        assert_eq!(w.handle(&question).await.unwrap(), Outcome::Silent, "opted out all the same");
        assert!(sent(&w).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_after_a_confirmation_went_out_neither_repeats_it_nor_loses_the_opt_out() {
        let w = worker(vec![says("should not be sent")], 0);
        let stop = inbound(&w, "wamid.1", "STOP").await;
        w.log.fail_attach.store(true, Ordering::SeqCst);
        assert!(w.handle(&stop).await.is_err());
        tokio::time::advance(Duration::from_millis((DEFAULT_BUDGET_MS + LEASE_MARGIN_MS + 1) as u64)).await;
        w.handle(&stop).await.unwrap();
        let question = inbound(&w, "wamid.2", "When are you open?").await;
        assert_eq!(w.handle(&question).await.unwrap(), Outcome::Silent);
        assert_eq!(sent(&w), [Phrases::OPTED_OUT], "one confirmation, then silence");
    }

    #[tokio::test(start_paused = true)]
    async fn a_voice_note_goes_to_a_person_with_a_notice_and_a_sticker_gets_nothing() {
        let w = worker(vec![says("should not be asked")], 0);
        let voice = inbound(&w, "wamid.1", "ignored").await;
        let key: InboundJob = serde_json::from_str(&voice).unwrap();
        let media =
            |kind| Content::Media { kind, caption: None, attachments: vec![crate::domain::Attachment::default()] };
        w.log.set_content(&key.message_key, &media(crate::domain::MediaKind::Audio)).await.unwrap();
        let sticker = inbound(&w, "wamid.2", "ignored").await;
        let sticker_key: InboundJob = serde_json::from_str(&sticker).unwrap();
        w.log.set_content(&sticker_key.message_key, &media(crate::domain::MediaKind::Sticker)).await.unwrap();

        assert_eq!(w.handle(&sticker).await.unwrap(), Outcome::Silent);
        assert_eq!(w.handle(&voice).await.unwrap(), Outcome::Answered);
        assert_eq!(sent(&w), [Phrases::MEDIA]);
        let jana = ContactId::parse_key(JANA).unwrap();
        let state = w.contacts.state(&w.tenants.0.id, &jana, Channel::Meta).await.unwrap();
        assert!(matches!(state.conversation.unwrap().mode, Mode::Human { .. }));
        assert!(w.model.requests.lock().unwrap().is_empty());
    }
}
