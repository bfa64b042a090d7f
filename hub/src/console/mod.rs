//! The hub's HTTP side: health check, JSON API, live stream, camera checks and snapshots, the
//! audit log and the console's pages (Now, tonight's round, patrols, people, devices).
//!
//! Every route except `/healthz`, `/login`, `/assets/*` and `/lang/*` needs either a bearer token (`http.api_token`,
//! role admin, or one of `[[http.tokens]]`; for programs) or a login session (people, with a
//! name and password, see `login.rs`; changes need the session's CSRF token, see `auth.rs`).
//! API routes answer 401 JSON without one; the console page redirects a browser to `/login`.
//! The middleware puts the caller's [`crate::access::Principal`] in the request;
//! handlers that need a role check it with [`crate::access::Role::may`] and answer 403 JSON.
//! The roles of the camera routes are listed in `checks.rs` and `calibration.rs`.
//!
//! Store access goes to the console's own SQLite connection on a blocking thread, so a slow
//! query never holds up ingest (WAL lets it and the writer run together). That connection
//! also writes new camera checks and audit lines, each a single small transaction.

mod admin;
mod api;
mod areas;
mod audit;
mod auth;
mod calibration;
mod certs;
mod checks;
mod devices;
mod login;
mod now;
mod page;
mod plans;
mod reports;
mod rounds;
mod scope;
mod text;
mod views;
pub mod tls;

pub use auth::Tokens;
pub use login::{hash_password, SessionPolicy, MAX_FAILED, SESSION_COOKIE};
pub use rounds::SharedEngine;
pub use checks::{CheckView, VIEW_SECONDS_HEADER};
pub use devices::AgentBroker;
pub use tls::HttpsConfig;

use crate::camera::Snapshots;
use crate::config::CameraConfig;
use crate::ingest::{Commands, Feed, Stats};
use crate::store::Store;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Mutex<Box<dyn Store>>>,
    pub stats: Arc<Stats>,
    pub feed: broadcast::Sender<Feed>,
    pub tokens: Arc<Tokens>,
    /// Sends commands (camera check, snapshot) to devices.
    pub commands: Commands,
    /// The in-memory snapshot vault.
    pub snapshots: Snapshots,
    pub cameras: CameraConfig,
    /// Turns true when the hub stops; live streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// The night round.
    pub rounds: SharedEngine,
    /// The night shift (for checking care plans and report periods).
    pub shift: crate::rounds::Shift,
    /// How long console sessions last.
    pub sessions: SessionPolicy,
    /// How often the Now view repeats its signal while an alarm is unacknowledged.
    pub alarm_signal: std::time::Duration,
    /// Where agents reach the broker (for the agent configuration installers download).
    pub agent_broker: AgentBroker,
    /// Issues each device its certificate (for the provisioning bundle).
    /// The device CA, issued certificates and revocation.
    pub identity: Arc<crate::identity::Identity>,
    /// Whether this hub holds the scheduler lease (`crate::leader`).
    pub leader: crate::leader::Leadership,
    /// Other hubs share the database (`mqtt.shared_group`): the round is reloaded from the
    /// store before every request, since the leader may have moved it on.
    pub shared: bool,
}

pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/", get(now::page))
        .route("/now/items", get(now::fragment))
        .route("/round", get(views::round))
        .route("/round/table", get(views::round_fragment))
        .route("/patrols", get(views::patrols))
        .route("/people", get(views::people))
        .route("/people/{id}", get(views::person))
        .route("/devices", get(devices::list))
        .route("/devices/{id}", get(devices::device))
        .route("/devices/{id}/agent.toml", get(devices::agent_config))
        .route("/devices/{id}/bundle.tar", get(devices::bundle))
        .route("/reports", get(reports::page))
        .route("/admin", get(admin::page))
        .route("/logout", post(login::logout))
        .route("/api/v1/users", get(login::users))
        .route("/api/v1/users/{name}", put(login::put_user).delete(login::delete_user))
        .route("/api/v1/devices", get(api::devices))
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/rejects", get(api::rejects))
        .route("/api/v1/alarms", get(api::alarms))
        .route("/api/v1/alarms/{id}/acknowledge", post(now::acknowledge))
        .route("/api/v1/alarms/{id}/assign", post(now::assign))
        .route("/api/v1/alarms/{id}/resolve", post(now::resolve))
        .route("/api/v1/registrations", post(devices::register))
        .route("/api/v1/stats", get(api::stats))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/stream", get(api::stream))
        .route(
            "/api/v1/devices/{id}/camera-check",
            post(checks::request_check),
        )
        .route("/api/v1/devices/{id}/calibration", post(calibration::request).get(calibration::status))
        .route("/api/v1/devices/{id}/calibration/picture", get(calibration::picture))
        .route("/api/v1/devices/{id}/bed-zone", put(calibration::put_bed_zone))
        .route("/api/v1/devices/{id}/certificate", post(certs::sign))
        .route("/api/v1/devices/{id}/certificates", get(certs::list))
        .route("/api/v1/devices/{id}/revoke", post(certs::revoke))
        .route("/api/v1/checks/{check_id}", get(checks::get_check))
        .route(
            "/api/v1/checks/{check_id}/snapshot",
            post(checks::request_snapshot).get(checks::get_snapshot),
        )
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/care/recipients", get(rounds::recipients))
        .route("/api/v1/care/recipients/{id}", get(rounds::recipient).put(rounds::put_recipient).delete(rounds::delete_recipient))
        .route("/api/v1/care/recipients/{id}/safe-areas", put(rounds::put_safe_areas))
        .route("/api/v1/care/patrols", get(rounds::patrols))
        .route("/api/v1/care/patrols/{id}", put(rounds::put_patrol).delete(rounds::delete_patrol))
        .route("/api/v1/rounds/current", get(rounds::current))
        .route("/api/v1/rounds/{night}", get(rounds::night))
        .route("/api/v1/rounds/checks/{id}/decision", post(rounds::decide))
        .route("/api/v1/rounds/checks/{id}/outcome", post(rounds::record))
        .route("/api/v1/reports/nights/{night}", get(rounds::night_report))
        .route("/api/v1/reports/months/{month}", get(rounds::month_report))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/login", get(login::login_form).post(login::login))
        .route("/assets/{file}", get(page::asset))
        .route("/lang/{code}", get(page::set_lang))
        .merge(protected)
        .with_state(state)
}
