//! The bed zone of a camera, drawn on a calibration picture.
//!
//! | route | roles | answers |
//! |---|---|---|
//! | `POST /api/v1/devices/{id}/calibration` | installer, admin | 202 status, 403, 404, 503 no broker |
//! | `GET /api/v1/devices/{id}/calibration` | installer, admin | 200 status (never the picture), 403, 404 |
//! | `GET /api/v1/devices/{id}/calibration/picture` | installer, admin | 200 `image/jpeg`, 403, 404 none kept |
//! | `PUT /api/v1/devices/{id}/bed-zone` | installer, admin | 200 zone, 403, 404, 422 every problem |
//!
//! An installer asks the device for a calibration picture; the device sends one only while
//! installer mode is on *at the device* (`vaka-agent camera installer-mode`), otherwise a
//! refusal the page shows. The picture lives in the hub's memory only (the
//! [`CalibrationVault`](crate::camera::CalibrationVault)), for installers and admins of the
//! home's team, for `cameras.calibration_span`; every fetch is written to the audit log before
//! the picture is handed out (if that line cannot be written, nothing is shown).
//!
//! The zone drawn on it is judged by the agent's own [`BedZone`] rules (every problem listed),
//! stored with who set it (audited), written into the device's agent configuration as
//! `[camera] bed_zone`, and sent to the running agent (`set_bed_zone`), which judges it again,
//! keeps it and uses it from its next check.

use super::api::{allow, read, write, ApiError};
use super::checks::audit_entry;
use super::page::{esc, local, Ctx};
use super::scope::Scope;
use super::AppState;
use crate::access::{Permission, Principal};
use crate::camera::CalibrationStatus;
use crate::store::BedZoneRow;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use tracing::{error, info, warn};
use uuid::Uuid;
use vaka_agent::camera::analysis::BedZone;
use vaka_protocol::{CheckId, CommandBody, DeviceId, SiteId};

/// The device, if the caller may calibrate it and sees it; with its site when the hub has
/// heard it.
async fn find_device(state: &AppState, who: &Principal, raw: &str) -> Result<(DeviceId, Option<SiteId>), ApiError> {
    allow(who, Permission::CalibrateCamera, "calibrate cameras")?;
    let missing = || ApiError::not_found(format!("no device `{}`", raw.chars().take(80).collect::<String>()));
    let device = DeviceId::new(raw).map_err(|_| missing())?;
    if !Scope::of(state, who).await?.sees_device(device.as_str()) {
        return Err(missing());
    }
    let key = device.to_string();
    let (row, registered) = read(state, move |s| Ok((s.device(&key)?, s.registrations()?.into_iter().find(|r| r.device == key)))).await?;
    let site = match (row, registered) {
        (Some(d), _) => Some(SiteId::new(d.site.as_str()).map_err(|e| ApiError::store(format!("stored device has a bad site id: {e}")))?),
        (None, Some(_)) => None,
        (None, None) => return Err(missing()),
    };
    Ok((device, site))
}

fn broker_up(state: &AppState) -> Result<(), ApiError> {
    match state.stats.mqtt_connected.load(Relaxed) {
        true => Ok(()),
        false => Err(ApiError::unavailable("broker_unavailable", "the hub is not connected to the MQTT broker; nothing was sent")),
    }
}

/// `POST /api/v1/devices/{id}/calibration`: asks the device for a calibration picture.
pub async fn request(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let (device, site) = find_device(&state, &who, &raw).await?;
    let site = site.ok_or_else(|| ApiError::conflict("never_heard", "the device has not talked to the hub yet; it cannot be asked anything"))?;
    broker_up(&state)?;
    let now = Timestamp::now();
    let request_id = CheckId::new(Uuid::now_v7().to_string()).map_err(|e| ApiError::store(format!("could not make a request id: {e}")))?;
    let entry = audit_entry(&who, now, "calibration_requested", Some(request_id.as_str()), Some(device.as_str()), None);
    write(&state, move |s| s.append_audit(&entry)).await?;
    state.snapshots.calibrations(|v| v.request(now, device.clone(), request_id.clone(), &who.name));
    if let Err(e) = state.commands.send(&site, &device, CommandBody::Calibrate { request_id: request_id.clone() }) {
        state.snapshots.calibrations(|v| v.cancel(&device, &request_id));
        warn!(%device, %request_id, error = %e, "Calibration request could not be sent");
        return Err(ApiError::unavailable("broker_unavailable", e.to_string()));
    }
    info!(%device, %request_id, requested_by = %who.name, role = %who.role, "Calibration picture requested");
    let status = state.snapshots.calibrations(|v| v.status(now, &device));
    Ok((StatusCode::ACCEPTED, Json(status)).into_response())
}

