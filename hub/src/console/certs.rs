//! A registered device's certificates: issued from its own signing request, listed, revoked.
//!
//! | route | roles |
//! |---|---|
//! | `POST /api/v1/devices/{id}/certificate` (body: a PEM signing request) → the certificate, PEM | installer, admin |
//! | `GET /api/v1/devices/{id}/certificates` → every certificate issued to it, with revocations | installer, admin |
//! | `POST /api/v1/devices/{id}/revoke` `{"reason", "serial"?}` → what was revoked and ended | installer, admin |
//!
//! A signing request is made on the device (`vaka-agent identity request`), so its key never
//! leaves it; only the request's public key is used, the certificate names the registered
//! device. Revoking without a serial revokes every certificate of the device still valid (a
//! stolen or broken device); with one, just that one (an old certificate after rotation). It
//! takes effect at once: a new revocation list, the broker told, the live session ended
//! (`identity.rs`). Every step is in the audit log.

use super::api::{allow, read, write, ApiError};
use super::page::{esc, local, Ctx};
use super::checks::audit_entry;
use super::devices::registered;
use super::AppState;
use crate::access::{Permission, Principal};
use crate::identity::IssueError;
use crate::store::CertRow;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use std::fmt::Write;
use serde::Deserialize;
use tracing::{info, warn};
use vaka_protocol::DeviceId;

/// Largest signing request taken (a P-256 or RSA-4096 request is 0.5–2 KiB).
const MAX_CSR: usize = 16 * 1024;

fn device_id(id: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(id.to_string()).map_err(|e| ApiError::unprocessable("bad_device", e.to_string()))
}

/// `POST /api/v1/devices/{id}/certificate`: signs the device's request.
pub async fn sign(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, body: String) -> Result<Response, ApiError> {
    allow(&who, Permission::RegisterDevices, "issue device certificates")?;
    let (r, _, _) = registered(&state, &who, &id).await?;
    if body.len() > MAX_CSR {
        return Err(ApiError::unprocessable("bad_csr", format!("the signing request is {} bytes; at most {MAX_CSR}", body.len())));
    }
    let device = device_id(&r.device)?;
    let identity = state.identity.clone();
    let audit = audit_entry(&who, Timestamp::now(), "device_certificate_issued", None, Some(&r.device), None);
    let by = who.name.clone();
    let issued = write(&state, move |s| Ok(identity.issue(s, &device, Some(&body), &by, &audit))).await?.map_err(|e| match e {
        IssueError::BadRequest(m) => ApiError::unprocessable("bad_csr", m),
        IssueError::Internal(m) => ApiError::internal(m),
        IssueError::Store(e) => ApiError::store(e.to_string()),
    })?;
    info!(device = %r.device, serial = %issued.0.serial, by = %who.name, "Device certificate issued from the device's signing request");
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file"), (header::CACHE_CONTROL, "no-store")], issued.0.cert_pem).into_response())
}

