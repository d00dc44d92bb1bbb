//! Privacy requests end to end: customers' data seeded through the real webhook and reply
//! worker (a scripted model captures a lead and books), then exports, erasures and a tenant
//! wipe run by the privacy worker through its queue or its Invoke API, against the emulator.
//! Completeness is checked by sweeping every table (a Scan is fine in a test) and every object.

use std::collections::BTreeMap;

use concierge::domain::{AuditAction, ContactId, RecordId, TenantId};
use concierge::privacy::requests::{PrivacyRequest, RequestKind, RequestSource, RequestState, Subject};
use concierge::store::audit::{AuditLog, DynamoAuditLog};
use concierge::store::contacts::DynamoContacts;
use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};
use concierge_e2e::*;
use serde_json::{Value, json};

const JANA: &str = "4915112345678";
const JANA_NAME: &str = "Jana Novak";
const JANA_EMAIL: &str = "jana.novak@example.com";
const JANA_TEXTS: [&str; 2] = ["I would like a cleaning on Monday please", "Is this tooth ok?"];
const MAX: &str = "4915199887766";
const MAX_NAME: &str = "Max Mustermann";
const MAX_TEXT: &str = "Do you whiten teeth as well";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// One Meta notification from `from` (shown as `name`) to `number`.
fn from_customer(number: &str, from: &str, name: &str, message: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [
    {"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": number},
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": [message]
    }}]}]}))
    .unwrap()
}

async fn say(t: &TestStack, number: &str, from: &str, name: &str, id: &str, body: &str) {
    let message = text_message(from, id, now(), body);
    assert_eq!(t.post_meta(&from_customer(number, from, name, message)).await.status, 200);
    t.deliver().await;
}

/// The next Monday at least two days ahead, in Berlin (acme-dental's zone and hours).
fn next_monday() -> String {
    let today = jiff::Timestamp::now().in_tz("Europe/Berlin").unwrap().date();
    let mut day = today.checked_add(jiff::Span::new().days(2)).unwrap();
    while day.weekday() != jiff::civil::Weekday::Monday {
        day = day.checked_add(jiff::Span::new().days(1)).unwrap();
    }
    day.to_string()
}

/// A stack whose model captures Jana's lead and books her; then Jana writes twice (a text and
/// a photo, copied into the bucket) and Max once, all to acme-dental.
async fn seeded() -> (TestStack, wiremock::MockServer) {
    let (server, _) = ScriptedModel::serve(vec![
        tool_call("c1", "capture_lead", json!({"name": JANA_NAME, "email": "[EMAIL_1]", "interest": "cleaning"})),
        tool_call("c2", "book_appointment", json!({"date": next_monday(), "time": "10:00", "service": "Cleaning"})),
        text_reply("See you on Monday."),
    ])
    .await;
    let base = format!("{}/v1", server.uri());
    let t = TestStack::spawn_with(move |o| {
        o.shell = shell(&[("LLM_PROVIDER", "openai"), ("LLM_BASE_URL", &base), ("LLM_API_KEY", "test-key")]);
    })
    .await;
    seed_customers(&t).await;
    (t, server)
}

