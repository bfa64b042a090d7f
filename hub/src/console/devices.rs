//! The installer's views: devices, registering one in a home, its agent configuration, the
//! live "first event seen" indicator and a test check.
//!
//! | route | roles |
//! |---|---|
//! | `GET /devices`, `GET /devices/{id}` | every role (own teams; unassigned devices for installers and admins) |
//! | `GET /devices/{id}/agent.toml`, `GET /devices/{id}/bundle.tar` | installer, admin |
//! | the bed zone editor on `/devices/{id}` | installer, admin (routes in `calibration.rs`) |
//! | `POST /api/v1/registrations` | installer, admin: `{"device", "site", "recipient"?, "camera"?, "gps"?}` → 201 |
//!
//! Registering a device records who set it up where (audited) and, with a person, adds the
//! device to that person's care plan (as their camera when `camera` is true, as the reader of
//! their GPS tracker when `gps` is), so it belongs to the person's team from then on. The agent
//! configuration points the agent at this hub's broker and, for the person's GPS device,
//! carries their safe areas from the care plan, and for a camera whose bed zone was drawn on its
//! calibration picture, a `[camera]` section with that zone (and the person's consent). The
//! provisioning bundle adds a new key and certificate for the device from the hub's device CA
//! (`pki.rs`), recorded with the device's other certificates (`certs.rs`: signing requests,
//! revocation).

use super::api::{allow, read, write, ApiError};
use super::auth::Session;
use super::checks::audit_entry;
use super::page::{esc, local, not_found, shell, Ctx, Nav};
use super::scope::Scope;
use super::AppState;
use crate::access::{Permission, Principal};
use crate::rounds::plan::Recipient;
use crate::store::{BedZoneRow, DeviceRow, Registration};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use tracing::{info, warn};
use vaka_agent::camera::consent::DEFAULT_TIME_ZONE;
use vaka_agent::gps::config::{RawArea, DEFAULT_GPSD_ADDRESS};
use vaka_protocol::DeviceId;

/// Where agents reach the hub's broker (for the agent configuration).
#[derive(Debug, Clone)]
pub struct AgentBroker {
    /// `None`: the embedded broker, reached at the host name the installer's browser used.
    pub host: Option<String>,
    pub port: u16,
    pub tls: bool,
    /// The CA of the broker's own certificate (PEM), when the hub was given it.
    pub ca_pem: Option<String>,
}

/// A device's health as table cells: online, last heard, outbox depth, supervision.
pub(super) fn health_cells(ctx: &Ctx, d: &DeviceRow) -> String {
    format!(
        "<td class=\"{}\">{}</td><td class=\"t\">{}</td><td class=\"wide\">{}</td><td>{}</td>",
        if d.online { "on" } else { "off" },
        if d.online { ctx.t("online") } else { ctx.t("offline_dev") },
        local(d.last_seen),
        d.outbox_depth.map_or("–".into(), |n| n.to_string()),
        if d.supervision_lost { format!("<span class=\"alarm\">{}</span>", ctx.t("supervision_lost")) } else { "ok".into() },
    )
}

