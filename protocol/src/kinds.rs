//! Event kinds and their bodies.
//!
//! On the wire the kind is the envelope's `kind` string and the body its `body` object; every
//! kind has a body, possibly `{}`. Bodies refuse unknown fields. The kinds cover the three
//! device families of the service (camera, medication dispenser, GPS tracker) and the agent
//! itself. New kinds are added here, documented in `protocol/README.md`, and are a minor
//! change; changing a body's meaning needs a new protocol version.

use crate::envelope::Severity;
use crate::error::DecodeError;
use crate::ids::CheckId;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest free-text or name field accepted in a body.
pub const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum EventBody {
    /// Result of a night camera check, decided on the device.
    CameraCheck(CameraCheck),
    DoseDue(Dose),
    DoseDispensed(Dose),
    DoseTaken(Dose),
    /// The grace period ended without `dose_taken`.
    DoseMissed(Dose),
    DoseSkipped(Dose),
    LowStock(LowStock),
    DeviceError(DeviceError),
    Tamper(Empty),
    PowerLost(Empty),
    /// The dispenser itself went silent.
    DispenserOffline(Silence),
    /// A GPS position report.
    Position(Position),
    GeofenceLeft(GeofenceLeft),
    GeofenceReturned(GeofenceReturned),
    Sos(Sos),
    GpsNoFix(Silence),
    BatteryLow(BatteryLow),
    /// The agent's outbox was full and dropped its oldest low-severity events.
    OutboxOverflow(OutboxOverflow),
    /// An alarm raised on purpose by an installer to prove the path end to end.
    TestAlarm(TestAlarm),
    /// Someone at the device switched installer mode on: until `until` the hub may ask for a
    /// calibration picture.
    InstallerMode(InstallerMode),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// In bed and calm: the check is done without waking anyone.
    Resting,
    MovingInBed,
    NotInBed,
    /// A person should look.
    Unclear,
    /// Too dark, lens covered, no signal, or no camera at all.
    CameraFault,
    /// Not a verdict on the person: the consent lock kept the camera closed (see
    /// [`CameraCheck::refusal`] for why). Whatever the hub asked, the agent never opens the
    /// camera outside the person's consented windows.
    RefusedOutsideConsent,
}

impl Verdict {
    /// The wire name, e.g. `not_in_bed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Resting => "resting",
            Verdict::MovingInBed => "moving_in_bed",
            Verdict::NotInBed => "not_in_bed",
            Verdict::Unclear => "unclear",
            Verdict::CameraFault => "camera_fault",
            Verdict::RefusedOutsideConsent => "refused_outside_consent",
        }
    }
}

