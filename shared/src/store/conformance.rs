//! The behaviour every adapter of a port must have, written once: the unit tests run it against
//! the in-memory adapters, the end-to-end tests against the DynamoDB ones and the emulator, so
//! the fast fakes cannot drift from what the real tables do. Each function panics on the first
//! difference. Give each run its own tenant: DynamoDB tables are shared between tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::audit;
use crate::domain::{
    Appointment, AppointmentStatus, AuditAction, AuditEntry, Channel, Consent, ConsentChange, ConsentSource, ContactId,
    Content, DeliveryStatus, InboundMessage, Lead, LeadStage, Mode, OutboundMessage, ProviderMessageId, RecordId, Slot,
    Stage, StatusUpdate, TenantId,
};
use crate::privacy::Expiry;
use crate::privacy::retention::{Category, RetentionDays};
use crate::store::audit::AuditLog;
use crate::store::contacts::{AppointmentStore, Booking, ContactStore, InboundActivity, LeadStore};
use crate::store::keys;
use crate::store::messages::{
    Claim, ConversationEntry, ConversationLog, DeliveryLog, InboundLog, NewInbound, PendingLog, Recorded, StatusApplied,
};

const T0: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn expiry(tenant: &TenantId, category: Category) -> Expiry {
    Expiry::new(tenant, category, T0, &RetentionDays::default())
}

/// A message's key as ingest computes it (a keyed hash of the provider id inside), so that an
/// adapter reading anything but the stored id back would be caught.
fn message_key(tenant: &TenantId, id: &ProviderMessageId) -> String {
    let refs = crate::privacy::Pseudonymizer::new(b"conformance");
    keys::message_key(tenant, Channel::Meta, &refs.message_ref(Channel::Meta, id.as_str()))
}

fn contact(n: u32) -> ContactId {
    ContactId::parse_key(&format!("+491511234{n:04}")).expect("a phone number")
}

fn inbound(id: &str, from: &ContactId, sent_at: i64, body: &str) -> InboundMessage {
    InboundMessage {
        channel: Channel::Meta,
        id: ProviderMessageId::parse(id).expect("id"),
        contact: from.clone(),
        profile_name: Some("Jana".into()),
        sent_at,
        reply_to: None,
        content: Content::Text { body: body.into() },
    }
}