/// `GET /api/v1/devices/{id}/calibration`: where the calibration stands.
pub async fn status(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>) -> Result<Json<CalibrationStatus>, ApiError> {
    let (device, _) = find_device(&state, &who, &raw).await?;
    Ok(Json(state.snapshots.calibrations(|v| v.status(Timestamp::now(), &device))))
}

/// `GET /api/v1/devices/{id}/calibration/picture`: the picture, each fetch audited first.
pub async fn picture(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    if !who.may(Permission::CalibrateCamera) {
        let entry = audit_entry(&who, now, "calibration_picture_refused_role", None, DeviceId::new(raw.as_str()).ok().as_ref().map(DeviceId::as_str), None);
        write(&state, move |s| s.append_audit(&entry)).await?;
    }
    let (device, _) = find_device(&state, &who, &raw).await?;
    let (jpeg, status) = state.snapshots.calibrations(|v| (v.picture(now, &device), v.status(now, &device)));
    let Some(jpeg) = jpeg else {
        return Err(ApiError::not_found("no calibration picture is kept for this device").with_code("calibration_not_available"));
    };
    let detail = format!("filter={} expires_at={}", status.filter.unwrap_or("-"), status.expires_at.map_or("-".into(), |t| t.to_string()));
    let entry = audit_entry(&who, now, "calibration_picture_viewed", status.request_id.as_deref(), Some(device.as_str()), Some(detail));
    if let Err(e) = write(&state, move |s| s.append_audit(&entry)).await {
        error!(%device, "Calibration picture not shown: its viewing could not be recorded");
        return Err(e.with_code("audit_unavailable"));
    }
    info!(actor = %who.name, role = %who.role, %device, "Calibration picture viewed");
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((StatusCode::OK, headers, jpeg).into_response())
}

/// Reads corners from JSON (`[[x, y], …]`) and judges them with the agent's own rules: every
/// problem, or the corners.
pub fn judge(body: &serde_json::Value) -> Result<Vec<[f64; 2]>, Vec<String>> {
    let Some(list) = body.as_array() else {
        return Err(vec!["bed_zone: send the corners as [[x, y], …] in picture coordinates 0..1".into()]);
    };
    let mut problems = Vec::new();
    let mut corners = Vec::new();
    for (i, p) in list.iter().enumerate() {
        match p.as_array().map(|xy| xy.iter().map(serde_json::Value::as_f64).collect::<Option<Vec<f64>>>()) {
            Some(Some(xy)) if xy.len() == 2 => corners.push([xy[0], xy[1]]),
            _ => problems.push(format!("bed_zone[{i}]: a corner is a pair of numbers [x, y]")),
        }
    }
    if list.len() > vaka_protocol::calibration::MAX_ZONE_CORNERS {
        problems.push(format!("bed_zone: {} corners; at most {}", list.len(), vaka_protocol::calibration::MAX_ZONE_CORNERS));
    }
    if problems.is_empty() {
        let points: Vec<(f64, f64)> = corners.iter().map(|&[x, y]| (x, y)).collect();
        problems.extend(BedZone::problems(&points).into_iter().map(|e| format!("bed_zone: {e}")));
    }
    match problems.is_empty() {
        true => Ok(corners),
        false => Err(problems),
    }
}

#[derive(Serialize)]
struct Saved {
    #[serde(flatten)]
    zone: BedZoneRow,
    /// Whether the running agent was sent the zone now (else it gets it with its configuration).
    sent_to_device: bool,
}

