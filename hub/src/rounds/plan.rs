//! Care plans as the hub keeps them: the people checked at night, when and how, their camera
//! consent, what their alarms lead to, and the night patrols.
//!
//! A plan arrives as JSON through the API (`PUT /api/v1/care/recipients/{id}`), is checked by
//! the pure [`Recipient::validate`] (every problem, each naming its field, in one answer) and is
//! stored as the JSON it came in. Whatever is stored has passed validation, so the round
//! generator can rely on it.
//!
//! The camera consent has exactly the shape of the agent's `[camera.consent]` section and is
//! validated by the agent's own code ([`RawConsent::validate`]), so hub and device judge the
//! same windows the same way; so are the safe areas (`[[gps.areas]]`, [`RawArea::validate`]). The hub never plans a camera check outside those windows: a
//! plan that asks for one is refused. The device stays the last word (its lock refuses
//! whatever the hub asks outside consent).

use jiff::civil::{Date, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use vaka_agent::camera::consent::{time_zone, Consent, RawConsent, RawConsentRecord, RawDate, DEFAULT_TIME_ZONE};
use vaka_agent::gps::config::RawArea;
use vaka_protocol::DeviceId;

/// How long before and after the agreed time a check may be done, unless the plan says.
pub const DEFAULT_TOLERANCE_MIN: u32 = 15;
/// How long a visit takes on site, unless the plan says.
pub const DEFAULT_VISIT_MIN: u32 = 10;

/// A person cared for at night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    /// Lowercase letters, digits and `-` (it appears in URLs and check ids).
    pub id: String,
    pub name: String,
    pub address: String,
    pub position: Position,
    /// The team (area) whose night staff look after the person.
    pub team: String,
    /// Every device in the home (camera, dispenser bridge, GPS tracker).
    #[serde(default)]
    pub devices: Vec<String>,
    /// The device that runs camera checks; required when any check uses the camera.
    #[serde(default)]
    pub camera_device: Option<String>,
    #[serde(default)]
    pub checks: Vec<NightCheck>,
    /// Nights (named by their evening) on which the person does not want to be checked.
    #[serde(default)]
    pub opted_out_nights: Vec<Date>,
    /// The camera consent, as on the device (`[camera.consent]`).
    #[serde(default)]
    pub consent: Option<ConsentPlan>,
    /// What an alarm of this person leads to during a night shift.
    #[serde(default)]
    pub rules: Vec<AlarmRule>,
    /// The device that reads the person's GPS tracker: its configuration carries the safe
    /// areas.
    #[serde(default)]
    pub gps_device: Option<String>,
    /// Where the person is safe, with the agent's `[[gps.areas]]` shape: a circle (centre and
    /// radius) or a polygon, and optional local windows in which leaving raises an alarm.
    #[serde(default)]
    pub safe_areas: Vec<RawArea>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
}

/// One agreed check of the night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightCheck {
    /// Local wall-clock time (Europe/Stockholm), e.g. `02:00`.
    pub at: Time,
    /// Minutes either side of `at` (default 15).
    #[serde(default)]
    pub tolerance_min: Option<u32>,
    pub method: Method,
    /// For the staff who do it.
    #[serde(default)]
    pub notes: String,
    /// Minutes on site for a visit (default 10).
    #[serde(default)]
    pub visit_min: Option<u32>,
}

impl NightCheck {
    pub fn tolerance_min(&self) -> u32 {
        self.tolerance_min.unwrap_or(DEFAULT_TOLERANCE_MIN)
    }

    pub fn visit_min(&self) -> u32 {
        self.visit_min.unwrap_or(DEFAULT_VISIT_MIN)
    }
}

/// How a check is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A camera check; if the camera cannot settle it, one retry after the retry delay, then
    /// a visit.
    Camera,
    /// A planned physical visit.
    Visit,
    /// A camera check; if the camera cannot settle it, a visit at once (no retry), for people
    /// who should not wait twenty minutes.
    CameraThenVisit,
}

