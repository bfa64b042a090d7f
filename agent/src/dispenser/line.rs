//! The dispenser line protocol: what a dispenser bridge writes to the agent. Pure.
//!
//! A bridge (a small program that talks to an Evondos, Hero, Pivotell or Careousel unit)
//! writes one JSON object per line, UTF-8, `\n`-terminated. Every line has `ts` (when it
//! happened, by the dispenser's clock, RFC 3339 with an offset) and `event`; the other fields
//! depend on the event. `agent/README.md` ("Dispenser line protocol") is the specification for
//! third parties; this module is its parser and must agree with it.
//!
//! [`parse_line`] refuses, with a [`LineError`] that names the reason:
//! - anything that is not one JSON object (garbage, an array, an empty line, over
//!   [`MAX_LINE`] bytes);
//! - a missing or unknown `event`;
//! - a field the event does not have (a typo must not silently drop a value), naming it;
//! - a missing field, naming it;
//! - a time without an offset, unparsable, or outside the years 2020–2100 (an unset
//!   dispenser clock says 1970);
//! - texts that are empty, longer than [`MAX_TEXT`] characters or hold control characters,
//!   numbers out of range.
//!
//! Parsing never panics, whatever the input (a property test holds it to that). Whether an
//! accepted line makes sense *in sequence* (order, duplicates, unknown doses) is decided by
//! the [`core`](super::core), not here.

use jiff::tz::Offset;
use jiff::Timestamp;
use serde_json::{Map, Value};
use thiserror::Error;
use vaka_protocol::kinds::{Dose, MAX_TEXT};

/// Longest line accepted, in bytes. A line is a few hundred bytes at most; the shell should
/// also stop reading a line at this length, so a bridge that never writes `\n` cannot fill
/// the agent's memory.
pub const MAX_LINE: usize = 4096;
/// The most doses a `low_stock` may report.
pub const MAX_DOSES_LEFT: u64 = 10_000;
/// Times outside these years are a dispenser clock fault, not an event (as in the envelope).
const EARLIEST_YEAR: i16 = 2020;
const LATEST_YEAR: i16 = 2100;

/// Every event a bridge may send, with the fields it may carry besides `ts` and `event`.
const EVENTS: &[(&str, &[&str])] = &[
    ("dose_due", DOSE_FIELDS),
    ("dose_dispensed", DOSE_FIELDS),
    ("dose_taken", DOSE_FIELDS),
    ("dose_skipped", DOSE_FIELDS),
    ("low_stock", &["doses_left"]),
    ("device_error", &["code", "message"]),
    ("tamper", &[]),
    ("battery_low", &["percent"]),
    ("power_lost", &[]),
    ("heartbeat", &[]),
];
const DOSE_FIELDS: &[&str] = &["dose_id", "medication", "scheduled"];

/// One accepted line.
#[derive(Debug, Clone, PartialEq)]
pub struct DispenserLine {
    /// When it happened, by the dispenser's clock.
    pub ts: Timestamp,
    pub message: Message,
}

/// What the line says. Dose messages carry the whole [`Dose`]: `dose_id` and `scheduled`
/// together name one dose (`evening` comes back every day).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    DoseDue(Dose),
    DoseDispensed(Dose),
    DoseTaken(Dose),
    DoseSkipped(Dose),
    LowStock {
        doses_left: u32,
    },
    /// A jam, an empty carousel, a failed self-test: `code` is the maker's code.
    DeviceError {
        code: String,
        message: Option<String>,
    },
    /// The door or lid was forced, or the unit was opened outside a refill.
    Tamper,
    BatteryLow {
        percent: Option<u8>,
    },
    /// The unit lost mains power (and runs on its battery, if it has one).
    PowerLost,
    /// Nothing happened, and the bridge and dispenser are alive.
    Heartbeat,
}

