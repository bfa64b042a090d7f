//! Camera checks, their one snapshot, and the audit log, over HTTP.
//!
//! | route | roles | answers |
//! |---|---|---|
//! | `POST /api/v1/devices/{id}/camera-check` | all | 202 check, 404 unknown device, 503 no broker |
//! | `GET /api/v1/checks/{check_id}` | all | 200 check, 404 |
//! | `POST /api/v1/checks/{check_id}/snapshot` | night_staff, nurse | 202 check, 403, 404, 409 closed / refused / already requested |
//! | `GET /api/v1/checks/{check_id}/snapshot` | night_staff, nurse | 200 `image/jpeg` once, 403, 404 |
//!
//! Audit promises: asking for a check or a snapshot is recorded before the command goes out;
//! *every* call of `GET …/snapshot` is recorded (`snapshot_viewed`, `snapshot_not_available`,
//! `snapshot_refused_role`), and a picture is handed out only once its `snapshot_viewed` line
//! is durable; if that line cannot be written, the picture is dropped unseen (503).

use super::api::{read, write, ApiError};
use super::scope::Scope;
use super::AppState;
use crate::access::{Permission, Principal};
use crate::camera::checks::is_open;
use crate::camera::SnapshotState;
use crate::store::{AuditEntry, CheckRow};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tracing::{error, info, warn};
use uuid::Uuid;
use vaka_protocol::kinds::Verdict;
use vaka_protocol::{CheckId, CommandBody, DeviceId, SiteId};

/// A snapshot may still arrive this long after its check closed (it was taken in time but
/// travelled).
const SNAPSHOT_GRACE: SignedDuration = SignedDuration::from_secs(10);

/// Tells the console how long it may show a fetched picture.
pub const VIEW_SECONDS_HEADER: &str = "x-vaka-view-seconds";

/// A check as the API shows it: the stored row and where its snapshot stands.
#[derive(Debug, Serialize)]
pub struct CheckView {
    #[serde(flatten)]
    pub row: CheckRow,
    pub snapshot: SnapshotState,
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(t)
}

fn view(state: &AppState, now: Timestamp, row: CheckRow) -> CheckView {
    let snapshot = CheckId::new(row.check_id.as_str())
        .map(|id| state.snapshots.with(|v| v.state(now, &id)))
        .unwrap_or(SnapshotState::None);
    CheckView { row, snapshot }
}

pub(super) fn audit_entry(
    who: &Principal,
    at: Timestamp,
    action: &str,
    check: Option<&str>,
    device: Option<&str>,
    detail: Option<String>,
) -> AuditEntry {
    AuditEntry {
        at,
        actor: who.name.clone(),
        role: who.role.as_str().to_string(),
        action: action.to_string(),
        check_id: check.map(str::to_string),
        device: device.map(str::to_string),
        detail,
    }
}

async fn audit(state: &AppState, entry: AuditEntry) -> Result<(), ApiError> {
    write(state, move |s| s.append_audit(&entry)).await
}

/// The stored check, if the caller's teams see its device (else 404, as for no check).
async fn find_check(state: &AppState, who: &Principal, raw: &str) -> Result<CheckRow, ApiError> {
    let missing = || {
        ApiError::not_found(format!(
            "no camera check `{}`",
            raw.chars().take(80).collect::<String>()
        ))
    };
    let id = CheckId::new(raw).map_err(|_| missing())?;
    let row = read(state, move |s| s.check(id.as_str())).await?.ok_or_else(missing)?;
    match Scope::of(state, who).await?.sees_device(&row.device) {
        true => Ok(row),
        false => Err(missing()),
    }
}

fn stored_ids(row: &CheckRow) -> Result<(CheckId, SiteId, DeviceId), ApiError> {
    let corrupt =
        |e: vaka_protocol::IdError| ApiError::store(format!("stored check has a bad id: {e}"));
    Ok((
        CheckId::new(row.check_id.as_str()).map_err(corrupt)?,
        SiteId::new(row.site.as_str()).map_err(corrupt)?,
        DeviceId::new(row.device.as_str()).map_err(corrupt)?,
    ))
}