/// `GET /devices`.
pub async fn list(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap) -> Result<Html<String>, ApiError> {
    let (mut devices, mut registrations, mut recipients) = read(&state, |s| Ok((s.devices()?, s.registrations()?, s.recipients()?))).await?;
    let scope = Scope::with(&who, &recipients);
    devices.retain(|d| scope.sees_device(&d.id));
    registrations.retain(|r| scope.sees_device(&r.device) && !devices.iter().any(|d| d.id == r.device));
    recipients.retain(|r| who.teams.sees(&r.team));
    let ctx = Ctx::new(who, session, &headers);
    let mut rows = String::new();
    for d in &devices {
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td><a href=\"/devices/{id}\">{id}</a></td><td class=\"wide\">{}</td>{}</tr>",
            if d.supervision_lost { "lost" } else { "" },
            esc(&d.site),
            health_cells(&ctx, d),
            id = esc(&d.id),
        );
    }
    for r in &registrations {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/devices/{id}\">{id}</a></td><td class=\"wide\">{}</td><td class=\"muted\" colspan=\"4\">{}</td></tr>",
            esc(&r.site),
            ctx.t("never_seen"),
            id = esc(&r.device),
        );
    }
    let mut body = format!(
        "<table><thead><tr><th>{}</th><th class=\"wide\">{}</th><th>{}</th><th>{}</th><th class=\"wide\">{}</th><th>{}</th></tr></thead><tbody id=\"devices\">{rows}</tbody></table>",
        ctx.t("col_device"),
        ctx.t("col_site"),
        ctx.t("col_status"),
        ctx.t("col_seen"),
        ctx.t("col_queue"),
        ctx.t("col_supervision"),
    );
    if ctx.who.may(Permission::RegisterDevices) {
        let options: String = recipients
            .iter()
            .map(|r| format!("<option value=\"{}\">{} ({})</option>", esc(&r.id), esc(&r.name), esc(&r.team)))
            .collect();
        let _ = write!(
            body,
            r#"<h2>{title}</h2><form id="register" class="inline" method="post" action="/api/v1/registrations">
<label>{id}<input name="device" id="reg-device" required pattern="[a-z0-9][a-z0-9-]{{0,63}}"></label>
<label>{site}<input name="site" id="reg-site" required value="skelleftea"></label>
<label>{person}<select name="recipient" id="reg-recipient"><option value="">{none}</option>{options}</select></label>
<label><span><input type="checkbox" name="camera" id="reg-camera" value="true"> {camera}</span></label>
<label><span><input type="checkbox" name="gps" id="reg-gps" value="true"> {gps}</span></label>
<button type="submit" id="reg-submit">{register}</button></form>
<script>
document.getElementById("register").addEventListener("submit", async e => {{
  e.preventDefault();
  const f = e.target, v = n => f.elements[n].value;
  const r = await api("POST", "/api/v1/registrations", {{device: v("device"), site: v("site"), recipient: v("recipient") || null, camera: f.elements.camera.checked, gps: f.elements.gps.checked}});
  if (r.ok) location.href = "/devices/" + encodeURIComponent(v("device"));
  else alert(T.failed + ": " + (await r.json()).message);
}});
</script>"#,
            title = ctx.t("register_title"),
            id = ctx.t("device_id"),
            site = ctx.t("site"),
            person = ctx.t("person"),
            none = ctx.t("none"),
            camera = ctx.t("is_camera"),
            gps = ctx.t("is_gps"),
            register = ctx.t("register"),
        );
    }
    Ok(shell(&ctx, Nav::Devices, ctx.t("devices_title"), "devices", "", &body))
}

/// `GET /devices/{id}`: its state, its registration, the first-event indicator, a test check.
pub async fn device(State(state): State<AppState>, Extension(who): Extension<Principal>, session: Option<Extension<Session>>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let ctx = Ctx::new(who, session, &headers);
    let key = id.clone();
    let (row, registration, latest, zone, certs) = read(&state, move |s| {
        let reg = s.registrations()?.into_iter().find(|r| r.device == key);
        Ok((s.device(&key)?, reg, s.events(Some(&key), 1)?.into_iter().next(), s.bed_zone(&key)?, s.certificates(Some(&key))?))
    })
    .await?;
    if !scope.sees_device(&id) || (row.is_none() && registration.is_none()) {
        return Ok(not_found(&ctx, Nav::Devices));
    }
    let mut body = String::new();
    if let Some(d) = &row {
        let _ = write!(
            body,
            "<p>{}: <span class=\"{}\">{}</span> · {}: {}</p>",
            ctx.t("col_status"),
            if d.online { "on" } else { "off" },
            if d.online { ctx.t("online") } else { ctx.t("offline_dev") },
            ctx.t("col_seen"),
            local(d.last_seen)
        );
    }
    if let Some(r) = &registration {
        let _ = write!(
            body,
            "<p>{}: {} · {} · {}: {}</p>",
            ctx.t("registered_by"),
            esc(&r.registered_by),
            local(r.registered_at),
            ctx.t("person"),
            esc(r.recipient.as_deref().unwrap_or(ctx.t("none")))
        );
    }
    let first = match &latest {
        Some(e) => format!("<p id=\"first\" class=\"first seen\" role=\"status\">{}: {} {}</p>", ctx.t("first_event_seen"), esc(&e.kind), local(e.ts)),
        None => format!("<p id=\"first\" class=\"first waiting\" role=\"status\">{}</p>", ctx.t("first_event_waiting")),
    };
    let _ = write!(body, "<h3>{}</h3>{first}", ctx.t("first_event"));
    let _ = write!(
        body,
        "<p><button type=\"button\" id=\"test-check\">{}</button> <span id=\"test-result\" role=\"status\"></span></p>",
        ctx.t("test_check")
    );
    if ctx.who.may(Permission::RegisterDevices) {
        let _ = write!(
            body,
            "<p><a class=\"button\" id=\"bundle\" href=\"/devices/{id}/bundle.tar\" download>{}</a> <a class=\"button secondary\" id=\"download\" href=\"/devices/{id}/agent.toml\" download>{}</a></p><p class=\"muted\">{}</p>",
            ctx.t("download_bundle"),
            ctx.t("download_config"),
            ctx.t("provisioning_note"),
            id = esc(&id),
        );
        if registration.is_some() {
            body.push_str(&super::certs::section(&ctx, &certs));
        }
    }
    if ctx.who.may(Permission::CalibrateCamera) {
        body.push_str(&super::calibration::section(&ctx, &id, zone.as_ref()));
    }
    let attrs = format!(" data-device=\"{}\"", esc(&id));
    Ok(shell(&ctx, Nav::Devices, &id, "device", &attrs, &body).into_response())
}

