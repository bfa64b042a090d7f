//! The console page: devices and a live list of the latest events. Served whole by the hub
//! (no CDN, inline CSS and script) and readable on a phone. The first view is rendered on the
//! server, so the page shows the current state even before (or without) its script; the
//! script then keeps it live from the JSON API and the event stream, both authorised by the
//! session cookie (a request of the script that changes something sends the page's CSRF token
//! as `x-csrf-token`).

use super::api::{read, ApiError};
use super::auth::Session;
use super::scope::Scope;
use super::AppState;
use crate::access::Principal;
use crate::store::{DeviceRow, EventRow};
use axum::extract::State;
use axum::response::Html;
use axum::Extension;
use jiff::{tz::TimeZone, Timestamp};

/// Events shown when the page opens.
const FIRST_EVENTS: usize = 50;

/// The page; with a login session it carries the session's CSRF token (in the logout form and
/// a meta tag for the script).
pub async fn console(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    session: Option<Extension<Session>>,
) -> Result<Html<String>, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let (mut devices, mut events) =
        read(&state, |s| Ok((s.devices()?, s.events(None, FIRST_EVENTS)?))).await?;
    devices.retain(|d| scope.sees_device(&d.id));
    events.retain(|e| scope.sees_device(&e.device));
    let tz = TimeZone::get("Europe/Stockholm").unwrap_or(TimeZone::UTC);
    let devices: String = devices.iter().map(|d| device_row(d, &tz)).collect();
    let events: String = events.iter().map(|e| event_item(e, &tz)).collect();
    let (csrf, logout) = match session {
        Some(Extension(s)) => (
            esc(&s.csrf),
            format!(
                r#"<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Logga ut</button></form>"#,
                esc(&s.csrf)
            ),
        ),
        None => (String::new(), String::new()),
    };
    let user = format!("{} ({})", esc(&who.name), who.role);
    Ok(Html(
        PAGE.replace("{{DEVICES}}", &devices)
            .replace("{{EVENTS}}", &events)
            .replace("{{CSRF}}", &csrf)
            .replace("{{USER}}", &user)
            .replace("{{LOGOUT}}", &logout),
    ))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn local(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The same markup as `renderDevices` in the page's script.
fn device_row(d: &DeviceRow, tz: &TimeZone) -> String {
    format!(
        "<tr class=\"{}\"><td>{}</td><td class=\"wide\">{}</td><td class=\"{}\">{}</td><td class=\"t\">{}</td><td class=\"wide\">{}</td><td>{}</td></tr>",
        if d.supervision_lost { "lost" } else { "" },
        esc(&d.id),
        esc(&d.site),
        if d.online { "on" } else { "off" },
        if d.online { "online" } else { "offline" },
        local(d.last_seen, tz),
        d.outbox_depth.map_or("–".to_string(), |n| n.to_string()),
        if d.supervision_lost { "<span class=\"alarm\">TILLSYN BRUTEN</span>" } else { "ok" },
    )
}

/// The same markup as `addEvent` in the page's script.
fn event_item(e: &EventRow, tz: &TimeZone) -> String {
    format!(
        "<li><span class=\"t\">{}</span> <b>{}</b> <span class=\"{}\">{}</span> <span class=\"t\">#{}</span></li>",
        local(e.ts, tz),
        esc(&e.device),
        esc(&e.severity),
        esc(&e.kind),
        e.seq
    )
}

const PAGE: &str = r#"<!doctype html>
<html lang="sv"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="{{CSRF}}">
<title>Vaka – nattillsyn</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;padding:.5rem;background:#f6f6f4;color:#1b1b1b}
 h1{font-size:1.3rem;margin:.3rem 0} h2{font-size:1.05rem;margin:1rem 0 .3rem}
 #conn{font-size:.85rem;color:#555}
 table{border-collapse:collapse;width:100%;background:#fff;font-size:.95rem}
 th,td{padding:.35rem .4rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
 .on{color:#0a6b2d;font-weight:600}.off{color:#b00020;font-weight:600}
 tr.lost{background:#ffe3e3} .alarm{color:#b00020;font-weight:700}
 .warning{color:#8a5a00} ul{list-style:none;padding:0;margin:0;background:#fff}
 li{padding:.35rem .4rem;border-bottom:1px solid #ddd;font-size:.92rem}
 .t{color:#555;font-variant-numeric:tabular-nums}
 .who{float:right;font-size:.85rem;color:#555} .logout{display:inline;margin-left:.5rem}
 @media (max-width:600px){.wide{display:none}}
</style></head><body>
<div class="who">{{USER}}{{LOGOUT}}</div>
<h1>Vaka – nattillsyn</h1><div id="conn">Ansluter…</div>
<h2>Enheter</h2>
<table><thead><tr><th>Enhet</th><th class="wide">Plats</th><th>Status</th><th>Senast hörd</th>
<th class="wide">Kö</th><th>Tillsyn</th></tr></thead><tbody id="devices">{{DEVICES}}</tbody></table>
<h2>Senaste händelser</h2><ul id="events">{{EVENTS}}</ul>
<script>
"use strict";
const MAX_EVENTS = 100;
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const time = t => t ? new Date(t).toLocaleString("sv-SE") : "–";
const devices = new Map();
function renderDevices(){
  const rows = [...devices.values()].sort((a,b)=> (b.supervision_lost-a.supervision_lost) || a.id.localeCompare(b.id));
  document.getElementById("devices").innerHTML = rows.map(d =>
    `<tr class="${d.supervision_lost?"lost":""}"><td>${esc(d.id)}</td><td class="wide">${esc(d.site)}</td>`+
    `<td class="${d.online?"on":"off"}">${d.online?"online":"offline"}</td><td class="t">${time(d.last_seen)}</td>`+
    `<td class="wide">${d.outbox_depth ?? "–"}</td><td>${d.supervision_lost?'<span class="alarm">TILLSYN BRUTEN</span>':"ok"}</td></tr>`).join("");
}
function addEvent(e, top){
  const li = document.createElement("li");
  li.innerHTML = `<span class="t">${time(e.ts)}</span> <b>${esc(e.device)}</b> `+
    `<span class="${esc(e.severity)}">${esc(e.kind)}</span> <span class="t">#${e.seq}</span>`;
  const ul = document.getElementById("events");
  if (top) ul.prepend(li); else ul.append(li);
  while (ul.children.length > MAX_EVENTS) ul.lastChild.remove();
}
async function load(){
  const [d, e] = await Promise.all([fetch("/api/v1/devices"), fetch("/api/v1/events?limit=50")]);
  if (d.status === 401) { location.href = "/login"; return; }
  devices.clear(); for (const x of await d.json()) devices.set(x.id, x);
  renderDevices();
  document.getElementById("events").innerHTML = "";
  for (const x of await e.json()) addEvent(x, false);
}
function live(){
  const es = new EventSource("/api/v1/stream");
  const conn = document.getElementById("conn");
  let opened = false;
  // Reload on reconnect: events may have been missed while the stream was down.
  es.onopen = () => { conn.textContent = "Live"; if (opened) load(); opened = true; };
  es.onerror = () => { conn.textContent = "Ingen förbindelse – försöker igen…"; };
  es.addEventListener("event", m => addEvent(JSON.parse(m.data), true));
  es.addEventListener("device", m => { const d = JSON.parse(m.data); devices.set(d.id, d); renderDevices(); });
  es.addEventListener("alarm", () => load());
  es.addEventListener("lagged", () => load());
}
load().catch(() => {});
live();
</script></body></html>"#;
