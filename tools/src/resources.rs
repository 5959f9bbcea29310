//! Creates the local stack's resources (tables, secrets) from the template's
//! definitions. Idempotent: what exists is left alone.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use keyhub::base62;

use crate::Error;
use crate::template::TableSpec;

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
            continue;
        }
        let mut req = ddb
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&spec.key_schema)?));
        for (name, ty) in &spec.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(ty.as_str()))
                    .build()?,
            );
        }
        for index in &spec.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(key_schema(&index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
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
