//! The Now view: what needs a person now, and handling an alarm.
//!
//! The view lists, most severe first and then oldest first:
//! 0. unresolved alarms of the last day (GPS, fall, alarm button…; "supervision lost" ranks
//!    below the person's own alarms, see [`rank`]);
//! 1. escalations: checks the camera could not settle, now physical visits with a promise;
//! 2. unclear camera pictures waiting for staff to look.
//!
//! Care staff (night staff, nurses) handle alarms in three steps, each audited and announced
//! on the live stream (`alarm_handled`):
//!
//! | route | roles | body |
//! |---|---|---|
//! | `POST /api/v1/alarms/{id}/acknowledge` | night_staff, nurse | none |
//! | `POST /api/v1/alarms/{id}/assign` | night_staff, nurse | `{"to": "me"}` or `{"patrol": id}` |
//! | `POST /api/v1/alarms/{id}/resolve` | night_staff, nurse | `{"outcome": …, "note": …}` |
//!
//! Answers: 200 with the alarm, 403 (role), 404 (no such alarm, or another team's), 409 (already
//! resolved), 422 (bad body or unknown patrol).

use super::api::{allow, read, write, ApiError};
use super::auth::Session;
use super::checks::audit_entry;
use super::rounds::engine;
use super::page::{clock, esc, shell, Ctx, Nav};
use super::scope::Scope;
use super::AppState;
use crate::access::{Permission, Principal};
use crate::ingest::Feed;
use crate::rounds::plan::{Patrol, Recipient};
use crate::rounds::state::{RoundCheck, State as CheckState};
use crate::store::{AlarmAction, AlarmOutcome, AlarmRow, HandlingRefused, SUPERVISION_LOST};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;
use tracing::info;

/// Alarms older than this are left to the reports.
const NOW_WINDOW: SignedDuration = SignedDuration::from_hours(24);

/// Severity rank of an alarm: the person's own alarms first, then a silent device.
fn rank(a: &AlarmRow) -> u8 {
    match a.kind.as_str() {
        SUPERVISION_LOST => 1,
        _ => 0,
    }
}

/// What the view shows, read once per request.
struct NowData {
    alarms: Vec<AlarmRow>,
    checks: Vec<RoundCheck>,
    recipients: Vec<Recipient>,
    patrols: Vec<Patrol>,
}

async fn now_data(state: &AppState, who: &Principal) -> Result<NowData, ApiError> {
    let since = Timestamp::now() - NOW_WINDOW;
    let (mut alarms, mut recipients, mut patrols) =
        read(state, move |s| Ok((s.unresolved_alarms(since)?, s.recipients()?, s.patrols()?))).await?;
    let scope = Scope::with(who, &recipients);
    alarms.retain(|a| scope.sees_device(&a.device));
    recipients.retain(|r| who.teams.sees(&r.team));
    patrols.retain(|p| who.teams.sees(&p.team));
    let mut checks = engine(state, |e| Ok(e.snapshot().map(|(_, checks, _)| checks).unwrap_or_default())).await?;
    checks.retain(|c| who.teams.sees(&c.team) && needs_someone(c));
    Ok(NowData { alarms, checks, recipients, patrols })
}

/// A round check that waits for a person: an unclear picture, or an escalated visit not done.
fn needs_someone(c: &RoundCheck) -> bool {
    match c.state {
        CheckState::AwaitingStaff => true,
        CheckState::Visit => c.visit.as_ref().is_some_and(|v| v.urgent),
        _ => false,
    }
}

/// `GET /`: the Now view.
pub async fn page(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let data = now_data(&state, &who).await?;
    let ctx = Ctx::new(who, session, &headers);
    let body = format!(
        r#"<div id="signal" role="alert"><span class="n">0</span> {} <button type="button" class="secondary" onclick="beep()">{}</button></div>
<div id="items" class="items" aria-live="polite">{}</div>"#,
        ctx.t("unacked_banner"),
        ctx.t("sound_on"),
        items(&ctx, &data),
    );
    let attrs = format!(" data-signal-every=\"{}\"", state.alarm_signal.as_secs().max(1));
    Ok(shell(&ctx, Nav::Now, ctx.t("now_title"), "now", &attrs, &body))
}

/// `GET /now/items`: the list alone, for the script to swap in.
pub async fn fragment(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let data = now_data(&state, &who).await?;
    let ctx = Ctx::new(who, session, &headers);
    Ok(Html(items(&ctx, &data)))
}

