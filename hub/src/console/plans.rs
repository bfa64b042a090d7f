//! Forms for the people who keep the care plans (nurses and admins): a new person, a person's
//! night checks, opt-out nights and camera consent, and the night patrols.
//!
//! Each form builds the JSON the rounds API takes (`PUT /api/v1/care/recipients/{id}`,
//! `PUT`/`DELETE /api/v1/care/patrols/{id}`) and shows the API's answer: every problem, each
//! naming its field, as the API judges them (`apiSend` in `console.js`; the form itself checks
//! nothing the API would not).
//! The person's form starts from the stored plan, so what it does not show (devices, alarm
//! rules, safe areas) is sent back unchanged.

use super::page::{esc, Ctx};
use crate::rounds::plan::{hhmm, Method, Patrol, Recipient};
use std::fmt::Write;

/// `/people`: a new person (name, address, team, position); the rest on their page.
pub(super) fn new_person(ctx: &Ctx) -> String {
    format!(
        r#"<h3>{title}</h3><form id="person-form" class="inline">
<label>{id}<input id="person-id" required pattern="[a-z0-9][a-z0-9\-]{{0,63}}"></label>
<label>{name}<input id="person-name" required></label>
<label>{address}<input id="person-address" required></label>
<label>{team}<input id="person-team" required></label>
<label>{position}<input id="person-position" required placeholder="64.75000, 20.95000"></label>
<button type="submit" id="person-save">{save}</button> <span id="person-result" role="status"></span></form>
<script>
document.getElementById("person-form").addEventListener("submit", e => {{
  e.preventDefault();
  const v = id => document.getElementById(id).value.trim();
  const [lat, lon] = v("person-position").split(",").map(s => Number(s.trim()));
  const plan = {{id: v("person-id"), name: v("person-name"), address: v("person-address"), team: v("person-team"), position: {{lat, lon}}}};
  apiSend("PUT", "/api/v1/care/recipients/" + encodeURIComponent(plan.id), plan, document.getElementById("person-result"), "/people/" + encodeURIComponent(plan.id));
}});
</script>"#,
        title = ctx.t("new_person"),
        id = ctx.t("person_id"),
        name = ctx.t("col_name"),
        address = ctx.t("address"),
        team = ctx.t("team"),
        position = ctx.t("position"),
        save = ctx.t("save"),
    )
}

/// One row of the checks table.
fn check_row(ctx: &Ctx, at: &str, method: Method, tolerance: u32, notes: &str) -> String {
    let methods: String = [Method::Camera, Method::Visit, Method::CameraThenVisit]
        .into_iter()
        .map(|m| {
            let selected = if m == method { " selected" } else { "" };
            format!("<option value=\"{}\"{selected}>{}</option>", m.as_str(), ctx.lang.t_of("method", m.as_str()))
        })
        .collect();
    format!(
        "<tr class=\"check-row\"><td><input type=\"time\" class=\"check-at\" value=\"{at}\" required aria-label=\"{}\"></td>\
         <td><select class=\"check-method\" aria-label=\"{}\">{methods}</select></td>\
         <td><input type=\"number\" class=\"check-tolerance\" min=\"1\" max=\"120\" value=\"{tolerance}\" aria-label=\"{}\"></td>\
         <td><input class=\"check-notes\" value=\"{}\" aria-label=\"{}\"></td>\
         <td><button type=\"button\" class=\"secondary check-remove\">{}</button></td></tr>",
        ctx.t("col_time"),
        ctx.t("col_method"),
        ctx.t("tolerance"),
        esc(notes),
        ctx.t("notes"),
        ctx.t("remove"),
    )
}

