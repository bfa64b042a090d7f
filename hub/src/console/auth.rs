//! Who is calling: resolves the bearer token or the login session to a [`Principal`] and puts
//! it in the request's extensions for the handlers.
//!
//! - **Bearer tokens** (`http.api_token`, `[[http.tokens]]`) are for programs and the API:
//!   every configured token is compared, in constant time, on every request, so the time taken
//!   tells nothing about which token (or how much of one) matched. A bearer token is never
//!   ambient (a browser does not send it by itself), so it needs no CSRF token.
//! - **Sessions** are for people in the console (`login.rs`): the `vaka_session` cookie names a
//!   stored session; an expired one is ended (and audited) and the caller sent to log in again.
//!   A request that changes anything (any method but GET/HEAD/OPTIONS) must carry the session's
//!   CSRF token, as the `x-csrf-token` header (the page's script) or as the `csrf` field of a
//!   form; without it the answer is 403 and nothing happens.
//!
//! Handlers only ever see the `Principal` (and, for pages, the [`Session`]'s CSRF token to put
//! in their forms).

use super::api::{read, write};
use super::login::{cookie, session_hash, SESSION_COOKIE};
use super::AppState;
use crate::access::{Principal, Role, Teams};
use crate::config::{TokenConfig, API_TOKEN_NAME};
use crate::store::AuditEntry;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use jiff::{SignedDuration, Timestamp};
use tracing::{error, info, warn};

/// The header the console's script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A form's CSRF field.
const CSRF_FIELD: &str = "csrf";
/// A form body read to find its CSRF field is refused beyond this size.
const FORM_LIMIT: usize = 64 * 1024;
/// A session's last request is written down at most this often.
const TOUCH_EVERY: SignedDuration = SignedDuration::from_secs(60);

/// The caller's login session, for pages that render forms.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right. The length is not secret.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for (i, expected) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ expected;
    }
    diff == 0
}

/// The tokens the hub accepts and whom each stands for.
pub struct Tokens {
    entries: Vec<(String, Principal)>,
}

impl Tokens {
    /// `api_token` is the administrator's; `tokens` are the named ones of `[[http.tokens]]`.
    pub fn new(api_token: &str, tokens: &[TokenConfig]) -> Tokens {
        let admin = Principal {
            name: API_TOKEN_NAME.to_string(),
            role: Role::Admin,
            teams: Teams::All,
        };
        let mut entries = vec![(api_token.to_string(), admin)];
        entries.extend(tokens.iter().map(|t| {
            (
                t.token.clone(),
                Principal {
                    name: t.name.clone(),
                    role: t.role,
                    teams: t.teams.as_ref().map_or(Teams::All, |teams| Teams::Only(teams.iter().cloned().collect())),
                },
            )
        }));
        Tokens { entries }
    }

