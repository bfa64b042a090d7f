//! Site (municipality), device and camera-check identifiers.
//!
//! Site and device ids appear as MQTT topic segments, so they are restricted to characters that are safe
//! there and in file names: lowercase ASCII letters, digits and `-`, 1–64 characters, starting
//! with a letter or digit. Validation happens on construction and on deserialisation, so a
//! value of these types is always valid.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

pub const MAX_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{value}` is not a valid {what} id: {reason}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn check(what: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason| Err(IdError { what, value: value.chars().take(80).collect(), reason });
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > MAX_ID_LEN {
        return fail("it is longer than 64 characters");
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return fail("only lowercase letters a-z, digits and '-' are allowed");
    }
    if value.starts_with('-') {
        return fail("it must start with a letter or digit");
    }
    Ok(())
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($what, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(DeviceId, "device");
id_type!(SiteId, "site");
// The hub's id of one camera check (it issues UUIDs); same rules, so it is safe in logs,
// URLs and file names alike.
id_type!(CheckId, "check");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_lowercase_digits_and_dashes() {
        assert!(DeviceId::new("home-001").is_ok());
        assert!(SiteId::new("skelleftea").is_ok());
        assert!(DeviceId::new("0a").is_ok());
    }

    #[test]
    fn ids_reject_topic_wildcards_uppercase_and_overlong_values() {
        for bad in ["", "a/b", "+", "#", "Home", "-x", "å", "a b", &"x".repeat(65)] {
            let err = DeviceId::new(bad).expect_err(bad);
            assert!(err.to_string().contains("not a valid device id"), "{err}");
        }
    }
}