/// `PUT /api/v1/devices/{id}/bed-zone`.
pub async fn put_bed_zone(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(raw): Path<String>, body: Option<Json<serde_json::Value>>) -> Result<Response, ApiError> {
    let (device, site) = find_device(&state, &who, &raw).await?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let corners = judge(&body).map_err(|problems| ApiError::unprocessable("bad_bed_zone", problems.join("\n")).with_problems(problems))?;
    let now = Timestamp::now();
    let zone = BedZoneRow { device: device.to_string(), corners: corners.clone(), set_by: who.name.clone(), set_at: now };
    let text = serde_json::to_string(&corners).unwrap_or_default();
    let entry = audit_entry(&who, now, "bed_zone_set", None, Some(device.as_str()), Some(text));
    let stored = zone.clone();
    write(&state, move |s| s.set_bed_zone(&stored, &entry)).await?;
    let sent_to_device = match site {
        Some(site) if state.stats.mqtt_connected.load(Relaxed) => match state.commands.send(&site, &device, CommandBody::SetBedZone { bed_zone: corners }) {
            Ok(_) => true,
            Err(e) => {
                warn!(%device, error = %e, "Bed zone stored but not sent; the device gets it with its configuration");
                false
            }
        },
        _ => false,
    };
    info!(%device, by = %who.name, role = %who.role, sent_to_device, "Bed zone set");
    Ok(Json(Saved { zone, sent_to_device }).into_response())
}

/// The bed zone editor on the device page (for those who may calibrate).
pub(super) fn section(ctx: &Ctx, device: &str, zone: Option<&BedZoneRow>) -> String {
    let words: serde_json::Map<String, serde_json::Value> = [
        "cal_waiting", "cal_refused", "cal_ready", "cal_expired", "cal_saved", "cal_saved_config", "cal_corner", "failed",
    ]
    .iter()
    .map(|k| (k.to_string(), ctx.t(k).into()))
    .collect();
    let words = serde_json::Value::Object(words).to_string();
    let corners = zone.map_or("null".into(), |z| serde_json::to_string(&z.corners).unwrap_or_else(|_| "null".into()));
    let current = match zone {
        Some(z) => format!("{} {} {} · {} {}", z.corners.len(), ctx.t("area_corners"), ctx.t("cal_set_by"), esc(&z.set_by), local(z.set_at)),
        None => ctx.t("cal_no_zone").to_string(),
    };
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<section id="calibration" data-device="{device}" data-zone="{zone}" data-words="{words}">
<h3>{title}</h3><p id="cal-current">{current}</p><p class="muted">{hint}</p>
<p><button type="button" id="calibrate">{button}</button> <span id="cal-status" role="status"></span></p>
<div id="cal-editor" hidden><svg id="cal-svg" role="group" aria-label="{title}"><image id="cal-img" x="0" y="0" preserveAspectRatio="none"/><polygon id="cal-poly"/><g id="cal-handles"></g></svg>
<p class="muted">{drag}</p><p><button type="button" id="cal-save">{save}</button></p><ul id="cal-problems" role="alert"></ul></div>
</section><script>{script}</script>"#,
        device = esc(device),
        zone = esc(&corners),
        words = esc(&words),
        title = ctx.t("cal_title"),
        hint = ctx.t("cal_hint"),
        button = ctx.t("cal_button"),
        drag = ctx.t("cal_drag"),
        save = ctx.t("cal_save"),
        script = SCRIPT,
    );
    body
}