    /// Whom `given` stands for, if anyone. Compares with every token, without early exit.
    pub fn resolve(&self, given: &str) -> Option<Principal> {
        let mut found = None;
        for (token, principal) in &self.entries {
            if same_token(given, token) && found.is_none() {
                found = Some(principal.clone());
            }
        }
        found
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// Why a request was not let through.
enum Refusal {
    /// Not logged in (or no longer): 401 for the API, the login form for pages.
    Unauthenticated(&'static str),
    /// Logged in, but the request that changes something lacks the session's CSRF token.
    Csrf,
    /// The store did not answer.
    Store(String),
}

impl Refusal {
    fn answer(self, api: bool) -> Response {
        match (self, api) {
            (Refusal::Unauthenticated(why), true) => {
                let body = serde_json::json!({"error": "unauthorized", "reason": why, "hint": "log in at /login, or send Authorization: Bearer <token>"});
                (StatusCode::UNAUTHORIZED, Json(body)).into_response()
            }
            (Refusal::Unauthenticated(_), false) => Redirect::to("/login").into_response(),
            (Refusal::Csrf, _) => {
                let body = serde_json::json!({"error": "csrf", "message": "this request changes something and needs the session's CSRF token (x-csrf-token header or csrf form field)"});
                (StatusCode::FORBIDDEN, Json(body)).into_response()
            }
            (Refusal::Store(message), _) => {
                let body = serde_json::json!({"error": "store_unavailable", "message": message});
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
        }
    }
}

/// Lets the request through with its [`Principal`] (and [`Session`]) in the extensions, or
/// answers 401 (API) / redirects to the login form (pages), or 403 for a missing CSRF token.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    match authenticate(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(refusal) => refusal.answer(api),
    }
}

async fn authenticate(state: &AppState, mut request: Request) -> Result<Request, Refusal> {
    if let Some(token) = bearer(request.headers()) {
        let principal = state.tokens.resolve(&token).ok_or(Refusal::Unauthenticated("unknown_token"))?;
        request.extensions_mut().insert(principal);
        return Ok(request);
    }
    let id = cookie(request.headers(), SESSION_COOKIE).ok_or(Refusal::Unauthenticated("no_session"))?;
    let id_hash = session_hash(&id);
    let found = {
        let id_hash = id_hash.clone();
        read(state, move |s| s.session(&id_hash)).await.map_err(|e| Refusal::Store(format!("{e:?}")))?
    };
    let (session, user) = found.ok_or(Refusal::Unauthenticated("unknown_session"))?;
    let now = Timestamp::now();
    if let Some(why) = state.sessions.expired(&session, now) {
        let entry = AuditEntry {
            at: now,
            actor: user.name.clone(),
            role: user.role.clone(),
            action: "session_expired".into(),
            check_id: None,
            device: None,
            detail: Some(why.into()),
        };
        write(state, move |s| s.end_session(&id_hash, &entry)).await.map_err(|e| Refusal::Store(format!("{e:?}")))?;
        info!(user = %user.name, why, "Session expired");
        return Err(Refusal::Unauthenticated("session_expired"));
    }
    let Some(role) = Role::parse(&user.role) else {
        error!(user = %user.name, role = %user.role, "A stored user has an unknown role; refused");
        return Err(Refusal::Unauthenticated("unknown_role"));
    };
    let unsafe_method = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let (request_back, given) = csrf_given(request).await;
        request = request_back;
        if !given.is_some_and(|t| same_token(&t, &session.csrf)) {
            warn!(user = %user.name, path = %request.uri().path(), "Request refused: no valid CSRF token");
            return Err(Refusal::Csrf);
        }
    }
    // Often enough that a short idle limit cannot end a session in use.
    let touch_every = TOUCH_EVERY.min(SignedDuration::try_from(state.sessions.idle / 4).unwrap_or(TOUCH_EVERY));
    if now.duration_since(session.last_seen) > touch_every {
        let id_hash = session.id_hash.clone();
        write(state, move |s| s.touch_session(&id_hash, now)).await.map_err(|e| Refusal::Store(format!("{e:?}")))?;
    }
    let teams = match role {
        Role::Admin => Teams::All,
        _ => Teams::Only(user.teams.into_iter().collect()),
    };
    request.extensions_mut().insert(Principal { name: user.name, role, teams });
    request.extensions_mut().insert(Session { csrf: session.csrf });
    Ok(request)
}

/// The CSRF token a request carries: the header, or a url-encoded form's `csrf` field (the
/// body is read and put back for the handler).
async fn csrf_given(request: Request) -> (Request, Option<String>) {
    if let Some(t) = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let t = t.to_string();
        return (request, Some(t));
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (request, None);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (Request::from_parts(parts, axum::body::Body::empty()), None);
    };
    let given = form_urlencoded_field(&bytes, CSRF_FIELD);
    (Request::from_parts(parts, axum::body::Body::from(bytes)), given)
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("abcdef", "abcdef"));
        assert!(!same_token("abcdeg", "abcdef"));
        assert!(!same_token("abc", "abcdef"));
        assert!(!same_token("abcdefg", "abcdef"));
        assert!(!same_token("", "abcdef"));
    }

    #[test]
    fn each_token_stands_for_its_principal_and_the_api_token_for_the_admin() {
        let tokens = Tokens::new(
            "admin-0123456789abcdef",
            &[TokenConfig {
                name: "anna.berg".into(),
                role: Role::NightStaff,
                token: "anna-0123456789abcdef".into(),
                teams: Some(vec!["centrum".into()]),
            }],
        );
        let anna = tokens.resolve("anna-0123456789abcdef").unwrap();
        assert_eq!(
            (anna.name.as_str(), anna.role),
            ("anna.berg", Role::NightStaff)
        );
        assert!(anna.teams.sees("centrum") && !anna.teams.sees("byar"));
        let admin = tokens.resolve("admin-0123456789abcdef").unwrap();
        assert_eq!((admin.name.as_str(), admin.role, admin.teams), ("admin", Role::Admin, Teams::All));
        assert_eq!(tokens.resolve("anna-0123456789abcdeX"), None);
        assert_eq!(tokens.resolve(""), None);
    }

    #[test]
    fn the_bearer_token_and_a_forms_csrf_field_are_found() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer other ".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("other"));
        assert_eq!(form_urlencoded_field(b"note=a%26b&csrf=x%2By", "csrf").as_deref(), Some("x+y"));
        assert_eq!(form_urlencoded_field(b"note=a", "csrf"), None);
    }
}