/// `InboundLog`, `DeliveryLog`, `ConversationLog` and `PendingLog`.
pub async fn messages<L>(log: &L, tenant: &TenantId)
where
    L: InboundLog + DeliveryLog + ConversationLog + PendingLog,
{
    let jana = contact(1);
    let exp = expiry(tenant, Category::Messages);
    let m = inbound("wamid.c1", &jana, T0, "Do you open on Saturday?");
    let key = message_key(tenant, &m.id);
    let contact_key = jana.key();
    let new = NewInbound {
        tenant,
        message: &m,
        key: &key,
        contact: &contact_key,
        received_at: T0 + 1,
        expiry: &exp,
        attempt: "attempt-1",
        lease_until_ms: (T0 + 10) * 1000,
        sweep_at_ms: (T0 + 300) * 1000,
    };
    // Stored once; a second write finds what the first stored.
    assert_eq!(log.record_inbound(&new).await.unwrap(), Recorded::New);
    let again = log.record_inbound(&NewInbound { attempt: "attempt-2", ..new }).await.unwrap();
    let Recorded::Existing(state) = again else { panic!("a duplicate must be found: {again:?}") };
    assert_eq!(
        (state.stage, state.attempt.as_deref(), state.received_at),
        (Stage::Received, Some("attempt-1"), T0 + 1)
    );
    assert_eq!(state.lease_until_ms, (T0 + 10) * 1000);
    // The stored message reads back whole.
    let stored = log.inbound(&key).await.unwrap().expect("stored");
    assert_eq!((&stored.tenant, &stored.message), (tenant, &m));

    // Pending until answered: due only from its sweep time, earliest first, in its own shard.
    let shard = keys::shard_of(&key);
    assert!(log.due(tenant, shard, (T0 + 299) * 1000, 10).await.unwrap().is_empty());
    let due = log.due(tenant, shard, (T0 + 300) * 1000, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].key.as_str(), due[0].contact.as_str(), due[0].requeues),
        (key.as_str(), contact_key.as_str(), 0)
    );
    assert!(log.reschedule(&key, (T0 + 900) * 1000, 1).await.unwrap());
    assert!(log.due(tenant, shard, (T0 + 899) * 1000, 10).await.unwrap().is_empty());
    assert_eq!(log.due(tenant, shard, (T0 + 900) * 1000, 10).await.unwrap()[0].requeues, 1);

    // Stages move forward only; a claim is exclusive until its lease ends.
    log.mark_queued(&key).await.unwrap();
    assert_eq!(log.inbound_state(&key).await.unwrap().unwrap().stage, Stage::Queued);
    let Claim::Claimed(claimed) = log.claim(&key, T0 * 1000, (T0 + 60) * 1000).await.unwrap() else {
        panic!("a queued message is claimed")
    };
    assert_eq!((&claimed.message, claimed.state.stage), (&m, Stage::Answering), "the claim returns the message");
    // What a message says can be replaced (media gets the key of our copy); nothing else moves.
    let edited = Content::Text { body: "edited".into() };
    log.set_content(&key, &edited).await.unwrap();
    let stored = log.inbound(&key).await.unwrap().unwrap();
    assert_eq!((&stored.message.content, stored.state.stage), (&edited, Stage::Answering));
    log.set_content(&key, &m.content).await.unwrap();
    log.set_content("nobody#MSG#meta#x", &edited).await.unwrap();
    assert!(log.inbound("nobody#MSG#meta#x").await.unwrap().is_none(), "never creates a message");
    log.mark_queued(&key).await.unwrap();
    assert_eq!(log.inbound_state(&key).await.unwrap().unwrap().stage, Stage::Answering, "never back to queued");
    assert_eq!(
        log.claim(&key, (T0 + 30) * 1000, (T0 + 90) * 1000).await.unwrap(),
        Claim::Busy { until_ms: (T0 + 60) * 1000 }
    );
    assert!(
        matches!(log.claim(&key, (T0 + 61) * 1000, (T0 + 120) * 1000).await.unwrap(), Claim::Claimed(_)),
        "an expired lease is taken over"
    );
    log.complete(&key).await.unwrap();
    assert_eq!(log.claim(&key, (T0 + 200) * 1000, (T0 + 260) * 1000).await.unwrap(), Claim::Answered);
    assert!(log.due(tenant, shard, i64::MAX / 2, 10).await.unwrap().is_empty(), "answered leaves the pending index");
    assert!(!log.reschedule(&key, 0, 2).await.unwrap());
    assert_eq!(log.claim("nobody#MSG#meta#x", 0, 1).await.unwrap(), Claim::Missing);

    // Outbound: recorded under our id before the send, then tied to the provider's id.
    let out = OutboundMessage {
        id: RecordId::parse("out-1").unwrap(),
        channel: Channel::Meta,
        contact: jana.clone(),
        created_at: T0 + 2,
        content: Content::Text { body: "Yes, 9 to 13.".into() },
        in_reply_to: Some(m.id.clone()),
        provider_id: None,
    };
    assert_eq!(log.record_outbound(tenant, &out, &exp).await.unwrap(), None, "recorded first");
    let again = OutboundMessage { content: Content::Text { body: "other".into() }, ..out.clone() };
    assert_eq!(log.record_outbound(tenant, &again, &exp).await.unwrap(), Some(out.clone()), "the first record stands");
    // A refused send is marked unsent: still found (the answer was attempted), and a later
    // attempt records (and sends) it afresh.
    log.discard_outbound(tenant, &out.id).await.unwrap();
    assert!(log.outbound(tenant, &out.id).await.unwrap().is_some());
    let conversation = log.recent(tenant, &jana, 50).await.unwrap();
    assert!(
        !conversation.iter().any(|e| matches!(e, ConversationEntry::Outbound(o) if o.id == out.id)),
        "an answer that never went out is not part of the conversation"
    );
    assert_eq!(log.record_outbound(tenant, &out, &exp).await.unwrap(), None);
    assert_eq!(log.record_outbound(tenant, &out, &exp).await.unwrap(), Some(out.clone()), "recorded again, once");
    // A provider id for a message never recorded is a conflict, not something to retry.
    let stray = ProviderMessageId::parse("wamid.stray").unwrap();
    let unknown =
        log.attach_provider_id(tenant, &RecordId::parse("never").unwrap(), Channel::Meta, &stray, &exp, &[]).await;
    assert!(matches!(unknown, Err(crate::store::StoreError::Conflict(_))), "{unknown:?}");
    let provider = ProviderMessageId::parse("wamid.out-1").unwrap();
    // A status may overtake our record of the provider's id.
    let sent = StatusUpdate {
        channel: Channel::Meta,
        id: provider.clone(),
        status: DeliveryStatus::Delivered,
        at: T0 + 3,
        error_code: None,
    };
    let stub = expiry(tenant, Category::IdempotencyKeys);
    assert_eq!(log.apply_status(tenant, &sent, &stub).await.unwrap(), StatusApplied::Applied);
    log.attach_provider_id(tenant, &out.id, Channel::Meta, &provider, &exp, &[]).await.unwrap();
    let read = StatusUpdate { status: DeliveryStatus::Read, at: T0 + 4, ..sent.clone() };
    assert_eq!(log.apply_status(tenant, &read, &stub).await.unwrap(), StatusApplied::Applied);
    assert_eq!(log.apply_status(tenant, &sent, &stub).await.unwrap(), StatusApplied::Stale);
    let failed = StatusUpdate { status: DeliveryStatus::Failed, error_code: Some(131047), at: T0 + 5, ..sent };
    assert_eq!(log.apply_status(tenant, &failed, &stub).await.unwrap(), StatusApplied::Applied);
    let delivery = log.delivery(tenant, Channel::Meta, &provider).await.unwrap().expect("delivery record");
    assert_eq!(
        (delivery.status, delivery.error_code, delivery.outbound.as_ref()),
        (Some(DeliveryStatus::Failed), Some(131047), Some(&out.id))
    );
    let recorded = log.outbound(tenant, &out.id).await.unwrap().expect("outbound");
    assert_eq!(recorded, OutboundMessage { provider_id: Some(provider), ..out.clone() });

    // The conversation, both ways, in time order; bounded; only this contact's.
    let later = inbound("wamid.c2", &jana, T0 + 7, "Thanks!");
    let later_key = message_key(tenant, &later.id);
    log.record_inbound(&NewInbound { message: &later, key: &later_key, ..new }).await.unwrap();
    let other = contact(2);
    let elsewhere = inbound("wamid.c3", &other, T0 + 1, "Someone else");
    let elsewhere_key = message_key(tenant, &elsewhere.id);
    let other_key = other.key();
    log.record_inbound(&NewInbound { message: &elsewhere, key: &elsewhere_key, contact: &other_key, ..new })
        .await
        .unwrap();
    let recent = log.recent(tenant, &jana, 10).await.unwrap();
    let order: Vec<String> = recent
        .iter()
        .map(|e| match e {
            ConversationEntry::Inbound(m) => m.id.as_str().to_owned(),
            ConversationEntry::Outbound(o) => o.id.to_string(),
        })
        .collect();
    assert_eq!(order, ["wamid.c1", "out-1", "wamid.c2"]);
    // Whole messages, as stored (what the conversation index projects is enough to show them).
    assert_eq!(recent[0], ConversationEntry::Inbound(m.clone()));
    assert_eq!(recent[1], ConversationEntry::Outbound(recorded.clone()));
    assert_eq!(log.recent(tenant, &jana, 2).await.unwrap().len(), 2);
    let last_two = log.recent(tenant, &jana, 2).await.unwrap();
    assert!(
        matches!(&last_two[1], ConversationEntry::Inbound(m) if m.id.as_str() == "wamid.c2"),
        "the most recent ones"
    );
}

