//! The reports page (`GET /reports?month=YYYY-MM`, night staff, nurses, admins): the month's
//! checks per night as a bar chart (settled by camera, by visit, missed) and the response times
//! per night (escalation → on site, alarm → acknowledged) as another, the month's figures
//! per team (wake-ups avoided, escalations and how many were on site within their promise,
//! alarms and their response times: acknowledged, on site, resolved), and links to the CSV
//! exports of the reports API.
//!
//! The figures are the API's (`rounds::report`), computed from the stored round checks, events
//! and alarms of the caller's teams only.

use super::api::ApiError;
use super::rounds::Period;
use super::auth::Session;
use super::page::{esc, forbidden, shell, Ctx, Nav};
use super::AppState;
use crate::access::{Permission, Principal};
use crate::rounds::report::{self, Stats, TeamReport};
use crate::rounds::state::RoundCheck;
use crate::store::AlarmRow;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use jiff::civil::Date;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Month {
    month: Option<String>,
}

pub async fn page(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap, Query(q): Query<Month>) -> Result<Response, ApiError> {
    if !who.may(Permission::ReadReports) {
        let ctx = Ctx::new(who, session, &headers);
        return Ok(forbidden(&ctx, Nav::Reports, "read reports"));
    }
    let today = jiff::Zoned::now().with_time_zone(super::page::stockholm()).date();
    let first = q
        .month
        .as_deref()
        .and_then(|m| format!("{m}-01").parse::<Date>().ok())
        .unwrap_or_else(|| today.first_of_month());
    let last = first.last_of_month();
    let period = Period::month(&state, &who, first).await?;
    let ctx = Ctx::new(who, session, &headers);
    let month = report::report("month", (first, last), &period.inputs());
    // Night by night, for the charts: each night's checks, and the alarms raised in its shift.
    let mut nights: BTreeMap<Date, (Vec<RoundCheck>, Vec<AlarmRow>)> = BTreeMap::new();
    for c in &period.checks {
        nights.entry(c.night).or_default().0.push(c.clone());
    }
    for a in &period.alarms {
        if let Some(night) = state.shift.night_at(a.raised_at).filter(|n| (first..=last).contains(n)) {
            nights.entry(night).or_default().1.push(a.clone());
        }
    }
    let bars: Vec<(Date, TeamReport)> = nights
        .iter()
        .map(|(n, (checks, alarms))| {
            let inputs = report::Inputs { checks, device_events: &[], alarms, team_of_device: &period.teams };
            (*n, report::report("night", (*n, *n), &inputs).total)
        })
        .collect();
    let m = first.strftime("%Y-%m").to_string();
    let prev = (first - jiff::Span::new().months(1)).strftime("%Y-%m").to_string();
    let next = (first + jiff::Span::new().months(1)).strftime("%Y-%m").to_string();
    let mut body = format!(
        "<p><a href=\"/reports?month={prev}\">← {prev}</a> · <b>{m}</b> · <a href=\"/reports?month={next}\">{next} →</a></p>\
         <p><a class=\"button\" href=\"/api/v1/reports/months/{m}?format=csv\" download>{}</a></p>",
        ctx.t("csv_month"),
    );
    let _ = write!(body, "<h3>{}</h3>{}", ctx.t("chart_checks"), chart(&ctx, &bars));
    let _ = write!(body, "<h3>{}</h3>{}", ctx.t("chart_response"), response_chart(&ctx, &bars));
    let _ = write!(
        body,
        "<h3>{}</h3><table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        ctx.t("per_team"),
        ctx.t("team"),
        ctx.t("r_planned"),
        ctx.t("r_camera"),
        ctx.t("r_visit"),
        ctx.t("r_missed"),
        ctx.t("r_wakeups"),
        ctx.t("r_escalations"),
        ctx.t("r_escalation_time"),
        ctx.t("r_alarms"),
        ctx.t("r_alarm_ack_time"),
        ctx.t("r_alarm_time"),
        ctx.t("r_alarm_resolved_time"),
    );
    let rows: Vec<(&TeamReport, bool)> = month.teams.iter().map(|t| (t, false)).chain(std::iter::once((&month.total, true))).collect();
    for (t, total) in rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({} ✓)</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if total { format!("<b>{}</b>", ctx.t("total")) } else { esc(&t.team) },
            t.planned,
            t.by_camera,
            t.by_visit,
            t.missed,
            t.wakeups_avoided,
            t.escalations,
            t.escalations_within_promise,
            minutes(&t.escalation_to_on_site_min),
            t.alarms,
            if t.alarms_unacknowledged > 0 { format!(" ({} {})", t.alarms_unacknowledged, ctx.t("r_unacked")) } else { String::new() },
            minutes(&t.alarm_to_acknowledged_min),
            minutes(&t.alarm_to_on_site_min),
            minutes(&t.alarm_to_resolved_min),
        );
    }
    body += "</tbody></table>";
    if !bars.is_empty() {
        let _ = write!(body, "<h3>{}</h3><ul class=\"plain\">", ctx.t("csv_nights"));
        for (n, _) in &bars {
            let _ = write!(body, "<li><a href=\"/api/v1/reports/nights/{n}?format=csv\" download>{n}</a></li>");
        }
        body += "</ul>";
    }
    Ok(shell(&ctx, Nav::Reports, ctx.t("reports_title"), "reports", "", &body).into_response())
}