/// Why the consent lock kept the camera closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRefusal {
    /// No consented window covers this moment.
    OutsideWindow,
    /// Inside a window, but the person opted out of this night.
    OptedOutTonight,
    /// The device holds no record of consent.
    NoConsentRecord,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraCheck {
    /// The hub's id of the check this answers; absent for a check the device ran on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_id: Option<CheckId>,
    pub verdict: Verdict,
    /// Present exactly when `verdict` is `refused_outside_consent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<ConsentRefusal>,
    /// 0.0–1.0.
    pub confidence: f64,
    /// Why, in a sentence for staff and installers (e.g. "too dark (mean brightness 3.1)", or
    /// when the next consented window opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Frames analysed.
    #[serde(default)]
    pub frames: u32,
    /// Mean scene brightness 0–255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brightness: Option<f64>,
    /// Share of changed pixels inside the bed zone, 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_in_zone: Option<f64>,
    /// Share of changed pixels outside the bed zone, 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub motion_outside: Option<f64>,
    /// Share of the bed zone differing from the empty-bed reference, 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<f64>,
    /// Share of the bed zone differing strongly (as skin does, not bedding), 0.0–1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_strong: Option<f64>,
    /// How long the camera was open.
    pub duration_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dose {
    /// The dispenser's id of the dose (e.g. a slot or schedule entry).
    pub dose_id: String,
    pub medication: String,
    /// When the dose was due.
    pub scheduled: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowStock {
    pub doses_left: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceError {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// When the source was last heard from.
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeofenceLeft {
    /// The safe area's name from the person's plan.
    pub area: String,
    pub lat: f64,
    pub lon: f64,
    pub distance_outside_m: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// 0 for the event that raises the alarm; 1, 2, … for a further area left while the
    /// person's geofence alarm is still active: an update of that alarm, not a new one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeofenceReturned {
    pub area: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// 0 for the press that raises the alarm; 1, 2, … for further presses while it is still
    /// active: an update of that alarm (with a fresher position), not a new one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
}

/// Left out on the wire when zero, so a first trigger looks as it always did.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatterySource {
    Dispenser,
    Gps,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatteryLow {
    pub source: BatterySource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxOverflow {
    /// How many events were dropped in this overflow.
    pub dropped: u64,
    pub first_dropped_seq: u64,
    pub last_dropped_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestAlarm {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerMode {
    pub until: Timestamp,
}

impl EventBody {
    /// The `kind` string on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::CameraCheck(_) => "camera_check",
            EventBody::DoseDue(_) => "dose_due",
            EventBody::DoseDispensed(_) => "dose_dispensed",
            EventBody::DoseTaken(_) => "dose_taken",
            EventBody::DoseMissed(_) => "dose_missed",
            EventBody::DoseSkipped(_) => "dose_skipped",
            EventBody::LowStock(_) => "low_stock",
            EventBody::DeviceError(_) => "device_error",
            EventBody::Tamper(_) => "tamper",
            EventBody::PowerLost(_) => "power_lost",
            EventBody::DispenserOffline(_) => "dispenser_offline",
            EventBody::Position(_) => "position",
            EventBody::GeofenceLeft(_) => "geofence_left",
            EventBody::GeofenceReturned(_) => "geofence_returned",
            EventBody::Sos(_) => "sos",
            EventBody::GpsNoFix(_) => "gps_no_fix",
            EventBody::BatteryLow(_) => "battery_low",
            EventBody::OutboxOverflow(_) => "outbox_overflow",
            EventBody::TestAlarm(_) => "test_alarm",
            EventBody::InstallerMode(_) => "installer_mode",
        }
    }

    /// The severity a device gives this kind unless it has reason to raise it.
    pub fn default_severity(&self) -> Severity {
        match self {
            EventBody::DoseMissed(_)
            | EventBody::DeviceError(_)
            | EventBody::GeofenceLeft(_)
            | EventBody::Sos(_)
            | EventBody::TestAlarm(_) => Severity::Alarm,
            EventBody::CameraCheck(c) => match c.verdict {
                Verdict::Resting | Verdict::MovingInBed => Severity::Info,
                Verdict::Unclear
                | Verdict::CameraFault
                | Verdict::NotInBed
                | Verdict::RefusedOutsideConsent => Severity::Warning,
            },
            EventBody::LowStock(_)
            | EventBody::Tamper(_)
            | EventBody::PowerLost(_)
            | EventBody::DispenserOffline(_)
            | EventBody::GpsNoFix(_)
            | EventBody::BatteryLow(_)
            | EventBody::OutboxOverflow(_) => Severity::Warning,
            EventBody::DoseDue(_)
            | EventBody::DoseDispensed(_)
            | EventBody::DoseTaken(_)
            | EventBody::DoseSkipped(_)
            | EventBody::Position(_)
            | EventBody::GeofenceReturned(_)
            | EventBody::InstallerMode(_) => Severity::Info,
        }
    }

    pub(crate) fn from_parts(kind: &str, body: serde_json::Value) -> Result<Self, DecodeError> {
        let tagged = serde_json::json!({ "kind": kind, "body": body });
        serde_path_to_error::deserialize(tagged).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            // An unknown kind is reported at the envelope's `kind` field.
            let path = if message.contains("unknown variant") { "kind".to_string() } else { path };
            DecodeError::Malformed { path, message }
        })
    }

    pub(crate) fn to_parts(&self) -> (&'static str, serde_json::Value) {
        let body = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => map.remove("body"),
            _ => None,
        };
        (self.kind(), body.unwrap_or_else(|| serde_json::json!({})))
    }

    /// Range checks serde cannot express. Field names are given as `body.<field>`.
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            EventBody::CameraCheck(c) => {
                let refused = c.verdict == Verdict::RefusedOutsideConsent;
                if refused != c.refusal.is_some() {
                    return Err(DecodeError::invalid(
                        "body.refusal",
                        "is given exactly when the verdict is refused_outside_consent",
                    ));
                }
                if let Some(d) = &c.detail {
                    text("body.detail", d)?;
                }
                unit_interval("body.confidence", c.confidence)?;
                for (field, value) in [
                    ("body.presence", c.presence),
                    ("body.presence_strong", c.presence_strong),
                ] {
                    if let Some(v) = value {
                        unit_interval(field, v)?;
                    }
                }
                if let Some(b) = c.brightness {
                    range("body.brightness", b, 0.0, 255.0)?;
                }
                if let Some(m) = c.motion_in_zone {
                    unit_interval("body.motion_in_zone", m)?;
                }
                if let Some(m) = c.motion_outside {
                    unit_interval("body.motion_outside", m)?;
                }
                if c.duration_ms > 30_000 {
                    return Err(DecodeError::invalid(
                        "body.duration_ms",
                        "a camera check lasts at most 30 000 ms",
                    ));
                }
            }
            EventBody::DoseDue(d)
            | EventBody::DoseDispensed(d)
            | EventBody::DoseTaken(d)
            | EventBody::DoseMissed(d)
            | EventBody::DoseSkipped(d) => {
                text("body.dose_id", &d.dose_id)?;
                text("body.medication", &d.medication)?;
            }
            EventBody::DeviceError(e) => {
                text("body.code", &e.code)?;
                if let Some(m) = &e.message {
                    text("body.message", m)?;
                }
            }
            EventBody::Position(p) => {
                lat_lon(p.lat, p.lon)?;
                if let Some(a) = p.accuracy_m {
                    range("body.accuracy_m", a, 0.0, 100_000.0)?;
                }
                if let Some(s) = p.speed_mps {
                    range("body.speed_mps", s, 0.0, 350.0)?;
                }
            }
            EventBody::GeofenceLeft(g) => {
                text("body.area", &g.area)?;
                lat_lon(g.lat, g.lon)?;
                range("body.distance_outside_m", g.distance_outside_m, 0.0, 40_075_000.0)?;
                if let Some(s) = g.speed_mps {
                    range("body.speed_mps", s, 0.0, 350.0)?;
                }
            }
            EventBody::GeofenceReturned(g) => {
                text("body.area", &g.area)?;
                lat_lon(g.lat, g.lon)?;
            }
            EventBody::Sos(s) => match (s.lat, s.lon) {
                (Some(lat), Some(lon)) => lat_lon(lat, lon)?,
                (None, None) => {}
                _ => {
                    return Err(DecodeError::invalid(
                        "body.lat",
                        "lat and lon come together or not at all",
                    ))
                }
            },
            EventBody::BatteryLow(b) => {
                if let Some(p) = b.percent {
                    if p > 100 {
                        return Err(DecodeError::invalid("body.percent", "must be 0–100"));
                    }
                }
            }
            EventBody::OutboxOverflow(o) => {
                if o.dropped == 0 || o.first_dropped_seq > o.last_dropped_seq {
                    return Err(DecodeError::invalid(
                        "body.dropped",
                        "an overflow drops at least one event, first_dropped_seq <= last_dropped_seq",
                    ));
                }
            }
            EventBody::TestAlarm(t) => {
                if let Some(n) = &t.note {
                    text("body.note", n)?;
                }
            }
            EventBody::LowStock(_)
            | EventBody::Tamper(_)
            | EventBody::PowerLost(_)
            | EventBody::DispenserOffline(_)
            | EventBody::GpsNoFix(_)
            | EventBody::InstallerMode(_) => {}
        }
        Ok(())
    }
}

fn text(field: &str, value: &str) -> Result<(), DecodeError> {
    if value.trim().is_empty() {
        return Err(DecodeError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(DecodeError::invalid(field, format!("longer than {MAX_TEXT} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(DecodeError::invalid(field, "contains control characters"));
    }
    Ok(())
}

fn range(field: &str, value: f64, min: f64, max: f64) -> Result<(), DecodeError> {
    if !value.is_finite() || value < min || value > max {
        return Err(DecodeError::invalid(field, format!("{value} is outside {min}..={max}")));
    }
    Ok(())
}

fn unit_interval(field: &str, value: f64) -> Result<(), DecodeError> {
    range(field, value, 0.0, 1.0)
}

fn lat_lon(lat: f64, lon: f64) -> Result<(), DecodeError> {
    range("body.lat", lat, -90.0, 90.0)?;
    range("body.lon", lon, -180.0, 180.0)
}
