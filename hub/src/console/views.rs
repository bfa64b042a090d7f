//! The console's care views: tonight's round, the patrols with a map, and the people.
//!
//! Every view shows only the caller's teams (the same rule as the API, `scope.rs`); a person
//! of another team is a 404 page, as if they did not exist. Actions on the round (look at an
//! unclear picture, decide, record a visit) are buttons for care staff; the script sends them
//! to the rounds and checks API.

use super::api::{read, ApiError};
use super::auth::Session;
use super::devices::health_cells;
use super::rounds::engine;
use super::page::{clock, esc, local, not_found, shell, Ctx, Nav};
use super::AppState;
use crate::access::{Permission, Principal};
use crate::rounds::plan::{hhmm, Position};
use crate::rounds::state::{Outcome, RoundCheck, State as CheckState};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The running round's checks of the caller's teams, by planned time.
async fn round_checks(state: &AppState, who: &Principal) -> Result<Option<Vec<RoundCheck>>, ApiError> {
    let snapshot = engine(state, |e| Ok(e.snapshot().map(|(_, checks, _)| checks))).await?;
    Ok(snapshot.map(|mut checks| {
        checks.retain(|c| who.teams.sees(&c.team));
        checks.sort_by(|a, b| (a.planned_at, &a.id).cmp(&(b.planned_at, &b.id)));
        checks
    }))
}

/// `GET /round`: tonight's round as a timeline.
pub async fn round(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let checks = round_checks(&state, &who).await?;
    let ctx = Ctx::new(who, session, &headers);
    let body = format!("<div id=\"round\">{}</div>", round_table(&ctx, checks.as_deref()));
    Ok(shell(&ctx, Nav::Round, ctx.t("round_title"), "round", "", &body))
}

/// `GET /round/table`: the timeline alone, for the script to swap in.
pub async fn round_fragment(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let checks = round_checks(&state, &who).await?;
    let ctx = Ctx::new(who, session, &headers);
    Ok(Html(round_table(&ctx, checks.as_deref())))
}

fn round_table(ctx: &Ctx, checks: Option<&[RoundCheck]>) -> String {
    let Some(checks) = checks else {
        return format!("<p class=\"muted\">{}</p>", ctx.t("round_none"));
    };
    let may_act = ctx.who.may(Permission::HandleRoundChecks);
    let mut rows = String::new();
    for c in checks {
        let outcome = c.outcome.as_ref().map_or(String::new(), |o| {
            let mut s = esc(&ctx.lang.t_of("result", o.outcome.as_str()));
            if let Some(r) = &o.reason {
                let _ = write!(s, " <span class=\"muted\">({})</span>", esc(r));
            }
            s
        });
        let patrol = c.visit.as_ref().map_or(String::new(), |v| match (&v.patrol, v.planned_arrival) {
            (Some(p), Some(at)) => format!("{} {}{}", esc(p), clock(at), if v.urgent { format!(" <b class=\"warning\">{}</b>", ctx.t("urgent")) } else { String::new() }),
            _ => String::new(),
        });
        let mut actions = String::new();
        if may_act && c.state == CheckState::AwaitingStaff {
            if let Some(a) = c.attempts.last() {
                let _ = write!(
                    actions,
                    "<button type=\"button\" data-act=\"look\" data-check=\"{id}\" data-camera=\"{}\">{}</button> ",
                    esc(&a.camera_check),
                    ctx.t("look"),
                    id = esc(&c.id),
                );
            }
            let _ = write!(
                actions,
                "<button type=\"button\" data-act=\"well\" data-check=\"{id}\">{}</button> <button type=\"button\" class=\"secondary\" data-act=\"visit\" data-check=\"{id}\">{}</button><div class=\"snap\" id=\"snap-{id}\" aria-live=\"polite\"></div>",
                ctx.t("looks_well"),
                ctx.t("send_visit"),
                id = esc(&c.id),
            );
        }
        if may_act && c.state == CheckState::Visit {
            let options: String = [Outcome::CheckedByVisit, Outcome::Declined, Outcome::NotAtHome]
                .iter()
                .map(|o| format!("<option value=\"{}\">{}</option>", o.as_str(), ctx.lang.t_of("result", o.as_str())))
                .collect();
            let _ = write!(
                actions,
                "<select id=\"rec-{id}\" aria-label=\"{}\">{options}</select> <button type=\"button\" data-act=\"record\" data-check=\"{id}\">{}</button>",
                ctx.t("col_outcome"),
                ctx.t("record"),
                id = esc(&c.id),
            );
        }
        let _ = write!(
            rows,
            "<tr id=\"row-{id}\" data-state=\"{state}\"><td class=\"t\">{}</td><td><a href=\"/people/{}\">{}</a></td><td class=\"wide\">{}</td><td>{}</td><td>{outcome}</td><td class=\"wide\">{patrol}</td><td>{actions}</td></tr>",
            clock(c.planned_at),
            esc(&c.recipient),
            esc(&c.recipient_name),
            ctx.lang.t_of("method", c.method.as_str()),
            ctx.lang.t_of("state", c.state.as_str()),
            id = esc(&c.id),
            state = c.state.as_str(),
        );
    }
    format!(
        "<table><thead><tr><th>{}</th><th>{}</th><th class=\"wide\">{}</th><th>{}</th><th>{}</th><th class=\"wide\">{}</th><th></th></tr></thead><tbody>{rows}</tbody></table>",
        ctx.t("col_time"),
        ctx.t("col_person"),
        ctx.t("col_method"),
        ctx.t("col_status"),
        ctx.t("col_outcome"),
        ctx.t("col_patrol"),
    )
}