/// A registered device of the caller's teams, with the person whose home it is in.
pub(super) async fn registered(state: &AppState, who: &Principal, id: &str) -> Result<(Registration, Option<Recipient>, Option<BedZoneRow>), ApiError> {
    // One read: the registration, the care plans (for the team scope and the person), the zone.
    let key = id.to_string();
    let (registration, recipients, zone) =
        read(state, move |s| Ok((s.registrations()?.into_iter().find(|r| r.device == key), s.recipients()?, s.bed_zone(&key)?))).await?;
    let scope = Scope::with(who, &recipients);
    let Some(r) = registration.filter(|r| scope.sees_device(&r.device)) else {
        return Err(ApiError::not_found(format!("no registered device `{}`", id.chars().take(64).collect::<String>())));
    };
    let person = r.recipient.as_ref().and_then(|p| recipients.into_iter().find(|x| &x.id == p));
    Ok((r, person, zone))
}

/// The host the installer's browser reached the hub at, without its port.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(h, |(host, _)| host).to_string())
        .unwrap_or_else(|| "localhost".into())
}

/// `GET /devices/{id}/agent.toml`: the agent configuration for this device.
pub async fn agent_config(State(state): State<AppState>, Extension(who): Extension<Principal>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    allow(&who, Permission::RegisterDevices, "download agent configurations")?;
    let (r, person, zone) = registered(&state, &who, &id).await?;
    let toml = agent_toml(&r, person.as_ref(), zone.as_ref(), &state.agent_broker, &request_host(&headers), Timestamp::now());
    let audit = audit_entry(&who, Timestamp::now(), "agent_config_downloaded", None, Some(&r.device), None);
    write(&state, move |s| s.append_audit(&audit)).await?;
    let disposition = format!("attachment; filename=\"{}-agent.toml\"", r.device);
    Ok(([(header::CONTENT_TYPE, "application/toml; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], toml).into_response())
}

/// `GET /devices/{id}/bundle.tar`: the provisioning bundle, to unpack into `/etc/vaka` on the
/// device: `agent.toml`; a new key and certificate for the device from the hub's device CA
/// (`device.key`, `device.pem`; each download issues a new pair, the earlier ones stay valid
/// until they expire); `device-ca.pem`, the device CA, for the broker's `cafile` of client
/// certificates; `ca.pem`, the CA of the broker's own certificate, when the hub has it; and
/// `README.txt`. Audited with the certificate's serial number.
pub async fn bundle(State(state): State<AppState>, Extension(who): Extension<Principal>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    allow(&who, Permission::RegisterDevices, "download provisioning bundles")?;
    let (r, person, zone) = registered(&state, &who, &id).await?;
    let now = Timestamp::now();
    let device = DeviceId::new(r.device.clone()).map_err(|e| ApiError::unprocessable("bad_device", e.to_string()))?;
    let identity = state.identity.clone();
    let audit = audit_entry(&who, now, "device_certificate_issued", None, Some(&r.device), None);
    let by = who.name.clone();
    let (issued, key_pem) = write(&state, move |s| Ok(identity.issue(s, &device, None, &by, &audit)))
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let key_pem = key_pem.ok_or_else(|| ApiError::internal("the hub made no key for the bundle"))?;
    let toml = agent_toml(&r, person.as_ref(), zone.as_ref(), &state.agent_broker, &request_host(&headers), now);
    let readme = format!(
        "Vaka provisioning bundle for {device}, made {now} by {by}.\n\nUnpack on the device: tar -xf {device}-bundle.tar -C /etc/vaka\n\n\
         agent.toml     the agent configuration (vaka-agent check-config --config /etc/vaka/agent.toml)\n\
         device.pem     the device's certificate (common name {device}, serial {serial}, valid until {until})\n\
         device.key     its private key: keep it readable by the agent's user alone\n\
         device-ca.pem  the hub's device CA: the broker trusts device certificates signed by it\n{ca_line}",
        device = r.device,
        by = who.name,
        serial = issued.serial,
        until = issued.not_after,
        ca_line = if state.agent_broker.ca_pem.is_some() { "ca.pem         the CA of the broker's certificate\n" } else { "" },
    );
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("agent.toml", toml.as_bytes(), 0o644),
        ("device.pem", issued.cert_pem.as_bytes(), 0o644),
        ("device.key", key_pem.as_bytes(), 0o600),
        ("device-ca.pem", state.identity.ca().ca_pem().as_bytes(), 0o644),
        ("README.txt", readme.as_bytes(), 0o644),
    ];
    if let Some(ca) = &state.agent_broker.ca_pem {
        files.push(("ca.pem", ca.as_bytes(), 0o644));
    }
    let tar = tar_of(&files, now).map_err(|e| ApiError::internal(format!("cannot build the bundle: {e}")))?;
    info!(device = %r.device, serial = %issued.serial, by = %who.name, "Device certificate issued");
    let disposition = format!("attachment; filename=\"{}-bundle.tar\"", r.device);
    Ok(([(header::CONTENT_TYPE, "application/x-tar".to_string()), (header::CONTENT_DISPOSITION, disposition), (header::CACHE_CONTROL, "no-store".to_string())], tar).into_response())
}

/// A tar archive of `(name, contents, mode)`.
fn tar_of(files: &[(&str, &[u8], u32)], now: Timestamp) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(now.as_second().max(0) as u64);
        header.set_cksum();
        tar.append_data(&mut header, name, *data)?;
    }
    tar.into_inner()
}

/// The agent configuration for a registered device: its identity, the hub's broker (at
/// `request_host` for the embedded broker), the outbox and intake, and, when it reads the
/// person's GPS tracker, their safe areas (gpsd as the source; the installer changes that for
/// a receiver on a serial line), and with a bed zone drawn for it, its `[camera]` section.
fn agent_toml(r: &Registration, person: Option<&Recipient>, zone: Option<&BedZoneRow>, b: &AgentBroker, request_host: &str, now: Timestamp) -> String {
    let host = b.host.as_deref().unwrap_or(request_host);
    let mqtt = match b.tls {
        true => format!("url = \"mqtts://{host}:{}\"\nallow_plaintext = false\nca_file = \"/etc/vaka/ca.pem\"\nclient_cert_file = \"/etc/vaka/device.pem\"\nclient_key_file = \"/etc/vaka/device.key\"\n", b.port),
        false => format!("url = \"mqtt://{host}:{}\"\n# The hub's broker takes plain MQTT: only on a closed network.\nallow_plaintext = true\n", b.port),
    };
    let mut toml = format!(
        "# Vaka agent configuration for {device}, from the hub at {now} (registered by {by}).\n# Install as /etc/vaka/agent.toml; see config/agent.toml for every setting.\ndevice_id = \"{device}\"\nsite = \"{site}\"\n\n[mqtt]\n{mqtt}\n[outbox]\npath = \"/var/lib/vaka/outbox.db\"\n\n[intake]\nsocket = \"/run/vaka/intake.sock\"\n",
        device = r.device,
        site = r.site,
        by = r.registered_by,
    );
    if let Some(p) = person.filter(|p| p.gps_device.as_deref() == Some(r.device.as_str())) {
        #[derive(Serialize)]
        struct Section<'a> {
            gps: Gps<'a>,
        }
        #[derive(Serialize)]
        struct Gps<'a> {
            source: &'a str,
            address: &'a str,
            time_zone: &'a str,
            areas: &'a [RawArea],
        }
        let gps = Gps { source: "gpsd", address: DEFAULT_GPSD_ADDRESS, time_zone: DEFAULT_TIME_ZONE, areas: &p.safe_areas };
        let comment = format!(
            "{name}'s GPS tracker, read through gpsd (for a receiver on a serial line: source = \"nmea\",\n# path = \"/dev/ttyACM0\"). The safe areas are the care plan's, as of {now}.",
            name = p.name.replace('\n', " "),
        );
        append_section(&mut toml, &r.device, "Safe areas", &comment, &Section { gps });
    }
    if let Some(zone) = zone {
        camera_section(&mut toml, r, person, zone);
    }
    toml
}

