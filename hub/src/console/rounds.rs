//! The rounds API: care plans and patrols, the night's round and routes, staff decisions and
//! outcomes, and the reports (JSON, or CSV with `?format=csv`).
//!
//! | route | who |
//! |---|---|
//! | `GET /api/v1/care/recipients`, `GET /api/v1/care/recipients/{id}`, `GET /api/v1/care/patrols` | every role |
//! | `PUT`/`DELETE /api/v1/care/recipients/{id}`, `…/patrols/{id}` | nurse, admin |
//! | `PUT /api/v1/care/recipients/{id}/safe-areas` | installer, nurse, admin |
//! | `GET /api/v1/rounds/current`, `GET /api/v1/rounds/{night}` | every role |
//! | `POST /api/v1/rounds/checks/{id}/decision`, `…/outcome` | night staff, nurse |
//! | `GET /api/v1/reports/nights/{night}`, `…/months/{yyyy-mm}` | night staff, nurse, admin |
//!
//! Every change is written with its audit line in the same transaction.
//!
//! Each caller sees and acts on the people, patrols, checks, routes and report rows of their
//! own teams only (`scope.rs`): a person of another team answers 404, a check of another team
//! as if it were not in the round, and a care plan or patrol cannot be moved into (or out of)
//! a team the caller does not have (403).

use super::api::{allow, read, write, ApiError};
use super::AppState;
use crate::access::{Permission, Principal};
use crate::rounds::engine::{Engine, EngineError};
use crate::rounds::plan::{hhmm, Patrol, Recipient};
use crate::rounds::report::{self, Report, DOSE_MISSED, GPS_ALARM_KINDS};
use crate::rounds::scheduler::InputError;
use crate::rounds::state::{Outcome, RoundCheck};
use crate::store::{AlarmRow, AuditEntry};
use vaka_agent::gps::config::RawArea;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::civil::Date;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The round engine, shared by the ticking task and these handlers.
pub type SharedEngine = Arc<Mutex<Engine>>;

fn invalid(problems: Vec<String>) -> ApiError {
    ApiError::unprocessable("invalid_plan", problems.join("\n")).with_problems(problems)
}

fn entry(who: &Principal, action: &str, detail: String) -> AuditEntry {
    AuditEntry { at: Timestamp::now(), actor: who.name.clone(), role: who.role.as_str().into(), action: action.into(), check_id: None, device: None, detail: Some(detail) }
}

pub(super) async fn engine<T: Send + 'static>(state: &AppState, f: impl FnOnce(&mut Engine) -> Result<T, EngineError> + Send + 'static) -> Result<T, ApiError> {
    let engine = state.rounds.clone();
    let reload = state.shared;
    let result = tokio::task::spawn_blocking(move || {
        let mut guard = engine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if reload {
            guard.reload()?;
        }
        f(&mut guard)
    })
    .await
    .map_err(|e| ApiError::store(format!("round task failed: {e}")))?;
    result.map_err(|e| match e {
        EngineError::Store(e) => ApiError::store(e.to_string()),
        EngineError::Input(InputError::Unknown(id)) => ApiError::not_found(format!("no check `{id}` in tonight's round")),
        EngineError::Input(e @ InputError::NotStaffOutcome(_)) => ApiError::unprocessable("not_a_staff_outcome", e.to_string()),
        EngineError::Input(e) => ApiError::conflict("check_state", e.to_string()),
        e @ EngineError::NoRound(_) => ApiError::conflict("no_round", e.to_string()),
    })
}

fn own_team(who: &Principal, team: &str) -> Result<(), ApiError> {
    match who.teams.sees(team) {
        true => Ok(()),
        false => Err(ApiError::forbidden(format!("team `{}` is not one of yours", team.chars().take(64).collect::<String>()))),
    }
}

pub async fn recipients(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    let mut all = read(&state, |s| s.recipients()).await?;
    all.retain(|r| who.teams.sees(&r.team));
    Ok(Json(all).into_response())
}

