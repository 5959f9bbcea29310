//! Reads template.yaml, the one definition of keyhub's tables, routes and
//! gateway responses, so that the local stack builds exactly what SAM deploys.

use serde_yaml_ng::Value;

/// template.yaml, compiled in: the tools and the tests always see the
/// template of the commit they were built from.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    /// (attribute, type) where type is S, N or B.
    pub attributes: Vec<(String, String)>,
    /// (attribute, HASH or RANGE)
    pub key_schema: Vec<(String, String)>,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub name: String,
    /// Queue attributes as SQS takes them (VisibilityTimeout, ...), except
    /// the redrive policy.
    pub attributes: Vec<(String, String)>,
    /// (dead-letter queue's logical id, maxReceiveCount)
    pub redrive: Option<(String, u32)>,
}

/// An SQS event source mapping's batching: Lambda invokes the function
/// once `batch_size` messages are in hand or `window` has passed since the
/// first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqsBatching {
    pub batch_size: usize,
    pub window: std::time::Duration,
}

/// A value in a function's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    /// `!Ref X` of a resource: its name (a table, a secret) or URL (a queue).
    Resource(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    pub function: String,
    pub method: String,
    pub path: String,
    /// The API authorizer the route uses, if any.
    pub authorizer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponseSpec {
    pub response_type: String,
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body_template: String,
}

#[derive(Debug, thiserror::Error)]
#[error("template.yaml: {0}")]
pub struct TemplateError(String);

pub struct Template {
    doc: Value,
}

fn err(m: impl Into<String>) -> TemplateError {
    TemplateError(m.into())
}

/// The value under a tag-free view: `!Sub x` reads as `x`.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    untag(v).as_mapping()?.get(key).map(untag)
}

fn str_of(v: &Value) -> Option<&str> {
    untag(v).as_str()
}