async fn seed_customers(t: &TestStack) {
    let first = format!("{} ({JANA_EMAIL})", JANA_TEXTS[0]);
    say(t, NUMBER_A, JANA, JANA_NAME, "wamid.jana1", &first).await;
    let image = json!({"from": JANA, "id": "wamid.jana2", "timestamp": now().to_string(), "type": "image",
                       "image": {"id": "777", "mime_type": "image/jpeg", "caption": JANA_TEXTS[1]}});
    assert_eq!(t.post_meta(&from_customer(NUMBER_A, JANA, JANA_NAME, image)).await.status, 200);
    t.deliver().await;
    say(t, NUMBER_A, MAX, MAX_NAME, "wamid.max1", MAX_TEXT).await;
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

fn requests(t: &TestStack) -> DynamoPrivacyRequests {
    DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"))
}

/// Records a request as the Shopify webhook or the operator would (subject sealed).
async fn request(t: &TestStack, tenant_id: &str, kind: RequestKind, subject: Option<Subject>) -> RecordId {
    let tenant = tenant(tenant_id);
    let id = RecordId::generate();
    let sealed = match subject {
        Some(s) => Some(s.seal(&t.stack.master_key, &tenant, &id).await.unwrap()),
        None => None,
    };
    let source = RequestSource::Operator { actor: "e2e".into() };
    let request = PrivacyRequest::received(tenant, id.clone(), kind, source, now() * 1000, sealed);
    requests(t).create(&request).await.unwrap();
    id
}

/// The SQS event a job arrives in.
fn job_event(tenant: &str, request: &RecordId, delivery: usize) -> Value {
    json!({"Records": [{
        "messageId": format!("privacy-{delivery}"),
        "receiptHandle": "r",
        "body": json!({"tenant": tenant, "request": request.as_str()}).to_string(),
        "attributes": {"ApproximateReceiveCount": (delivery + 1).to_string()},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:privacy",
        "awsRegion": "us-east-1"
    }]})
}

fn worker(t: &TestStack) -> &std::sync::Arc<concierge_local::functions::LocalFunction> {
    t.function("PrivacyWorkerFunction")
}

/// Runs one job through the worker's Invoke API; returns the requests it made, per operation.
async fn run(t: &TestStack, tenant: &str, request: &RecordId) -> BTreeMap<String, u64> {
    let before = worker(t).requests.by_operation();
    let result = t.invoke("PrivacyWorkerFunction", &job_event(tenant, request, 0)).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]), "{result}");
    let mut made = worker(t).requests.by_operation();
    for (op, n) in before {
        *made.get_mut(&op).unwrap() -= n;
    }
    made.retain(|_, n| *n > 0);
    made
}

fn total(made: &BTreeMap<String, u64>) -> u64 {
    made.values().sum()
}

fn s3(t: &TestStack) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&t.stack.sdk).force_path_style(true).build())
}

/// Every object of the bucket: its key and content.
async fn objects(t: &TestStack) -> Vec<(String, String)> {
    let s3 = s3(t);
    let bucket = t.table("DataBucket");
    let listed = s3.list_objects_v2().bucket(&bucket).into_paginator().send().collect::<Vec<_>>().await;
    let mut out = Vec::new();
    for page in listed {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap().to_owned();
            let body = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap().body.collect().await.unwrap();
            out.push((key, String::from_utf8_lossy(&body.into_bytes()).into_owned()));
        }
    }
    out
}

const TABLES: [&str; 5] = ["MessagesTable", "ContactsTable", "TenantsTable", "RoutesTable", "AuditTable"];

/// Every item of every table and every object, as text.
async fn everything(t: &TestStack) -> String {
    let mut text = String::new();
    for table in TABLES {
        for item in t.scan(table).await {
            text.push_str(&format!("{table}: {item:?}\n"));
        }
    }
    for (key, body) in objects(t).await {
        text.push_str(&format!("object {key}: {body}\n"));
    }
    text
}

fn jana() -> ContactId {
    ContactId::parse_key(&format!("+{JANA}")).unwrap()
}

async fn request_record(t: &TestStack, tenant_id: &str, id: &RecordId) -> PrivacyRequest {
    requests(t).get(&tenant(tenant_id), id).await.unwrap().expect("the request")
}