/// `ContactStore`, `LeadStore` and `AppointmentStore`.
pub async fn contacts<S>(store: Arc<S>, tenant: &TenantId)
where
    S: ContactStore + LeadStore + AppointmentStore + 'static,
{
    let jana = contact(1);
    let exp = expiry(tenant, Category::Messages);
    assert_eq!(store.state(tenant, &jana, Channel::Meta).await.unwrap(), Default::default());
    let activity = InboundActivity { contact: &jana, channel: Channel::Meta, profile_name: Some("Jana"), at: T0 };
    store.record_activity(tenant, activity, &exp).await.unwrap();
    store.record_activity(tenant, InboundActivity { at: T0 + 60, profile_name: None, ..activity }, &exp).await.unwrap();
    // Older activity (a message queued again late) moves nothing back.
    let late = InboundActivity { at: T0 + 30, profile_name: Some("Old Name"), ..activity };
    store.record_activity(tenant, late, &exp).await.unwrap();
    let state = store.state(tenant, &jana, Channel::Meta).await.unwrap();
    assert_eq!(state.conversation.as_ref().unwrap().last_inbound_at, Some(T0 + 60));
    // An older message on another channel: the contact keeps its newer activity, that channel's
    // conversation records its own.
    let other_channel = InboundActivity { channel: Channel::Twilio, at: T0 + 45, profile_name: None, ..activity };
    store.record_activity(tenant, other_channel, &exp).await.unwrap();
    let twilio = store.state(tenant, &jana, Channel::Twilio).await.unwrap();
    assert_eq!(twilio.contact.as_ref().unwrap().last_inbound_at, T0 + 60);
    assert_eq!(twilio.conversation.unwrap().last_inbound_at, Some(T0 + 45));
    let c = state.contact.expect("contact");
    assert_eq!(
        (c.first_seen, c.last_inbound_at, c.consent, c.profile_name.as_deref()),
        (T0, T0 + 60, Consent::OptedIn, Some("Jana"))
    );
    let conversation = state.conversation.expect("conversation");
    assert!(conversation.window_open(T0 + 3600) && conversation.mode == Mode::Assistant);

    // Consent never moves back in time; every change is kept in order.
    let out = ConsentChange { consent: Consent::OptedOut, at_ms: T0 * 1000 + 5_000, source: ConsentSource::Keyword };
    let earlier_in =
        ConsentChange { consent: Consent::OptedIn, at_ms: T0 * 1000 + 1_000, source: ConsentSource::Keyword };
    assert!(store.set_consent(tenant, &jana, out, &exp).await.unwrap());
    assert!(!store.set_consent(tenant, &jana, earlier_in, &exp).await.unwrap(), "a late, older change does not win");
    let state = store.state(tenant, &jana, Channel::Meta).await.unwrap();
    assert_eq!(state.contact.unwrap().consent, Consent::OptedOut);
    assert_eq!(store.consent_history(tenant, &jana).await.unwrap(), vec![earlier_in, out]);

    // Human mode and the template flag, per channel.
    let human = Mode::Human { since: T0 + 100, reason: Some("asked for a person".into()) };
    store.set_mode(tenant, &jana, Channel::Meta, &human, &exp).await.unwrap();
    store.set_needs_template(tenant, &jana, Channel::Meta, true, &exp).await.unwrap();
    let conversation = store.state(tenant, &jana, Channel::Meta).await.unwrap().conversation.unwrap();
    assert_eq!((conversation.mode, conversation.needs_template), (human.clone(), true));
    let twilio = store.state(tenant, &jana, Channel::Twilio).await.unwrap().conversation.unwrap();
    assert_eq!((twilio.mode, twilio.needs_template), (Mode::Assistant, false), "per channel");
    store.set_mode(tenant, &jana, Channel::Meta, &Mode::Assistant, &exp).await.unwrap();
    // A handoff on a channel the contact never wrote on creates the conversation.
    store.set_mode(tenant, &contact(9), Channel::Twilio, &human, &exp).await.unwrap();
    assert_eq!(store.state(tenant, &contact(9), Channel::Twilio).await.unwrap().conversation.unwrap().mode, human);
    assert_eq!(store.state(tenant, &jana, Channel::Meta).await.unwrap().conversation.unwrap().mode, Mode::Assistant);

    // Leads per contact and per stage, latest change first.
    let lead = |id: &str, who: &ContactId, stage, at| Lead {
        id: RecordId::parse(id).unwrap(),
        contact: who.clone(),
        name: Some("Jana Novak".into()),
        email: Some("jana@example.com".into()),
        phone: None,
        interest: Some("whitening".into()),
        score: 70,
        stage,
        created_at_ms: at,
        updated_at_ms: at,
    };
    let leads = expiry(tenant, Category::Leads);
    store.save_lead(tenant, &lead("l1", &jana, LeadStage::New, 1), &leads).await.unwrap();
    store.save_lead(tenant, &lead("l2", &contact(2), LeadStage::New, 2), &leads).await.unwrap();
    store.save_lead(tenant, &lead("l3", &jana, LeadStage::Won, 3), &leads).await.unwrap();
    let ids = |ls: Vec<Lead>| ls.into_iter().map(|l| l.id.to_string()).collect::<Vec<_>>();
    let mut of_jana = ids(store.leads_of(tenant, &jana).await.unwrap());
    of_jana.sort();
    assert_eq!(of_jana, ["l1", "l3"]);
    assert_eq!(ids(store.leads_in_stage(tenant, LeadStage::New, 10).await.unwrap()), ["l2", "l1"]);
    // A stage change moves the lead between stages.
    store.save_lead(tenant, &lead("l1", &jana, LeadStage::Qualified, 4), &leads).await.unwrap();
    assert_eq!(ids(store.leads_in_stage(tenant, LeadStage::New, 10).await.unwrap()), ["l2"]);

    // A slot is taken once, also by two bookings at the same time.
    let slots = |times: &[&str]| times.iter().map(|t| Slot::parse("2026-03-02", t).unwrap()).collect::<Vec<_>>();
    let appointment = |id: &str, who: &ContactId, times: &[&str]| Appointment {
        id: RecordId::parse(id).unwrap(),
        contact: who.clone(),
        service: "Cleaning".into(),
        start: T0 + 86_400 * 60,
        end: T0 + 86_400 * 60 + 3600,
        slots: slots(times),
        status: AppointmentStatus::Booked,
        created_at: T0,
    };
    let appts = expiry(tenant, Category::Appointments);
    let (a, b) = (appointment("a1", &jana, &["09:00", "09:30"]), appointment("a2", &contact(2), &["09:30", "10:00"]));
    let (s1, s2) = (store.clone(), store.clone());
    let (t1, t2) = (tenant.clone(), tenant.clone());
    let (e1, e2) = (appts.clone(), appts.clone());
    let race = futures::join!(async move { s1.book(&t1, &a, &e1).await.unwrap() }, async move {
        s2.book(&t2, &b, &e2).await.unwrap()
    });
    let mut outcomes = [race.0, race.1];
    outcomes.sort_by_key(|o| *o == Booking::SlotTaken);
    assert_eq!(outcomes, [Booking::Booked, Booking::SlotTaken], "exactly one of two overlapping bookings wins");
    let mut taken: Vec<String> =
        store.taken_slots(tenant, "2026-03-02").await.unwrap().into_iter().map(|s| s.time).collect();
    taken.sort();
    assert!(taken == ["09:00", "09:30"] || taken == ["09:30", "10:00"], "{taken:?}: the loser wrote nothing");

    // An appointment holding a slot twice is refused whole.
    let twice = appointment("a9", &contact(4), &["16:00", "16:00"]);
    assert!(matches!(store.book(tenant, &twice, &appts).await, Err(crate::store::StoreError::Conflict(_))));
    assert!(!store.taken_slots(tenant, "2026-03-02").await.unwrap().iter().any(|s| s.time == "16:00"));

    // A fresh booking on free slots, found by its hour; only its own contact can cancel it.
    let c = appointment("a3", &contact(3), &["14:00"]);
    assert_eq!(store.book(tenant, &c, &appts).await.unwrap(), Booking::Booked);
    let hour = keys::utc_hour(c.start);
    assert!(store.due_in_hour(tenant, &hour).await.unwrap().iter().any(|x| x.id == c.id));
    assert_eq!(store.cancel(tenant, &jana, &c.id).await.unwrap(), None, "another contact's appointment is not found");
    assert_eq!(store.appointments_of(tenant, &contact(3)).await.unwrap()[0].status, AppointmentStatus::Booked);
    let cancelled = store.cancel(tenant, &contact(3), &c.id).await.unwrap().expect("cancelled");
    assert_eq!(cancelled.status, AppointmentStatus::Cancelled);
    assert_eq!(store.cancel(tenant, &contact(3), &c.id).await.unwrap(), None, "nothing left to cancel");
    assert!(
        !store.taken_slots(tenant, "2026-03-02").await.unwrap().iter().any(|s| s.time == "14:00"),
        "its slot is free again"
    );
    assert!(!store.due_in_hour(tenant, &hour).await.unwrap().iter().any(|x| x.id == c.id), "no reminder for it");
    let again = appointment("a4", &contact(2), &["14:00"]);
    assert_eq!(store.book(tenant, &again, &appts).await.unwrap(), Booking::Booked);
}

