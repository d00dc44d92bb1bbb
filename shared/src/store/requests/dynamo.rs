//! The DynamoDB adapter of privacy requests (`TenantsTable`, `PRIV#<id>` items).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, Update};
use serde::{Deserialize, Serialize};

use super::{Completed, Created, PrivacyRequests};
use crate::crypto::Sealed;
use crate::domain::{RecordId, TenantId};
use crate::privacy::requests::{Completion, PrivacyRequest, RequestKind, RequestResult, RequestSource, RequestState};
use crate::store::{Item, StoreError, condition_failed, from_item, keys, n, s, to_item};

#[derive(Debug, Clone)]
pub struct DynamoPrivacyRequests {
    client: Client,
    table: String,
}

/// The stored shape. `state` and `result` are DynamoDB reserved words: expressions name them
/// through `#state` / `#result`.
#[derive(Serialize, Deserialize)]
struct RequestItem {
    pk: TenantId,
    sk: String,
    id: RecordId,
    kind: RequestKind,
    source: RequestSource,
    received_at_ms: i64,
    due_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queued_at_ms: Option<i64>,
    state: RequestState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<RequestResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
}

fn item_of(r: &PrivacyRequest) -> Result<Item, StoreError> {
    to_item(&RequestItem {
        pk: r.tenant.clone(),
        sk: keys::privacy_request_sk(&r.id),
        id: r.id.clone(),
        kind: r.kind,
        source: r.source.clone(),
        received_at_ms: r.received_at_ms,
        due_at_ms: r.due_at_ms,
        completed_at_ms: r.completed_at_ms,
        queued_at_ms: r.queued_at_ms,
        state: r.state,
        subject: r.subject.clone(),
        subject_hash: r.subject_hash.clone(),
        result: r.result.clone(),
        failure: r.failure.clone(),
    })
}

fn request_of(item: Item) -> Result<PrivacyRequest, StoreError> {
    let i: RequestItem = from_item("privacy request", item)?;
    Ok(PrivacyRequest {
        tenant: i.pk,
        id: i.id,
        kind: i.kind,
        source: i.source,
        received_at_ms: i.received_at_ms,
        due_at_ms: i.due_at_ms,
        completed_at_ms: i.completed_at_ms,
        queued_at_ms: i.queued_at_ms,
        state: i.state,
        subject: i.subject,
        subject_hash: i.subject_hash,
        result: i.result,
        failure: i.failure,
    })
}

fn state(v: RequestState) -> AttributeValue {
    serde_dynamo::to_attribute_value(v).expect("a unit variant serialises")
}

impl DynamoPrivacyRequests {
    pub fn new(client: Client, tenants_table: String) -> Self {
        Self { client, table: tenants_table }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The completing write as one item of a `TransactWriteItems` (e.g. with the audit entry
    /// it appends): conditional on the request existing and not being done; sets the result
    /// and completion time; removes the sealed subject.
    pub fn complete_update(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        completion: &Completion,
    ) -> Result<Update, StoreError> {
        let result = serde_dynamo::to_attribute_value(&completion.result)
            .map_err(|e| StoreError::corrupt("privacy request result", e))?;
        let mut set = String::from("SET #state = :done, completed_at_ms = :at, #result = :result");
        if completion.subject_hash.is_some() {
            set.push_str(", subject_hash = :hash");
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(tenant.as_str()))
            .key("sk", s(keys::privacy_request_sk(id)))
            .update_expression(format!("{set} REMOVE subject, failure"))
            .condition_expression("attribute_exists(pk) AND #state <> :done")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#result", "result")
            .expression_attribute_values(":done", state(RequestState::Done))
            .expression_attribute_values(":at", n(completion.completed_at_ms))
            .expression_attribute_values(":result", result);
        if let Some(hash) = &completion.subject_hash {
            update = update.expression_attribute_values(":hash", s(hash));
        }
        update.build().map_err(|e| StoreError::corrupt("privacy request update", e))
    }
}

impl DynamoPrivacyRequests {
    /// One conditional state change of a request (`#state` names the attribute); `false` when
    /// the condition did not hold.
    async fn transition<const N: usize>(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        update: &str,
        condition: &str,
        values: [(&str, AttributeValue); N],
        operation: &'static str,
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant.as_str()))
            .key("sk", s(keys::privacy_request_sk(id)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#state", "state");
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::aws(operation, e)),
        }
    }
}