#[tokio::test]
async fn an_export_holds_everything_about_the_customer_as_json_and_csv() {
    let (t, _model) = seeded().await;
    let logs = LogCapture::start();
    // By phone, as a shop would give it.
    let subject = Subject { phone: Some("+49 151 12345678".into()), ..Subject::default() };
    let id = request(&t, TENANT_A, RequestKind::Export, Some(subject)).await;
    let made = run(&t, TENANT_A, &id).await;
    assert_eq!(made.get("DynamoDB:Scan"), None, "{made:?}");

    let done = request_record(&t, TENANT_A, &id).await;
    assert_eq!(done.state, RequestState::Done);
    assert!(done.subject.is_none(), "the sealed subject goes with completion");
    let result = done.result.unwrap();
    let prefix = format!("{TENANT_A}/exports/{id}/");
    assert_eq!(result.objects.len(), 5);
    assert!(result.objects.iter().all(|k| k.starts_with(&prefix)), "{:?}", result.objects);
    assert_eq!(result.counts["messages"], 4, "two from Jana, two answers: {:?}", result.counts);

    // The links open the objects (presigned for 7 days), and each object is tagged for the
    // bucket's 7-day lifecycle rule.
    let mut files = BTreeMap::new();
    for (key, link) in result.objects.iter().zip(&result.links) {
        assert!(link.contains("X-Amz-Expires=604800"), "{link}");
        let body = reqwest::get(link).await.unwrap().error_for_status().unwrap().text().await.unwrap();
        files.insert(key.rsplit('/').next().unwrap().to_owned(), body);
        let tags = s3(&t).get_object_tagging().bucket(t.table("DataBucket")).key(key).send().await.unwrap();
        let tags: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(tags, [("retention", "export-7d")], "{key}");
    }

    let doc: Value = serde_json::from_str(&files["subject.json"]).unwrap();
    let contact = &doc["contacts"][0];
    assert_eq!(contact["contact"], format!("+{JANA}"));
    assert_eq!(contact["profile"]["profile_name"], JANA_NAME);
    assert_eq!(contact["leads"][0]["email"], JANA_EMAIL);
    assert_eq!(contact["appointments"][0]["service"], "Cleaning");
    let messages = contact["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[0]["direction"], "inbound");
    assert!(messages[0]["content"]["body"].as_str().unwrap().contains(JANA_TEXTS[0]));
    assert_eq!(messages.iter().filter(|m| m["direction"] == "outbound").count(), 2);
    let photo = messages.iter().find(|m| m["content"]["type"] == "media").expect("the photo");
    let media = photo["media_links"][0].as_str().expect("a link to the stored photo");
    let bytes = reqwest::get(media).await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], concierge_local::sandbox::media_content("777").as_slice());
    assert!(!files["subject.json"].contains(MAX_TEXT) && !files["subject.json"].contains(MAX_NAME));

    let csv = &files["messages.csv"];
    assert!(csv.starts_with("contact,at,direction,channel,type,text,media_links\r\n"), "{csv}");
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.contains(JANA_TEXTS[1]) && csv.contains("inbound") && csv.contains("outbound"));
    assert!(files["leads.csv"].contains(JANA_EMAIL) && files["leads.csv"].contains(JANA_NAME));
    assert_eq!(files["appointments.csv"].lines().count(), 2);
    assert!(files["appointments.csv"].contains("Cleaning"));
    assert!(files["consent.csv"].starts_with("contact,at,consent,source"));

    // The export is on record in Jana's partition (an erasure will find its objects).
    let contacts = DynamoContacts::new(t.dynamodb.clone(), t.table("ContactsTable"));
    let records = contacts.records_of(&tenant(TENANT_A), &jana()).await.unwrap();
    assert_eq!(records.exports.len(), 1);
    assert_eq!(records.exports[0].objects, result.objects);

    // The audit trail says so, with a hashed subject.
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_A), 0, 100).await.unwrap();
    let export = entries.iter().find(|e| e.entry.action == AuditAction::Export).expect("an export entry");
    assert_eq!(export.entry.subject.as_deref(), Some(pseudonyms().contact(&tenant(TENANT_A), &jana()).as_str()));
    assert_eq!(export.entry.counts["messages"], 4);
    logs.assert_free_of(&[JANA, JANA_NAME, JANA_EMAIL, JANA_TEXTS[0], JANA_TEXTS[1]]);
}