/// `POST /api/v1/devices/{id}/camera-check`: asks the device to run a check now.
pub async fn request_check(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(device): Path<String>,
) -> Result<Response, ApiError> {
    if !who.may(Permission::RequestCameraCheck) {
        return Err(ApiError::forbidden(format!(
            "role {} may not request camera checks",
            who.role
        )));
    }
    let unknown = || {
        ApiError::not_found(format!(
            "no device `{}` has been heard by this hub",
            device.chars().take(80).collect::<String>()
        ))
    };
    let device_id = DeviceId::new(device.as_str()).map_err(|_| unknown())?;
    Scope::of(&state, &who).await?.device(device_id.as_str()).map_err(|_| unknown())?;
    let lookup = device_id.clone();
    let row = read(&state, move |s| s.device(lookup.as_str()))
        .await?
        .ok_or_else(unknown)?;
    let site = SiteId::new(row.site.as_str())
        .map_err(|e| ApiError::store(format!("stored device has a bad site id: {e}")))?;
    if !state.stats.mqtt_connected.load(Relaxed) {
        return Err(ApiError::unavailable(
            "broker_unavailable",
            "the hub is not connected to the MQTT broker; no check was sent",
        ));
    }
    let now = Timestamp::now();
    let deadline = later(now, state.cameras.check_open);
    let check_id = CheckId::new(Uuid::now_v7().to_string())
        .map_err(|e| ApiError::store(format!("could not make a check id: {e}")))?;
    let check = CheckRow::requested(
        check_id.to_string(),
        (site.to_string(), device_id.to_string()),
        (who.name.clone(), who.role.as_str()),
        now,
        deadline,
    );
    let entry = audit_entry(
        &who,
        now,
        "camera_check_requested",
        Some(check_id.as_str()),
        Some(device_id.as_str()),
        Some(format!("deadline={deadline}")),
    );
    let stored = check.clone();
    // The row exists before the command goes out, so even an instant answer finds it.
    write(&state, move |s| s.open_check(&stored, &entry)).await?;
    let body = CommandBody::CameraCheck {
        check_id: check_id.clone(),
        deadline,
    };
    if let Err(e) = state.commands.send(&site, &device_id, body) {
        // The row stays `requested` and turns `no_answer` at its deadline, with a WARN: no
        // check happened, which is true.
        warn!(device = %device_id, check_id = %check_id, error = %e, "Camera check could not be sent");
        return Err(ApiError::unavailable("broker_unavailable", e.to_string()));
    }
    info!(device = %device_id, check_id = %check_id, requested_by = %who.name, role = %who.role, %deadline, "Camera check requested");
    Ok((StatusCode::ACCEPTED, Json(view(&state, now, check))).into_response())
}

/// `GET /api/v1/checks/{check_id}`.
pub async fn get_check(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(check_id): Path<String>,
) -> Result<Response, ApiError> {
    let row = find_check(&state, &who, &check_id).await?;
    Ok(Json(view(&state, Timestamp::now(), row)).into_response())
}