/// Distinct, readable on the dark map.
const COLOURS: [&str; 6] = ["#9cc8ff", "#ffd27a", "#8fe3a8", "#ff9b94", "#d6a8ff", "#7fe0e0"];

/// `GET /patrols`: each patrol's ordered visits with planned times, and a map of them.
pub async fn patrols(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let checks = round_checks(&state, &who).await?.unwrap_or_default();
    let mut all = read(&state, |s| s.patrols()).await?;
    all.retain(|p| who.teams.sees(&p.team));
    let ctx = Ctx::new(who, session, &headers);
    // Patrol → its visits by planned arrival.
    let mut routes: BTreeMap<&str, Vec<&RoundCheck>> = BTreeMap::new();
    for c in &checks {
        if let Some(p) = c.visit.as_ref().and_then(|v| v.patrol.as_deref()) {
            routes.entry(p).or_default().push(c);
        }
    }
    for visits in routes.values_mut() {
        visits.sort_by_key(|c| c.visit.as_ref().and_then(|v| v.planned_arrival));
    }
    let mut lists = String::new();
    let mut lines: Vec<(String, Vec<Position>)> = Vec::new();
    for (i, p) in all.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let visits = routes.get(p.id.as_str()).map(Vec::as_slice).unwrap_or_default();
        let items: String = visits
            .iter()
            .map(|c| {
                let v = c.visit.as_ref();
                format!(
                    "<li><span class=\"t\">{}</span> <a href=\"/people/{}\">{}</a> · {}{}</li>",
                    v.and_then(|v| v.planned_arrival).map(clock).unwrap_or_default(),
                    esc(&c.recipient),
                    esc(&c.recipient_name),
                    ctx.lang.t_of("state", c.state.as_str()),
                    if v.is_some_and(|v| v.urgent) { format!(" <b class=\"warning\">{}</b>", ctx.t("urgent")) } else { String::new() },
                )
            })
            .collect();
        let _ = write!(
            lists,
            "<h3><span style=\"color:{colour}\">■</span> {} <span class=\"muted\">({}, {}–{})</span></h3><ol class=\"plain\">{}</ol>",
            esc(&p.name),
            esc(&p.team),
            hhmm(p.shift_start),
            hhmm(p.shift_end),
            if items.is_empty() { format!("<li class=\"muted\">{}</li>", ctx.t("patrols_none")) } else { items },
        );
        let mut points = vec![p.start];
        points.extend(visits.iter().map(|c| c.place));
        points.push(p.end);
        lines.push((colour.to_string(), points));
    }
    let mut body = format!("<figure><svg class=\"map\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 600 400\">{}</svg></figure>{lists}", ctx.t("map"), map(&lines));
    if ctx.who.may(Permission::EditCarePlans) {
        body += &super::plans::patrol_editor(&ctx, &all);
    }
    Ok(shell(&ctx, Nav::Patrols, ctx.t("patrols_title"), "patrols", "", &body))
}

