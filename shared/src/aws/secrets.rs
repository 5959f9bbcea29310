//! Reading secrets from Secrets Manager, once per cold start.

use aws_sdk_secretsmanager::Client;

use crate::aws::sealed::SecretBox;
use crate::domain::pepper::Pepper;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading secret {id}: {message}")]
    Read { id: String, message: String },
    #[error("secret {0} has no SecretString")]
    Empty(String),
    #[error("secret {id}: {message}")]
    Invalid { id: String, message: String },
}

/// A secret's string value.
#[tracing::instrument(skip(client))]
async fn read(client: &Client, id: &str) -> Result<String, SecretError> {
    let out = client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Read {
            id: id.to_string(),
            message: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
        })?;
    out.secret_string()
        .map(str::to_string)
        .ok_or_else(|| SecretError::Empty(id.to_string()))
}

/// Reads the pepper. The secret is the pepper itself (SAM generates 64
/// random characters at deploy time).
pub async fn load_pepper(client: &Client, id: &str) -> Result<Pepper, SecretError> {
    let value = read(client, id).await?;
    Pepper::new(value.as_bytes()).map_err(|e| SecretError::Invalid {
        id: id.to_string(),
        message: e.to_string(),
    })
}

/// Reads the key that seals webhook signing secrets.
pub async fn load_secret_box(client: &Client, id: &str) -> Result<SecretBox, SecretError> {
    let value = read(client, id).await?;
    if value.len() < 32 {
        return Err(SecretError::Invalid {
            id: id.to_string(),
            message: "the webhook key must be at least 32 characters".into(),
        });
    }
    Ok(SecretBox::new(value.as_bytes()))
}