#[tokio::test]
async fn an_erasure_leaves_nothing_of_the_customer_anywhere_and_everything_of_others() {
    let (t, _model) = seeded().await;
    let logs = LogCapture::start();
    // An earlier export, whose objects hold all of Jana's data.
    let export = request(
        &t,
        TENANT_A,
        RequestKind::Export,
        Some(Subject { contact: Some(format!("+{JANA}")), ..Subject::default() }),
    )
    .await;
    run(&t, TENANT_A, &export).await;
    let before = everything(&t).await;
    for personal in [JANA, JANA_NAME, JANA_EMAIL, JANA_TEXTS[0], JANA_TEXTS[1]] {
        assert!(before.contains(personal), "the seed should hold {personal:?}");
    }
    assert!(objects(&t).await.iter().any(|(k, _)| k.contains("/media/")), "the photo was copied");

    // Shopify names her by email only: the identity index finds her.
    let subject =
        Subject { email: Some(JANA_EMAIL.to_uppercase()), shopify_customer_id: Some("1".into()), ..Subject::default() };
    let id = request(&t, TENANT_A, RequestKind::Erasure, Some(subject)).await;
    let made = run(&t, TENANT_A, &id).await;

    let after = everything(&t).await;
    for personal in [JANA, JANA_NAME, JANA_EMAIL, JANA_TEXTS[0], JANA_TEXTS[1]] {
        assert!(!after.contains(personal), "{personal:?} survived the erasure:\n{after}");
    }
    assert!(!objects(&t).await.iter().any(|(k, _)| k.contains("/media/") || k.contains("/exports/")));
    // Max is untouched.
    for kept in [MAX, MAX_NAME, MAX_TEXT] {
        assert!(after.contains(kept), "{kept:?} of another customer went missing");
    }
    // What stays: a tombstone under her keyed hash, saying when (and that she never opted out).
    let contacts = DynamoContacts::new(t.dynamodb.clone(), t.table("ContactsTable"));
    let hash = pseudonyms().contact(&tenant(TENANT_A), &jana());
    assert!(contacts.erasure_of(&tenant(TENANT_A), &hash).await.unwrap().is_some_and(|(_, opted_out)| !opted_out));

    let done = request_record(&t, TENANT_A, &id).await;
    assert_eq!(done.state, RequestState::Done);
    assert!(done.subject.is_none());
    let counts = done.result.unwrap().counts;
    assert_eq!((counts["messages"], counts["leads"], counts["appointments"]), (4, 1, 1), "{counts:?}");
    assert_eq!(counts["slots"], 3, "45 minutes hold three 15-minute slots");
    // Requests grow with her items (a handful of each kind here), never a Scan.
    assert_eq!(made.get("DynamoDB:Scan"), None, "{made:?}");
    assert!(total(&made) <= 30, "{made:?}");
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_A), 0, 100).await.unwrap();
    let erasure = entries.iter().find(|e| e.entry.action == AuditAction::Erasure).expect("an erasure entry");
    assert_eq!(erasure.entry.subject.as_deref(), Some(hash.as_str()));
    logs.assert_free_of(&[JANA, JANA_NAME, JANA_EMAIL, JANA_TEXTS[0], JANA_TEXTS[1]]);
}