/// An SVG drawing of the routes: positions projected onto a 600×400 box (longitude scaled by
/// the cosine of the latitude, so distances look right this far north), a line per patrol,
/// numbered stops.
fn map(lines: &[(String, Vec<Position>)]) -> String {
    let points: Vec<&Position> = lines.iter().flat_map(|(_, p)| p.iter()).collect();
    if points.is_empty() {
        return String::new();
    }
    let lat0 = points.iter().map(|p| p.lat).sum::<f64>() / points.len() as f64;
    let k = lat0.to_radians().cos();
    let xs: Vec<f64> = points.iter().map(|p| p.lon * k).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.lat).collect();
    let (x0, x1) = (xs.iter().cloned().fold(f64::MAX, f64::min), xs.iter().cloned().fold(f64::MIN, f64::max));
    let (y0, y1) = (ys.iter().cloned().fold(f64::MAX, f64::min), ys.iter().cloned().fold(f64::MIN, f64::max));
    let span = (x1 - x0).max((y1 - y0) * 1.5).max(1e-4);
    let at = |p: &Position| (20.0 + (p.lon * k - x0) / span * 560.0, 380.0 - (p.lat - y0) / span * 560.0 / 1.5);
    let mut svg = String::new();
    for (colour, pts) in lines {
        let path: Vec<String> = pts.iter().map(|p| { let (x, y) = at(p); format!("{x:.1},{y:.1}") }).collect();
        let _ = write!(svg, "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>", path.join(" "));
        for (i, p) in pts.iter().enumerate() {
            let (x, y) = at(p);
            let last = i + 1 == pts.len();
            match (i, last) {
                (0, _) => { let _ = write!(svg, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>", x - 5.0, y - 5.0); }
                (_, true) => {}
                _ => { let _ = write!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\">{i}</text>", x + 6.0, y - 6.0); }
            }
        }
    }
    svg
}

/// `GET /people`: the people of the caller's teams.
pub async fn people(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let mut all = read(&state, |s| s.recipients()).await?;
    all.retain(|r| who.teams.sees(&r.team));
    let ctx = Ctx::new(who, session, &headers);
    let rows: String = all
        .iter()
        .map(|r| format!("<tr><td><a href=\"/people/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"wide\">{}</td></tr>", esc(&r.id), esc(&r.name), esc(&r.address), esc(&r.team), esc(&r.devices.join(", "))))
        .collect();
    let mut body = format!(
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"wide\">{}</th></tr></thead><tbody>{rows}</tbody></table>",
        ctx.t("col_person"),
        ctx.t("address"),
        ctx.t("team"),
        ctx.t("devices")
    );
    if ctx.who.may(Permission::EditCarePlans) {
        body += &super::plans::new_person(&ctx);
    }
    Ok(shell(&ctx, Nav::People, ctx.t("people_title"), "people", "", &body))
}

