//! Privacy requests in `TenantsTable` against the emulator, held to the same conformance suite
//! as the in-memory adapter (shared/src/store/conformance.rs).

use concierge::domain::TenantId;
use concierge::store::conformance;
use concierge::store::requests::DynamoPrivacyRequests;
use concierge_e2e::*;

#[tokio::test]
async fn privacy_requests_behave_like_their_port_says() {
    let t = TestStack::spawn().await;
    let store = DynamoPrivacyRequests::new(t.dynamodb.clone(), t.table("TenantsTable"));
    conformance::privacy_requests(&store, &TenantId::parse("conformance").unwrap()).await;
    // Next to the profiles, in the tenant's own partition, never in the tenant list.
    for item in t.scan("TenantsTable").await {
        let sk = s(&item, "sk");
        if sk.starts_with("PRIV#") {
            assert_eq!(s(&item, "pk"), "conformance");
            assert!(!item.contains_key("list_pk"), "requests are not tenants");
        }
    }
}