fn pairs(list: Option<&Value>, a: &str, b: &str) -> Result<Vec<(String, String)>, TemplateError> {
    let Some(list) = list.and_then(|l| l.as_sequence()) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|item| {
            let x = get(item, a).and_then(str_of);
            let y = get(item, b).and_then(str_of);
            match (x, y) {
                (Some(x), Some(y)) => Ok((x.to_string(), y.to_string())),
                _ => Err(err(format!("an entry lacks {a} or {b}"))),
            }
        })
        .collect()
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc = serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?;
        Ok(Template { doc })
    }

    pub fn builtin() -> Result<Self, TemplateError> {
        Self::parse(TEMPLATE)
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        get(&self.doc, "Resources")
            .and_then(|r| r.as_mapping())
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
    }

    fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources()
            .filter(move |(_, r)| get(r, "Type").and_then(str_of) == Some(ty))
    }

    /// Every DynamoDB table, named as a stack called `stack` would name it.
    pub fn tables(&self, stack: &str) -> Result<Vec<TableSpec>, TemplateError> {
        self.of_type("AWS::DynamoDB::Table")
            .map(|(id, r)| {
                let p =
                    get(r, "Properties").ok_or_else(|| err(format!("{id} has no Properties")))?;
                let name = get(p, "TableName")
                    .and_then(str_of)
                    .ok_or_else(|| err(format!("{id} has no TableName")))?
                    .replace("${AWS::StackName}", stack);
                let indexes = get(p, "GlobalSecondaryIndexes")
                    .and_then(|l| l.as_sequence())
                    .map(|l| {
                        l.iter()
                            .map(|g| {
                                Ok(IndexSpec {
                                    name: get(g, "IndexName")
                                        .and_then(str_of)
                                        .ok_or_else(|| err(format!("{id}: index without a name")))?
                                        .to_string(),
                                    key_schema: pairs(
                                        get(g, "KeySchema"),
                                        "AttributeName",
                                        "KeyType",
                                    )?,
                                    projection: get(g, "Projection")
                                        .and_then(|p| get(p, "ProjectionType"))
                                        .and_then(str_of)
                                        .unwrap_or("ALL")
                                        .to_string(),
                                })
                            })
                            .collect::<Result<Vec<_>, TemplateError>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                let ttl_attribute = get(p, "TimeToLiveSpecification")
                    .filter(|t| get(t, "Enabled").and_then(|e| e.as_bool()) == Some(true))
                    .and_then(|t| get(t, "AttributeName"))
                    .and_then(str_of)
                    .map(str::to_string);
                Ok(TableSpec {
                    logical_id: id.to_string(),
                    name,
                    attributes: pairs(
                        get(p, "AttributeDefinitions"),
                        "AttributeName",
                        "AttributeType",
                    )?,
                    key_schema: pairs(get(p, "KeySchema"), "AttributeName", "KeyType")?,
                    indexes,
                    ttl_attribute,
                })
            })
            .collect()
    }

    /// Every SQS queue, named as a stack called `stack` would name it.
    pub fn queues(&self, stack: &str) -> Result<Vec<QueueSpec>, TemplateError> {
        self.of_type("AWS::SQS::Queue")
            .map(|(id, r)| {
                let p =
                    get(r, "Properties").ok_or_else(|| err(format!("{id} has no Properties")))?;
                let name = get(p, "QueueName")
                    .and_then(str_of)
                    .ok_or_else(|| err(format!("{id} has no QueueName")))?
                    .replace("${AWS::StackName}", stack);
                let mut attributes = Vec::new();
                for attr in [
                    "VisibilityTimeout",
                    "MessageRetentionPeriod",
                    "ReceiveMessageWaitTimeSeconds",
                    "DelaySeconds",
                ] {
                    if let Some(v) = get(p, attr) {
                        let v = v
                            .as_u64()
                            .map(|n| n.to_string())
                            .or_else(|| str_of(v).map(str::to_string));
                        if let Some(v) = v {
                            attributes.push((attr.to_string(), v));
                        }
                    }
                }
                let redrive = get(p, "RedrivePolicy").and_then(|rp| {
                    let target = match get(rp, "deadLetterTargetArn") {
                        Some(Value::Sequence(s)) => {
                            s.first().and_then(str_of).map(|s| s.to_string())
                        }
                        Some(v) => str_of(v).map(|s| s.to_string()),
                        None => None,
                    }?;
                    let dlq = target.split('.').next()?.to_string();
                    let max = get(rp, "maxReceiveCount")?.as_u64()? as u32;
                    Some((dlq, max))
                });
                Ok(QueueSpec {
                    logical_id: id.to_string(),
                    name,
                    attributes,
                    redrive,
                })
            })
            .collect()
    }

    /// How a function's SQS event source gathers a batch (its `BatchSize`
    /// and `MaximumBatchingWindowInSeconds`), if it has one.
    pub fn sqs_batching(&self, function: &str) -> Option<SqsBatching> {
        let events = self
            .resources()
            .find(|(id, _)| *id == function)
            .and_then(|(_, r)| get(r, "Properties"))
            .and_then(|p| get(p, "Events"))?
            .as_mapping()?;
        let p = events
            .values()
            .find(|e| get(e, "Type").and_then(str_of) == Some("SQS"))
            .and_then(|e| get(e, "Properties"))?;
        let number = |name: &str| get(p, name).and_then(Value::as_u64);
        Some(SqsBatching {
            // SAM's and Lambda's defaults for a standard queue.
            batch_size: number("BatchSize").unwrap_or(10).clamp(1, 10_000) as usize,
            window: std::time::Duration::from_secs(
                number("MaximumBatchingWindowInSeconds")
                    .unwrap_or(0)
                    .min(300),
            ),
        })
    }

    /// Every Secrets Manager secret: (logical id, name for `stack`).
    pub fn secrets(&self, stack: &str) -> Vec<(String, String)> {
        self.of_type("AWS::SecretsManager::Secret")
            .filter_map(|(id, r)| {
                let name = get(r, "Properties")
                    .and_then(|p| get(p, "Name"))
                    .and_then(str_of)?;
                Some((id.to_string(), name.replace("${AWS::StackName}", stack)))
            })
            .collect()
    }

    /// The environment every function gets (Globals), with `!Ref` of a
    /// parameter resolved to its default.
    pub fn global_env(&self) -> Vec<(String, EnvValue)> {
        let function = get(&self.doc, "Globals").and_then(|g| get(g, "Function"));
        self.variables(function)
    }

    /// `Environment.Variables` under a function's properties (or Globals).
    fn variables(&self, holder: Option<&Value>) -> Vec<(String, EnvValue)> {
        let vars = holder
            .and_then(|f| get(f, "Environment"))
            .and_then(|e| get(e, "Variables"))
            .and_then(|v| v.as_mapping());
        vars.into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), self.env_value(v)?)))
            .collect()
    }

    /// Every `Type: Api` event of every function: the REST API's routes.
    pub fn api_routes(&self) -> Vec<ApiRoute> {
        let mut out = Vec::new();
        for (id, r) in self.of_type("AWS::Serverless::Function") {
            let events = get(r, "Properties")
                .and_then(|p| get(p, "Events"))
                .and_then(|e| e.as_mapping());
            for (_, ev) in events.into_iter().flat_map(|m| m.iter()) {
                if get(ev, "Type").and_then(str_of) != Some("Api") {
                    continue;
                }
                let props = get(ev, "Properties");
                let field = |k| props.and_then(|p| get(p, k)).and_then(str_of);
                let authorizer = props
                    .and_then(|p| get(p, "Auth"))
                    .and_then(|a| get(a, "Authorizer"))
                    .and_then(str_of)
                    .filter(|a| *a != "NONE")
                    .map(str::to_string);
                if let (Some(path), Some(method)) = (field("Path"), field("Method")) {
                    let authorizer = authorizer.or_else(|| {
                        self.body_authorizer(field("RestApiId")?, path, method)
                            .map(str::to_string)
                    });
                    out.push(ApiRoute {
                        function: id.to_string(),
                        method: method.to_ascii_uppercase(),
                        path: path.to_string(),
                        authorizer,
                    });
                }
            }
        }
        out
    }

    /// The authorizer an API's own OpenAPI body (`DefinitionBody`) puts on
    /// a method: the first name in its `security`. The example API declares
    /// its authorizer there, not under SAM's `Auth` (see template.yaml).
    fn body_authorizer(&self, api: &str, path: &str, method: &str) -> Option<&str> {
        let (_, resource) = self.resources().find(|(id, _)| *id == api)?;
        let operation = get(resource, "Properties")
            .and_then(|p| get(p, "DefinitionBody"))
            .and_then(|b| get(b, "paths"))
            .and_then(|p| get(p, path))
            .and_then(|p| get(p, &method.to_ascii_lowercase()))?;
        let first = get(operation, "security")?.as_sequence()?.first()?;
        untag(first).as_mapping()?.keys().next()?.as_str()
    }

    /// A parameter's default value.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        let p = get(&self.doc, "Parameters").and_then(|p| get(p, name))?;
        get(p, "Default").and_then(|d| match untag(d) {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
    }

    /// A function's own environment variables (not the globals).
    pub fn function_env(&self, logical_id: &str) -> Vec<(String, EnvValue)> {
        let properties = self
            .resources()
            .find(|(id, _)| *id == logical_id)
            .and_then(|(_, r)| get(r, "Properties"));
        self.variables(properties)
    }

    /// A variable's value: a literal, a parameter's default, or a resource.
    fn env_value(&self, v: &Value) -> Option<EnvValue> {
        Some(match v {
            Value::Tagged(t) if t.tag == "!Ref" => {
                let target = t.value.as_str()?;
                match self.parameter_default(target) {
                    Some(d) => EnvValue::Literal(d),
                    None => EnvValue::Resource(target.to_string()),
                }
            }
            Value::String(s) => EnvValue::Literal(s.clone()),
            _ => return None,
        })
    }

    /// The gateway responses of the first `AWS::Serverless::Api`.
    pub fn gateway_responses(&self) -> Vec<GatewayResponseSpec> {
        let Some(responses) = self
            .of_type("AWS::Serverless::Api")
            .next()
            .and_then(|(_, r)| get(r, "Properties"))
            .and_then(|p| get(p, "GatewayResponses"))
            .and_then(|g| g.as_mapping())
        else {
            return Vec::new();
        };
        responses
            .iter()
            .filter_map(|(k, v)| {
                let headers = get(v, "ResponseParameters")
                    .and_then(|p| get(p, "Headers"))
                    .and_then(|h| h.as_mapping())
                    .map(|h| {
                        h.iter()
                            .filter_map(|(k, v)| {
                                Some((k.as_str()?.to_string(), str_of(v)?.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(GatewayResponseSpec {
                    response_type: k.as_str()?.to_string(),
                    status: get(v, "StatusCode")
                        .and_then(|s| {
                            s.as_u64()
                                .or_else(|| s.as_str().and_then(|t| t.parse().ok()))
                        })
                        .and_then(|s| u16::try_from(s).ok()),
                    headers,
                    body_template: get(v, "ResponseTemplates")
                        .and_then(|t| get(t, "application/json"))
                        .and_then(str_of)
                        .unwrap_or("")
                        .to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_template_parses_and_names_tables_by_stack() {
        let t = Template::builtin().unwrap();
        let tables = t.tables("s1").unwrap();
        let keys = tables.iter().find(|t| t.logical_id == "KeysTable").unwrap();
        assert_eq!(keys.name, "s1-keys");
        assert_eq!(
            keys.key_schema,
            vec![("id".to_string(), "HASH".to_string())]
        );
        assert_eq!(keys.indexes[0].name, "by_account");
        assert!(!t.api_routes().is_empty());
        assert!(
            t.gateway_responses()
                .iter()
                .any(|g| g.response_type == "MISSING_AUTHENTICATION_TOKEN")
        );
    }

    #[test]
    fn sqs_batching_is_what_the_event_source_mappings_say() {
        let t = Template::builtin().unwrap();
        let usage = t.sqs_batching("UsageFunction").unwrap();
        assert_eq!(usage.batch_size, 100);
        assert_eq!(usage.window, std::time::Duration::from_secs(5));
        let webhooks = t.sqs_batching("WebhooksFunction").unwrap();
        assert_eq!(webhooks.batch_size, 10);
        assert_eq!(webhooks.window, std::time::Duration::ZERO);
        assert_eq!(t.sqs_batching("AuthorizerFunction"), None);
    }
}