impl Method {
    pub fn uses_camera(self) -> bool {
        matches!(self, Method::Camera | Method::CameraThenVisit)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Camera => "camera",
            Method::Visit => "visit",
            Method::CameraThenVisit => "camera_then_visit",
        }
    }
}

/// `[camera.consent]` of the agent, in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentPlan {
    #[serde(default)]
    pub time_zone: Option<String>,
    pub windows: Vec<String>,
    #[serde(default)]
    pub opted_out_nights: Vec<Date>,
    pub record: ConsentRecordPlan,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecordPlan {
    pub given: Date,
    /// "samtycke", or the reference of a decision when the person cannot consent.
    pub basis: String,
    #[serde(default)]
    pub recorded_by: Option<String>,
}

impl ConsentPlan {
    /// The agent's consent lock for this plan.
    pub fn lock(&self) -> Result<Consent, Vec<String>> {
        RawConsent {
            time_zone: self.time_zone.clone(),
            windows: self.windows.clone(),
            opted_out_nights: self.opted_out_nights.iter().map(|d| RawDate(d.to_string())).collect(),
            record: Some(RawConsentRecord {
                given: RawDate(self.record.given.to_string()),
                basis: self.record.basis.clone(),
                recorded_by: self.record.recorded_by.clone(),
            }),
        }
        .validate()
    }
}

/// What an alarm of the person leads to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRule {
    /// The alarm's kind, e.g. `dose_missed`, `geofence_left`, `sos`, `supervision_lost`.
    pub on: String,
    pub action: RuleAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// A camera check now (then retry and visit as for a planned one).
    CameraCheck,
    /// An urgent physical visit to the home.
    Visit,
    /// An urgent search for the person, starting from the home (they may be lost outside).
    Search,
}

impl RuleAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::CameraCheck => "camera_check",
            RuleAction::Visit => "visit",
            RuleAction::Search => "search",
        }
    }
}

/// A car (or walking pair) of the night shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patrol {
    pub id: String,
    pub team: String,
    /// E.g. the staff on it: "Bil 1: Anna, Omar".
    pub name: String,
    pub start: Position,
    pub end: Position,
    /// The patrol's local shift span, e.g. `21:00` to `07:00` (may cross midnight).
    pub shift_start: Time,
    pub shift_end: Time,
}

/// `HH:MM`, as care plans write times.
pub fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

fn id_problem(field: &str, id: &str, problems: &mut Vec<String>) {
    if let Err(e) = DeviceId::new(id) {
        problems.push(format!("{field}: {}", e.to_string().replace(" device id", " id")));
    }
}

fn position_problems(field: &str, p: &Position, problems: &mut Vec<String>) {
    if !(p.lat.is_finite() && (-90.0..=90.0).contains(&p.lat)) {
        problems.push(format!("{field}.lat: {} is not a latitude (-90..90)", p.lat));
    }
    if !(p.lon.is_finite() && (-180.0..=180.0).contains(&p.lon)) {
        problems.push(format!("{field}.lon: {} is not a longitude (-180..180)", p.lon));
    }
}