/// `POST /api/v1/checks/{check_id}/snapshot`: asks the device for the check's one snapshot.
pub async fn request_snapshot(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    if !who.may(Permission::Snapshot) {
        let check = CheckId::new(raw.as_str()).ok();
        let entry = audit_entry(
            &who,
            now,
            "snapshot_request_refused_role",
            check.as_ref().map(CheckId::as_str),
            None,
            None,
        );
        audit(&state, entry).await?;
        return Err(ApiError::forbidden(format!(
            "role {} may not ask for camera snapshots",
            who.role
        )));
    }
    let row = find_check(&state, &who, &raw).await?;
    let (check_id, site, device) = stored_ids(&row)?;
    if !is_open(row.deadline, now) {
        return Err(ApiError::conflict(
            "check_closed",
            format!("the check closed at {}", row.deadline),
        ));
    }
    if row.verdict.as_deref() == Some(Verdict::RefusedOutsideConsent.as_str()) {
        return Err(ApiError::conflict(
            "check_refused",
            "the person's consent does not cover this moment; the camera stays closed",
        ));
    }
    let until = row
        .deadline
        .checked_add(SNAPSHOT_GRACE)
        .unwrap_or(row.deadline);
    if state
        .snapshots
        .with(|v| v.request(check_id.clone(), device.clone(), until))
        .is_err()
    {
        return Err(ApiError::conflict(
            "snapshot_already_requested",
            "this check's one snapshot was already asked for",
        ));
    }
    let entry = audit_entry(
        &who,
        now,
        "snapshot_requested",
        Some(check_id.as_str()),
        Some(device.as_str()),
        None,
    );
    if let Err(e) = audit(&state, entry).await {
        state.snapshots.with(|v| v.cancel(&check_id));
        return Err(e);
    }
    if let Err(e) = state.commands.send(
        &site,
        &device,
        CommandBody::Snapshot {
            check_id: check_id.clone(),
        },
    ) {
        state.snapshots.with(|v| v.cancel(&check_id));
        warn!(%device, %check_id, error = %e, "Snapshot request could not be sent");
        return Err(ApiError::unavailable("broker_unavailable", e.to_string()));
    }
    info!(%device, %check_id, requested_by = %who.name, role = %who.role, "Snapshot requested");
    Ok((StatusCode::ACCEPTED, Json(view(&state, now, row))).into_response())
}

/// `GET /api/v1/checks/{check_id}/snapshot`: the picture, once. Every call is audited.
pub async fn get_snapshot(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let now = Timestamp::now();
    let check = CheckId::new(raw.as_str()).ok();
    let device = check
        .as_ref()
        .and_then(|c| state.snapshots.with(|v| v.device(c).cloned()));
    let entry = |action: &str, detail: Option<String>| {
        audit_entry(
            &who,
            now,
            action,
            check.as_ref().map(CheckId::as_str),
            device.as_ref().map(DeviceId::as_str),
            detail,
        )
    };
    if !who.may(Permission::Snapshot) {
        warn!(actor = %who.name, role = %who.role, check_id = ?check, "Snapshot refused: role may not see camera pictures");
        audit(&state, entry("snapshot_refused_role", None)).await?;
        return Err(ApiError::forbidden(format!(
            "role {} may not see camera snapshots",
            who.role
        )));
    }
    if let Some(d) = &device {
        if !Scope::of(&state, &who).await?.sees_device(d.as_str()) {
            warn!(actor = %who.name, check_id = ?check, "Snapshot refused: the home is not in the caller's teams");
            audit(&state, entry("snapshot_refused_team", None)).await?;
            return Err(ApiError::not_found(format!("no snapshot for check `{}`", raw.chars().take(80).collect::<String>())));
        }
    }
    let taken = match &check {
        Some(c) => state.snapshots.with(|v| v.take(now, c)),
        None => Err(crate::camera::NotAvailable::NotRequested),
    };
    let mut picture = match taken {
        Ok(p) => p,
        Err(reason) => {
            audit(
                &state,
                entry(
                    "snapshot_not_available",
                    Some(format!("reason={}", reason.as_str())),
                ),
            )
            .await?;
            return Err(ApiError::not_found("no snapshot to show for this check")
                .with_code("snapshot_not_available")
                .with_reason(reason.as_str()));
        }
    };
    let span = state.snapshots.view_span().as_secs();
    let detail = format!("view_span_s={span} filter={}", picture.filter.as_str());
    if let Err(e) = audit(&state, entry("snapshot_viewed", Some(detail))).await {
        // Dropping `picture` zeroes it: nobody sees a picture whose viewing is not recorded.
        error!(check_id = ?check, "Snapshot dropped unseen: its viewing could not be recorded");
        return Err(e.with_code("audit_unavailable"));
    }
    state.stats.snapshots_viewed.fetch_add(1, Relaxed);
    info!(actor = %who.name, role = %who.role, check_id = ?check, device = ?device, "Snapshot viewed");
    let jpeg = std::mem::take(&mut picture.jpeg);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::HeaderName::from_static(VIEW_SECONDS_HEADER),
            HeaderValue::from(span),
        ),
    ];
    Ok((StatusCode::OK, headers, jpeg).into_response())
}

