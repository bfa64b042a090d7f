//! JSON API and the server-sent-events stream.

use super::scope::Scope;
use super::AppState;
use crate::access::{Principal, Teams};
use axum::Extension;
use crate::ingest::Feed;
use crate::store::{Store, StoreError};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};
use tracing::{error, warn};

/// 403 unless the caller's role may do `what`.
pub(super) fn allow(who: &Principal, p: crate::access::Permission, what: &str) -> Result<(), ApiError> {
    match who.may(p) {
        true => Ok(()),
        false => Err(ApiError::forbidden(format!("role {} may not {what}", who.role))),
    }
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// An API failure, answered as `{"error": code, "message": …}` (plus `reason` where a client
/// may act on it).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    reason: Option<&'static str>,
    /// Every problem of a refused body, one per line.
    problems: Option<Vec<String>>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
            problems: None,
        }
    }

    /// The store did not answer (503).
    pub fn store(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// Something on the hub's side failed (500); the message says what.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The body could not be used (422).
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn with_problems(mut self, problems: Vec<String>) -> ApiError {
        self.problems = Some(problems);
        self
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = code;
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> ApiError {
        self.reason = Some(reason);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": self.code, "message": self.message});
        if let Some(reason) = self.reason {
            body["reason"] = reason.into();
        }
        if let Some(problems) = self.problems {
            body["problems"] = problems.into();
        }
        (self.status, Json(body)).into_response()
    }
}

/// Runs a read on the console's connection, off the async threads.
pub(super) async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    write(state, move |s| f(s)).await
}

/// Runs a write (a new camera check, an audit line) on the console's connection, off the async
/// threads. It does not go through the ingest writer: it is one small transaction, and SQLite
/// (WAL, busy timeout) lets it wait its turn between the writer's group commits.
pub(super) async fn write<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut guard = store
            .lock()
            .map_err(|_| ApiError::store("store lock poisoned"))?;
        f(guard.as_mut()).map_err(|e| ApiError::store(e.to_string()))
    })
    .await;
    match result {
        Ok(r) => r.inspect_err(|e| error!(error = %e.message, "Store access failed")),
        Err(e) => Err(ApiError::store(format!("store task failed: {e}"))),
    }
}

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    mqtt_connected: bool,
    store_ok: bool,
}

pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let store_ok = read(&state, |s| s.ping()).await.is_ok();
    let mqtt_connected = state.stats.snapshot().mqtt_connected;
    let status = if store_ok && mqtt_connected {
        "ok"
    } else {
        "degraded"
    };
    Json(Health {
        status,
        mqtt_connected,
        store_ok,
    })
}

#[derive(Deserialize)]
pub struct Limit {
    pub(super) limit: Option<usize>,
    device: Option<String>,
}

impl Limit {
    pub(super) fn get(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }
}

/// The devices of the caller's teams.
pub async fn devices(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let mut rows = read(&state, |s| s.devices()).await?;
    rows.retain(|d| scope.sees_device(&d.id));
    Ok(Json(rows).into_response())
}

/// The newest events of the caller's teams' devices (of one device with `device=`; a device
/// outside those teams answers 404). Without `device=`, the newest `limit` events are read and
/// those of other teams left out, so a page may hold fewer than `limit`.
pub async fn events(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<Limit>,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    if let Some(device) = &q.device {
        scope.device(device)?;
    }
    let limit = q.get();
    let mut rows = read(&state, move |s| s.events(q.device.as_deref(), limit)).await?;
    rows.retain(|e| scope.sees_device(&e.device));
    Ok(Json(rows).into_response())
}

/// Refused payloads: those from devices of the caller's teams; the ones no device can be
/// named for only to callers who see every team.
pub async fn rejects(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<Limit>,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let limit = q.get();
    let mut rows = read(&state, move |s| s.rejects(limit)).await?;
    rows.retain(|r| match &r.device {
        Some(d) => scope.sees_device(d),
        None => who.teams == Teams::All,
    });
    Ok(Json(rows).into_response())
}

pub async fn alarms(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<Limit>,
) -> Result<Response, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let limit = q.get();
    let mut rows = read(&state, move |s| s.alarms(limit)).await?;
    rows.retain(|a| scope.sees_device(&a.device));
    Ok(Json(rows).into_response())
}

pub async fn stats(State(state): State<AppState>) -> Json<crate::ingest::StatsSnapshot> {
    Json(state.stats.snapshot())
}

/// `GET /api/v1/status`: this hub's part among several (`crate::leader`) and its counters.
#[derive(Serialize)]
pub struct HubStatus {
    pub leader: crate::leader::LeaderStatus,
    pub stats: crate::ingest::StatsSnapshot,
}

pub async fn status(State(state): State<AppState>) -> Json<HubStatus> {
    Json(HubStatus { leader: state.leader.status(), stats: state.stats.snapshot() })
}

fn sse_event(item: Result<Feed, BroadcastStreamRecvError>) -> Option<SseEvent> {
    match item {
        Ok(feed) => feed.wire().map(|w| SseEvent::default().event(w.name).data(w.data)),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            warn!(skipped = n, "Live stream client too slow; skipped messages");
            Some(SseEvent::default().event("lagged").data(format!("{{\"skipped\":{n}}}")))
        }
    }
}

/// `text/event-stream` of `event`, `device`, `alarm` and `alarm_handled` messages of the caller's teams' devices
/// (and `lagged` when a slow client missed some). Ends when the hub stops. The teams' devices
/// are those of the care plans when the stream opens.
pub async fn stream(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let scope = Scope::of(&state, &who).await?;
    let seen = move |item: &Result<Feed, BroadcastStreamRecvError>| match item {
        Ok(Feed::Event(e)) => scope.sees_device(&e.device),
        Ok(Feed::Device(d)) => scope.sees_device(&d.id),
        Ok(Feed::Alarm(a)) => scope.sees_device(&a.device),
        Ok(Feed::Handled(a)) => scope.sees_device(&a.device),
        Ok(Feed::Relayed(w)) => scope.sees_device(&w.device),
        Err(_) => true,
    };
    let feed = BroadcastStream::new(state.feed.subscribe()).filter(seen).map(|item| Some(sse_event(item)));
    let stop = WatchStream::new(state.shutdown.clone())
        .filter(|stop| *stop)
        .map(|_| None);
    let events = feed
        .merge(stop)
        .take_while(Option::is_some)
        .filter_map(|item| item.flatten())
        .map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