/// `AuditLog`: appends chain, concurrent appends never fork, reads are in order.
pub async fn audit<A: AuditLog + 'static>(log: Arc<A>, tenant: &TenantId) {
    let entry = |n: u64| AuditEntry {
        at_ms: T0 * 1000 + n as i64,
        action: AuditAction::ConsentChange,
        actor: "reply-worker".into(),
        subject: Some(format!("hash-{n}")),
        counts: BTreeMap::from([("changes".to_owned(), 1)]),
    };
    let first = log.append(tenant, entry(1), T0 + 86_400).await.unwrap();
    assert_eq!((first.seq, first.prev_hash.as_str()), (1, audit::GENESIS));
    let appends: Vec<_> = (2..=9)
        .map(|n| {
            let (log, tenant) = (log.clone(), tenant.clone());
            async move { log.append(&tenant, entry(n), T0 + 86_400).await.unwrap() }
        })
        .collect();
    let appended = futures::future::join_all(appends).await;
    let mut seqs: Vec<u64> = appended.iter().map(|r| r.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (2..=9).collect::<Vec<_>>(), "every append got its own place");
    let chain = log.read(tenant, 0, 100).await.unwrap();
    assert_eq!(chain.len(), 9);
    assert_eq!(audit::verify(&chain, None), Ok(9), "concurrent appends never fork the chain");
    let tail = log.read(tenant, 7, 100).await.unwrap();
    assert_eq!(tail.iter().map(|r| r.seq).collect::<Vec<_>>(), [8, 9]);
    assert_eq!(audit::verify(&tail, Some((8, chain[6].hash.as_str()))), Ok(2));
}

