//! Creates the template's tables, queues and buckets in the emulator, named `<prefix>-<LogicalId>`
//! so that several stacks (one per test) share one emulator without touching each other.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use crate::template::{Intrinsic, Template, intrinsic, scalar};

/// What `!Ref` and `!GetAtt` resolve to for the provisioned resources.
#[derive(Debug, Default, Clone)]
pub struct Provisioned {
    pub refs: HashMap<String, String>,
    pub attributes: HashMap<(String, String), String>,
}

impl Provisioned {
    pub fn reference(&self, logical_id: &str) -> Option<&str> {
        self.refs.get(logical_id).map(String::as_str)
    }

    pub fn attribute(&self, logical_id: &str, attribute: &str) -> Option<&str> {
        self.attributes.get(&(logical_id.to_owned(), attribute.to_owned())).map(String::as_str)
    }
}

pub async fn provision(template: &Template, sdk: &SdkConfig, prefix: &str) -> Result<Provisioned> {
    let mut out = Provisioned::default();
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    for (id, props) in template.resources_of("AWS::DynamoDB::Table") {
        let name = format!("{prefix}-{id}");
        create_table(&dynamodb, &name, props).await.with_context(|| format!("creating table {id}"))?;
        out.attributes
            .insert((id.to_owned(), "Arn".into()), format!("arn:aws:dynamodb:us-east-1:000000000000:table/{name}"));
        out.refs.insert(id.to_owned(), name);
    }

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = template.resources_of("AWS::SQS::Queue");
    // Dead-letter queues first: the others name them in their redrive policy.
    queues.sort_by_key(|(_, p)| p.get("RedrivePolicy").is_some());
    for (id, props) in queues {
        create_queue(&sqs, prefix, id, props, &mut out).await.with_context(|| format!("creating queue {id}"))?;
    }

    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build());
    for (id, props) in template.resources_of("AWS::S3::Bucket") {
        let name = format!("{prefix}-{}", id.to_ascii_lowercase());
        // Object Lock can only be chosen when a bucket is created (it turns versioning on).
        let lock = props.get("ObjectLockEnabled").and_then(Value::as_bool) == Some(true);
        match s3.create_bucket().bucket(&name).object_lock_enabled_for_bucket(lock).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
            Err(e) => {
                return Err(anyhow!(concierge::aws::describe(e)));
            }
        }
        out.attributes.insert((id.to_owned(), "Arn".into()), format!("arn:aws:s3:::{name}"));
        out.refs.insert(id.to_owned(), name);
    }

    // Locally, secrets are sealed with a key file instead of KMS (DESIGN.md, Data).
    for (id, _) in template.resources_of("AWS::KMS::Key") {
        out.refs.insert(id.to_owned(), "local-key-file".into());
        out.attributes.insert((id.to_owned(), "Arn".into()), "arn:aws:kms:us-east-1:000000000000:key/local".into());
    }
    Ok(out)
}

fn list<'a>(props: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    props.get(key).and_then(Value::as_sequence).into_iter().flatten()
}

fn text<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| anyhow!("{key} missing"))
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>> {
    list(v, "KeySchema")
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(text(k, "AttributeName")?)
                .key_type(KeyType::from(text(k, "KeyType")?))
                .build()?)
        })
        .collect()
}

async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str, props: &Value) -> Result<()> {
    let mut request = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for a in list(props, "AttributeDefinitions") {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(text(a, "AttributeType")?))
                .build()?,
        );
    }
    request = request.set_key_schema(Some(key_schema(props)?));
    for g in list(props, "GlobalSecondaryIndexes") {
        let projection = g.get("Projection").unwrap_or(&Value::Null);
        let mut p = Projection::builder().projection_type(ProjectionType::from(
            projection.get("ProjectionType").and_then(Value::as_str).unwrap_or("ALL"),
        ));
        for attr in list(projection, "NonKeyAttributes").filter_map(Value::as_str) {
            p = p.non_key_attributes(attr);
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(g, "IndexName")?)
                .set_key_schema(Some(key_schema(g)?))
                .projection(p.build())
                .build()?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {
            return Ok(());
        }
        Err(e) => {
            return Err(anyhow!(concierge::aws::describe(e)));
        }
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification")
        && ttl.get("Enabled").and_then(Value::as_bool) == Some(true)
    {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder().attribute_name(text(ttl, "AttributeName")?).enabled(true).build()?,
            )
            .send()
            .await
            .map_err(|e| anyhow!(concierge::aws::describe(e)))?;
    }
    Ok(())
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    id: &str,
    props: &Value,
    out: &mut Provisioned,
) -> Result<()> {
    let fifo = props.get("FifoQueue").and_then(Value::as_bool) == Some(true);
    let name = format!("{prefix}-{id}{}", if fifo { ".fifo" } else { "" });
    let mut request = client.create_queue().queue_name(&name);
    for (property, attribute) in [
        ("FifoQueue", QueueAttributeName::FifoQueue),
        ("ContentBasedDeduplication", QueueAttributeName::ContentBasedDeduplication),
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
        ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
        ("FifoThroughputLimit", QueueAttributeName::FifoThroughputLimit),
    ] {
        if let Some(value) = props.get(property).and_then(scalar) {
            request = request.attributes(attribute, value);
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        let dlq = match redrive.get("deadLetterTargetArn").map(intrinsic) {
            Some(Intrinsic::GetAtt(dlq, "Arn")) => {
                out.attribute(dlq, "Arn").ok_or_else(|| anyhow!("dead-letter queue {dlq} not provisioned"))?.to_owned()
            }
            _ => {
                return Err(anyhow!("RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn"));
            }
        };
        let max = redrive.get("maxReceiveCount").and_then(scalar).unwrap_or_else(|| "5".into());
        let policy = serde_json::json!({"deadLetterTargetArn": dlq, "maxReceiveCount": max}).to_string();
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let url = request
        .send()
        .await
        .map_err(|e| anyhow!(concierge::aws::describe(e)))?
        .queue_url
        .ok_or_else(|| anyhow!("no queue URL returned"))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| anyhow!(concierge::aws::describe(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| anyhow!("no queue ARN returned"))?;
    out.attributes.insert((id.to_owned(), "Arn".into()), arn);
    out.attributes.insert((id.to_owned(), "QueueUrl".into()), url.clone());
    out.attributes.insert((id.to_owned(), "QueueName".into()), name);
    out.refs.insert(id.to_owned(), url);
    Ok(())
}
