//! A stack on the local services (DynamoDB Local, moto): its resources made
//! from template.yaml, its configuration, and the handlers' dependencies.
//! `keyhub-local` and the tests' `spawn_app` both start here.

use aws_config::SdkConfig;
use keyhub::auth::Authenticator;
use keyhub::config::Config;
use keyhub::pepper::Pepper;
use keyhub::store::{Store, Tables};

use crate::Error;
use crate::resources::{ensure_secret, ensure_tables};
use crate::template::Template;

pub struct LocalStack {
    pub name: String,
    pub sdk: SdkConfig,
    pub config: Config,
    pub pepper: Pepper,
    pub store: Store,
}

/// The environment a function of stack `stack` would get from template.yaml,
/// with `env` consulted for everything the template leaves to the operator.
pub fn stack_config(stack: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
    let tables = Tables::for_stack(stack);
    let secret = format!("{stack}/pepper");
    let config = Config::from_lookup(|name| {
        tables
            .env_vars()
            .iter()
            .find(|(var, _)| *var == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| (name == "PEPPER_SECRET_ID").then(|| secret.clone()))
            .or_else(|| env(name))
    })?;
    Ok(config)
}

impl LocalStack {
    /// Creates what is missing (tables, the pepper secret, made from
    /// `pepper` if given) and loads the pepper the way a cold start does.
    pub async fn provision(
        name: &str,
        sdk: SdkConfig,
        pepper: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let config = stack_config(name, env)?;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        ensure_tables(&ddb, &Template::builtin()?.tables(name)?).await?;
        ensure_secret(&sm, &config.pepper_secret_id, pepper).await?;
        let pepper = keyhub::secrets::load_pepper(&sm, &config.pepper_secret_id).await?;
        let store = Store::new(ddb, config.tables.clone());
        Ok(LocalStack {
            name: name.to_string(),
            sdk,
            config,
            pepper,
            store,
        })
    }

    pub fn api_deps(&self) -> keyhub_api::Deps {
        keyhub_api::Deps::new(
            self.store.client().clone(),
            self.pepper.clone(),
            self.config.clone(),
        )
    }

    /// An authenticator like the functions', with this stack's cache settings.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(
            self.store.clone(),
            self.pepper.clone(),
            self.config.key_prefix.clone(),
            self.config.key_cache,
        )
    }
}