#[tokio::test]
async fn a_crash_mid_erasure_is_finished_by_the_retry_and_a_redelivery_changes_nothing() {
    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let (server, _) = ScriptedModel::serve(vec![
        tool_call("c1", "capture_lead", json!({"name": JANA_NAME, "email": "[EMAIL_1]"})),
        text_reply("Noted."),
    ])
    .await;
    let base = format!("{}/v1", server.uri());
    let t = TestStack::spawn_through_with(&proxy.endpoint, move |o| {
        o.shell = shell(&[("LLM_PROVIDER", "openai"), ("LLM_BASE_URL", &base), ("LLM_API_KEY", "test-key")]);
    })
    .await;
    seed_customers(&t).await;
    // Named by email only: the retry must still find her after the first attempt's deletes.
    let subject = Subject { email: Some(JANA_EMAIL.into()), ..Subject::default() };
    let id = request(&t, TENANT_A, RequestKind::Erasure, Some(subject)).await;

    // The worker dies when it comes to the contact's own items: her messages are gone by then.
    proxy.inject_where("BatchWriteItem", "LEAD#", Fault::Fail);
    let crashed = t.invoke("PrivacyWorkerFunction", &job_event(TENANT_A, &id, 0)).await;
    assert!(crashed.is_err(), "the job fails and stays on the queue: {crashed:?}");
    let half = everything(&t).await;
    assert!(!half.contains(JANA_TEXTS[0]), "the messages went first");
    assert!(half.contains(JANA_EMAIL), "the lead is still there");
    assert_eq!(request_record(&t, TENANT_A, &id).await.state, RequestState::Received);

    // The retry finishes the job.
    proxy.clear();
    let result = t.invoke("PrivacyWorkerFunction", &job_event(TENANT_A, &id, 1)).await.unwrap();
    assert_eq!(result["batchItemFailures"], json!([]));
    let after = everything(&t).await;
    for personal in [JANA, JANA_NAME, JANA_EMAIL, JANA_TEXTS[0], JANA_TEXTS[1]] {
        assert!(!after.contains(personal), "{personal:?} survived:\n{after}");
    }
    assert!(after.contains(MAX_TEXT));
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let erasures = |entries: Vec<concierge::domain::AuditRecord>| {
        entries.iter().filter(|e| e.entry.action == AuditAction::Erasure).count()
    };
    assert_eq!(erasures(audit.read(&tenant(TENANT_A), 0, 100).await.unwrap()), 1);

    // A redelivery: one read, nothing done, no second audit entry.
    let made = run(&t, TENANT_A, &id).await;
    assert_eq!(made, BTreeMap::from([("DynamoDB:GetItem".to_owned(), 1)]));
    assert_eq!(erasures(audit.read(&tenant(TENANT_A), 0, 100).await.unwrap()), 1);
}