/// The editor: asks for the picture, waits for it, draws the zone over it with draggable
/// corners (pointer, or Tab to a corner and the arrow keys), saves it. The picture is held
/// only as a blob: URL in the page's memory and removed when the hub's span for it ends.
const SCRIPT: &str = r##"
(() => {
  const root = document.getElementById("calibration"), W = JSON.parse(root.dataset.words);
  const id = encodeURIComponent(root.dataset.device), out = document.getElementById("cal-status");
  const svg = document.getElementById("cal-svg"), img = document.getElementById("cal-img");
  const poly = document.getElementById("cal-poly"), handles = document.getElementById("cal-handles");
  const problems = document.getElementById("cal-problems"), NS = "http://www.w3.org/2000/svg";
  let zone = JSON.parse(root.dataset.zone), size = [160, 120], url = null;
  const clamp = v => Math.min(1, Math.max(0, Math.round(v * 1000) / 1000));
  function draw() {
    poly.setAttribute("points", zone.map(([x, y]) => `${x * size[0]},${y * size[1]}`).join(" "));
    handles.replaceChildren(...zone.map(([x, y], i) => {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", x * size[0]); c.setAttribute("cy", y * size[1]); c.setAttribute("r", 4);
      c.setAttribute("tabindex", "0"); c.setAttribute("class", "cal-corner"); c.dataset.index = i;
      c.setAttribute("aria-label", `${W.cal_corner} ${i + 1}: ${x.toFixed(2)}, ${y.toFixed(2)}`);
      return c;
    }));
  }
  let dragging = null;
  handles.addEventListener("pointerdown", e => {
    if (!e.target.dataset.index) return;
    dragging = Number(e.target.dataset.index);
    svg.setPointerCapture(e.pointerId);
    e.preventDefault();
  });
  svg.addEventListener("pointermove", e => {
    if (dragging === null) return;
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(svg.getScreenCTM().inverse());
    zone[dragging] = [clamp(p.x / size[0]), clamp(p.y / size[1])];
    draw();
  });
  const drop = () => { dragging = null; };
  svg.addEventListener("pointerup", drop);
  svg.addEventListener("pointercancel", drop);
  handles.addEventListener("keydown", e => {
    const i = Number(e.target.dataset.index), step = e.shiftKey ? 0.05 : 0.01;
    const move = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step]}[e.key];
    if (!move || Number.isNaN(i)) return;
    e.preventDefault();
    zone[i] = [clamp(zone[i][0] + move[0]), clamp(zone[i][1] + move[1])];
    draw();
    handles.querySelector(`[data-index="${i}"]`).focus();
  });
  function forget() {
    if (url) URL.revokeObjectURL(url);
    url = null;
    img.removeAttribute("href");
    document.getElementById("cal-editor").hidden = true;
    out.textContent = W.cal_expired;
  }
  async function show(s) {
    const r = await fetch(`/api/v1/devices/${id}/calibration/picture`);
    if (!r.ok) { out.textContent = W.failed; return; }
    url = URL.createObjectURL(await r.blob());
    size = [s.width, s.height];
    svg.setAttribute("viewBox", `0 0 ${size[0]} ${size[1]}`);
    img.setAttribute("width", size[0]); img.setAttribute("height", size[1]);
    img.setAttribute("href", url);
    zone = zone || s.device_zone || [[0.2, 0.2], [0.8, 0.2], [0.8, 0.85], [0.2, 0.85]];
    draw();
    document.getElementById("cal-editor").hidden = false;
    out.textContent = `${W.cal_ready} ${localTime(s.expires_at)}`;
    setTimeout(forget, Math.max(0, Date.parse(s.expires_at) - Date.now()));
  }
  document.getElementById("calibrate").addEventListener("click", async () => {
    if (url) forget();
    out.textContent = W.cal_waiting;
    const r = await api("POST", `/api/v1/devices/${id}/calibration`);
    if (!r.ok) { out.textContent = `${W.failed}: ${(await r.json()).message}`; return; }
    for (let i = 0; i < 90; i++) {
      await sleep(1000);
      const s = await (await fetch(`/api/v1/devices/${id}/calibration`)).json();
      if (s.state === "available") return show(s);
      if (s.state === "refused") { out.textContent = `${W.cal_refused}: ${s.detail || s.refusal}`; return; }
      if (s.state !== "requested") break;
    }
    out.textContent = W.cal_expired;
  });
  document.getElementById("cal-save").addEventListener("click", async () => {
    problems.replaceChildren();
    const r = await api("PUT", `/api/v1/devices/${id}/bed-zone`, zone);
    const b = await r.json();
    if (r.ok) { out.textContent = b.sent_to_device ? W.cal_saved : W.cal_saved_config; return; }
    problems.replaceChildren(...(b.problems || [b.message]).map(p => Object.assign(document.createElement("li"), {textContent: p})));
  });
})();
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_drawn_zone_is_judged_by_the_agents_rules_with_every_problem_listed() {
        let good = json!([[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]);
        assert_eq!(judge(&good).unwrap().len(), 4);
        let problems = judge(&json!([[0.2, 0.15], [1.4, 0.15], [0.75, -0.2], [0.2, 0.9]])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("corner 1") && problems[1].contains("corner 2"), "{problems:?}");
        let problems = judge(&json!([[0.2, "x"], [0.5], [0.3, 0.3]])).unwrap_err();
        assert_eq!(problems, ["bed_zone[0]: a corner is a pair of numbers [x, y]", "bed_zone[1]: a corner is a pair of numbers [x, y]"]);
        assert!(judge(&json!([[0.5, 0.5], [0.52, 0.5], [0.52, 0.52]])).unwrap_err()[0].contains("at least"));
        assert!(judge(&json!({"corners": []})).unwrap_err()[0].contains("[[x, y]"));
    }
}