impl Message {
    /// The `event` string on the line.
    pub fn event(&self) -> &'static str {
        match self {
            Message::DoseDue(_) => "dose_due",
            Message::DoseDispensed(_) => "dose_dispensed",
            Message::DoseTaken(_) => "dose_taken",
            Message::DoseSkipped(_) => "dose_skipped",
            Message::LowStock { .. } => "low_stock",
            Message::DeviceError { .. } => "device_error",
            Message::Tamper => "tamper",
            Message::BatteryLow { .. } => "battery_low",
            Message::PowerLost => "power_lost",
            Message::Heartbeat => "heartbeat",
        }
    }
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("empty line")]
    Empty,
    #[error("line is {len} bytes, over the limit of {MAX_LINE}")]
    TooLong { len: usize },
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object; a line is one object such as {{\"ts\":\"2026-11-23T20:00:00+01:00\",\"event\":\"heartbeat\"}}")]
    NotAnObject,
    #[error("unknown event {0:?}; known events: {list}", list = known_events())]
    UnknownEvent(String),
    #[error("missing field {field:?}{}", for_event(*.event))]
    MissingField { field: &'static str, event: Option<&'static str> },
    #[error("unknown field {field:?} for event {event} (it has: {})", allowed(event))]
    UnknownField { field: String, event: &'static str },
    #[error("field {field:?}: {value:?} is not an RFC 3339 time with an offset: {reason}")]
    BadTime { field: &'static str, value: String, reason: String },
    #[error("field {field:?}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn known_events() -> String {
    EVENTS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

fn for_event(event: Option<&str>) -> String {
    event.map(|e| format!(" (needed by {e})")).unwrap_or_default()
}

fn allowed(event: &str) -> String {
    let fields = EVENTS.iter().find(|(name, _)| *name == event).map_or(&[][..], |(_, f)| *f);
    ["ts", "event"].iter().chain(fields).copied().collect::<Vec<_>>().join(", ")
}

/// Parses and checks one line (without its `\n`; surrounding whitespace, such as the `\r`
/// of a serial line, is ignored).
pub fn parse_line(line: &str) -> Result<DispenserLine, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong { len: line.len() });
    }
    let line = line.trim();
    if line.is_empty() {
        return Err(LineError::Empty);
    }
    let value: Value = serde_json::from_str(line).map_err(|e| LineError::NotJson(e.to_string()))?;
    let Value::Object(map) = value else { return Err(LineError::NotAnObject) };
    let event = match map.get("event") {
        None => return Err(LineError::MissingField { field: "event", event: None }),
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(invalid("event", "must be a string such as \"dose_due\"")),
    };
    let Some(&(event, known)) = EVENTS.iter().find(|(name, _)| *name == event) else {
        return Err(LineError::UnknownEvent(event.chars().take(60).collect()));
    };
    if let Some(field) =
        map.keys().find(|k| !matches!(k.as_str(), "ts" | "event") && !known.contains(&k.as_str()))
    {
        return Err(LineError::UnknownField { field: field.chars().take(60).collect(), event });
    }
    let fields = Fields { map, event };
    let ts = fields.time("ts")?;
    let message = match event {
        "dose_due" => Message::DoseDue(fields.dose()?),
        "dose_dispensed" => Message::DoseDispensed(fields.dose()?),
        "dose_taken" => Message::DoseTaken(fields.dose()?),
        "dose_skipped" => Message::DoseSkipped(fields.dose()?),
        "low_stock" => {
            let doses_left = fields.whole("doses_left", MAX_DOSES_LEFT)? as u32;
            Message::LowStock { doses_left }
        }
        "device_error" => Message::DeviceError {
            code: fields.text("code")?,
            message: fields.optional_text("message")?,
        },
        "tamper" => Message::Tamper,
        "battery_low" => {
            let percent = fields.optional_whole("percent", 100)?;
            Message::BatteryLow { percent: percent.map(|p| p as u8) }
        }
        "power_lost" => Message::PowerLost,
        _ => Message::Heartbeat,
    };
    Ok(DispenserLine { ts, message })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> LineError {
    LineError::Invalid { field, reason: reason.into() }
}