/// `PrivacyRequests`: created once (a redelivery finds the first), queued once, completed once
/// with the sealed subject removed, listed per tenant, overdue ones found.
fn missing_id() -> crate::domain::RecordId {
    crate::domain::RecordId::parse("never-created").unwrap()
}

pub async fn privacy_requests<P: crate::store::requests::PrivacyRequests>(store: &P, tenant: &TenantId) {
    use crate::crypto::Sealed;
    use crate::privacy::requests::{
        Completion, PrivacyRequest, RequestKind, RequestResult, RequestSource, RequestState, shopify_request_id,
    };
    use crate::store::requests::{Completed, Created};

    let sealed = Sealed { key_id: "k".into(), wrapped_key: "w".into(), nonce: "n".into(), ciphertext: "c".into() };
    let id = shopify_request_id("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    let source = RequestSource::Shopify { webhook_id: "b54557e4".into(), topic: "customers/redact".into() };
    let at = T0 * 1000;
    let request =
        PrivacyRequest::received(tenant.clone(), id.clone(), RequestKind::Erasure, source, at, Some(sealed.clone()));
    assert!(store.get(tenant, &id).await.unwrap().is_none());
    assert_eq!(store.create(&request).await.unwrap(), Created::New);
    assert_eq!(store.get(tenant, &id).await.unwrap().as_ref(), Some(&request), "reads back whole");
    // A redelivery (even one that would say something else) finds the first and changes nothing.
    let other = PrivacyRequest { kind: RequestKind::Export, received_at_ms: at + 5, ..request.clone() };
    assert_eq!(store.create(&other).await.unwrap(), Created::Existing(Box::new(request.clone())));

    // Queued once; never back from done.
    assert!(store.mark_queued(tenant, &id, at + 10).await.unwrap());
    assert!(!store.mark_queued(tenant, &id, at + 10).await.unwrap(), "queued once");
    let queued = store.get(tenant, &id).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.queued_at_ms), (RequestState::Queued, Some(at + 10)));
    assert!(store.requeued(tenant, &id, at + 15).await.unwrap(), "a queued one's job sent again");
    assert_eq!(store.get(tenant, &id).await.unwrap().unwrap().queued_at_ms, Some(at + 15));
    assert!(!store.requeued(tenant, &missing_id(), at).await.unwrap());
    let Created::Existing(found) = store.create(&request).await.unwrap() else { panic!("exists") };
    assert_eq!(found.state, RequestState::Queued, "a redelivery sees it queued");
    let missing = crate::domain::RecordId::parse("never-created").unwrap();
    assert!(matches!(store.mark_queued(tenant, &missing, at).await, Err(crate::store::StoreError::Conflict(_))));

    // A wipe, received later, with no subject; and an export already overdue.
    let wipe_id = crate::domain::RecordId::parse("cancel-1767225600").unwrap();
    let wipe = PrivacyRequest::received(
        tenant.clone(),
        wipe_id.clone(),
        RequestKind::Wipe,
        RequestSource::Operator { actor: "retention-purge".into() },
        at + 1_000,
        None,
    );
    assert_eq!(store.create(&wipe).await.unwrap(), Created::New);
    let due = request.due_at_ms;
    let overdue: Vec<_> = store.overdue(tenant, due + 1).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(overdue, std::slice::from_ref(&id), "past its deadline and not done");
    assert!(store.overdue(tenant, due).await.unwrap().is_empty(), "due is not overdue");

    // Completed once: the sealed subject goes in the same write; the result stays.
    let result = RequestResult {
        objects: vec![format!("{tenant}/exports/{id}/subject.json")],
        links: vec!["https://example.com/presigned".into()],
        counts: BTreeMap::from([("messages".into(), 12), ("leads".into(), 1)]),
        unmatched: true,
    };
    let completion = Completion { completed_at_ms: at + 60_000, result, subject_hash: Some("hash-1".into()) };
    let Completed::Now(done) = store.complete(tenant, &id, &completion).await.unwrap() else { panic!("completed now") };
    assert_eq!(
        (done.state, done.completed_at_ms, done.subject.as_ref(), done.subject_hash.as_deref()),
        (RequestState::Done, Some(at + 60_000), None, Some("hash-1"))
    );
    assert_eq!(done.result.as_ref(), Some(&completion.result));
    let stored = store.get(tenant, &id).await.unwrap().unwrap();
    assert_eq!(stored, *done, "what complete returned is what is stored");
    assert_eq!((stored.kind, stored.received_at_ms, stored.due_at_ms), (RequestKind::Erasure, at, due));
    let later = Completion { completed_at_ms: at + 90_000, subject_hash: None, ..completion.clone() };
    assert_eq!(store.complete(tenant, &id, &later).await.unwrap(), Completed::Already(Box::new(stored.clone())));
    assert!(!store.mark_queued(tenant, &id, at + 10).await.unwrap(), "done never goes back to queued");
    assert!(store.overdue(tenant, due + 1).await.unwrap().is_empty(), "done is never overdue");
    assert!(matches!(store.complete(tenant, &missing, &completion).await, Err(crate::store::StoreError::Conflict(_))));

    // A request completed straight from received (its queued mark was lost) keeps its hash.
    let no_hash = Completion { subject_hash: None, ..completion.clone() };
    let Completed::Now(wiped) = store.complete(tenant, &wipe_id, &no_hash).await.unwrap() else { panic!("now") };
    assert_eq!((wiped.state, wiped.subject_hash.as_deref()), (RequestState::Done, None));

    // Failed with its reason, still open (overdue in time); queued again, the reason goes; a
    // done request never fails.
    let broken_id = crate::domain::RecordId::parse("broken-1").unwrap();
    let broken = PrivacyRequest { id: broken_id.clone(), ..request.clone() };
    assert_eq!(store.create(&broken).await.unwrap(), Created::New);
    assert!(store.fail(tenant, &broken_id, "no subject").await.unwrap());
    let failed = store.get(tenant, &broken_id).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.failure.as_deref()), (RequestState::Failed, Some("no subject")));
    assert!(failed.subject.is_some(), "kept sealed for a requeue");
    let overdue: Vec<_> = store.overdue(tenant, due + 1).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(overdue, std::slice::from_ref(&broken_id), "failed is still open");
    assert!(!store.mark_queued(tenant, &broken_id, at).await.unwrap(), "a late mark never undoes a failure");
    assert_eq!(store.get(tenant, &broken_id).await.unwrap().unwrap().state, RequestState::Failed);
    assert!(store.reopen(tenant, &broken_id, at + 20).await.unwrap());
    assert!(!store.reopen(tenant, &broken_id, at + 20).await.unwrap(), "only a failed one reopens");
    let requeued = store.get(tenant, &broken_id).await.unwrap().unwrap();
    assert_eq!((requeued.state, requeued.failure, requeued.queued_at_ms), (RequestState::Queued, None, Some(at + 20)));
    // Failed again, then completed: the reason goes with completion.
    assert!(store.fail(tenant, &broken_id, "no subject").await.unwrap());
    let Completed::Now(finished) = store.complete(tenant, &broken_id, &completion).await.unwrap() else {
        panic!("completed now")
    };
    assert_eq!((finished.state, finished.failure), (RequestState::Done, None));
    assert!(!store.fail(tenant, &id, "no subject").await.unwrap(), "done never fails");
    assert_eq!(store.get(tenant, &id).await.unwrap().unwrap().state, RequestState::Done);
    assert!(!store.fail(tenant, &missing, "no subject").await.unwrap());
    assert!(store.get(tenant, &missing).await.unwrap().is_none(), "failing creates nothing");

    // Listed per tenant only.
    let mut ids: Vec<_> = store.list(tenant).await.unwrap().into_iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = [wipe_id, id.clone(), broken_id];
    expected.sort();
    assert_eq!(ids, expected);
    let elsewhere = TenantId::parse(&format!("{}-other", tenant.as_str())).unwrap();
    assert!(store.list(&elsewhere).await.unwrap().is_empty());
    assert!(store.get(&elsewhere, &id).await.unwrap().is_none());
}
