//! moto does not enforce IAM: instead, every AWS operation a function performed, on every
//! resource it touched (a table, one of its indexes, a queue, a secret), must be granted by that
//! function's own policy in template.yaml. The paths exercised here cover every call the
//! functions make today.

use std::collections::BTreeMap;

use concierge::aws::Access;
use concierge_e2e::*;
use concierge_local::template::{Intrinsic, intrinsic};
use serde_norway::Value;

/// `(action, resource)` pairs a function's policy grants, resources named as the request
/// recorder names them (`table/<name>[/index/<index>]`, `queue/<url>`, `secret/<id>`).
fn grants(t: &TestStack, logical_id: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concierge_local::repo_root().join("template.yaml")).unwrap();
    let template: Value = serde_norway::from_str(&text).unwrap();
    let function = &template["Resources"][logical_id];
    let env = &t.function(logical_id).env;
    let provisioned = &t.stack.provisioned;
    let resolve = |resource: &Value| -> Vec<String> {
        match intrinsic(resource) {
            Intrinsic::GetAtt(r, "Arn") => match template["Resources"][r]["Type"].as_str() {
                Some("AWS::DynamoDB::Table") => vec![format!("table/{}", provisioned.reference(r).unwrap())],
                Some("AWS::SQS::Queue") => vec![format!("queue/{}", provisioned.reference(r).unwrap())],
                // Bucket-level actions (listing) on the bucket itself.
                Some("AWS::S3::Bucket") => vec![format!("bucket/{}", provisioned.reference(r).unwrap())],
                _ => vec![format!("other/{r}")],
            },
            Intrinsic::Sub(s) => match s.split_once(".Arn}/index/") {
                Some((table, index)) => {
                    vec![format!(
                        "table/{}/index/{index}",
                        provisioned.reference(table.trim_start_matches("${")).unwrap()
                    )]
                }
                None if s.contains(":secret:${PlatformSecretName}-??????") => {
                    vec![format!("secret/{}", env["PLATFORM_SECRET_ID"])]
                }
                // Objects of a bucket (`${Bucket.Arn}/*`): requests are recorded per bucket.
                None if s.ends_with(".Arn}/*") => {
                    let bucket = s.trim_start_matches("${").trim_end_matches(".Arn}/*");
                    vec![format!("bucket/{}", provisioned.reference(bucket).unwrap())]
                }
                None => vec![format!("unresolved/{s}")],
            },
            // Bedrock models are not resources of the stack (and moto is not called for them).
            Intrinsic::Literal(any) if any == "*" => vec!["any/*".to_owned()],
            other => {
                panic!("{logical_id}: a policy resource the check does not know: {:?}", std::mem::discriminant(&other))
            }
        }
    };
    let list = |v: &Value| -> Vec<Value> { v.as_sequence().cloned().unwrap_or_else(|| vec![v.clone()]) };
    let mut out = Vec::new();
    for policy in function["Properties"]["Policies"].as_sequence().unwrap() {
        for statement in policy["Statement"].as_sequence().unwrap() {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            for action in list(&statement["Action"]) {
                for resource in list(&statement["Resource"]) {
                    for r in resolve(&resource) {
                        out.push((action.as_str().unwrap().to_owned(), r));
                    }
                }
            }
        }
    }
    out
}

/// The IAM actions one recorded operation needs (any one of them for a transaction, whose
/// actions depend on what it holds).
fn actions(operation: &str) -> Vec<String> {
    let (service, name) = operation.split_once(':').unwrap();
    let prefix = match service {
        "DynamoDB" => "dynamodb",
        "SQS" => "sqs",
        "KMS" => "kms",
        "Secrets Manager" => "secretsmanager",
        "S3" => "s3",
        other => panic!("unknown service {other}"),
    };
    let names: Vec<&str> = match name {
        "SendMessageBatch" => vec!["SendMessage"],
        "DeleteMessageBatch" => vec!["DeleteMessage"],
        "DeleteObjects" => vec!["DeleteObject"],
        "ListObjectsV2" => vec!["ListBucket"],
        "ListObjectVersions" => vec!["ListBucketVersions"],
        // A multipart upload is authorised as s3:PutObject; reading an object's head as s3:GetObject.
        "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => vec!["PutObject"],
        "HeadObject" => vec!["GetObject"],
        other => vec![other],
    };
    names.into_iter().map(|n| format!("{prefix}:{n}")).collect()
}

fn assert_granted(t: &TestStack, logical_id: &str) -> usize {
    let grants = grants(t, logical_id);
    let accesses: Vec<Access> = t.function(logical_id).requests.accesses();
    assert!(!accesses.is_empty(), "{logical_id} made no requests");
    for access in &accesses {
        let granted =
            actions(&access.operation).iter().any(|a| grants.iter().any(|(ga, gr)| ga == a && *gr == access.resource));
        assert!(
            granted,
            "{logical_id}: template.yaml does not grant {} on {}\ngrants: {grants:#?}",
            access.operation, access.resource
        );
    }
    accesses.len()
}

