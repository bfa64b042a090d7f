//! Console accounts: logging in with a name and password, the session that follows, logging
//! out, and the administrators' user list.
//!
//! | route | who | answers |
//! |---|---|---|
//! | `GET /login` | anyone | the form (and a login-form cookie against login CSRF) |
//! | `POST /login` | anyone | 303 to `/` with the session cookie; 401 wrong name or password; 423 locked; 403 form not from this hub |
//! | `POST /logout` | a session | 303 to `/login`, session ended (CSRF token needed) |
//! | `GET /api/v1/users` | admin | 200 users (never their hashes), 403 |
//! | `PUT /api/v1/users/{name}` | admin | 200 stored `{role, teams, password}`, 422 problems, 403 |
//! | `DELETE /api/v1/users/{name}` | admin | 204, 404, 403 |
//!
//! Rules:
//! - Passwords are hashed with argon2id (the `argon2` crate's defaults, a random salt each);
//!   verifying runs off the async threads. An unknown name costs the same work as a wrong
//!   password, so the answer time does not tell which names exist.
//! - [`MAX_FAILED`] wrong passwords in a row lock the account for [`LOCKOUT`]; a right password
//!   during the lock is refused too. An administrator changing the account unlocks it.
//! - The session cookie is `HttpOnly`, `SameSite=Strict`, `Secure` when the hub is reached over
//!   HTTPS (`http.secure_cookies`); it holds a random id whose SHA-256 alone is stored. The
//!   session ends after `http.session_idle` without a request or `http.session_max` after the
//!   login, whichever comes first.
//! - Logins, failures, locks, logouts, expiries and account changes are in the audit log.

use super::api::{allow, read, write, ApiError};
use super::text::Lang;
use super::AppState;
use crate::access::{Permission, Principal, Role};
use crate::store::{AuditEntry, SessionRow, UserRow};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use rand::RngCore;
use serde::Deserialize;
use std::sync::LazyLock;
use std::time::Duration;
use tracing::{info, warn};

/// The session cookie.
pub const SESSION_COOKIE: &str = "vaka_session";
/// The login form's own cookie (double submit against login CSRF).
const LOGIN_COOKIE: &str = "vaka_login";
/// Wrong passwords in a row before the account locks.
pub const MAX_FAILED: u32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT: SignedDuration = SignedDuration::from_mins(15);
/// A password shorter than this is refused.
pub const MIN_PASSWORD: usize = 10;

/// How long sessions last and how their cookie is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after the login, however busy.
    pub max: Duration,
    /// Mark the cookie `Secure` (the console is reached over HTTPS).
    pub secure_cookies: bool,
}

impl Default for SessionPolicy {
    /// A night shift: 12 hours at most, 2 hours idle (a quiet night in the car).
    fn default() -> Self {
        SessionPolicy { idle: Duration::from_secs(2 * 3600), max: Duration::from_secs(12 * 3600), secure_cookies: false }
    }
}

impl SessionPolicy {
    /// Why the session is over at `now`, if it is.
    pub fn expired(&self, s: &SessionRow, now: Timestamp) -> Option<&'static str> {
        let since = |t: Timestamp| now.duration_since(t).as_secs_f64();
        if since(s.created_at) > self.max.as_secs_f64() {
            Some("session_max")
        } else if since(s.last_seen) > self.idle.as_secs_f64() {
            Some("session_idle")
        } else {
            None
        }
    }

    fn cookie(&self, name: &str, value: &str, path: &str, max_age: Duration) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={}{secure}", max_age.as_secs())
    }
}

/// A random token: 32 bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a session id.
pub fn session_hash(id: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Verified against for unknown names, so that they cost as much as a wrong password.
static DECOY: LazyLock<String> = LazyLock::new(|| hash_password("no such user, no such password").unwrap_or_default());

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

fn audit(actor: &str, role: &str, action: &str, detail: Option<String>) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        actor: actor.chars().take(64).collect(),
        role: role.into(),
        action: action.into(),
        check_id: None,
        device: None,
        detail,
    }
}