/// `GET /api/v1/devices/{id}/certificates`.
pub async fn list(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>) -> Result<Json<Vec<CertRow>>, ApiError> {
    allow(&who, Permission::RegisterDevices, "see device certificates")?;
    let (r, _, _) = registered(&state, &who, &id).await?;
    Ok(Json(read(&state, move |s| s.certificates(Some(&r.device))).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub reason: String,
    pub serial: Option<String>,
}

/// `POST /api/v1/devices/{id}/revoke`.
pub async fn revoke(State(state): State<AppState>, Extension(who): Extension<Principal>, Path(id): Path<String>, Json(body): Json<RevokeBody>) -> Result<Response, ApiError> {
    allow(&who, Permission::RegisterDevices, "revoke device certificates")?;
    let (r, _, _) = registered(&state, &who, &id).await?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::unprocessable("bad_reason", "say why, in 1–500 characters (it goes into the audit log)"));
    }
    let now = Timestamp::now();
    let detail = format!("{}: {reason}", body.serial.as_deref().map_or("every valid certificate".to_string(), |s| format!("serial {s}")));
    let audit = audit_entry(&who, now, "device_certificate_revoked", None, Some(&r.device), Some(detail));
    let (device, serial, by, identity) = (r.device.clone(), body.serial.clone(), who.name.clone(), state.identity.clone());
    let (revoked, crl) = write(&state, move |s| {
        let revoked = s.revoke_certificates(&device, serial.as_deref(), &by, &reason, &audit)?;
        // The list is written even when nothing new was revoked, so a retry after a failed
        // write or reload repairs it.
        let crl = identity.publish_crl(&*s, now).map_err(crate::store::StoreError::Corrupt);
        Ok((revoked, crl))
    })
    .await?;
    let (crl_pem, reloaded) = crl.map_err(|e| ApiError::internal(format!("revoked in the database, but the revocation list could not be written: {e}")))?;
    if revoked.is_empty() {
        return Err(ApiError::conflict(
            "nothing_to_revoke",
            match &body.serial {
                Some(s) => format!("{} has no valid certificate with serial {s}", r.device),
                None => format!("{} has no valid certificate left", r.device),
            },
        ));
    }
    let serials: Vec<String> = revoked.iter().map(|c| c.serial.clone()).collect();
    let client_id = format!("{}-{}", r.site, r.device);
    let done = state.identity.after_revocation(crl_pem, reloaded, &r.device, &client_id, serials).await;
    warn!(device = %r.device, serials = ?done.serials, sessions_ended = done.sessions_ended, broker_reloaded = done.broker_reloaded, by = %who.name, "Device certificates revoked");
    Ok(Json(done).into_response())
}

/// The device page's certificate table, for installers and admins: every certificate issued to
/// the device, and revoking one (after a rotation) or all (a stolen or broken device), with a
/// reason that goes into the audit log.
pub fn section(ctx: &Ctx, certs: &[CertRow]) -> String {
    let mut html = format!("<h3>{}</h3>", ctx.t("certificates"));
    if certs.is_empty() {
        let _ = write!(html, "<p class=\"muted\">{}</p>", ctx.t("no_certificates"));
        return html;
    }
    let _ = write!(
        html,
        "<table id=\"certs\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th></th></tr></thead><tbody>",
        ctx.t("col_serial"),
        ctx.t("col_key"),
        ctx.t("col_issued"),
        ctx.t("col_valid_until"),
        ctx.t("col_status"),
    );
    for c in certs {
        let key = match c.origin {
            crate::store::CertOrigin::Csr => ctx.t("key_on_device"),
            _ => ctx.t("key_from_hub"),
        };
        let (status, action) = match (&c.revoked_at, &c.reason) {
            (Some(at), reason) => (
                format!("<span class=\"off\">{}</span> {} ({}, {})", ctx.t("revoked"), local(*at), esc(c.revoked_by.as_deref().unwrap_or("")), esc(reason.as_deref().unwrap_or(""))),
                String::new(),
            ),
            (None, _) => (
                format!("<span class=\"on\">{}</span>", ctx.t("valid")),
                format!("<button type=\"button\" class=\"secondary revoke\" data-serial=\"{}\">{}</button>", esc(&c.serial), ctx.t("revoke")),
            ),
        };
        let _ = write!(
            html,
            "<tr><td><code>{}…</code></td><td>{key}</td><td>{} {}</td><td>{}</td><td>{status}</td><td>{action}</td></tr>",
            esc(&c.serial[..c.serial.len().min(12)]),
            local(c.issued_at),
            esc(&c.issued_by),
            local(c.not_after),
        );
    }
    let _ = write!(
        html,
        "</tbody></table><p><label for=\"revoke-reason\">{}</label> <input id=\"revoke-reason\" maxlength=\"500\"> <button type=\"button\" id=\"revoke-all\">{}</button> <span id=\"revoke-result\" role=\"status\"></span></p><p class=\"muted\">{}</p>",
        ctx.t("revoke_reason"),
        ctx.t("revoke_all"),
        ctx.t("revoke_note"),
    );
    html
}
