//! The button line protocol: the tracker's SOS button and battery level, one JSON object per
//! line (documented for bridge writers in `agent/README.md`, "GPS button line protocol"):
//!
//! ```text
//! {"event":"sos"}
//! {"event":"battery","percent":17}
//! ```
//! Unknown events and fields are refused with a reason (a typo must not turn an SOS into
//! nothing without a trace). Pure.

use super::tracker::Input;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Sos {},
    Battery { percent: u8 },
}

/// Decodes one line into a tracker input.
pub fn parse_line(text: &str) -> Result<Input, String> {
    match serde_json::from_str::<Line>(text) {
        Ok(Line::Sos {}) => Ok(Input::Sos),
        Ok(Line::Battery { percent }) if percent <= 100 => Ok(Input::Battery { percent }),
        Ok(Line::Battery { percent }) => Err(format!("battery percent {percent} is above 100")),
        Err(e) => Err(format!("not a button line ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sos_and_battery_lines_become_tracker_inputs() {
        assert!(matches!(parse_line(r#"{"event":"sos"}"#), Ok(Input::Sos)));
        assert!(matches!(
            parse_line(r#"{"event":"battery","percent":17}"#),
            Ok(Input::Battery { percent: 17 })
        ));
    }

    #[test]
    fn bad_button_lines_are_refused_with_a_reason() {
        for (line, needle) in [
            (r#"{"event":"SOS"}"#, "unknown variant"),
            (r#"{"event":"sos","pressed":true}"#, "pressed"),
            (r#"{"event":"battery","percent":130}"#, "above 100"),
            (r#"{"event":"battery"}"#, "percent"),
            ("SOS!", "not a button line"),
        ] {
            let err = parse_line(line).err().unwrap_or_default();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