#[tokio::test]
async fn every_operation_on_every_resource_is_granted_by_the_functions_own_policy() {
    // Secrets from Secrets Manager, as deployed.
    let name = format!("concierge/iam-{}", std::process::id());
    let setup = TestStack::spawn().await;
    let value =
        r#"{"meta_app_secret":"s","meta_verify_token":"v","contact_hash_key":"k","shopify_client_secret":"sh"}"#;
    aws_sdk_secretsmanager::Client::new(&setup.stack.sdk)
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    // A model that books, cancels and captures a lead, so every tool's writes are checked too.
    let tomorrow = {
        let day = jiff::Timestamp::now().in_tz("Europe/Berlin").unwrap().date();
        let mut day = day.checked_add(jiff::Span::new().days(1)).unwrap();
        while day.weekday() == jiff::civil::Weekday::Sunday {
            day = day.checked_add(jiff::Span::new().days(1)).unwrap();
        }
        day.to_string()
    };
    let (model, _) = ScriptedModel::serve(vec![
        tool_call(
            "c1",
            "book_appointment",
            serde_json::json!({"date": tomorrow, "time": "10:00", "service": "Check-up"}),
        ),
        tool_call("c2", "check_availability", serde_json::json!({})),
        tool_call("c3", "cancel_appointment", serde_json::json!({})),
        tool_call("c4", "capture_lead", serde_json::json!({"name": "N", "email": "n@example.com"})),
        text_reply("Done."),
    ])
    .await;
    let base = format!("{}/v1", model.uri());
    let empty = [
        ("META_APP_SECRET", ""),
        ("META_VERIFY_TOKEN", ""),
        ("CONTACT_HASH_KEY", ""),
        ("SHOPIFY_CLIENT_SECRET", ""),
        ("PLATFORM_SECRET_ID", name.as_str()),
        ("LLM_PROVIDER", "openai"),
        ("LLM_BASE_URL", base.as_str()),
    ];
    let t = &TestStack::spawn_with(|o| o.shell = shell(&empty)).await;
    let sign = |body: &[u8]| concierge::channels::meta::signature::sign(b"s", body);
    let post = |body: Vec<u8>| {
        let signature = sign(&body);
        async move {
            let headers = [("content-type", "application/json"), ("x-hub-signature-256", signature.as_str())];
            t.request("POST", "/webhooks/meta", &headers, &body).await.status
        }
    };

    // Ingest: a new message, its duplicate, a status, a message another delivery is still at
    // (its state read until it is marked), a Twilio message.
    let status = serde_json::json!({"id": "wamid.o", "status": "read", "timestamp": "1"});
    let body = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.iam", 1, "x")], vec![status])]);
    assert_eq!(post(body.clone()).await, 200);
    assert_eq!(post(body).await, 200);
    let concurrent = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.iam2", 2, "x")], vec![])]);
    let (a, b) = futures::join!(post(concurrent.clone()), post(concurrent));
    assert_eq!((a, b), (200, 200));
    // A keyword: answered without the model (the scripted model serves the message below).
    let params =
        [("MessageSid", "SMiam"), ("AccountSid", TWILIO_ACCOUNT_A), ("From", "+14155550123"), ("Body", "STOP")];
    assert_eq!(t.post_twilio(TENANT_A, false, &params, TWILIO_TOKEN_A).await.status, 200);

    // The sweeper: a sweep that finds a message due.
    let later = concierge::clock::Clock::now_ms(&concierge::clock::SystemClock) + 3_600_000;
    let event = concierge::function::schedule::event("arn:aws:events:us-east-1:000000000000:rule/x", later, "1");
    assert!(t.invoke("InboundSweeperFunction", &event).await.unwrap()["requeued"].as_u64().unwrap() >= 1);

    // The reply worker: the queued messages answered (tenant, knowledge base, conversation,
    // contact, a booking made and cancelled, a lead, the answer recorded and tied to its
    // provider id). The messages above were sent at timestamp 1: one answered now.
    let now = concierge::clock::Clock::now(&concierge::clock::SystemClock);
    let fresh = notification(&[(NUMBER_A, vec![text_message("4915112345678", "wamid.iam3", now, "book me")], vec![])]);
    assert_eq!(post(fresh).await, 200);
    assert!(t.deliver().await >= 1);
    assert!(!t.outbox().is_empty());
    let worker_ops: Vec<String> = t.worker().requests.accesses().into_iter().map(|a| a.operation).collect();
    for op in ["DynamoDB:DeleteItem", "DynamoDB:PutItem", "DynamoDB:BatchGetItem"] {
        assert!(worker_ops.iter().any(|o| o == op), "booking and cancelling should exercise {op}: {worker_ops:?}");
    }

    // Shopify compliance webhooks: a request recorded and queued, its redelivery, an uninstall.
    let shopify = |topic: &'static str, id: &'static str, body: &'static str| async move {
        let hmac = concierge::shopify::signature::sign(b"sh", body.as_bytes());
        t.post_shopify_signed(topic, SHOP_A, id, body.as_bytes(), Some(&hmac)).await.status
    };
    let redact = r#"{"shop_id":1,"shop_domain":"acme-dental.myshopify.com","customer":{"id":191167,"email":"john@example.com","phone":"555-625-1199"},"orders_to_redact":[]}"#;
    assert_eq!(shopify("customers/redact", "iam-1", redact).await, 200);
    assert_eq!(shopify("customers/redact", "iam-1", redact).await, 200);
    assert_eq!(
        shopify("app/uninstalled", "iam-2", r#"{"id":1,"myshopify_domain":"acme-dental.myshopify.com"}"#).await,
        200
    );

    let checked: BTreeMap<&str, usize> =
        ["WebhookIngestFunction", "InboundSweeperFunction", "ReplyWorkerFunction", "ShopifyGdprFunction"]
            .into_iter()
            .map(|f| (f, assert_granted(t, f)))
            .collect();
    let ingest_ops: Vec<String> = t.ingest().requests.accesses().into_iter().map(|a| a.operation).collect();
    for op in [
        "DynamoDB:PutItem",
        "DynamoDB:UpdateItem",
        "DynamoDB:Query",
        "SQS:SendMessageBatch",
        "Secrets Manager:GetSecretValue",
    ] {
        assert!(ingest_ops.iter().any(|o| o == op), "the paths above should exercise {op}: {ingest_ops:?}");
    }
    assert!(checked.values().all(|n| *n >= 4), "{checked:?}");
}