/// `mean / max min`, or `–`.
fn minutes(s: &Stats) -> String {
    match (s.mean, s.max) {
        (Some(mean), Some(max)) => format!("{mean:.0} / {max:.0} min"),
        _ => "–".into(),
    }
}

/// A stacked bar per night: by camera (blue), by visit (yellow), missed (red).
fn chart(ctx: &Ctx, bars: &[(Date, TeamReport)]) -> String {
    if bars.is_empty() {
        return format!("<p class=\"muted\">{}</p>", ctx.t("no_rounds"));
    }
    let max = bars.iter().map(|(_, t)| t.by_camera + t.by_visit + t.missed).max().unwrap_or(1).max(1) as f64;
    let width = 600.0;
    let step = width / bars.len() as f64;
    let bar = (step * 0.7).clamp(2.0, 40.0);
    let mut svg = String::new();
    for (i, (night, t)) in bars.iter().enumerate() {
        let x = i as f64 * step + (step - bar) / 2.0;
        let mut y = 180.0;
        for (value, colour) in [(t.by_camera, "#9cc8ff"), (t.by_visit, "#ffd27a"), (t.missed, "#ff9b94")] {
            let h = value as f64 / max * 170.0;
            y -= h;
            let _ = write!(svg, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{night}: {value}</title></rect>");
        }
        if bars.len() <= 16 || i % 5 == 0 {
            let _ = write!(svg, "<text x=\"{x:.1}\" y=\"196\">{}</text>", night.day());
        }
    }
    format!(
        "<figure><svg class=\"map\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 600 200\">{svg}</svg>\
         <figcaption><span style=\"color:#9cc8ff\">■</span> {} <span style=\"color:#ffd27a\">■</span> {} <span style=\"color:#ff9b94\">■</span> {}</figcaption></figure>",
        ctx.t("chart_checks"),
        ctx.t("r_camera"),
        ctx.t("r_visit"),
        ctx.t("r_missed"),
    )
}

/// Per night, side by side: the mean minutes from escalation to on site (yellow) and from
/// alarm to acknowledged (blue); a night without either has no bar.
fn response_chart(ctx: &Ctx, bars: &[(Date, TeamReport)]) -> String {
    let series = |t: &TeamReport| [(t.escalation_to_on_site_min.mean, "#ffd27a"), (t.alarm_to_acknowledged_min.mean, "#9cc8ff")];
    let values: Vec<f64> = bars.iter().flat_map(|(_, t)| series(t)).filter_map(|(v, _)| v).collect();
    // At least a minute high, so answers within seconds still show as a sliver.
    let max = values.iter().copied().fold(1.0, f64::max);
    if values.is_empty() {
        return format!("<p class=\"muted\" id=\"response-none\">{}</p>", ctx.t("no_response_times"));
    }
    let step = 600.0 / bars.len() as f64;
    let bar = (step * 0.35).clamp(2.0, 20.0);
    let mut svg = String::new();
    for (i, (night, t)) in bars.iter().enumerate() {
        for (j, (value, colour)) in series(t).into_iter().enumerate() {
            let Some(v) = value else { continue };
            let h = (v / max * 170.0).max(2.0);
            let x = i as f64 * step + step / 2.0 - bar + j as f64 * bar;
            let _ = write!(svg, "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{night}: {v:.1} min</title></rect>", 180.0 - h);
        }
        if bars.len() <= 16 || i % 5 == 0 {
            let _ = write!(svg, "<text x=\"{:.1}\" y=\"196\">{}</text>", i as f64 * step + step / 2.0 - bar, night.day());
        }
    }
    let _ = write!(svg, "<text x=\"2\" y=\"12\">{max:.0} min</text>");
    format!(
        "<figure><svg class=\"map\" id=\"response-chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 600 200\">{svg}</svg>\
         <figcaption><span style=\"color:#ffd27a\">■</span> {} <span style=\"color:#9cc8ff\">■</span> {}</figcaption></figure>",
        ctx.t("chart_response"),
        ctx.t("r_escalation_time"),
        ctx.t("r_alarm_ack_time"),
    )
}
