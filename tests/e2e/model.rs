//! The data model's DynamoDB adapters against the emulator, held to the same conformance suite
//! as the in-memory adapters (shared/src/store/conformance.rs), on the template's own tables.

use std::sync::Arc;

use concierge::domain::TenantId;
use concierge::store::audit::DynamoAuditLog;
use concierge::store::conformance;
use concierge::store::contacts::DynamoContacts;
use concierge::store::messages::DynamoMessageLog;
use concierge::tenants::{DynamoTenantCatalog, TenantCatalog};
use concierge_e2e::*;

#[tokio::test]
async fn the_messages_table_behaves_like_its_port_says() {
    let t = TestStack::spawn().await;
    let log = DynamoMessageLog::new(t.dynamodb.clone(), t.table("MessagesTable"), pseudonyms());
    conformance::messages(&log, &TenantId::parse("conformance").unwrap()).await;
}

#[tokio::test]
async fn the_contacts_table_behaves_like_its_ports_say() {
    let t = TestStack::spawn().await;
    let store = Arc::new(DynamoContacts::new(t.dynamodb.clone(), t.table("ContactsTable")));
    conformance::contacts(store, &TenantId::parse("conformance").unwrap()).await;
}

#[tokio::test]
async fn the_audit_table_behaves_like_its_port_says() {
    let t = TestStack::spawn().await;
    let log = Arc::new(DynamoAuditLog::new(t.dynamodb.clone(), t.table("AuditTable")));
    conformance::audit(log, &TenantId::parse("conformance").unwrap()).await;
}

#[tokio::test]
async fn tenants_are_listed_with_a_query_on_their_index() {
    let t = TestStack::spawn().await;
    let catalog = DynamoTenantCatalog::new(t.dynamodb.clone(), t.table("TenantsTable"));
    let mut ids: Vec<String> = catalog.tenant_ids().await.unwrap().iter().map(ToString::to_string).collect();
    ids.sort();
    assert_eq!(ids, [TENANT_A, TENANT_B]);
    // Knowledge documents share the table but not the index.
    assert!(t.scan("TenantsTable").await.len() > 2);
}

#[tokio::test]
async fn every_key_of_every_item_written_starts_with_its_tenant() {
    let t = TestStack::spawn().await;
    let tenant = TenantId::parse("fenced").unwrap();
    conformance::messages(&DynamoMessageLog::new(t.dynamodb.clone(), t.table("MessagesTable"), pseudonyms()), &tenant)
        .await;
    conformance::contacts(Arc::new(DynamoContacts::new(t.dynamodb.clone(), t.table("ContactsTable"))), &tenant).await;
    for table in ["MessagesTable", "ContactsTable"] {
        for item in t.scan(table).await {
            for key in ["pk", "gsi1pk", "exp_pk", "pend_pk"] {
                if let Some(aws_sdk_dynamodb::types::AttributeValue::S(value)) = item.get(key) {
                    assert!(value.starts_with("fenced#"), "{table}.{key} = {value}");
                }
            }
            // Every item holds personal data or points at some: each carries its retention stamps.
            let what = format!("{table} {:?}", item.get("sk").or(item.get("pk")));
            assert!(item.contains_key("expires_at") && item.contains_key("exp_pk"), "{what} has no retention stamps");
        }
    }
}

/// Under throttling DynamoDB may answer a BatchGetItem with some keys unprocessed: the contact's
/// state is asked for again, never read as "no opt-out" or "not in human mode".
#[tokio::test]
async fn contact_state_asks_again_for_keys_dynamodb_left_unprocessed() {
    use concierge::domain::{Channel, ContactId};
    use concierge::privacy::Expiry;
    use concierge::privacy::retention::{Category, RetentionDays};
    use concierge::store::contacts::{ContactStore, InboundActivity};

    let proxy = FaultProxy::start(emulator_endpoint()).await;
    let t = TestStack::spawn_through(&proxy.endpoint).await;
    let table = t.table("ContactsTable");
    let store = DynamoContacts::new(aws_sdk_dynamodb::Client::new(&t.stack.sdk), table.clone());
    let tenant = TenantId::parse(TENANT_A).unwrap();
    let jana = ContactId::parse_key("+4915112345678").unwrap();
    let expiry = Expiry::new(&tenant, Category::Messages, 1_767_225_600, &RetentionDays::default());
    let activity = InboundActivity { contact: &jana, channel: Channel::Meta, profile_name: None, at: 1_767_225_600 };
    store.record_activity(&tenant, activity, &expiry).await.unwrap();

    let pk = format!("{TENANT_A}#C#+4915112345678");
    let unprocessed = serde_json::json!({
        "Responses": {&table: []},
        "UnprocessedKeys": {&table: {"Keys": [
            {"pk": {"S": &pk}, "sk": {"S": "PROFILE"}},
            {"pk": {"S": &pk}, "sk": {"S": "CONV#meta"}}
        ], "ConsistentRead": true}}
    })
    .to_string();
    proxy.inject_times("BatchGetItem", Fault::Respond(unprocessed.clone()), 1);
    let state = store.state(&tenant, &jana, Channel::Meta).await.unwrap();
    assert!(state.contact.is_some() && state.conversation.is_some(), "{state:?}");

    proxy.inject("BatchGetItem", Fault::Respond(unprocessed));
    assert!(store.state(&tenant, &jana, Channel::Meta).await.is_err(), "never a state with items missing");
}
