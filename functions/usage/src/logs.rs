//! CloudWatch Logs subscription events: what a subscription filter hands a
//! Lambda function, `{"awslogs": {"data": "<base64 of gzip of JSON>"}}`,
//! whose JSON is a batch of log events (`LogData`). The usage function reads
//! API Gateway's access-log lines this way; the local gateway writes its
//! lines with `encode`, so that both go through `decode`.

use std::io::{Read, Write};

use aws_lambda_events::cloudwatch_logs::{LogData, LogEntry};
use base64::Engine;
use serde_json::Value;

/// Well above what one batch can hold (CloudWatch Logs batches at most
/// 1 MiB of events): a payload inflating past it is refused rather than
/// inflated without bound.
pub const MAX_DECODED_BYTES: u64 = 4 * 1024 * 1024;

/// What a batch carries: access-log lines, or the control message CloudWatch
/// Logs sends once to check the destination is reachable.
pub const DATA_MESSAGE: &str = "DATA_MESSAGE";

/// Whether an event is a CloudWatch Logs subscription event (rather than
/// SQS's `{"Records": [...]}`).
pub fn is_logs_event(event: &Value) -> bool {
    event.get("awslogs").is_some()
}

/// The batch in a subscription event. An event that is not base64, not
/// gzip, or not a batch is an error: no line of it can be read.
pub fn decode(event: &Value) -> Result<LogData, String> {
    let data = event
        .get("awslogs")
        .and_then(|a| a.get("data"))
        .and_then(Value::as_str)
        .ok_or("no awslogs.data")?;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let gzipped = engine
        .decode(data.trim())
        .map_err(|e| format!("awslogs.data is not base64: {e}"))?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gzipped.as_slice())
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("awslogs.data is not gzip: {e}"))?;
    if json.len() as u64 > MAX_DECODED_BYTES {
        return Err(format!(
            "awslogs.data inflates past {MAX_DECODED_BYTES} bytes"
        ));
    }
    serde_json::from_slice(&json).map_err(|e| format!("awslogs.data is not a log batch: {e}"))
}

/// The subscription event CloudWatch Logs would send for `lines` of
/// `log_group`: one log event per line, ids and timestamps as given.
pub fn encode(
    log_group: &str,
    log_stream: &str,
    filter: &str,
    lines: &[(String, i64, String)],
) -> Result<Value, String> {
    let mut data = LogData::default();
    data.owner = "000000000000".to_string();
    data.log_group = log_group.to_string();
    data.log_stream = log_stream.to_string();
    data.subscription_filters = vec![filter.to_string()];
    data.message_type = DATA_MESSAGE.to_string();
    data.log_events = lines
        .iter()
        .map(|(id, timestamp, message)| {
            let mut e = LogEntry::default();
            e.id = id.clone();
            e.timestamp = *timestamp;
            e.message = message.clone();
            e
        })
        .collect();
    let json = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).map_err(|e| e.to_string())?;
    let gzipped = gz.finish().map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "awslogs": {"data": base64::engine::general_purpose::STANDARD.encode(gzipped)}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload as CloudWatch Logs sends it (from aws_lambda_events' own
    /// fixture: a Lambda REPORT line), gzip and base64 made elsewhere.
    const REAL: &str = "H4sIAFETomIAA12Ry27bMBBF9/4KQuiyqsQ36Z2DqEGBGC0sdRUHAS0NExV6uCJVNw3y76Fkx03CFTH3cubwztMChRO14Jy5h+JxD9ESRZerYnW3zvJ8dZVFn4+W/tDBMImYUMaFVDrF5FVs+vuroR/3k56Yg0sa0+4qk0D50MddX8Ev98aa+wFMO3lJinWS0gTT5ObT9arI8uJWM2uUkMCpZIxiorGRtsQMiOXCgHxt5MadK4d67+u++1o3HgYXWt7M4my4nhmOw+7Kph+rg/HlQwBwM1M0W2//c2V/oPPvmzydb7OpriZqygQhFItUa6GlUkymgrNUS5EKpQhRfMpGCEzC/xgWjCpNOBMn8nM3X4fcvWmn2DDnhGNFWXiffvCdtjON3mQ/vm8KtIHfY3j6rVoiEdaxsxZizLSJd4KRWGFrYwIKqBSVMtZu/eU4mCmoJWLii2KodVt/UTcNVOiNJEMdbf0a2n54RHn9DwKYJmh9EYrmLzoJPx2EwfJY33bRmfb5mOjiefECiB5LsVgCAAA=";

    #[test]
    fn a_real_payload_decodes_to_its_batch() {
        let event = serde_json::json!({"awslogs": {"data": REAL}});
        assert!(is_logs_event(&event));
        let data = decode(&event).unwrap();
        assert_eq!(data.message_type, DATA_MESSAGE);
        assert_eq!(data.owner, "123456789012");
        assert_eq!(data.log_group, "/aws/lambda/echo-nodejs");
        assert_eq!(data.log_events.len(), 1);
        assert_eq!(data.log_events[0].timestamp, 1552518348220);
        assert!(
            data.log_events[0]
                .message
                .starts_with("REPORT RequestId: 6234bffe")
        );
    }

    #[test]
    fn what_encode_writes_decode_reads() {
        let lines = vec![
            ("1".to_string(), 10, "{\"a\":1}".to_string()),
            ("2".to_string(), 11, "second line".to_string()),
        ];
        let event = encode("/aws/apigateway/x", "stream", "usage", &lines).unwrap();
        let data = decode(&event).unwrap();
        assert_eq!(data.log_group, "/aws/apigateway/x");
        assert_eq!(data.subscription_filters, ["usage"]);
        let back: Vec<_> = data
            .log_events
            .iter()
            .map(|e| (e.id.clone(), e.timestamp, e.message.clone()))
            .collect();
        assert_eq!(back, lines);
        // The same batch through JSON text, as Lambda hands it over.
        let text = serde_json::to_string(&event).unwrap();
        let again: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(decode(&again).unwrap(), data);
    }

    #[test]
    fn a_damaged_payload_is_an_error() {
        let gz_of_text = {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(b"not json").unwrap();
            base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
        };
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"awslogs": {}}),
            serde_json::json!({"awslogs": {"data": 7}}),
            serde_json::json!({"awslogs": {"data": "***"}}),
            serde_json::json!({"awslogs": {"data": "aGVsbG8="}}),
            serde_json::json!({"awslogs": {"data": &REAL[..40]}}),
            serde_json::json!({"awslogs": {"data": gz_of_text}}),
        ] {
            assert!(decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_payload_that_inflates_without_bound_is_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1024 * 1024];
        for _ in 0..5 {
            gz.write_all(&zeros).unwrap();
        }
        let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        let err = decode(&serde_json::json!({"awslogs": {"data": data}})).unwrap_err();
        assert!(err.contains("inflates past"), "{err}");
    }
}