/// `[camera]` with the bed zone drawn on the calibration picture and, when the person's care
/// plan has this device as their camera, their consent (without it every check is refused).
fn camera_section(toml: &mut String, r: &Registration, person: Option<&Recipient>, zone: &BedZoneRow) {
    #[derive(Serialize)]
    struct Section<'a> {
        camera: Camera<'a>,
    }
    #[derive(Serialize)]
    struct Camera<'a> {
        source: &'a str,
        device: &'a str,
        reference: &'a str,
        bed_zone: &'a [[f64; 2]],
        snapshot_filter: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        consent: Option<&'a crate::rounds::plan::ConsentPlan>,
    }
    let consent = person.filter(|p| p.camera_device.as_deref() == Some(r.device.as_str())).and_then(|p| p.consent.as_ref());
    let camera = Camera { source: "v4l2", device: "/dev/video0", reference: "/var/lib/vaka/camera-reference.png", bed_zone: &zone.corners, snapshot_filter: "blur", consent };
    let comment = format!(
        "The camera. The bed zone was drawn by {by} at {at} on the calibration picture; save the\n# empty-bed reference at installation: vaka-agent camera calibrate --save-reference.",
        by = zone.set_by.replace('\n', " "),
        at = zone.set_at,
    );
    append_section(toml, &r.device, "Bed zone", &comment, &Section { camera });
}

