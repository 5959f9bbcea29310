//! Flushing API Gateway's authorizer cache (`FlushStageAuthorizersCache`)
//! of the stages that put keyhub's authorizer in front of an API, so that a
//! key deleted, deactivated, re-scoped, re-limited or rotated stops being
//! answered from a cached policy at once rather than after the cache's TTL.
//!
//! The stages come from `KEYHUB_AUTHORIZER_CACHE_STAGES` (template.yaml:
//! the example API's stage when its cache is on, and the stages of
//! `AuthorizerCacheStages`), and the function's role may flush those only.
//!
//! A flush is a side effect of a change that has already committed: it is
//! tried, retried once, and a failure is logged (`metric =
//! "authorizer_cache_flush_failed"`), never returned. Then the only cost is
//! the delay this exists to remove: the stage's cached answers live on for
//! up to its authorizer cache TTL.

use std::time::Duration;

/// One API Gateway stage, as its ARN names it:
/// `arn:aws:apigateway:{region}::/restapis/{id}/stages/{stage}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub region: String,
    pub rest_api_id: String,
    pub stage: String,
}

impl Stage {
    pub fn parse(arn: &str) -> Result<Self, String> {
        let word = |w: &str| {
            !w.is_empty()
                && w.len() <= 128
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let parsed = (|| {
            let rest = arn.trim().strip_prefix("arn:")?;
            let (partition, rest) = rest.split_once(':')?;
            let rest = rest.strip_prefix("apigateway:")?;
            let (region, path) = rest.split_once("::/restapis/")?;
            let (api, stage) = path.split_once("/stages/")?;
            (partition.starts_with("aws") && word(region) && word(api) && word(stage)).then(|| {
                Stage {
                    region: region.to_string(),
                    rest_api_id: api.to_string(),
                    stage: stage.to_string(),
                }
            })
        })();
        parsed.ok_or_else(|| {
            format!(
                "{arn:?} is not a stage ARN (arn:aws:apigateway:REGION::/restapis/ID/stages/STAGE)"
            )
        })
    }
}

/// Reads `KEYHUB_AUTHORIZER_CACHE_STAGES`: the stages whose authorizer
/// cache holds keyhub's answers, as comma-separated stage ARNs (empty or
/// unset: none).
pub fn stages_from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Vec<Stage>, String> {
    get("KEYHUB_AUTHORIZER_CACHE_STAGES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Stage::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("KEYHUB_AUTHORIZER_CACHE_STAGES: {e}"))
}

/// Flushes the authorizer cache of its stages.
#[derive(Clone)]
pub struct CacheFlush {
    /// Each stage with a client of its region.
    stages: Vec<(Stage, aws_sdk_apigateway::Client)>,
    /// How long one attempt may take; the key change's response waits.
    timeout: Duration,
}

/// Pause before the one retry: API Gateway's control plane throttles
/// bursts of calls (`TooManyRequestsException`).
const RETRY_PAUSE: Duration = Duration::from_millis(200);

impl CacheFlush {
    /// A flusher for `stages`, or none when there is nothing to flush.
    /// Each client makes one attempt per call: the one retry is here,
    /// where it is logged.
    pub fn new(sdk: &aws_config::SdkConfig, stages: Vec<Stage>, timeout: Duration) -> Option<Self> {
        if stages.is_empty() {
            return None;
        }
        let stages = stages
            .into_iter()
            .map(|stage| {
                let config = aws_sdk_apigateway::config::Builder::from(sdk)
                    .region(aws_config::Region::new(stage.region.clone()))
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
                    .build();
                (stage, aws_sdk_apigateway::Client::from_conf(config))
            })
            .collect();
        Some(CacheFlush { stages, timeout })
    }

    /// Flushes every stage, all at once.
    pub async fn flush(&self) {
        futures::future::join_all(
            self.stages
                .iter()
                .map(|(stage, client)| flush_stage(client, stage, self.timeout)),
        )
        .await;
    }
}

#[tracing::instrument(skip_all, fields(rest_api_id = %stage.rest_api_id, stage = %stage.stage))]
async fn flush_stage(client: &aws_sdk_apigateway::Client, stage: &Stage, timeout: Duration) {
    for attempt in 1..=2 {
        let call = client
            .flush_stage_authorizers_cache()
            .rest_api_id(&stage.rest_api_id)
            .stage_name(&stage.stage)
            .send();
        let error = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(_)) => {
                tracing::info!(attempt, "authorizer cache flushed");
                return;
            }
            Ok(Err(e)) => aws_sdk_apigateway::error::DisplayErrorContext(&e).to_string(),
            Err(_) => format!("no answer within {} ms", timeout.as_millis()),
        };
        if attempt == 1 {
            tracing::warn!(%error, "authorizer cache flush failed; retrying once");
            tokio::time::sleep(RETRY_PAUSE).await;
        } else {
            tracing::error!(
                metric = "authorizer_cache_flush_failed",
                %error,
                "authorizer cache not flushed: the stage may answer from its cache until its TTL ends"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(value: &str) -> Result<Vec<Stage>, String> {
        stages_from_lookup(|k| (k == "KEYHUB_AUTHORIZER_CACHE_STAGES").then(|| value.to_string()))
    }

    #[test]
    fn stages_are_read_from_their_arns() {
        assert_eq!(stages("").unwrap(), vec![]);
        assert_eq!(stages_from_lookup(|_| None).unwrap(), vec![]);
        let s = stages(
            "arn:aws:apigateway:eu-west-1::/restapis/abc123/stages/prod, arn:aws-cn:apigateway:cn-north-1::/restapis/x9/stages/v_1",
        )
        .unwrap();
        assert_eq!(
            s,
            vec![
                Stage {
                    region: "eu-west-1".into(),
                    rest_api_id: "abc123".into(),
                    stage: "prod".into()
                },
                Stage {
                    region: "cn-north-1".into(),
                    rest_api_id: "x9".into(),
                    stage: "v_1".into()
                },
            ]
        );
        for bad in [
            "abc123/prod",
            "arn:aws:apigateway:eu-west-1::/restapis/abc123",
            "arn:aws:apigateway:eu-west-1::/restapis//stages/prod",
            "arn:aws:apigateway:eu-west-1::/restapis/abc/stages/prod/x",
            "arn:aws:lambda:eu-west-1::/restapis/abc/stages/prod",
            "arn:aws:apigateway:::/restapis/abc/stages/prod",
        ] {
            let e = stages(bad).unwrap_err();
            assert!(e.contains("KEYHUB_AUTHORIZER_CACHE_STAGES"), "{bad}: {e}");
        }
    }
}