#[tokio::test]
async fn the_privacy_worker_is_granted_every_operation_it_makes() {
    use concierge::domain::{RecordId, TenantId};
    use concierge::privacy::requests::{PrivacyRequest, RequestKind, RequestSource, Subject};
    use concierge::store::requests::{DynamoPrivacyRequests, PrivacyRequests};

    let t = TestStack::spawn().await;
    // A customer with a photo (media to erase) and a history long enough for multipart uploads.
    let now = concierge::clock::Clock::now(&concierge::clock::SystemClock);
    let image = serde_json::json!({"from": "4915112345678", "id": "wamid.iam-photo", "timestamp": now.to_string(),
        "type": "image", "image": {"id": "777", "mime_type": "image/jpeg", "caption": "x"}});
    assert_eq!(t.post_meta(&notification(&[(NUMBER_A, vec![image], vec![])])).await.status, 200);
    t.deliver().await;
    concierge_e2e::history::store_history(&t, "+4915112345678", 1_400, 4_096).await;

    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    let run = |tenant: &'static str, kind: RequestKind, subject: Option<Subject>| {
        let (t, store) = (&t, &store);
        async move {
            let tenant_id = TenantId::parse(tenant).unwrap();
            let id = RecordId::generate();
            let sealed = match subject {
                Some(s) => Some(s.seal(&t.stack.master_key, &tenant_id, &id).await.unwrap()),
                None => None,
            };
            let source = RequestSource::Operator { actor: "iam".into() };
            store.create(&PrivacyRequest::received(tenant_id, id.clone(), kind, source, 1, sealed)).await.unwrap();
            let event = serde_json::json!({"Records": [{"messageId": "m", "receiptHandle": "r", "attributes": {},
                "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                "body": serde_json::json!({"tenant": tenant, "request": id.as_str()}).to_string()}]});
            let result = t.invoke("PrivacyWorkerFunction", &event).await.unwrap();
            assert_eq!(result["batchItemFailures"], serde_json::json!([]));
        }
    };
    let jana = || Some(Subject { phone: Some("+4915112345678".into()), ..Subject::default() });
    run(TENANT_A, RequestKind::Export, jana()).await;
    run(TENANT_A, RequestKind::Erasure, jana()).await;
    run(TENANT_B, RequestKind::Wipe, None).await;

    assert_granted(&t, "PrivacyWorkerFunction");
    let ops: Vec<String> =
        t.function("PrivacyWorkerFunction").requests.accesses().into_iter().map(|a| a.operation).collect();
    for op in [
        "S3:UploadPart",
        "S3:CompleteMultipartUpload",
        "S3:PutObject",
        "S3:DeleteObjects",
        "S3:ListObjectsV2",
        "DynamoDB:BatchWriteItem",
        "DynamoDB:UpdateItem",
        "DynamoDB:PutItem",
        "DynamoDB:DeleteItem",
        "DynamoDB:Query",
    ] {
        assert!(ops.iter().any(|o| o == op), "export, erasure and wipe should exercise {op}: {ops:?}");
    }
}