#[tokio::test]
async fn a_long_history_is_streamed_in_parts_and_erased_with_requests_growing_with_it() {
    let t = TestStack::spawn().await;
    // 1,400 messages of 4 KB: more than one 5 MiB part for the JSON document and the CSV.
    concierge_e2e::history::store_history(&t, "+4917000000001", 1_400, 4_096).await;
    concierge_e2e::history::store_history(&t, "+4917000000002", 10, 4_096).await;
    let subject = |c: &str| Some(Subject { contact: Some(c.into()), ..Subject::default() });

    let id = request(&t, TENANT_A, RequestKind::Export, subject("+4917000000001")).await;
    let made = run(&t, TENANT_A, &id).await;
    assert_eq!(made.get("DynamoDB:Scan"), None);
    assert!(made.get("S3:UploadPart").copied().unwrap_or(0) >= 4, "two files of two parts each: {made:?}");
    assert_eq!(made.get("S3:CompleteMultipartUpload"), Some(&2), "{made:?}");
    let result = request_record(&t, TENANT_A, &id).await.result.unwrap();
    assert_eq!(result.counts["messages"], 1_400);
    let doc: Value =
        serde_json::from_str(&reqwest::get(&result.links[0]).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(doc["contacts"][0]["messages"].as_array().unwrap().len(), 1_400);
    assert!(doc["contacts"][0]["messages"][1_399]["content"]["body"].as_str().unwrap().starts_with("1399 "));

    // Erasure: the same contact and a small one; requests follow the items (batches of 25).
    let small = request(&t, TENANT_A, RequestKind::Erasure, subject("+4917000000002")).await;
    let small = run(&t, TENANT_A, &small).await;
    let large = request(&t, TENANT_A, RequestKind::Erasure, subject("+4917000000001")).await;
    let large = run(&t, TENANT_A, &large).await;
    assert_eq!(large.get("DynamoDB:Scan"), None);
    let writes = large["DynamoDB:BatchWriteItem"];
    // Each message and the answer it may have had: 2,800 keys in batches of 25.
    assert!((112..=130).contains(&writes), "{large:?}");
    assert!(total(&large) - total(&small) <= 1_400 / 10, "requests per item stay small: {small:?} {large:?}");
    assert!(t.messages().await.iter().all(|m| !s(m, "gsi1pk").ends_with("+4917000000001")));
}

#[tokio::test]
async fn a_tenant_wipe_leaves_nothing_of_the_tenant_but_hashed_audit_entries() {
    let (t, _model) = seeded().await;
    // bella-salon has customers, media and an export too.
    say(&t, NUMBER_B, "4915155555555", "Bella Kundin", "wamid.b1", "Can I book a haircut").await;
    let image = json!({"from": "4915155555555", "id": "wamid.b2", "timestamp": now().to_string(), "type": "image",
                       "image": {"id": "778", "mime_type": "image/jpeg", "caption": "This style"}});
    assert_eq!(t.post_meta(&from_customer(NUMBER_B, "4915155555555", "Bella Kundin", image)).await.status, 200);
    t.deliver().await;
    let export = request(
        &t,
        TENANT_B,
        RequestKind::Export,
        Some(Subject { contact: Some("+4915155555555".into()), ..Subject::default() }),
    )
    .await;
    run(&t, TENANT_B, &export).await;
    let before = everything(&t).await;
    assert!(before.contains("Bella Kundin") && before.contains(&format!("{TENANT_B}/media/")));

    let id = request(&t, TENANT_B, RequestKind::Wipe, None).await;
    let made = run(&t, TENANT_B, &id).await;
    assert_eq!(made.get("DynamoDB:Scan"), None, "{made:?}");

    for table in TABLES {
        for item in t.scan(table).await {
            let text = format!("{item:?}");
            if table == "AuditTable" {
                continue;
            }
            assert!(!text.contains(TENANT_B), "{table} still holds {text}");
        }
    }
    assert!(objects(&t).await.iter().all(|(k, _)| !k.starts_with(&format!("{TENANT_B}/"))));
    let after = everything(&t).await;
    for gone in ["Bella Kundin", "Can I book a haircut", "4915155555555", "Bella Hair Salon"] {
        assert!(!after.contains(gone), "{gone:?} survived the wipe");
    }
    // What stays of bella-salon: its audit trail, hashed subjects only, the wipe at its end.
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_B), 0, 100).await.unwrap();
    assert_eq!(entries.last().unwrap().entry.action, AuditAction::TenantWipe);
    assert!(entries.last().unwrap().entry.counts["message_items"] >= 4);
    // acme-dental is untouched.
    for kept in [JANA_NAME, JANA_EMAIL, MAX_TEXT, "Acme Dental Clinic"] {
        assert!(after.contains(kept), "{kept:?} of another tenant went missing");
    }
    let routes: Vec<String> = t.scan("RoutesTable").await.iter().map(|r| s(r, "pk")).collect();
    assert!(routes.iter().any(|r| r.contains(NUMBER_A)) && !routes.iter().any(|r| r.contains(NUMBER_B)), "{routes:?}");
    // A redelivery finds nothing to do.
    assert_eq!(run(&t, TENANT_B, &id).await, BTreeMap::from([("DynamoDB:GetItem".to_owned(), 1)]));
}

#[tokio::test]
async fn a_job_from_the_queue_runs_once() {
    let (t, _model) = seeded().await;
    let id = request(
        &t,
        TENANT_A,
        RequestKind::Erasure,
        Some(Subject { phone: Some(format!("+{MAX}")), ..Subject::default() }),
    )
    .await;
    let queue = t.stack.provisioned.reference("PrivacyJobsQueue").unwrap().to_owned();
    let body = json!({"tenant": TENANT_A, "request": id.as_str()}).to_string();
    for _ in 0..2 {
        t.sqs.send_message().queue_url(&queue).message_body(&body).send().await.unwrap();
    }
    let mapping = t.mapping("PrivacyWorkerFunction");
    let mut delivered = 0;
    loop {
        let outcome = mapping.poll_once(&t.sqs, std::time::Duration::ZERO).await.unwrap();
        if outcome.received == 0 {
            break;
        }
        assert_eq!(outcome.deleted, outcome.received, "every job acknowledged");
        delivered += outcome.received;
    }
    assert_eq!(delivered, 2);
    assert!(!everything(&t).await.contains(MAX_TEXT));
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_A), 0, 100).await.unwrap();
    assert_eq!(entries.iter().filter(|e| e.entry.action == AuditAction::Erasure).count(), 1);
}