/// `GET /people/{id}`: care plan, devices and their health, tonight's checks, recent events.
pub async fn person(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let found = read(&state, |s| s.recipients()).await?.into_iter().find(|r| r.id == id && who.teams.sees(&r.team));
    let tonight = round_checks(&state, &who).await?.unwrap_or_default();
    let ctx = Ctx::new(who, session, &headers);
    let Some(r) = found else {
        return Ok(not_found(&ctx, Nav::People));
    };
    let mut ids: Vec<String> = r.devices.clone();
    ids.extend(r.camera_device.clone());
    ids.sort();
    ids.dedup();
    let wanted = ids.clone();
    let (devices, events) = read(&state, move |s| {
        let devices: Vec<_> = wanted.iter().map(|d| Ok((d.clone(), s.device(d)?))).collect::<Result<_, crate::store::StoreError>>()?;
        let mut events = Vec::new();
        for d in &wanted {
            events.extend(s.events(Some(d), 10)?);
        }
        Ok((devices, events))
    })
    .await?;
    let mut events = events;
    events.sort_by_key(|e| std::cmp::Reverse(e.ts));
    events.truncate(15);
    let mut body = format!(
        "<p>{} · {} · {}</p><h3>{}</h3><table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        esc(&r.name),
        esc(&r.address),
        esc(&r.team),
        ctx.t("care_plan"),
        ctx.t("col_time"),
        ctx.t("col_method"),
        ctx.t("notes")
    );
    for c in &r.checks {
        let _ = write!(body, "<tr><td class=\"t\">{}</td><td>{}</td><td>{}</td></tr>", hhmm(c.at), ctx.lang.t_of("method", c.method.as_str()), esc(&c.notes));
    }
    body += "</tbody></table>";
    if !r.opted_out_nights.is_empty() {
        let nights: Vec<String> = r.opted_out_nights.iter().map(|d| d.to_string()).collect();
        let _ = write!(body, "<p>{}: {}</p>", ctx.t("opted_out"), nights.join(", "));
    }
    match &r.consent {
        Some(c) => {
            let _ = write!(body, "<p>{}: {} ({}, {})</p>", ctx.t("consent"), esc(&c.windows.join(", ")), c.record.given, esc(&c.record.basis));
        }
        None => {
            let _ = write!(body, "<p class=\"muted\">{}</p>", ctx.t("no_consent"));
        }
    }
    if !r.rules.is_empty() {
        let rules: Vec<String> = r.rules.iter().map(|x| format!("{} → {}", esc(&x.on), x.action.as_str())).collect();
        let _ = write!(body, "<p>{}: {}</p>", ctx.t("rules"), rules.join(", "));
    }
    let _ = write!(
        body,
        "<h3>{}</h3><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th class=\"wide\">{}</th><th>{}</th></tr></thead><tbody>",
        ctx.t("devices"),
        ctx.t("col_device"),
        ctx.t("col_status"),
        ctx.t("col_seen"),
        ctx.t("col_queue"),
        ctx.t("col_supervision")
    );
    for (id, d) in &devices {
        let _ = match d {
            Some(d) => write!(
                body,
                "<tr class=\"{}\"><td><a href=\"/devices/{id}\">{id}</a></td>{}</tr>",
                if d.supervision_lost { "lost" } else { "" },
                health_cells(&ctx, d),
                id = esc(id),
            ),
            None => write!(body, "<tr><td><a href=\"/devices/{}\">{}</a></td><td class=\"muted\" colspan=\"4\">{}</td></tr>", esc(id), esc(id), ctx.t("never_seen")),
        };
    }
    body += "</tbody></table>";
    body += &super::areas::section(&ctx, &r);
    let mine: Vec<&RoundCheck> = tonight.iter().filter(|c| c.recipient == r.id).collect();
    if !mine.is_empty() {
        let _ = write!(body, "<h3>{}</h3><ul class=\"plain\">", ctx.t("tonight"));
        for c in mine {
            let outcome = c.outcome.as_ref().map_or(String::new(), |o| format!(" · {}", ctx.lang.t_of("result", o.outcome.as_str())));
            let _ = write!(body, "<li><span class=\"t\">{}</span> {} · {}{outcome}</li>", clock(c.planned_at), ctx.lang.t_of("method", c.method.as_str()), ctx.lang.t_of("state", c.state.as_str()));
        }
        body += "</ul>";
    }
    let _ = write!(body, "<h3>{}</h3><ul class=\"plain\">", ctx.t("recent_events"));
    for e in &events {
        let _ = write!(body, "<li><span class=\"t\">{}</span> <b>{}</b> <span class=\"{}\">{}</span></li>", local(e.ts), esc(&e.device), esc(&e.severity), esc(&e.kind));
    }
    body += "</ul>";
    if ctx.who.may(Permission::EditCarePlans) {
        body += &super::plans::plan_form(&ctx, &r);
        let json = serde_json::to_string_pretty(&r).unwrap_or_default();
        let _ = write!(
            body,
            r#"<details><summary>{title}</summary><form id="plan-form"><label for="plan">{label}</label><br><textarea id="plan" rows="24" style="width:100%;font-family:monospace;background:#0b0e12;color:#e9edf1">{json}</textarea>
<p><button type="submit" id="plan-save">{save}</button> <span id="plan-result" role="status"></span></p></form></details>
<script>
document.getElementById("plan-form").addEventListener("submit", e => {{
  e.preventDefault();
  const out = document.getElementById("plan-result");
  let plan;
  try {{ plan = JSON.parse(document.getElementById("plan").value); }} catch (err) {{ out.textContent = String(err); return; }}
  apiSend("PUT", "/api/v1/care/recipients/" + encodeURIComponent(plan.id), plan, out);
}});
</script>"#,
            title = ctx.t("edit_plan"),
            label = ctx.t("plan_json"),
            json = esc(&json),
            save = ctx.t("save"),
        );
    }
    Ok(shell(&ctx, Nav::People, &r.name, "person", "", &body).into_response())
}