/// The items, sorted by rank then age.
fn items(ctx: &Ctx, data: &NowData) -> String {
    let person_of: HashMap<&str, &Recipient> = data
        .recipients
        .iter()
        .flat_map(|r| r.devices.iter().chain(r.camera_device.iter()).map(move |d| (d.as_str(), r)))
        .collect();
    let may_act = ctx.who.may(Permission::HandleAlarms);
    let mut list: Vec<(u8, Timestamp, String)> = Vec::new();
    for a in &data.alarms {
        list.push((rank(a), a.raised_at, alarm_item(ctx, a, person_of.get(a.device.as_str()).copied(), &data.patrols, may_act)));
    }
    for c in &data.checks {
        let (r, since) = match c.state {
            CheckState::Visit => (1, c.visit.as_ref().map_or(c.planned_at, |v| v.requested_at)),
            _ => (2, c.attempts.last().map_or(c.planned_at, |a| a.sent_at)),
        };
        list.push((r, since, check_item(ctx, c, &data.patrols, r)));
    }
    if list.is_empty() {
        return format!("<p class=\"muted\">{}</p>", ctx.t("now_empty"));
    }
    list.sort_by_key(|(r, at, _)| (*r, *at));
    list.into_iter().map(|(_, _, html)| html).collect()
}

fn person_line(ctx: &Ctx, person: Option<&Recipient>, device: &str) -> String {
    match person {
        Some(p) => format!(
            "<a href=\"/people/{}\">{}</a>, {} · {} · <span class=\"muted\">{}</span>",
            esc(&p.id),
            esc(&p.name),
            esc(&p.address),
            esc(&p.team),
            esc(device)
        ),
        None => format!("{} · <span class=\"muted\">{}</span>", ctx.t("unknown_person"), esc(device)),
    }
}

fn patrol_name<'a>(patrols: &'a [Patrol], id: &'a str) -> &'a str {
    patrols.iter().find(|p| p.id == id).map_or(id, |p| p.name.as_str())
}

fn alarm_item(ctx: &Ctx, a: &AlarmRow, person: Option<&Recipient>, patrols: &[Patrol], may_act: bool) -> String {
    let h = &a.handling;
    let id = a.id;
    let mut state = match (&h.acked_by, h.acked_at) {
        (Some(by), Some(at)) => format!("{} {} {}", ctx.t("acked_by"), esc(by), clock(at)),
        _ => format!("<b class=\"alarm\">{}</b>", ctx.t("not_acked")),
    };
    if let Some(to) = &h.assigned_to {
        let to = to.strip_prefix("patrol:").map_or(to.as_str(), |p| patrol_name(patrols, p));
        state += &format!(" · {}: {}", ctx.t("assigned_to"), esc(to));
    }
    if a.cleared_at.is_some() {
        state += &format!(" · <span class=\"muted\">{}</span>", ctx.t("cleared"));
    }
    if a.occurrences > 1 {
        state += &format!(" · {} {}", a.occurrences, ctx.t("times"));
    }
    let actions = if may_act {
        let ack = match h.acked_at {
            None => format!("<button type=\"button\" id=\"ack-{id}\" data-act=\"ack\" data-alarm=\"{id}\">{}</button>", ctx.t("ack")),
            Some(_) => String::new(),
        };
        let options: String = patrols.iter().map(|p| format!("<option value=\"{}\">{}</option>", esc(&p.id), esc(&p.name))).collect();
        let assign_patrol = match patrols.is_empty() {
            true => String::new(),
            false => format!(
                "<select id=\"patrol-{id}\" aria-label=\"{}\">{options}</select><button type=\"button\" id=\"assign-patrol-{id}\" data-act=\"assign-patrol\" data-alarm=\"{id}\">{}</button>",
                ctx.t("patrol"),
                ctx.t("assign_patrol")
            ),
        };
        let outcomes: String = AlarmOutcome::ALL
            .iter()
            .map(|o| format!("<option value=\"{}\">{}</option>", o.as_str(), ctx.lang.t_of("outcome", o.as_str())))
            .collect();
        format!(
            "<div class=\"actions\">{ack}<button type=\"button\" id=\"assign-self-{id}\" data-act=\"assign-self\" data-alarm=\"{id}\">{}</button>{assign_patrol}</div>\
             <div class=\"actions\"><select id=\"outcome-{id}\" aria-label=\"{}\">{outcomes}</select><input id=\"note-{id}\" aria-label=\"{}\" placeholder=\"{}\"><button type=\"button\" id=\"resolve-{id}\" data-act=\"resolve\" data-alarm=\"{id}\">{}</button></div>",
            ctx.t("assign_self"),
            ctx.t("outcome"),
            ctx.t("note"),
            ctx.t("note"),
            ctx.t("resolve"),
        )
    } else {
        String::new()
    };
    let unacked = if h.acked_at.is_none() { " unacked" } else { "" };
    let flag = if h.acked_at.is_none() { " data-unacked" } else { "" };
    format!(
        "<article class=\"item sev-{}{unacked}\" id=\"alarm-{id}\" data-kind=\"{}\"{flag}><h3>{}</h3>\
         <div>{}</div><div class=\"t\">{} · <span data-since=\"{}\"></span></div><div>{state}</div>{actions}</article>",
        rank(a),
        esc(&a.kind),
        esc(&ctx.lang.t_of("kind", &a.kind)),
        person_line(ctx, person, &a.device),
        clock(a.raised_at),
        a.raised_at,
    )
}