impl PrivacyRequests for DynamoPrivacyRequests {
    async fn create(&self, request: &PrivacyRequest) -> Result<Created, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(request)?))
            .condition_expression("attribute_not_exists(pk)")
            // A redelivery learns what the first one stored in the same request.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                let PutItemError::ConditionalCheckFailedException(failed) = e.err() else { unreachable!() };
                match failed.item() {
                    Some(item) => Ok(Created::Existing(Box::new(request_of(item.clone())?))),
                    // An emulator that does not return the old item: read it.
                    None => match self.get(&request.tenant, &request.id).await? {
                        Some(existing) => Ok(Created::Existing(Box::new(existing))),
                        None => Err(StoreError::Conflict("privacy request vanished while being created".into())),
                    },
                }
            }
            Err(e) => Err(StoreError::aws("PutItem privacy request", e)),
        }
    }

    async fn get(&self, tenant: &TenantId, id: &RecordId) -> Result<Option<PrivacyRequest>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(tenant.as_str()))
            .key("sk", s(keys::privacy_request_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem privacy request", e))?;
        out.item.map(request_of).transpose()
    }

    async fn mark_queued(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(tenant.as_str()))
            .key("sk", s(keys::privacy_request_sk(id)))
            .update_expression("SET #state = :queued, queued_at_ms = :at")
            .condition_expression("#state = :received")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":queued", state(RequestState::Queued))
            .expression_attribute_values(":received", state(RequestState::Received))
            .expression_attribute_values(":at", n(at_ms))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(failed) = e.err() else { unreachable!() };
                // Already queued or done: nothing to record. Missing: the caller has a bug.
                match failed.item() {
                    Some(_) => Ok(false),
                    None if self.get(tenant, id).await?.is_some() => Ok(false),
                    None => Err(StoreError::Conflict("no such privacy request to mark queued".into())),
                }
            }
            Err(e) => Err(StoreError::aws("UpdateItem privacy request queued", e)),
        }
    }

    async fn requeued(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        let values = [(":queued", state(RequestState::Queued)), (":at", n(at_ms))];
        let update = "SET queued_at_ms = :at";
        self.transition(tenant, id, update, "#state = :queued", values, "UpdateItem privacy request requeued").await
    }

    async fn reopen(&self, tenant: &TenantId, id: &RecordId, at_ms: i64) -> Result<bool, StoreError> {
        let values =
            [(":queued", state(RequestState::Queued)), (":failed", state(RequestState::Failed)), (":at", n(at_ms))];
        let update = "SET #state = :queued, queued_at_ms = :at REMOVE failure";
        self.transition(tenant, id, update, "#state = :failed", values, "UpdateItem privacy request reopened").await
    }

    async fn fail(&self, tenant: &TenantId, id: &RecordId, reason: &str) -> Result<bool, StoreError> {
        let values =
            [(":failed", state(RequestState::Failed)), (":done", state(RequestState::Done)), (":reason", s(reason))];
        let condition = "attribute_exists(pk) AND #state <> :done";
        self.transition(
            tenant,
            id,
            "SET #state = :failed, failure = :reason",
            condition,
            values,
            "UpdateItem privacy request failed",
        )
        .await
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &RecordId,
        completion: &Completion,
    ) -> Result<Completed, StoreError> {
        let update = self.complete_update(tenant, id, completion)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(update.key))
            .update_expression(update.update_expression)
            .set_condition_expression(update.condition_expression)
            .set_expression_attribute_names(update.expression_attribute_names)
            .set_expression_attribute_values(update.expression_attribute_values)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Completed::Now(Box::new(request_of(out.attributes.unwrap_or_default())?))),
            Err(e) if condition_failed(&e) => match self.get(tenant, id).await? {
                Some(done) => Ok(Completed::Already(Box::new(done))),
                None => Err(StoreError::Conflict("no such privacy request to complete".into())),
            },
            Err(e) => Err(StoreError::aws("UpdateItem privacy request done", e)),
        }
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<PrivacyRequest>, StoreError> {
        crate::store::query_partition(
            &self.client,
            &self.table,
            tenant.as_str(),
            Some(keys::PRIVACY_REQUEST_PREFIX),
            None,
            "Query privacy requests",
        )
        .await?
        .into_iter()
        .map(request_of)
        .collect()
    }
}