/// A person's page: their night checks, opt-out nights and camera consent as a form.
pub(super) fn plan_form(ctx: &Ctx, r: &Recipient) -> String {
    let rows: String = r.checks.iter().map(|c| check_row(ctx, &hhmm(c.at), c.method, c.tolerance_min(), &c.notes)).collect();
    let blank = check_row(ctx, "", Method::Camera, 15, "");
    let nights: Vec<String> = r.opted_out_nights.iter().map(|d| d.to_string()).collect();
    let (windows, given, basis) = match &r.consent {
        Some(c) => (c.windows.join(", "), c.record.given.to_string(), c.record.basis.clone()),
        None => (String::new(), String::new(), String::new()),
    };
    let plan = serde_json::to_string(r).unwrap_or_default();
    format!(
        r#"<h3>{title}</h3><form id="checks-form" data-plan="{plan}">
<table><thead><tr><th>{time}</th><th>{method}</th><th>{tolerance}</th><th>{notes}</th><th></th></tr></thead><tbody id="check-rows">{rows}</tbody></table>
<template id="check-blank">{blank}</template>
<p><button type="button" class="secondary" id="check-add">{add}</button></p>
<p><label>{opted_out}<input id="plan-nights" value="{nights}" placeholder="2026-12-24, 2026-12-31"></label></p>
<fieldset><legend>{consent}</legend>
<label>{windows}<input id="consent-windows" value="{windows_v}" placeholder="22:00-06:00"></label>
<label>{given}<input type="date" id="consent-given" value="{given_v}"></label>
<label>{basis}<input id="consent-basis" value="{basis_v}" placeholder="samtycke"></label>
<p class="muted">{consent_hint}</p></fieldset>
<p><button type="submit" id="checks-save">{save}</button> <span id="checks-result" role="status"></span></p></form>
<script>
(() => {{
  const form = document.getElementById("checks-form"), rows = document.getElementById("check-rows");
  const wire = row => row.querySelector(".check-remove").addEventListener("click", () => row.remove());
  rows.querySelectorAll(".check-row").forEach(wire);
  document.getElementById("check-add").addEventListener("click", () => {{
    rows.appendChild(document.getElementById("check-blank").content.cloneNode(true));
    const row = rows.lastElementChild;
    wire(row);
    row.querySelector(".check-at").focus();
  }});
  const list = id => document.getElementById(id).value.split(",").map(s => s.trim()).filter(Boolean);
  form.addEventListener("submit", e => {{
    e.preventDefault();
    const plan = JSON.parse(form.dataset.plan);
    const before = new Map((plan.checks || []).map(c => [c.at.slice(0, 5), c]));
    plan.checks = [...rows.querySelectorAll(".check-row")].map(row => {{
      const at = row.querySelector(".check-at").value;
      const c = Object.assign({{}}, before.get(at) || {{}});
      c.at = at;
      c.method = row.querySelector(".check-method").value;
      c.tolerance_min = Number(row.querySelector(".check-tolerance").value);
      c.notes = row.querySelector(".check-notes").value;
      return c;
    }});
    plan.opted_out_nights = list("plan-nights");
    const windows = list("consent-windows"), given = document.getElementById("consent-given").value;
    const basis = document.getElementById("consent-basis").value.trim();
    if (windows.length || given || basis) {{
      const record = Object.assign({{}}, (plan.consent || {{}}).record || {{}}, {{given, basis}});
      plan.consent = Object.assign({{}}, plan.consent || {{}}, {{windows, record}});
    }} else {{
      delete plan.consent;
    }}
    apiSend("PUT", "/api/v1/care/recipients/" + encodeURIComponent(plan.id), plan, document.getElementById("checks-result"));
  }});
}})();
</script>"#,
        title = ctx.t("plan_form"),
        plan = esc(&plan),
        time = ctx.t("col_time"),
        method = ctx.t("col_method"),
        tolerance = ctx.t("tolerance"),
        notes = ctx.t("notes"),
        add = ctx.t("check_add"),
        opted_out = ctx.t("opted_out_input"),
        nights = esc(&nights.join(", ")),
        consent = ctx.t("consent"),
        windows = ctx.t("consent_windows"),
        windows_v = esc(&windows),
        given = ctx.t("consent_given"),
        given_v = esc(&given),
        basis = ctx.t("consent_basis"),
        basis_v = esc(&basis),
        consent_hint = ctx.t("consent_hint"),
        save = ctx.t("save"),
    )
}

