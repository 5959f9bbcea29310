//! Creates the local stack's resources (tables, secrets) from the template's
//! definitions. Idempotent: what exists is left alone.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use keyhub::domain::base62;

use crate::Error;
use crate::template::{IndexSpec, QueueSpec, TableSpec};

fn key_schema(pairs: &[(String, String)]) -> Result<Vec<KeySchemaElement>, Error> {
    pairs
        .iter()
        .map(|(name, kind)| {
            Ok(KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()?)
        })
        .collect()
}

fn attribute_definitions(spec: &TableSpec) -> Result<Vec<AttributeDefinition>, Error> {
    spec.attributes
        .iter()
        .map(|(name, ty)| {
            Ok(AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(ty.as_str()))
                .build()?)
        })
        .collect()
}

fn projection(index: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(index.projection.as_str()))
        .build()
}

/// Creates each table that does not exist yet, with its indexes and TTL.
pub async fn ensure_tables(
    ddb: &aws_sdk_dynamodb::Client,
    specs: &[TableSpec],
) -> Result<(), Error> {
    let existing = ddb
        .list_tables()
        .send()
        .await?
        .table_names
        .unwrap_or_default();
    for spec in specs {
        if existing.contains(&spec.name) {
            add_missing_indexes(ddb, spec).await?;
            continue;
        }
        let mut req = ddb
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&spec.key_schema)?))
            .set_attribute_definitions(Some(attribute_definitions(spec)?));
        for index in &spec.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(projection(index))
                    .build()?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            // Another process made it between our list and create.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_resource_in_use_exception()) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(attr) = &spec.ttl_attribute {
            ddb.update_time_to_live()
                .table_name(&spec.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(attr)
                        .build()?,
                )
                .send()
                .await?;
        }
    }
    Ok(())
}

/// Creates the indexes a table made by an older template lacks, as a
/// CloudFormation update would (the local data survives `make dev` restarts).
async fn add_missing_indexes(
    ddb: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
) -> Result<(), Error> {
    let table = ddb
        .describe_table()
        .table_name(&spec.name)
        .send()
        .await?
        .table;
    let have: Vec<String> = table
        .and_then(|t| t.global_secondary_indexes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| g.index_name)
        .collect();
    for index in spec.indexes.iter().filter(|i| !have.contains(&i.name)) {
        let req = ddb
            .update_table()
            .table_name(&spec.name)
            .set_attribute_definitions(Some(attribute_definitions(spec)?));
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(&index.name)
            .set_key_schema(Some(key_schema(&index.key_schema)?))
            .projection(projection(index))
            .build()?;
        req.global_secondary_index_updates(
            aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                .create(create)
                .build(),
        )
        .send()
        .await?;
        tracing::info!(table = %spec.name, index = %index.name, "index added");
    }
    Ok(())
}

/// Makes sure a secret named `name` exists. A new one gets `initial`, or 64
/// random characters (what SAM's GenerateSecretString makes in AWS).
/// Returns its value.
pub async fn ensure_secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    initial: Option<&str>,
) -> Result<String, Error> {
    match sm.get_secret_value().secret_id(name).send().await {
        Ok(out) => return Ok(out.secret_string().unwrap_or_default().to_string()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception()) => {}
        Err(e) => return Err(e.into()),
    }
    let value = match initial {
        Some(v) => v.to_string(),
        None => base62::random(64)?,
    };
    sm.create_secret()
        .name(name)
        .secret_string(&value)
        .send()
        .await?;
    Ok(value)
}

/// Creates each queue that does not exist yet (dead-letter queues first, so
/// that redrive policies can name them) and returns logical id → queue URL.
pub async fn ensure_queues(
    sqs: &aws_sdk_sqs::Client,
    specs: &[QueueSpec],
) -> Result<HashMap<String, String>, Error> {
    let mut urls: HashMap<String, String> = HashMap::new();
    let mut ordered: Vec<&QueueSpec> = specs.iter().filter(|q| q.redrive.is_none()).collect();
    ordered.extend(specs.iter().filter(|q| q.redrive.is_some()));
    for spec in ordered {
        let mut req = sqs.create_queue().queue_name(&spec.name);
        for (k, v) in &spec.attributes {
            req = req.attributes(QueueAttributeName::from(k.as_str()), v);
        }
        if let Some((dlq, max)) = &spec.redrive {
            let dlq_url = urls.get(dlq).ok_or_else(|| {
                format!(
                    "{}: dead-letter queue {dlq} is not a queue",
                    spec.logical_id
                )
            })?;
            let arn = sqs
                .get_queue_attributes()
                .queue_url(dlq_url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await?
                .attributes
                .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
                .ok_or("no QueueArn")?;
            let policy =
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string();
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy);
        }
        let url = req
            .send()
            .await?
            .queue_url
            .ok_or("CreateQueue returned no URL")?;
        urls.insert(spec.logical_id.clone(), url);
    }
    Ok(urls)
}