impl Recipient {
    /// Every problem of the plan, each naming its field; empty when it can be stored.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        id_problem("id", &self.id, &mut problems);
        if self.name.trim().is_empty() {
            problems.push("name: must not be empty".into());
        }
        if self.team.trim().is_empty() {
            problems.push("team: must not be empty".into());
        }
        position_problems("position", &self.position, &mut problems);
        for (i, d) in self.devices.iter().enumerate() {
            id_problem(&format!("devices[{i}]"), d, &mut problems);
        }
        if let Some(camera) = &self.camera_device {
            id_problem("camera_device", camera, &mut problems);
            if !self.devices.contains(camera) {
                problems.push(format!("camera_device: `{camera}` is not one of `devices`"));
            }
        }
        let lock = match &self.consent {
            Some(c) => match c.lock() {
                Ok(lock) => Some(lock),
                Err(ps) => {
                    problems.extend(ps.into_iter().map(|p| p.replacen("camera.consent", "consent", 1)));
                    None
                }
            },
            None => None,
        };
        let mut times = BTreeSet::new();
        for (i, check) in self.checks.iter().enumerate() {
            let field = format!("checks[{i}]");
            if !times.insert(check.at) {
                problems.push(format!("{field}.at: {} appears twice in the plan", hhmm(check.at)));
            }
            if check.at.subsec_nanosecond() != 0 || check.at.second() != 0 {
                problems.push(format!("{field}.at: {} must be whole minutes (HH:MM)", check.at));
            }
            if !(1..=120).contains(&check.tolerance_min()) {
                problems.push(format!("{field}.tolerance_min: {} must be 1..=120", check.tolerance_min()));
            }
            if !(1..=240).contains(&check.visit_min()) {
                problems.push(format!("{field}.visit_min: {} must be 1..=240", check.visit_min()));
            }
            if check.method.uses_camera() {
                if self.camera_device.is_none() {
                    problems.push(format!(
                        "{field}.method: {} needs `camera_device`",
                        check.method.as_str()
                    ));
                }
                match (&self.consent, &lock) {
                    (None, _) => problems.push(format!(
                        "{field}.method: {} needs a camera `consent` record",
                        check.method.as_str()
                    )),
                    (Some(_), Some(lock)) => {
                        if !lock.windows().iter().any(|w| w.contains_clock(check.at)) {
                            problems.push(format!(
                                "{field}.at: {} is outside every consented camera window ({}); the \
                                 device would refuse it",
                                hhmm(check.at),
                                lock.windows().iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", ")
                            ));
                        }
                    }
                    (Some(_), None) => {}
                }
            }
        }
        let mut kinds = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.on.trim().is_empty() {
                problems.push(format!("rules[{i}].on: must name an alarm kind"));
            }
            if !kinds.insert(rule.on.as_str()) {
                problems.push(format!("rules[{i}].on: `{}` has two rules", rule.on));
            }
            if rule.action == RuleAction::CameraCheck && self.camera_device.is_none() {
                problems.push(format!("rules[{i}].action: camera_check needs `camera_device`"));
            }
        }
        if let Some(gps) = &self.gps_device {
            id_problem("gps_device", gps, &mut problems);
            if !self.devices.contains(gps) {
                problems.push(format!("gps_device: `{gps}` is not one of `devices`"));
            }
        }
        let tz = time_zone(DEFAULT_TIME_ZONE).ok();
        let mut names = BTreeSet::new();
        for (i, area) in self.safe_areas.iter().enumerate() {
            if !names.insert(area.name.trim()) {
                problems.push(format!("safe_areas[{i}].name: {:?} is used twice", area.name));
            }
            area.validate(&format!("safe_areas[{i}]"), tz.as_ref(), &mut problems);
        }
        problems
    }

    /// The rule for an alarm of `kind`, if any.
    pub fn rule(&self, kind: &str) -> Option<RuleAction> {
        self.rules.iter().find(|r| r.on == kind).map(|r| r.action)
    }
}

impl Patrol {
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        id_problem("id", &self.id, &mut problems);
        if self.team.trim().is_empty() {
            problems.push("team: must not be empty".into());
        }
        position_problems("start", &self.start, &mut problems);
        position_problems("end", &self.end, &mut problems);
        if self.shift_start == self.shift_end {
            problems.push("shift_end: must differ from shift_start".into());
        }
        problems
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn anna() -> serde_json::Value {
        json!({
            "id": "anna-berg",
            "name": "Anna Berg",
            "address": "Storgatan 1, Skellefteå",
            "position": {"lat": 64.75, "lon": 20.95},
            "team": "centrum",
            "devices": ["home-001"],
            "camera_device": "home-001",
            "checks": [
                {"at": "23:00", "method": "camera"},
                {"at": "02:00", "method": "camera_then_visit", "tolerance_min": 10},
                {"at": "05:00", "method": "visit", "notes": "Turn in bed"}
            ],
            "consent": {"windows": ["22:00-06:00"], "record": {"given": "2026-09-14", "basis": "samtycke"}},
            "rules": [{"on": "dose_missed", "action": "camera_check"}, {"on": "geofence_left", "action": "search"}],
            "safe_areas": [
                {"name": "Hemma", "circle": {"lat": 64.75, "lon": 20.95, "radius_m": 150.0}, "active": ["20:00-08:00"]},
                {"name": "Kvarteret", "polygon": [[64.753, 20.944], [64.753, 20.956], [64.749, 20.96], [64.7465, 20.95]]}
            ]
        })
    }

