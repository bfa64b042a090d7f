//! The one error type of decoding: what was wrong with a payload, in words fit for a log line
//! and for the hub's rejects table.

use thiserror::Error;

/// Why a payload was refused. Every variant names the problem precisely enough that the
/// device's maker can fix it from the message alone.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    #[error("payload is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    #[error("payload has no protocol version field \"v\"")]
    MissingVersion,
    #[error("protocol version {found} is not supported (this side speaks version {supported})")]
    UnsupportedVersion { found: u64, supported: u32 },
    #[error("payload does not match the contract at `{path}`: {message}")]
    Malformed { path: String, message: String },
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

impl DecodeError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DecodeError::Invalid { field: field.into(), reason: reason.into() }
    }

    /// A short stable label for counters and the rejects table (`too_large`, `not_json`, …).
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::NotJson(_) => "not_json",
            DecodeError::MissingVersion => "missing_version",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::Malformed { .. } => "malformed",
            DecodeError::Invalid { .. } => "invalid",
        }
    }
}

/// Decodes `bytes` as a versioned JSON message of type `T`, checking size and version first so
/// that a v2 message gets "unsupported version" rather than a confusing field error.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { size: bytes.len(), max });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let version = match value.get("v") {
        None => return Err(DecodeError::MissingVersion),
        Some(v) => v.as_u64().ok_or_else(|| {
            DecodeError::invalid("v", format!("must be a positive integer, got {v}"))
        })?,
    };
    if version != u64::from(crate::PROTOCOL_VERSION) {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: crate::PROTOCOL_VERSION,
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        DecodeError::Malformed { path, message: e.into_inner().to_string() }
    })
}
