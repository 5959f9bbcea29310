//! A stack on the local services (DynamoDB Local, moto): its resources made
//! from template.yaml, its configuration, and the handlers' dependencies.
//! `keyhub-local` and the tests' `spawn_app` both start here.

use std::collections::HashMap;

use aws_config::SdkConfig;
use keyhub::aws::eventbus::EventBus;
use keyhub::aws::queues::UsageSink;
use keyhub::aws::ratelimit::Limiter;
use keyhub::aws::sealed::SecretBox;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub::domain::pepper::Pepper;
use keyhub::http::auth::Authenticator;
use keyhub::http::guard::Guard;

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
    pub secret_box: Option<SecretBox>,
    pub store: Store,
    pub sqs: aws_sdk_sqs::Client,
    /// Logical id → local name (tables, secrets) or URL (queues).
    pub resources: HashMap<String, String>,
}

impl LocalStack {
    /// Creates what is missing (tables, queues, secrets) from template.yaml,
    /// and loads the secrets the way a cold start does. A new secret gets the
    /// value `secrets` gives for its logical id, if any (`make dev` keeps them
    /// across restarts; moto does not).
    pub async fn provision(
        name: &str,
        sdk: SdkConfig,
        secrets: &HashMap<String, String>,
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
        for (logical, secret_name) in template.secrets(name) {
            ensure_secret(&sm, &secret_name, secrets.get(&logical).map(String::as_str)).await?;
            resources.insert(logical, secret_name);
        }
        let config = stack_config(name, &resources, env)?;
        let pepper = keyhub::aws::secrets::load_pepper(&sm, &config.pepper_secret_id).await?;
        let secret_box = match &config.webhooks.key_secret_id {
            Some(id) => Some(keyhub::aws::secrets::load_secret_box(&sm, id).await?),
            None => None,
        };
        let store = Store::new(ddb, config.tables.clone());
        Ok(LocalStack {
            name: name.to_string(),
            sdk,
            config,
            pepper,
            secret_box,
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
            self.secret_box.clone(),
            self.config.clone(),
        )
    }

    /// The webhook queue as the functions use it.
    pub fn event_bus(&self) -> Option<EventBus> {
        self.config.webhooks.queue_url.clone().map(|url| {
            EventBus::new(self.store.clone(), self.sqs.clone(), url)
                .with_publish_timeout(self.config.aws.side_effect)
        })
    }

    /// What the webhook function's `main.rs` builds.
    pub fn webhook_deps(&self) -> Result<keyhub_webhooks::Deps, Error> {
        let settings = self.config.webhooks.clone();
        Ok(keyhub_webhooks::Deps {
            store: self.store.clone(),
            bus: self.event_bus().ok_or("no webhook queue")?,
            secrets: self.secret_box.clone().ok_or("no webhook key")?,
            client: keyhub_webhooks::client::DeliveryClient::new(
                settings.addresses.clone(),
                settings.timeout,
            )?,
            queue_url: settings.queue_url.clone().ok_or("no webhook queue")?,
            settings,
            sqs: self.sqs.clone(),
            dead_letter_url: self.queue_url("WebhookDeadLetterQueue").map(str::to_string),
        })
    }

    /// What the sweeper's `main.rs` builds.
    pub fn sweeper_deps(&self) -> Result<keyhub_sweeper::Deps, Error> {
        Ok(keyhub_sweeper::Deps {
            store: self.store.clone(),
            bus: self.event_bus().ok_or("no webhook queue")?,
            policy: self.config.rate_limits.clone(),
            rotation_period: self.config.rotation_period,
            batch: 500,
            flush: None,
        })
    }

    /// The webhook queue as the webhook function's event source.
    pub async fn webhook_source(&self) -> Result<SqsSource, Error> {
        let url = self
            .queue_url("WebhookQueue")
            .ok_or("template.yaml has no WebhookQueue")?;
        SqsSource::new(self.sqs.clone(), url).await
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
        let usage = self.config.usage_queue_url.clone().map(|url| {
            UsageSink::new(self.sqs.clone(), url).with_timeout(self.config.aws.side_effect)
        });
        keyhub_example::Deps {
            guard: Guard::new(
                limiter,
                self.config.rate_limits.clone(),
                self.config.rate_limit_fail_open,
            )
            .with_usage(usage)
            .with_usage_from_access_log(self.config.usage_from_access_log)
            .with_events(self.event_bus().map(|bus| (self.store.clone(), bus))),
        }
    }

    pub fn usage_deps(&self) -> keyhub_usage::Deps {
        let threshold = keyhub_usage::anomaly::Threshold {
            factor: self.config.anomaly_factor,
            min_requests: self.config.anomaly_min_requests,
        };
        keyhub_usage::Deps::new(
            self.store.clone(),
            self.config.usage_retention,
            self.config.usage_aggregate_retention,
        )
        .with_anomalies(
            self.event_bus()
                .map(|bus| keyhub_usage::anomaly::Anomalies::new(threshold, bus)),
        )
    }

    /// The usage queue as the usage function's event source.
    pub async fn usage_source(&self) -> Result<SqsSource, Error> {
        let url = self
            .queue_url("UsageQueue")
            .ok_or("template.yaml has no UsageQueue")?;
        SqsSource::new(self.sqs.clone(), url).await
    }

    /// The environment template.yaml gives a function, resolved to this
    /// stack's resources: what its `main.rs` reads.
    pub fn function_env(&self, logical_id: &str) -> Result<Vec<(String, String)>, Error> {
        let template = Template::builtin()?;
        let resolve = |v: EnvValue| match v {
            EnvValue::Literal(s) => Some(s),
            EnvValue::Resource(id) => self.resources.get(&id).cloned(),
        };
        let mut env: Vec<(String, String)> = template
            .global_env()
            .into_iter()
            .filter_map(|(k, v)| Some((k, resolve(v)?)))
            .collect();
        for (k, v) in template.function_env(logical_id) {
            if let Some(v) = resolve(v) {
                env.retain(|(e, _)| *e != k);
                env.push((k, v));
            }
        }
        Ok(env)
    }

    /// A queue's URL by its logical id in template.yaml.
    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id).map(String::as_str)
    }
}
