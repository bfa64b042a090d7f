//! The console's page shell and what every page shares: the header with navigation, the
//! language toggle and logout, the CSRF token for the script, the words the script needs, and
//! the assets (one stylesheet, one script; served by the hub itself, no CDN).
//!
//! Pages are rendered on the server, so each shows the current state even before (or without)
//! its script; the script keeps them live (`assets/console.js`).

use super::auth::Session;
use super::text::{Lang, LANG_COOKIE};
use crate::access::{Permission, Principal, Role};
use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use jiff::{tz::TimeZone, Timestamp};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// What a page needs to know about its request.
pub struct Ctx {
    pub lang: Lang,
    pub who: Principal,
    /// The session's CSRF token (empty for a bearer token).
    pub csrf: String,
}

impl Ctx {
    pub fn new(who: Principal, session: Option<Extension<Session>>, headers: &HeaderMap) -> Ctx {
        Ctx { lang: Lang::of(headers), who, csrf: session.map(|Extension(s)| s.csrf).unwrap_or_default() }
    }

    pub fn t(&self, key: &'static str) -> &'static str {
        self.lang.t(key)
    }
}

/// Which navigation entry a page is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Now,
    Round,
    Patrols,
    People,
    Devices,
    Reports,
    Admin,
}

/// A whole page: `view` names the script's part for it (`data-view`), `attrs` adds attributes
/// to `<body>` (already escaped).
pub fn shell(ctx: &Ctx, nav: Nav, title: &str, view: &str, attrs: &str, body: &str) -> Html<String> {
    let link = |n: Nav, href: &str, key: &'static str| {
        let current = if n == nav { " aria-current=\"page\"" } else { "" };
        format!("<a href=\"{href}\"{current}>{}</a>", ctx.t(key))
    };
    let mut links = vec![
        link(Nav::Now, "/", "nav_now"),
        link(Nav::Round, "/round", "nav_round"),
        link(Nav::Patrols, "/patrols", "nav_patrols"),
        link(Nav::People, "/people", "nav_people"),
        link(Nav::Devices, "/devices", "nav_devices"),
    ];
    if ctx.who.may(Permission::ReadReports) {
        links.push(link(Nav::Reports, "/reports", "nav_reports"));
    }
    if ctx.who.role == Role::Admin {
        links.push(link(Nav::Admin, "/admin", "nav_admin"));
    }
    let logout = match ctx.csrf.is_empty() {
        true => String::new(),
        false => format!(
            r#"<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{}"><button type="submit" class="secondary">{}</button></form>"#,
            esc(&ctx.csrf),
            ctx.t("logout")
        ),
    };
    let other = ctx.lang.other();
    Html(format!(
        r##"<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<meta name="color-scheme" content="dark">
<title>{title} · Vaka</title>
<link rel="stylesheet" href="/assets/console.css">
</head><body data-view="{view}"{attrs}>
<a class="skip" href="#main">{skip}</a>
<header class="top"><h1>{app}</h1><nav aria-label="{app}">{links}</nav>
<span id="conn" role="status"></span>
<div class="who">{user} <a href="/lang/{other_code}" lang="{other_code}">{other_name}</a>{logout}</div></header>
<main id="main" tabindex="-1"><h2>{title}</h2>
{body}
</main>
<script id="words" type="application/json">{words}</script>
<script src="/assets/console.js"></script>
</body></html>"##,
        lang = ctx.lang.code(),
        csrf = esc(&ctx.csrf),
        title = esc(title),
        skip = ctx.t("skip"),
        app = ctx.t("app"),
        links = links.join(""),
        user = esc(&format!("{} ({})", ctx.who.name, ctx.who.role)),
        other_code = other.code(),
        other_name = ctx.t("lang_other"),
        words = ctx.lang.script_words(),
    ))
}

/// A page's 404, worded as for something that does not exist.
pub fn not_found(ctx: &Ctx, nav: Nav) -> Response {
    let body = format!("<p>{}</p>", ctx.t("not_found"));
    (StatusCode::NOT_FOUND, shell(ctx, nav, ctx.t("not_found"), "none", "", &body)).into_response()
}

/// A page's 403: the role may not `what`.
pub fn forbidden(ctx: &Ctx, nav: Nav, what: &str) -> Response {
    let body = format!("<p>role {} may not {}</p>", ctx.who.role, esc(what));
    (StatusCode::FORBIDDEN, shell(ctx, nav, "403", "none", "", &body)).into_response()
}

/// `GET /assets/{file}`: the stylesheet and the script (no login needed: they hold no data).
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /lang/{sv|en}`: remembers the language for a year and goes back to the page.
pub async fn set_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Back to the page the toggle was on, only if it is one of this hub's own paths.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/lang/"))
        .unwrap_or_else(|| "/".into());
    let cookie = format!("{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Strict", lang.code());
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub fn stockholm() -> TimeZone {
    TimeZone::get("Europe/Stockholm").unwrap_or(TimeZone::UTC)
}

/// Local date and time, e.g. `2026-11-23 02:14:05`.
pub fn local(ts: Timestamp) -> String {
    ts.to_zoned(stockholm()).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Local clock time, e.g. `02:14`.
pub fn clock(ts: Timestamp) -> String {
    ts.to_zoned(stockholm()).strftime("%H:%M").to_string()
}