#[tokio::test]
async fn a_request_that_can_never_be_done_is_recorded_failed_and_not_retried() {
    let t = TestStack::spawn().await;
    // No subject at all; a subject sealed for another request (it does not open for this one).
    let none = request(&t, TENANT_A, RequestKind::Erasure, None).await;
    let tenant_a = tenant(TENANT_A);
    let borrowed = RecordId::generate();
    let subject = Subject { phone: Some(format!("+{JANA}")), ..Subject::default() };
    let sealed = subject.seal(&t.stack.master_key, &tenant_a, &borrowed).await.unwrap();
    let misfit = RecordId::generate();
    let source = RequestSource::Operator { actor: "e2e".into() };
    let record =
        PrivacyRequest::received(tenant_a, misfit.clone(), RequestKind::Export, source, now() * 1000, Some(sealed));
    requests(&t).create(&record).await.unwrap();

    for id in [&none, &misfit] {
        // Acknowledged (no batch item failure), so SQS does not retry it into the dead letters.
        run(&t, TENANT_A, id).await;
        let stored = request_record(&t, TENANT_A, id).await;
        assert_eq!(stored.state, RequestState::Failed, "{id}");
        let failure = stored.failure.expect("a reason");
        assert!(failure.contains("subject"), "{failure}");
        assert!(!failure.contains(JANA), "{failure}");
    }
    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_A), 0, 100).await.unwrap();
    assert!(
        !entries.iter().any(|e| matches!(e.entry.action, AuditAction::Erasure | AuditAction::Export)),
        "nothing was done, so nothing is audited as done"
    );
}

#[tokio::test]
async fn identifiers_that_match_no_contact_complete_as_unmatched_not_as_nothing_held() {
    let (t, _model) = seeded().await;
    // A Shopify customer id (nothing of ours files one), a valid number nobody wrote from,
    // then Jana's own number.
    let by_id = Subject { shopify_customer_id: Some("191167".into()), ..Subject::default() };
    let unmatched = request(&t, TENANT_A, RequestKind::Erasure, Some(by_id)).await;
    let stranger = Subject { phone: Some("+4915100000001".into()), ..Subject::default() };
    let stranger = request(&t, TENANT_A, RequestKind::Export, Some(stranger)).await;
    let by_phone = Subject { phone: Some(format!("+{JANA}")), ..Subject::default() };
    let matched = request(&t, TENANT_A, RequestKind::Export, Some(by_phone)).await;
    for id in [&unmatched, &stranger, &matched] {
        run(&t, TENANT_A, id).await;
    }
    for id in [&unmatched, &stranger] {
        let result = request_record(&t, TENANT_A, id).await.result.expect("done");
        assert!(result.unmatched, "{result:?}");
        assert_eq!(result.counts.get("contacts"), Some(&0), "{result:?}");
    }
    assert!(everything(&t).await.contains(JANA_TEXTS[0]), "nobody's data went");
    let result = request_record(&t, TENANT_A, &matched).await.result.expect("done");
    assert!(!result.unmatched, "{result:?}");
    assert_eq!(result.counts.get("contacts"), Some(&1), "{result:?}");

    let audit = DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable"));
    let entries = audit.read(&tenant(TENANT_A), 0, 100).await.unwrap();
    let erasure = entries.iter().find(|e| e.entry.action == AuditAction::Erasure).expect("an erasure entry");
    assert_eq!(erasure.entry.counts.get("contacts"), Some(&0), "the trail says it matched nobody");
}