fn check_item(ctx: &Ctx, c: &RoundCheck, patrols: &[Patrol], rank: u8) -> String {
    let what = match (&c.state, &c.visit) {
        (CheckState::Visit, Some(v)) => {
            let plan = match (&v.patrol, v.planned_arrival) {
                (Some(p), Some(at)) => format!("{} {} {}", esc(patrol_name(patrols, p)), ctx.t("planned_for"), clock(at)),
                _ => ctx.t("not_planned").to_string(),
            };
            format!("{} {} · {}", ctx.t("escalation"), clock(v.latest), plan)
        }
        _ => ctx.t("unclear_waiting").to_string(),
    };
    let person = format!("<a href=\"/people/{}\">{}</a> · {}", esc(&c.recipient), esc(&c.recipient_name), esc(&c.team));
    format!(
        "<article class=\"item sev-{rank}\" id=\"check-{}\"><h3>{what}</h3><div>{person}</div>\
         <div class=\"t\">{} · {}</div><div class=\"actions\"><a class=\"button\" href=\"/round#row-{}\">{}</a></div></article>",
        esc(&c.id),
        clock(c.planned_at),
        esc(&c.visit.as_ref().map_or_else(|| c.notes.clone(), |v| v.reason.clone())),
        esc(&c.id),
        ctx.t("open_round"),
    )
}

/// `{"to": "me"}` or `{"patrol": "bil-1"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assign {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    patrol: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    outcome: AlarmOutcome,
    #[serde(default)]
    note: Option<String>,
}

pub async fn acknowledge(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> Result<Response, ApiError> {
    allow(&who, Permission::HandleAlarms, "handle alarms")?;
    handle(&state, &who, &id, AlarmAction::Acknowledge).await
}

pub async fn assign(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, body: Option<Json<Assign>>) -> Result<Response, ApiError> {
    allow(&who, Permission::HandleAlarms, "handle alarms")?;
    let to = match body.map(|Json(b)| (b.to, b.patrol)) {
        Some((Some(me), None)) if me == "me" => who.name.clone(),
        Some((None, Some(patrol))) => {
            let known = read(&state, |s| s.patrols()).await?.into_iter().any(|p| p.id == patrol && who.teams.sees(&p.team));
            if !known {
                return Err(ApiError::unprocessable("unknown_patrol", format!("no patrol `{}` in your teams", patrol.chars().take(64).collect::<String>())));
            }
            format!("patrol:{patrol}")
        }
        _ => return Err(ApiError::unprocessable("bad_assignment", "send {\"to\": \"me\"} or {\"patrol\": \"<id>\"}")),
    };
    handle(&state, &who, &id, AlarmAction::Assign(to)).await
}

pub async fn resolve(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, body: Option<Json<Resolve>>) -> Result<Response, ApiError> {
    allow(&who, Permission::HandleAlarms, "handle alarms")?;
    let Some(Json(r)) = body else {
        return Err(ApiError::unprocessable("bad_resolution", "send {\"outcome\": \"helped|no_action_needed|false_alarm|handed_over\", \"note\": …}"));
    };
    let note = r.note.map(|n| n.trim().chars().take(2000).collect::<String>()).filter(|n| !n.is_empty());
    handle(&state, &who, &id, AlarmAction::Resolve { outcome: r.outcome, note }).await
}

/// Takes the step; the caller has checked the role.
async fn handle(state: &AppState, who: &Principal, raw: &str, action: AlarmAction) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found(format!("no alarm `{}`", raw.chars().take(40).collect::<String>()));
    let id: i64 = raw.parse().map_err(|_| missing())?;
    let alarm = read(state, move |s| s.alarm(id)).await?.ok_or_else(missing)?;
    if !Scope::of(state, who).await?.sees_device(&alarm.device) {
        return Err(missing());
    }
    let (verb, detail) = match &action {
        AlarmAction::Acknowledge => ("alarm_acknowledged", format!("alarm {id} {}", alarm.kind)),
        AlarmAction::Assign(to) => ("alarm_assigned", format!("alarm {id} {} to {to}", alarm.kind)),
        AlarmAction::Resolve { outcome, note } => (
            "alarm_resolved",
            format!("alarm {id} {}: {}{}", alarm.kind, outcome.as_str(), note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()),
        ),
    };
    let audit = audit_entry(who, Timestamp::now(), verb, None, Some(&alarm.device), Some(detail));
    let name = who.name.clone();
    match write(state, move |s| s.handle_alarm(id, &action, &name, &audit)).await? {
        Ok(row) => {
            info!(alarm = id, kind = %row.kind, device = %row.device, by = %who.name, step = verb, "Alarm handled");
            let _ = state.feed.send(Feed::Handled(Box::new(row.clone())));
            Ok(Json(row).into_response())
        }
        Err(HandlingRefused::NoSuchAlarm) => Err(missing()),
        Err(HandlingRefused::Resolved(by)) => Err(ApiError::conflict("alarm_resolved", format!("alarm {id} was already resolved by {by}"))),
    }
}
