//! A stack on the local services (DynamoDB Local, moto): its resources made
//! from template.yaml, its configuration, and the handlers' dependencies.
//! `keyhub-local` and the tests' `spawn_app` both start here.

use std::collections::HashMap;

use aws_config::SdkConfig;
use keyhub::auth::Authenticator;
use keyhub::config::Config;
use keyhub::guard::Guard;
use keyhub::pepper::Pepper;
use keyhub::ratelimit::Limiter;
use keyhub::store::Store;
use keyhub::usage::UsageSink;

use crate::Error;
use crate::resources::{ensure_queues, ensure_secret, ensure_tables};
use crate::template::{EnvValue, Template};
use crate::workers::SqsSource;

/// The environment a function of stack `stack` would get from template.yaml
/// (its Globals, with each `!Ref` resolved to the local resource), with `env`
/// consulted first for anything the operator sets.
pub fn stack_config(
    stack: &str,
    resources: &HashMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let globals = Template::builtin()?.global_env();
    let config = Config::from_lookup(|name| {
        env(name).or_else(|| {
            globals
                .iter()
                .find(|(var, _)| var == name)
                .and_then(|(_, v)| match v {
                    EnvValue::Literal(s) => Some(s.clone()),
                    EnvValue::Resource(id) => resources.get(id).cloned(),
                })
        })
    })
    .map_err(|e| format!("stack {stack}: {e}"))?;
    Ok(config)
}

pub struct LocalStack {
    pub name: String,
    pub sdk: SdkConfig,
    pub config: Config,
    pub pepper: Pepper,
    pub store: Store,
    pub sqs: aws_sdk_sqs::Client,
    /// Logical id → local name (tables, secrets) or URL (queues).
    pub resources: HashMap<String, String>,
}

impl LocalStack {
    /// Creates what is missing (tables, queues, secrets; the pepper made
    /// from `pepper` if given) from template.yaml, and loads the pepper the
    /// way a cold start does.
    pub async fn provision(
        name: &str,
        sdk: SdkConfig,
        pepper: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let template = Template::builtin()?;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        let tables = template.tables(name)?;
        ensure_tables(&ddb, &tables).await?;
        let mut resources: HashMap<String, String> =
            tables.into_iter().map(|t| (t.logical_id, t.name)).collect();
        resources.extend(ensure_queues(&sqs, &template.queues(name)?).await?);
        resources.extend(template.secrets(name));
        let config = stack_config(name, &resources, env)?;
        ensure_secret(&sm, &config.pepper_secret_id, pepper).await?;
        let pepper = keyhub::secrets::load_pepper(&sm, &config.pepper_secret_id).await?;
        let store = Store::new(ddb, config.tables.clone());
        Ok(LocalStack {
            name: name.to_string(),
            sdk,
            config,
            pepper,
            store,
            sqs,
            resources,
        })
    }

    pub fn api_deps(&self) -> keyhub_api::Deps {
        keyhub_api::Deps::new(
            self.store.client().clone(),
            self.sqs.clone(),
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

    /// What the example function's `main.rs` builds: a guard with this
    /// stack's limits and usage queue.
    pub fn example_deps(&self) -> keyhub_example::Deps {
        let limiter = Limiter::new(
            self.store.client().clone(),
            self.config.tables.counters.clone(),
        );
        let usage = self
            .config
            .usage_queue_url
            .clone()
            .map(|url| UsageSink::new(self.sqs.clone(), url));
        keyhub_example::Deps {
            guard: Guard::new(
                limiter,
                self.config.rate_limits.clone(),
                self.config.rate_limit_fail_open,
            )
            .with_usage(usage),
        }
    }

    pub fn usage_deps(&self) -> keyhub_usage::Deps {
        keyhub_usage::Deps::new(
            self.store.clone(),
            self.config.usage_retention,
            self.config.usage_aggregate_retention,
        )
    }

    /// The usage queue as the usage function's event source.
    pub async fn usage_source(&self) -> Result<SqsSource, Error> {
        let url = self
            .queue_url("UsageQueue")
            .ok_or("template.yaml has no UsageQueue")?;
        SqsSource::new(self.sqs.clone(), url).await
    }

    /// A queue's URL by its logical id in template.yaml.
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id).map(String::as_str)
    }
}