/// `/patrols`: the patrols of the caller's teams, each with edit and remove, and the form.
pub(super) fn patrol_editor(ctx: &Ctx, patrols: &[Patrol]) -> String {
    let mut rows = String::new();
    for p in patrols {
        let json = serde_json::to_string(p).unwrap_or_default();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}–{}</td><td><button type=\"button\" class=\"secondary patrol-edit\" data-patrol=\"{}\">{}</button> \
             <button type=\"button\" class=\"secondary patrol-remove\" data-id=\"{}\">{}</button></td></tr>",
            esc(&p.id),
            esc(&p.name),
            esc(&p.team),
            hhmm(p.shift_start),
            hhmm(p.shift_end),
            esc(&json),
            ctx.t("edit"),
            esc(&p.id),
            ctx.t("remove"),
        );
    }
    format!(
        r#"<h2>{title}</h2><table><thead><tr><th>{id}</th><th>{name}</th><th>{team}</th><th>{shift}</th><th></th></tr></thead><tbody id="patrol-rows">{rows}</tbody></table>
<form id="patrol-form" class="inline">
<label>{id}<input id="patrol-id" required pattern="[a-z0-9][a-z0-9\-]{{0,63}}"></label>
<label>{name}<input id="patrol-name" required placeholder="Bil 1: Anna, Omar"></label>
<label>{team}<input id="patrol-team" required></label>
<label>{start}<input id="patrol-start" required placeholder="64.75000, 20.95000"></label>
<label>{end}<input id="patrol-end" placeholder="{same}"></label>
<label>{from}<input type="time" id="patrol-from" value="21:00" required></label>
<label>{to}<input type="time" id="patrol-to" value="07:00" required></label>
<button type="submit" id="patrol-save">{save}</button> <span id="patrol-result" role="status"></span></form>
<script>
(() => {{
  const v = id => document.getElementById(id).value.trim(), set = (id, x) => document.getElementById(id).value = x;
  const place = text => {{ const [lat, lon] = text.split(",").map(s => Number(s.trim())); return {{lat, lon}}; }};
  const out = document.getElementById("patrol-result");
  for (const b of document.querySelectorAll(".patrol-edit")) b.addEventListener("click", () => {{
    const p = JSON.parse(b.dataset.patrol);
    set("patrol-id", p.id); set("patrol-name", p.name); set("patrol-team", p.team);
    set("patrol-start", p.start.lat + ", " + p.start.lon); set("patrol-end", p.end.lat + ", " + p.end.lon);
    set("patrol-from", p.shift_start.slice(0, 5)); set("patrol-to", p.shift_end.slice(0, 5));
    document.getElementById("patrol-name").focus();
  }});
  for (const b of document.querySelectorAll(".patrol-remove")) b.addEventListener("click", () => {{
    if (confirm(b.dataset.id + "?")) apiSend("DELETE", "/api/v1/care/patrols/" + encodeURIComponent(b.dataset.id), undefined, out);
  }});
  document.getElementById("patrol-form").addEventListener("submit", e => {{
    e.preventDefault();
    const start = place(v("patrol-start"));
    const p = {{id: v("patrol-id"), name: v("patrol-name"), team: v("patrol-team"), start, end: v("patrol-end") ? place(v("patrol-end")) : start, shift_start: v("patrol-from"), shift_end: v("patrol-to")}};
    apiSend("PUT", "/api/v1/care/patrols/" + encodeURIComponent(p.id), p, out);
  }});
}})();
</script>"#,
        title = ctx.t("patrols_edit"),
        id = ctx.t("patrol_id"),
        name = ctx.t("col_name"),
        team = ctx.t("team"),
        shift = ctx.t("shift"),
        start = ctx.t("patrol_start"),
        end = ctx.t("patrol_end"),
        same = ctx.t("patrol_end_same"),
        from = ctx.t("shift_start"),
        to = ctx.t("shift_end"),
        save = ctx.t("save"),
    )
}