/// `GET /api/v1/care/recipients/{id}`: one person's care plan, if in the caller's teams.
pub async fn recipient(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let all = read(&state, |s| s.recipients()).await?;
    match all.into_iter().find(|r| r.id == id && who.teams.sees(&r.team)) {
        Some(r) => Ok(Json(r).into_response()),
        None => Err(ApiError::not_found(format!("no care plan `{}`", id.chars().take(64).collect::<String>()))),
    }
}

/// The stored person's team, if there is one.
async fn recipient_team(state: &AppState, id: &str) -> Result<Option<String>, ApiError> {
    let id = id.to_string();
    Ok(read(state, |s| s.recipients()).await?.into_iter().find(|r| r.id == id).map(|r| r.team))
}

async fn patrol_team(state: &AppState, id: &str) -> Result<Option<String>, ApiError> {
    let id = id.to_string();
    Ok(read(state, |s| s.patrols()).await?.into_iter().find(|p| p.id == id).map(|p| p.team))
}

pub async fn put_recipient(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(body): Json<serde_json::Value>) -> Result<Response, ApiError> {
    allow(&who, Permission::EditCarePlans, "change care plans")?;
    let r: Recipient = serde_json::from_value(body).map_err(|e| invalid(vec![e.to_string()]))?;
    let mut problems = r.validate();
    if r.id != id {
        problems.push(format!("id: `{}` differs from the address's `{id}`", r.id));
    }
    let shift = state.shift.clone();
    for (i, c) in r.checks.iter().enumerate() {
        if !shift.contains_clock(c.at) {
            problems.push(format!("checks[{i}].at: {} is outside the night shift ({}-{})", hhmm(c.at), hhmm(shift.start), hhmm(shift.end)));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    own_team(&who, &r.team)?;
    if let Some(team) = recipient_team(&state, &id).await? {
        own_team(&who, &team)?;
    }
    let audit = entry(&who, "care_plan_changed", format!("recipient {id}, team {}", r.team));
    let stored = r.clone();
    write(&state, move |s| s.put_recipient(&stored, &audit)).await?;
    Ok((StatusCode::OK, Json(r)).into_response())
}

/// `PUT /api/v1/care/recipients/{id}/safe-areas`: the person's safe areas (the whole list, in
/// the shape of `safe_areas` in the plan), checked as the device checks them.
pub async fn put_safe_areas(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(body): Json<serde_json::Value>) -> Result<Response, ApiError> {
    allow(&who, Permission::EditSafeAreas, "change safe areas")?;
    let areas: Vec<RawArea> = serde_json::from_value(body).map_err(|e| invalid(vec![format!("safe_areas: {e}")]))?;
    let key = id.clone();
    let found = read(&state, move |s| Ok(s.recipients()?.into_iter().find(|r| r.id == key))).await?;
    let Some(mut r) = found.filter(|r| who.teams.sees(&r.team)) else {
        return Err(ApiError::not_found(format!("no care plan `{id}`")));
    };
    r.safe_areas = areas;
    let problems: Vec<String> = r.validate().into_iter().filter(|p| p.starts_with("safe_areas")).collect();
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let names: Vec<&str> = r.safe_areas.iter().map(|a| a.name.as_str()).collect();
    let audit = entry(&who, "care_plan_changed", format!("recipient {id}: safe areas [{}]", names.join(", ")));
    let stored = r.clone();
    write(&state, move |s| s.put_recipient(&stored, &audit)).await?;
    Ok((StatusCode::OK, Json(r)).into_response())
}

pub async fn delete_recipient(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> Result<Response, ApiError> {
    allow(&who, Permission::EditCarePlans, "change care plans")?;
    if !recipient_team(&state, &id).await?.is_some_and(|t| who.teams.sees(&t)) {
        return Err(ApiError::not_found(format!("no care plan `{id}`")));
    }
    let audit = entry(&who, "care_plan_removed", format!("recipient {id}"));
    let key = id.clone();
    match write(&state, move |s| s.delete_recipient(&key, &audit)).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::not_found(format!("no care plan `{id}`"))),
    }
}

pub async fn patrols(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    let mut all = read(&state, |s| s.patrols()).await?;
    all.retain(|p| who.teams.sees(&p.team));
    Ok(Json(all).into_response())
}

pub async fn put_patrol(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(body): Json<serde_json::Value>) -> Result<Response, ApiError> {
    allow(&who, Permission::EditCarePlans, "change patrols")?;
    let p: Patrol = serde_json::from_value(body).map_err(|e| invalid(vec![e.to_string()]))?;
    let mut problems = p.validate();
    if p.id != id {
        problems.push(format!("id: `{}` differs from the address's `{id}`", p.id));
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    own_team(&who, &p.team)?;
    if let Some(team) = patrol_team(&state, &id).await? {
        own_team(&who, &team)?;
    }
    let audit = entry(&who, "patrol_changed", format!("patrol {id}, team {}", p.team));
    let stored = p.clone();
    write(&state, move |s| s.put_patrol(&stored, &audit)).await?;
    Ok(Json(p).into_response())
}

pub async fn delete_patrol(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> Result<Response, ApiError> {
    allow(&who, Permission::EditCarePlans, "change patrols")?;
    if !patrol_team(&state, &id).await?.is_some_and(|t| who.teams.sees(&t)) {
        return Err(ApiError::not_found(format!("no patrol `{id}`")));
    }
    let audit = entry(&who, "patrol_removed", format!("patrol {id}"));
    let key = id.clone();
    match write(&state, move |s| s.delete_patrol(&key, &audit)).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::not_found(format!("no patrol `{id}`"))),
    }
}

/// `GET /api/v1/rounds/current`: the running round with its routes and the round's clock.
pub async fn current(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    let (now, snapshot, stats) = engine(&state, |e| Ok((e.now(), e.snapshot(), e.stats()))).await?;
    let body = match snapshot {
        Some((night, mut checks, mut routes)) => {
            checks.retain(|c| who.teams.sees(&c.team));
            own_routes(&who, &mut routes);
            serde_json::json!({"now": now, "night": night, "checks": checks, "routes": routes, "stats": stats})
        }
        None => serde_json::json!({"now": now, "night": null, "checks": [], "routes": null, "stats": stats}),
    };
    Ok(Json(body).into_response())
}

/// Routes are keyed by team: keeps the caller's.
fn own_routes(who: &Principal, routes: &mut serde_json::Value) {
    if let Some(by_team) = routes.as_object_mut() {
        by_team.retain(|team, _| who.teams.sees(team));
    }
}

fn night_param(raw: &str) -> Result<Date, ApiError> {
    raw.parse::<Date>().map_err(|_| ApiError::not_found(format!("`{}` is not a night (YYYY-MM-DD)", raw.chars().take(40).collect::<String>())))
}

/// `GET /api/v1/rounds/{night}`: a stored round, any night.
pub async fn night(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let night = night_param(&raw)?;
    let (checks, routes) = read(&state, move |s| Ok((s.round(night)?, s.routes(night)?))).await?;
    match checks {
        Some(mut checks) => {
            checks.retain(|c| who.teams.sees(&c.team));
            let mut routes = routes.unwrap_or(serde_json::Value::Null);
            own_routes(&who, &mut routes);
            Ok(Json(serde_json::json!({"night": night, "checks": checks, "routes": routes})).into_response())
        }
        None => Err(ApiError::not_found(format!("no round for the night of {night}"))),
    }
}

/// A check of another team is answered as one not in the round.
fn ours(e: &Engine, who: &Principal, id: &str) -> Result<(), EngineError> {
    match e.check(id) {
        Ok(c) if who.teams.sees(&c.team) => Ok(()),
        _ => Err(EngineError::NoRound(id.to_string())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The person looked well on the snapshot.
    pub well: bool,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn decide(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(d): Json<Decision>) -> Result<Response, ApiError> {
    allow(&who, Permission::HandleRoundChecks, "decide round checks")?;
    let check = engine(&state, move |e| {
        ours(e, &who, &id)?;
        e.decide(&id, d.well, (&who.name, who.role.as_str()), d.note)
    })
    .await?;
    Ok(Json(check).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub outcome: Outcome,
    #[serde(default)]
    pub note: Option<String>,
}

pub async fn record(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(r): Json<Recorded>) -> Result<Response, ApiError> {
    allow(&who, Permission::HandleRoundChecks, "record outcomes")?;
    let check = engine(&state, move |e| {
        ours(e, &who, &id)?;
        e.record(&id, r.outcome, (&who.name, who.role.as_str()), r.note)
    })
    .await?;
    Ok(Json(check).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Format {
    pub format: Option<String>,
}

/// What a period's report is made from, as one caller may see it: their teams' checks, and the
/// events and alarms of their teams' people's devices.
pub(super) struct Period {
    pub checks: Vec<RoundCheck>,
    events: Vec<(String, String, u64)>,
    pub alarms: Vec<AlarmRow>,
    pub teams: BTreeMap<String, String>,
}

impl Period {
    /// One night: its checks, and the events and alarms of its shift.
    pub(super) async fn night(state: &AppState, who: &Principal, night: Date) -> Result<Period, ApiError> {
        Period::read(state, who, (night, night), state.shift.span(night)).await
    }

    /// A month's nights: their checks, and the events and alarms from the first night's shift
    /// start to the next month's (so the day after a night counts in the month of that night,
    /// and every moment belongs to exactly one month).
    pub(super) async fn month(state: &AppState, who: &Principal, first: Date) -> Result<Period, ApiError> {
        let last = first.last_of_month();
        let next = last.tomorrow().map_err(|e| ApiError::not_found(format!("no month after {last}: {e}")))?;
        Period::read(state, who, (first, last), (state.shift.span(first).0, state.shift.span(next).0)).await
    }

    /// The checks of nights `first..=last`, the events and alarms of `[from, to)`.
    async fn read(state: &AppState, who: &Principal, (first, last): (Date, Date), (from, to): (Timestamp, Timestamp)) -> Result<Period, ApiError> {
        let mut kinds = vec![DOSE_MISSED];
        kinds.extend(GPS_ALARM_KINDS);
        let (checks, events, alarms, recipients) = read(state, move |s| {
            Ok((s.round_checks_between(first, last)?, s.event_counts(&kinds, from, to)?, s.alarms_raised_between(from, to)?, s.recipients()?))
        })
        .await?;
        let checks = checks.into_iter().filter(|c| who.teams.sees(&c.team)).collect();
        let teams = recipients
            .iter()
            .filter(|r| who.teams.sees(&r.team))
            .flat_map(|r| r.devices.iter().map(|d| (d.clone(), r.team.clone())))
            .collect();
        Ok(Period { checks, events, alarms, teams })
    }

    pub(super) fn inputs(&self) -> report::Inputs<'_> {
        report::Inputs { checks: &self.checks, device_events: &self.events, alarms: &self.alarms, team_of_device: &self.teams }
    }
}

fn answer(period: &'static str, nights: (Date, Date), data: &Period, format: Format) -> Result<Response, ApiError> {
    let rep: Report = report::report(period, nights, &data.inputs());
    match format.format.as_deref() {
        None | Some("json") => Ok(Json(rep).into_response()),
        Some("csv") => Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], report::csv(&rep)).into_response()),
        Some(other) => Err(ApiError::unprocessable("bad_format", format!("format `{other}` is not json or csv"))),
    }
}

pub async fn night_report(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>, Query(format): Query<Format>) -> Result<Response, ApiError> {
    allow(&who, Permission::ReadReports, "read reports")?;
    let night = night_param(&raw)?;
    answer("night", (night, night), &Period::night(&state, &who, night).await?, format)
}

pub async fn month_report(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>, Query(format): Query<Format>) -> Result<Response, ApiError> {
    allow(&who, Permission::ReadReports, "read reports")?;
    let first = format!("{raw}-01").parse::<Date>().map_err(|_| ApiError::not_found(format!("`{}` is not a month (YYYY-MM)", raw.chars().take(40).collect::<String>())))?;
    answer("month", (first, first.last_of_month()), &Period::month(&state, &who, first).await?, format)
}