const FORM: &str = r#"<!doctype html><html lang="{LANG}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{TITLE}</title>
<meta name="color-scheme" content="dark">
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;background:#0f1216;color:#e9edf1}
input,button{font-size:1.1rem;width:100%;padding:.6rem;margin:.4rem 0;box-sizing:border-box}
input{background:#0b0e12;color:#e9edf1;border:1px solid #5b6675;border-radius:.3rem}
button{background:#2456a6;color:#fff;border:0;border-radius:.4rem}
a{color:#9cc8ff} :focus{outline:3px solid #ffd27a;outline-offset:2px}
.err{color:#ff9b94}</style></head><body><h1>Vaka</h1>{ERROR}
<form method="post" action="/login"><input type="hidden" name="login_csrf" value="{CSRF}">
<label for="name">{NAME}</label>
<input id="name" name="name" autocomplete="username" autofocus required>
<label for="password">{PASSWORD}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{LOGIN}</button></form>
<p><a href="/lang/{OTHER}" lang="{OTHER}">{OTHER_NAME}</a></p></body></html>"#;

/// The login form with a fresh login-form token (also set as a cookie for this path).
fn form(state: &AppState, lang: Lang, status: StatusCode, error: &str) -> Response {
    let token = random_token();
    let page = FORM
        .replace("{LANG}", lang.code())
        .replace("{TITLE}", lang.t("login_title"))
        .replace("{NAME}", lang.t("login_name"))
        .replace("{PASSWORD}", lang.t("login_password"))
        .replace("{LOGIN}", lang.t("login_button"))
        .replace("{OTHER}", lang.other().code())
        .replace("{OTHER_NAME}", lang.t("lang_other"))
        .replace("{CSRF}", &token).replace(
        "{ERROR}",
        &if error.is_empty() { String::new() } else { format!(r#"<p class="err" role="alert">{error}</p>"#) },
    );
    let cookie = state.sessions.cookie(LOGIN_COOKIE, &token, "/login", Duration::from_secs(3600));
    (status, [(header::SET_COOKIE, cookie)], Html(page)).into_response()
}

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    form(&state, Lang::of(&headers), StatusCode::OK, "")
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    login_csrf: String,
}

pub async fn login(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    match try_login(&state, &headers, f).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn try_login(state: &AppState, headers: &HeaderMap, f: LoginForm) -> Result<Response, ApiError> {
    let lang = Lang::of(headers);
    let expected = cookie(headers, LOGIN_COOKIE).unwrap_or_default();
    if f.login_csrf.is_empty() || !super::auth::same_token(&f.login_csrf, &expected) {
        warn!("Login form refused: it did not come from this hub's login page");
        return Ok(form(state, lang, StatusCode::FORBIDDEN, lang.t("login_stale")));
    }
    let name = f.name.trim().to_string();
    let user = {
        let name = name.clone();
        read(state, move |s| s.user(&name)).await?
    };
    let now = Timestamp::now();
    let hash = user.as_ref().map_or_else(|| DECOY.clone(), |u| u.password_hash.clone());
    let password = f.password;
    let matches = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .map_err(|e| ApiError::store(format!("password check failed: {e}")))?;
    let wrong = lang.t("login_wrong");
    let Some(user) = user else {
        let entry = audit(&name, "", "login_failed", Some("no such user".into()));
        write(state, move |s| s.append_audit(&entry)).await?;
        info!(user = %name, "Login failed: no such user");
        return Ok(form(state, lang, StatusCode::UNAUTHORIZED, wrong));
    };
    if let Some(until) = user.locked_until.filter(|until| *until > now) {
        let minutes = (until.duration_since(now).as_secs() + 59) / 60;
        let entry = audit(&user.name, &user.role, "login_refused_locked", Some(format!("locked until {until}")));
        write(state, move |s| s.append_audit(&entry)).await?;
        warn!(user = %user.name, %until, "Login refused: the account is locked");
        let text = lang.t("login_locked").replace("{minutes}", &minutes.to_string());
        return Ok(form(state, lang, StatusCode::LOCKED, &text));
    }
    if !matches {
        // A lock that ran out starts the count afresh.
        let failed = if user.locked_until.is_some() { 1 } else { user.failed_logins + 1 };
        let locked_until = (failed >= MAX_FAILED).then(|| now + LOCKOUT);
        let action = if locked_until.is_some() { "account_locked" } else { "login_failed" };
        let entry = audit(&user.name, &user.role, action, Some(format!("{failed} wrong password(s) in a row")));
        let who = user.name.clone();
        write(state, move |s| s.login_failed(&who, failed, locked_until, &entry)).await?;
        warn!(user = %user.name, failed, locked = locked_until.is_some(), "Login failed: wrong password");
        return Ok(form(state, lang, StatusCode::UNAUTHORIZED, wrong));
    }
    let id = random_token();
    let session = SessionRow {
        id_hash: session_hash(&id),
        user: user.name.clone(),
        csrf: random_token(),
        created_at: now,
        last_seen: now,
    };
    let entry = audit(&user.name, &user.role, "login", None);
    write(state, move |s| s.login_succeeded(&session, &entry)).await?;
    info!(user = %user.name, role = %user.role, "Logged in");
    let policy = state.sessions;
    let set = policy.cookie(SESSION_COOKIE, &id, "/", policy.max);
    let clear = policy.cookie(LOGIN_COOKIE, "", "/login", Duration::ZERO);
    let cookies = AppendHeaders([(header::SET_COOKIE, set), (header::SET_COOKIE, clear)]);
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, "/")], cookies).into_response())
}

/// `POST /logout`: ends the caller's session (its CSRF token was checked on the way in).
pub async fn logout(State(state): State<AppState>, who: Extension<Principal>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        let entry = audit(&who.name, who.role.as_str(), "logout", None);
        write(&state, move |s| s.end_session(&session_hash(&id), &entry)).await?;
        info!(user = %who.name, "Logged out");
    }
    let clear = state.sessions.cookie(SESSION_COOKIE, "", "/", Duration::ZERO);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

fn admin_only(who: &Principal) -> Result<(), ApiError> {
    allow(who, Permission::ManageUsers, "manage users")
}

/// `GET /api/v1/users`.
pub async fn users(State(state): State<AppState>, Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    admin_only(&who)?;
    Ok(Json(read(&state, |s| s.users()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    role: String,
    #[serde(default)]
    teams: Vec<String>,
    password: String,
}

/// `PUT /api/v1/users/{name}`: creates or replaces an account.
pub async fn put_user(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let mut problems = Vec::new();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid_name {
        problems.push("name: 1–64 letters, digits, `.`, `-` or `_`".to_string());
    }
    let role = Role::parse(&body.role);
    if role.is_none() {
        problems.push(format!("role: `{}` is not one of night_staff, nurse, installer, admin", body.role.chars().take(40).collect::<String>()));
    }
    if body.password.chars().count() < MIN_PASSWORD {
        problems.push(format!("password: at least {MIN_PASSWORD} characters"));
    }
    if role.is_some_and(|r| r != Role::Admin) && body.teams.is_empty() {
        problems.push("teams: a user other than an administrator needs at least one team".to_string());
    }
    if !problems.is_empty() {
        return Err(ApiError::unprocessable("invalid_user", problems.join("\n")).with_problems(problems));
    }
    let password = body.password;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::store(format!("password hashing failed: {e}")))?
        .map_err(|e| ApiError::store(format!("password hashing failed: {e}")))?;
    let user = UserRow {
        name: name.clone(),
        role: body.role,
        teams: body.teams,
        password_hash: hash,
        failed_logins: 0,
        locked_until: None,
    };
    let detail = format!("user {name}, role {}, teams {}", user.role, user.teams.join(","));
    let entry = audit(&who.name, who.role.as_str(), "user_changed", Some(detail));
    let stored = user.clone();
    write(&state, move |s| s.put_user(&stored, &entry)).await?;
    info!(by = %who.name, user = %name, role = %user.role, "User stored");
    Ok(Json(user).into_response())
}

/// `DELETE /api/v1/users/{name}`.
pub async fn delete_user(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&who)?;
    let entry = audit(&who.name, who.role.as_str(), "user_removed", Some(format!("user {name}")));
    let target = name.clone();
    match write(&state, move |s| s.delete_user(&target, &entry)).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::not_found(format!("no user `{}`", name.chars().take(64).collect::<String>()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash_and_salts_differ() {
        let a = hash_password("korrekt häst batteri").unwrap();
        let b = hash_password("korrekt häst batteri").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(password_matches("korrekt häst batteri", &a));
        assert!(!password_matches("korrekt hast batteri", &a));
        assert!(!password_matches("korrekt häst batteri", "not a hash"));
    }

    #[test]
    fn a_session_ends_when_idle_too_long_or_too_old() {
        let policy = SessionPolicy { idle: Duration::from_secs(600), max: Duration::from_secs(3600), secure_cookies: true };
        let t0: Timestamp = "2026-11-23T22:00:00Z".parse().unwrap();
        let s = |last: i64| SessionRow {
            id_hash: "h".into(),
            user: "anna".into(),
            csrf: "c".into(),
            created_at: t0,
            last_seen: t0 + SignedDuration::from_secs(last),
        };
        assert_eq!(policy.expired(&s(0), t0 + SignedDuration::from_secs(599)), None);
        assert_eq!(policy.expired(&s(0), t0 + SignedDuration::from_secs(601)), Some("session_idle"));
        assert_eq!(policy.expired(&s(3000), t0 + SignedDuration::from_secs(3300)), None);
        assert_eq!(policy.expired(&s(3500), t0 + SignedDuration::from_secs(3601)), Some("session_max"));
        let cookie = policy.cookie(SESSION_COOKIE, "abc", "/", policy.max);
        assert_eq!(cookie, "vaka_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600; Secure");
    }

    #[test]
    fn session_ids_are_random_and_stored_only_as_their_hash() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes, base64url without padding");
        assert_eq!(session_hash(&a).len(), 64);
        assert_ne!(session_hash(&a), a);
        assert_eq!(session_hash(&a), session_hash(&a));
    }
}