    #[test]
    fn a_sound_plan_has_no_problems_and_defaults_fill_tolerance_and_visit_length() {
        let r: Recipient = serde_json::from_value(anna()).unwrap();
        assert_eq!(r.validate(), Vec::<String>::new());
        assert_eq!(r.checks[0].tolerance_min(), 15);
        assert_eq!(r.checks[1].tolerance_min(), 10);
        assert_eq!(r.checks[2].visit_min(), 10);
        assert_eq!(r.rule("geofence_left"), Some(RuleAction::Search));
        assert_eq!(r.rule("sos"), None);
    }

    #[test]
    fn a_camera_check_outside_the_consented_windows_is_refused_like_the_device_would() {
        let mut plan = anna();
        plan["checks"][0]["at"] = json!("21:30");
        let r: Recipient = serde_json::from_value(plan).unwrap();
        let problems = r.validate();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("checks[0].at: 21:30 is outside every consented camera window (22:00-06:00)"));
    }

    #[test]
    fn every_problem_is_listed_at_once_each_naming_its_field() {
        let mut plan = anna();
        plan["id"] = json!("Anna Berg");
        plan["position"]["lat"] = json!(123.0);
        plan["camera_device"] = json!("home-009");
        plan["checks"][1]["at"] = json!("23:00");
        plan["consent"]["windows"] = json!(["25:00-06:00"]);
        plan["rules"][1]["on"] = json!("dose_missed");
        let r: Recipient = serde_json::from_value(plan).unwrap();
        let problems = r.validate();
        let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        for field in ["id", "position.lat", "camera_device", "checks[1].at", "consent.windows[0]", "rules[1].on"] {
            assert!(fields.contains(&field), "{field} missing from {problems:?}");
        }
    }

    #[test]
    fn safe_areas_are_judged_as_the_device_judges_them() {
        let mut plan = anna();
        plan["gps_device"] = "tracker-9".into();
        plan["safe_areas"] = json!([
            {"name": "Hemma", "circle": {"lat": 64.75, "lon": 20.95, "radius_m": 5.0}},
            {"name": "Hemma", "polygon": [[64.75, 20.95], [64.76, 20.96]]},
            {"name": "Park", "circle": {"lat": 64.75, "lon": 20.95, "radius_m": 300.0}, "polygon": [[64.75, 20.95], [64.76, 20.96], [64.76, 20.94]]},
            {"name": "Torget", "polygon": [[64.75, 20.95], [64.76, 20.96], [64.75, 20.96], [64.76, 20.95]], "active": ["25:00-26:00"]}
        ]);
        let r: Recipient = serde_json::from_value(plan).unwrap();
        let problems = r.validate();
        for expected in [
            "gps_device: `tracker-9` is not one of `devices`",
            "safe_areas[0].circle.radius_m: 5 must be between 10 and 100000 metres",
            "safe_areas[1].name: \"Hemma\" is used twice",
            "safe_areas[1].polygon: has 2 corner(s)",
            "safe_areas[2]: give exactly one of circle",
            "safe_areas[3].polygon: exterior ring has a self-intersection",
            "safe_areas[3].active[0]:",
        ] {
            assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} missing from {problems:#?}");
        }
        assert_eq!(problems.len(), 7, "{problems:#?}");
    }

    #[test]
    fn unknown_fields_are_refused_when_read() {
        let mut plan = anna();
        plan["checks"][0]["metod"] = json!("camera");
        let e = serde_json::from_value::<Recipient>(plan).unwrap_err().to_string();
        assert!(e.contains("unknown field `metod`"), "{e}");
    }
}