/// Appends `section` under a `# comment`, or logs that `what` was left out.
fn append_section(toml: &mut String, device: &str, what: &str, comment: &str, section: &impl Serialize) {
    match toml::to_string(section) {
        Ok(section) => {
            let _ = write!(toml, "\n# {comment}\n{section}");
        }
        Err(e) => warn!(device, error = %e, "{what} left out of the agent configuration"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRegistration {
    device: String,
    site: String,
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default)]
    camera: bool,
    #[serde(default)]
    gps: bool,
}

/// Lowercase letters, digits and `-`, as device and site ids are on the wire.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !s.starts_with('-')
}

/// `POST /api/v1/registrations`.
pub async fn register(State(state): State<AppState>, Extension(who): Extension<Principal>, body: Option<Json<NewRegistration>>) -> Result<Response, ApiError> {
    allow(&who, Permission::RegisterDevices, "register devices")?;
    let Some(Json(n)) = body else {
        return Err(ApiError::unprocessable("bad_registration", "send {\"device\", \"site\", \"recipient\"?, \"camera\"?, \"gps\"?}"));
    };
    let mut problems = Vec::new();
    if !valid_id(&n.device) {
        problems.push(format!("device: `{}` is not 1–64 lowercase letters, digits and -", n.device.chars().take(64).collect::<String>()));
    }
    if n.device == crate::pki::HUB_USER {
        problems.push(format!("device: `{}` is the hub's own name on the broker; choose another id", n.device));
    }
    if !valid_id(&n.site) {
        problems.push(format!("site: `{}` is not 1–64 lowercase letters, digits and -", n.site.chars().take(64).collect::<String>()));
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable("bad_registration", problems.join("\n")).with_problems(problems));
    }
    // A device already in another team's home is not this installer's to move.
    let scope = Scope::of(&state, &who).await?;
    if !scope.sees_device(&n.device) {
        return Err(ApiError::forbidden(format!("device `{}` belongs to a home outside your teams", n.device)));
    }
    let person = match &n.recipient {
        None => None,
        Some(id) => {
            let id = id.clone();
            let found = read(&state, move |s| Ok(s.recipients()?.into_iter().find(|r| r.id == id))).await?;
            match found.filter(|r| who.teams.sees(&r.team)) {
                Some(r) => Some(r),
                None => return Err(ApiError::unprocessable("unknown_recipient", "no such person in your teams")),
            }
        }
    };
    let now = Timestamp::now();
    let entry = |action: &str, detail: String| audit_entry(&who, now, action, None, Some(&n.device), Some(detail));
    let registration = Registration { device: n.device.clone(), site: n.site.clone(), recipient: person.as_ref().map(|p| p.id.clone()), registered_by: who.name.clone(), registered_at: now };
    let audit = entry("device_registered", format!("site {}, person {}", n.site, registration.recipient.as_deref().unwrap_or("-")));
    let stored = registration.clone();
    write(&state, move |s| s.register_device(&stored, &audit)).await?;
    if let Some(mut p) = person {
        if !p.devices.contains(&n.device) {
            p.devices.push(n.device.clone());
        }
        if n.camera {
            p.camera_device = Some(n.device.clone());
        }
        if n.gps {
            p.gps_device = Some(n.device.clone());
        }
        let audit = entry("care_plan_changed", format!("recipient {}: device {} added by {}", p.id, n.device, who.role));
        write(&state, move |s| s.put_recipient(&p, &audit)).await?;
    }
    info!(device = %n.device, site = %n.site, by = %who.name, role = %who.role, "Device registered");
    Ok((StatusCode::CREATED, Json(registration)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::plan::tests::anna;
    use vaka_agent::config::RawConfig;

    fn registration(device: &str) -> Registration {
        Registration { device: device.into(), site: "skelleftea".into(), recipient: Some("anna-berg".into()), registered_by: "ivar".into(), registered_at: Timestamp::UNIX_EPOCH }
    }

    fn agent_accepts(text: &str) -> vaka_agent::config::AgentConfig {
        let raw: RawConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        raw.validate().unwrap_or_else(|problems| panic!("{problems:#?}\n{text}"))
    }

    #[test]
    fn the_gps_device_gets_the_safe_areas_of_the_care_plan_in_a_configuration_the_agent_accepts() {
        let mut plan = anna();
        plan["devices"] = serde_json::json!(["home-001", "tracker-1"]);
        plan["gps_device"] = "tracker-1".into();
        let person: Recipient = serde_json::from_value(plan).unwrap();
        assert_eq!(person.validate(), Vec::<String>::new());
        let broker = AgentBroker { host: None, port: 1883, tls: false, ca_pem: None };

        let text = agent_toml(&registration("tracker-1"), Some(&person), None, &broker, "hub.example", Timestamp::UNIX_EPOCH);
        assert!(text.contains("url = \"mqtt://hub.example:1883\""), "{text}");
        let config = agent_accepts(&text);
        let gps = config.gps.expect("a [gps] section");
        let names: Vec<&str> = gps.areas.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Hemma", "Kvarteret"]);

        // The camera in the same home gets no [gps]; nor does a device of nobody's plan.
        let camera = agent_toml(&registration("home-001"), Some(&person), None, &broker, "hub.example", Timestamp::UNIX_EPOCH);
        assert!(!camera.contains("[gps"), "{camera}");
        assert!(agent_accepts(&camera).gps.is_none());
        let alone = agent_toml(&registration("tracker-1"), None, None, &AgentBroker { host: Some("mqtt.kommun.se".into()), port: 8883, tls: true, ca_pem: None }, "x", Timestamp::UNIX_EPOCH);
        assert!(alone.contains("mqtts://mqtt.kommun.se:8883") && !alone.contains("[gps"), "{alone}");
    }

    #[test]
    fn a_drawn_bed_zone_reaches_the_camera_in_a_configuration_the_agent_accepts() {
        let person: Recipient = serde_json::from_value(anna()).unwrap();
        let zone = BedZoneRow { device: "home-001".into(), corners: vec![[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]], set_by: "ivar".into(), set_at: Timestamp::UNIX_EPOCH };
        let broker = AgentBroker { host: None, port: 1883, tls: false, ca_pem: None };
        let text = agent_toml(&registration("home-001"), Some(&person), Some(&zone), &broker, "hub.example", Timestamp::UNIX_EPOCH);
        assert!(text.contains("bed_zone = [[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]"), "{text}");
        let raw: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        match raw.validate() {
            Ok(config) => {
                let camera = config.camera.expect("a [camera] section");
                assert_eq!(camera.bed_zone.unwrap().points(), &[(0.2, 0.15), (0.75, 0.15), (0.75, 0.9), (0.2, 0.9)]);
                assert_eq!(camera.consent.record().is_some(), person.consent.is_some(), "the care plan's consent");
            }
            // An agent built without V4L2 (a plain `cargo test -p vaka-hub`) refuses only that.
            Err(problems) => assert!(problems.iter().all(|p| p.contains("camera-v4l2")), "{problems:#?}\n{text}"),
        }
    }
}