/// The fields of one line whose event is known and whose field names have been checked.
struct Fields {
    map: Map<String, Value>,
    event: &'static str,
}

impl Fields {
    fn required(&self, field: &'static str) -> Result<&Value, LineError> {
        match self.map.get(field) {
            None | Some(Value::Null) => {
                Err(LineError::MissingField { field, event: Some(self.event) })
            }
            Some(v) => Ok(v),
        }
    }

    fn time(&self, field: &'static str) -> Result<Timestamp, LineError> {
        let Value::String(text) = self.required(field)? else {
            return Err(invalid(field, "must be a string such as \"2026-11-23T20:00:00+01:00\""));
        };
        let bad = |reason: String| LineError::BadTime {
            field,
            value: text.chars().take(60).collect(),
            reason,
        };
        let ts: Timestamp = text.parse().map_err(|e: jiff::Error| bad(e.to_string()))?;
        let year = ts.to_zoned(jiff::tz::TimeZone::UTC).year();
        if !(EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
            return Err(bad(format!(
                "year {year} is outside {EARLIEST_YEAR}–{LATEST_YEAR} (is the dispenser's clock set?)"
            )));
        }
        Ok(ts)
    }

    fn text(&self, field: &'static str) -> Result<String, LineError> {
        let Value::String(text) = self.required(field)? else {
            return Err(invalid(field, "must be a string"));
        };
        if text.trim().is_empty() {
            return Err(invalid(field, "must not be empty"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(invalid(field, format!("longer than {MAX_TEXT} characters")));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid(field, "contains control characters"));
        }
        Ok(text.clone())
    }

    fn optional_text(&self, field: &'static str) -> Result<Option<String>, LineError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.text(field).map(Some),
        }
    }

    fn whole(&self, field: &'static str, max: u64) -> Result<u64, LineError> {
        match self.required(field)?.as_u64() {
            Some(n) if n <= max => Ok(n),
            _ => Err(invalid(field, format!("must be a whole number from 0 to {max}"))),
        }
    }

    fn optional_whole(&self, field: &'static str, max: u64) -> Result<Option<u64>, LineError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.whole(field, max).map(Some),
        }
    }

    fn dose(&self) -> Result<Dose, LineError> {
        Ok(Dose {
            dose_id: self.text("dose_id")?,
            medication: self.text("medication")?,
            scheduled: self.time("scheduled")?,
        })
    }
}

