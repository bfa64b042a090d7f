//! Who is calling: resolves the bearer token or login cookie to a [`Principal`] and puts it in
//! the request's extensions for the handlers; and the login form.
//!
//! Every configured token is compared, in constant time, on every request, so the time taken
//! tells nothing about which token (or how much of one) matched. Issue 6 replaces tokens with
//! password logins; the handlers only ever see the `Principal`.

use super::AppState;
use crate::access::{Principal, Role};
use crate::config::{TokenConfig, API_TOKEN_NAME};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

pub const COOKIE: &str = "vaka_token";
/// How long the login cookie lasts: 12 hours.
pub const LOGIN_SECONDS: u64 = 12 * 3600;

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
        };
        let mut entries = vec![(api_token.to_string(), admin)];
        entries.extend(tokens.iter().map(|t| {
            (
                t.token.clone(),
                Principal {
                    name: t.name.clone(),
                    role: t.role,
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

fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Lets the request through with its [`Principal`] in the extensions, or answers 401 (API) /
/// redirects to the login form (pages).
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(principal) = presented(request.headers()).and_then(|t| state.tokens.resolve(&t)) {
        request.extensions_mut().insert(principal);
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/api/") {
        let body = serde_json::json!({"error": "unauthorized", "hint": "send Authorization: Bearer <api_token>"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    Redirect::to("/login").into_response()
}

const FORM: &str = r#"<!doctype html><html lang="sv"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>Vaka – logga in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}
input,button{font-size:1.1rem;width:100%;padding:.6rem;margin:.4rem 0;box-sizing:border-box}
.err{color:#b00020}</style></head><body><h1>Vaka</h1>{ERROR}
<form method="post" action="/login"><label for="token">Åtkomstnyckel (API token)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Logga in</button></form></body></html>"#;

pub async fn login_form() -> Html<String> {
    Html(FORM.replace("{ERROR}", ""))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    if state.tokens.resolve(form.token.trim()).is_none() {
        let page = FORM.replace(
            "{ERROR}",
            r#"<p class="err">Fel nyckel. / Wrong token.</p>"#,
        );
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    // Lasts a night shift, so a tablet in the car need not log in again after a restart.
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={LOGIN_SECONDS}",
        form.token.trim()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
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
            }],
        );
        let anna = tokens.resolve("anna-0123456789abcdef").unwrap();
        assert_eq!(
            (anna.name.as_str(), anna.role),
            ("anna.berg", Role::NightStaff)
        );
        let admin = tokens.resolve("admin-0123456789abcdef").unwrap();
        assert_eq!((admin.name.as_str(), admin.role), ("admin", Role::Admin));
        assert_eq!(tokens.resolve("anna-0123456789abcdeX"), None);
        assert_eq!(tokens.resolve(""), None);
    }

    #[test]
    fn token_is_found_in_bearer_header_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; vaka_token=secret; c=d".parse().unwrap(),
        );
        assert_eq!(presented(&h).as_deref(), Some("secret"));
        h.insert(header::AUTHORIZATION, "Bearer other".parse().unwrap());
        assert_eq!(presented(&h).as_deref(), Some("other"));
    }
}
