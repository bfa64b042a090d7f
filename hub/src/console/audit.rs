//! The audit log over HTTP, for administrators only.
//!
//! | route | roles | answers |
//! |---|---|---|
//! | `GET /api/v1/audit?limit=&format=json\|csv` | admin | 200 lines newest first (JSON, or CSV to download), 403, 422 bad format |
//! | `GET /api/v1/audit/verify` | admin | 200 the hash chain's verdict (`intact` with entries and head hash, or `broken` at a line), 403 |
//!
//! Checking the chain is itself recorded (`audit_verified`), with the verdict, so a later
//! reader sees when the log was last found intact and what its head was then.

use super::api::{allow, read, write, ApiError, DEFAULT_LIMIT, MAX_LIMIT};
use super::AppState;
use crate::access::{Permission, Principal};
use crate::store::{AuditEntry, AuditRow, AuditVerdict};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::Deserialize;
use tracing::{error, info};

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
    format: Option<String>,
}

fn admin_only(who: &Principal) -> Result<(), ApiError> {
    allow(who, Permission::ReadAudit, "read the audit log")
}

/// `GET /api/v1/audit`: the newest lines, as JSON or as a CSV file.
pub async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let csv_wanted = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            let other: String = other.chars().take(20).collect();
            return Err(ApiError::unprocessable("bad_format", format!("format `{other}` is not json or csv")));
        }
    };
    let rows = read(&state, move |s| s.audit(limit)).await?;
    if !csv_wanted {
        return Ok(Json(rows).into_response());
    }
    let body = csv(&rows).map_err(|e| ApiError::store(format!("audit export failed: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"vaka-audit.csv\""),
        ],
        body,
    )
        .into_response())
}

/// The audit lines as CSV, one line per row with its hash, so an export can be checked
/// against the chain later.
fn csv(rows: &[AuditRow]) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["id", "at", "actor", "role", "action", "check_id", "device", "detail", "hash"])?;
    for r in rows {
        let e = &r.entry;
        out.write_record([
            r.id.to_string().as_str(),
            e.at.to_string().as_str(),
            &e.actor,
            &e.role,
            &e.action,
            e.check_id.as_deref().unwrap_or_default(),
            e.device.as_deref().unwrap_or_default(),
            e.detail.as_deref().unwrap_or_default(),
            r.hash.as_deref().unwrap_or_default(),
        ])?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `GET /api/v1/audit/verify`: walks the whole chain and says whether every line is as
/// written.
pub async fn verify(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let verdict = read(&state, |s| s.verify_audit()).await?;
    let detail = match &verdict {
        AuditVerdict::Intact { entries, head } => {
            info!(entries, head = %head, "Audit log verified: intact");
            format!("intact, {entries} lines, head {head}")
        }
        AuditVerdict::Broken { at, reason, .. } => {
            error!(line = at, %reason, "Audit log verified: BROKEN; someone changed the database behind the hub");
            format!("broken at line {at}: {reason}")
        }
    };
    let entry = AuditEntry {
        at: Timestamp::now(),
        actor: who.name.clone(),
        role: who.role.to_string(),
        action: "audit_verified".into(),
        check_id: None,
        device: None,
        detail: Some(detail),
    };
    write(&state, move |s| s.append_audit(&entry)).await?;
    Ok(Json(verdict).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_export_quotes_free_text_and_carries_each_lines_hash() {
        let row = AuditRow {
            id: 7,
            entry: AuditEntry {
                at: "2026-11-23T02:10:00Z".parse().unwrap(),
                actor: "anna.berg".into(),
                role: "night_staff".into(),
                action: "alarm_resolved".into(),
                check_id: None,
                device: Some("home-001".into()),
                detail: Some("note: \"found on floor, helped up\", ok".into()),
            },
            hash: Some("ab12".into()),
        };
        let text = csv(&[row]).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 1);
        assert_eq!(&records[0][0], "7");
        assert_eq!(&records[0][7], "note: \"found on floor, helped up\", ok");
        assert_eq!(&records[0][8], "ab12");
        assert!(text.starts_with("id,at,actor,role,action,check_id,device,detail,hash\n"), "{text}");
    }
}