impl DispenserLine {
    /// The line as a bridge would write it (without `\n`), times shown at `offset`.
    /// `parse_line` of the result gives back `self`.
    pub fn render(&self, offset: Offset) -> String {
        let time = |t: Timestamp| Value::String(t.display_with_offset(offset).to_string());
        let mut map = Map::new();
        map.insert("ts".into(), time(self.ts));
        map.insert("event".into(), self.message.event().into());
        match &self.message {
            Message::DoseDue(d)
            | Message::DoseDispensed(d)
            | Message::DoseTaken(d)
            | Message::DoseSkipped(d) => {
                map.insert("dose_id".into(), d.dose_id.clone().into());
                map.insert("medication".into(), d.medication.clone().into());
                map.insert("scheduled".into(), time(d.scheduled));
            }
            Message::LowStock { doses_left } => {
                map.insert("doses_left".into(), (*doses_left).into());
            }
            Message::DeviceError { code, message } => {
                map.insert("code".into(), code.clone().into());
                if let Some(m) = message {
                    map.insert("message".into(), m.clone().into());
                }
            }
            Message::BatteryLow { percent: Some(p) } => {
                map.insert("percent".into(), (*p).into());
            }
            Message::BatteryLow { percent: None }
            | Message::Tamper
            | Message::PowerLost
            | Message::Heartbeat => {}
        }
        Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn refused(line: &str) -> String {
        parse_line(line).unwrap_err().to_string()
    }

    #[test]
    fn dose_due_from_the_readme_is_read_with_its_offset() {
        let line = r#"{"ts":"2026-11-23T20:00:04+01:00","event":"dose_due","dose_id":"evening","medication":"Waran 2,5 mg","scheduled":"2026-11-23T20:00:00+01:00"}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.ts, at("2026-11-23T19:00:04Z"));
        assert_eq!(
            parsed.message,
            Message::DoseDue(Dose {
                dose_id: "evening".into(),
                medication: "Waran 2,5 mg".into(),
                scheduled: at("2026-11-23T19:00:00Z"),
            })
        );
    }

    #[test]
    fn every_event_without_dose_fields_is_read() {
        let ts = r#""ts":"2026-11-23T20:00:00Z""#;
        let cases = [
            (r#""event":"low_stock","doses_left":4"#, Message::LowStock { doses_left: 4 }),
            (
                r#""event":"device_error","code":"E12","message":"carousel jammed""#,
                Message::DeviceError {
                    code: "E12".into(),
                    message: Some("carousel jammed".into()),
                },
            ),
            (
                r#""event":"device_error","code":"E12""#,
                Message::DeviceError { code: "E12".into(), message: None },
            ),
            (r#""event":"tamper""#, Message::Tamper),
            (r#""event":"battery_low","percent":15"#, Message::BatteryLow { percent: Some(15) }),
            (r#""event":"battery_low""#, Message::BatteryLow { percent: None }),
            (r#""event":"power_lost""#, Message::PowerLost),
            (r#""event":"heartbeat""#, Message::Heartbeat),
        ];
        for (fields, message) in cases {
            let line = format!("{{{ts},{fields}}}\r");
            assert_eq!(parse_line(&line).unwrap().message, message, "{line}");
        }
    }

    #[test]
    fn garbage_and_non_objects_are_refused_as_such() {
        assert_eq!(parse_line("   "), Err(LineError::Empty));
        assert!(refused("hello dispenser").starts_with("not JSON"));
        assert!(
            refused(r#"{"ts":"2026-11-23T20:00:00Z","event":"heartbeat""#).starts_with("not JSON")
        );
        assert_eq!(parse_line("[1,2]"), Err(LineError::NotAnObject));
        let long = format!(r#"{{"event":"heartbeat","pad":"{}"}}"#, "x".repeat(MAX_LINE));
        assert!(matches!(parse_line(&long), Err(LineError::TooLong { .. })));
    }

    #[test]
    fn unknown_field_is_named_with_the_fields_the_event_has() {
        let why = refused(r#"{"ts":"2026-11-23T20:00:00Z","event":"low_stock","doses":4}"#);
        assert_eq!(
            why,
            "unknown field \"doses\" for event low_stock (it has: ts, event, doses_left)"
        );
    }

    #[test]
    fn unknown_or_missing_event_is_refused_naming_the_known_events() {
        let why = refused(r#"{"ts":"2026-11-23T20:00:00Z","event":"upside_down"}"#);
        assert!(why.starts_with("unknown event \"upside_down\"; known events: dose_due,"), "{why}");
        assert_eq!(refused(r#"{"ts":"2026-11-23T20:00:00Z"}"#), "missing field \"event\"");
        assert!(refused(r#"{"event":7}"#).starts_with("field \"event\": must be a string"));
    }

    #[test]
    fn missing_field_is_named_with_its_event() {
        let why = refused(
            r#"{"ts":"2026-11-23T20:00:00Z","event":"dose_taken","dose_id":"evening","scheduled":"2026-11-23T20:00:00Z"}"#,
        );
        assert_eq!(why, "missing field \"medication\" (needed by dose_taken)");
        assert_eq!(
            refused(r#"{"event":"heartbeat"}"#),
            "missing field \"ts\" (needed by heartbeat)"
        );
        let why = refused(r#"{"ts":"2026-11-23T20:00:00Z","event":"low_stock","doses_left":null}"#);
        assert_eq!(why, "missing field \"doses_left\" (needed by low_stock)");
    }

    #[test]
    fn times_without_offset_or_from_an_unset_clock_are_refused() {
        let why = refused(r#"{"ts":"2026-11-23T20:00:00","event":"heartbeat"}"#);
        assert!(
            why.starts_with("field \"ts\": \"2026-11-23T20:00:00\" is not an RFC 3339 time"),
            "{why}"
        );
        let why = refused(r#"{"ts":"1970-01-01T00:00:05Z","event":"heartbeat"}"#);
        assert!(why.contains("year 1970 is outside 2020–2100"), "{why}");
        let why = refused(
            r#"{"ts":"2026-11-23T20:00:00Z","event":"dose_due","dose_id":"e","medication":"m","scheduled":"tonight"}"#,
        );
        assert!(why.starts_with("field \"scheduled\": \"tonight\""), "{why}");
        assert!(refused(r#"{"ts":1764000000,"event":"heartbeat"}"#)
            .starts_with("field \"ts\": must be a string"));
    }

    #[test]
    fn out_of_range_numbers_and_bad_texts_are_refused() {
        let base = r#""ts":"2026-11-23T20:00:00Z""#;
        for (fields, field) in [
            (r#""event":"low_stock","doses_left":-1"#, "doses_left"),
            (r#""event":"low_stock","doses_left":2.5"#, "doses_left"),
            (r#""event":"low_stock","doses_left":"4""#, "doses_left"),
            (r#""event":"battery_low","percent":101"#, "percent"),
            (r#""event":"device_error","code":"  ""#, "code"),
            (r#""event":"device_error","code":"E1","message":"a\u0007b""#, "message"),
            (r#""event":"device_error","code":5"#, "code"),
        ] {
            let why = refused(&format!("{{{base},{fields}}}"));
            assert!(why.starts_with(&format!("field \"{field}\"")), "{fields}: {why}");
        }
        let long = "x".repeat(MAX_TEXT + 1);
        let why = refused(&format!(r#"{{{base},"event":"device_error","code":"{long}"}}"#));
        assert!(why.contains("longer than 200 characters"), "{why}");
    }

    fn message() -> impl Strategy<Value = Message> {
        let text = "[a-zA-Z0-9 ,.åäö]{0,12}[a-z]";
        let dose = (text, text, 1_600_000_000i64..4_000_000_000).prop_map(|(id, med, s)| Dose {
            dose_id: id,
            medication: med,
            scheduled: Timestamp::from_second(s).unwrap(),
        });
        prop_oneof![
            dose.clone().prop_map(Message::DoseDue),
            dose.clone().prop_map(Message::DoseDispensed),
            dose.clone().prop_map(Message::DoseTaken),
            dose.prop_map(Message::DoseSkipped),
            (0u32..10_000).prop_map(|doses_left| Message::LowStock { doses_left }),
            (text, proptest::option::of(text))
                .prop_map(|(code, message)| Message::DeviceError { code, message }),
            Just(Message::Tamper),
            proptest::option::of(0u8..=100).prop_map(|percent| Message::BatteryLow { percent }),
            Just(Message::PowerLost),
            Just(Message::Heartbeat),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(line in "\\PC{0,300}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn arbitrary_json_shaped_input_never_panics(
            event in "(dose_due|low_stock|battery_low|device_error|heartbeat|x)",
            key in "(ts|scheduled|doses_left|percent|code|message|dose_id|medication|zz)",
            value in "(\"[^\"\\\\]{0,30}\"|-?[0-9]{1,25}(\\.[0-9]+)?(e[0-9]{1,4})?|null|true|\\[\\]|\\{\\})",
        ) {
            let line = format!(r#"{{"ts":"2026-11-23T20:00:00Z","event":"{event}","{key}":{value}}}"#);
            let _ = parse_line(&line);
        }

        #[test]
        fn a_rendered_line_parses_back_to_itself(
            message in message(),
            ts in 1_600_000_000i64..4_000_000_000,
            hours in -12i8..=14,
        ) {
            let line = DispenserLine { ts: Timestamp::from_second(ts).unwrap(), message };
            let text = line.render(jiff::tz::offset(hours));
            prop_assert_eq!(parse_line(&text), Ok(line));
        }
    }
}
