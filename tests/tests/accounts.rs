//! Console accounts against a real hub process: an administrator creates a night-staff
//! account; she logs in through the form; a request that changes something without the
//! session's CSRF token is refused; five wrong passwords lock the account (the right one is
//! refused during the lock) until an administrator changes it; an idle session expires; logout
//! ends the session; every step is in the audit log, whose hash chain stays intact.

use serde_json::{json, Value};
use std::time::Duration;
use vaka_e2e::*;

const STAFF: &str = "staff-token-0123456789abcdef";
const PASSWORD: &str = "natt-lösen-2026";
/// The hub's idle limit in this test (the smallest it accepts).
const IDLE_S: u64 = 10;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

struct Reply {
    status: u16,
    cookies: Vec<String>,
    location: String,
    body: String,
}

fn reply(mut r: ureq::http::Response<ureq::Body>) -> Reply {
    let cookies = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    Reply { status: r.status().as_u16(), cookies, location, body: r.body_mut().read_to_string().unwrap_or_default() }
}

fn cookie_value(r: &Reply, name: &str) -> Option<String> {
    r.cookies.iter().find_map(|c| c.strip_prefix(&format!("{name}=")).and_then(|c| c.split(';').next()).map(str::to_string))
}

/// Between `before` and the next `"` in `html`.
fn scrape(html: &str, before: &str) -> String {
    html.split(before).nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string()
}

/// The whole login as a browser does it: the form (and its cookie), then the post.
fn login(hub: &Hub, name: &str, password: &str) -> Reply {
    let base = format!("http://127.0.0.1:{}", hub.http_port);
    let form = reply(agent().get(&format!("{base}/login")).call().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(form.status, 200);
    let login_cookie = cookie_value(&form, "vaka_login").unwrap_or_else(|| panic!("no login-form cookie: {:?}", form.cookies));
    let csrf = scrape(&form.body, "name=\"login_csrf\" value=\"");
    reply(
        agent()
            .post(&format!("{base}/login"))
            .header("Cookie", &format!("vaka_login={login_cookie}"))
            .send_form([("name", name), ("password", password), ("login_csrf", csrf.as_str())])
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn session_of(r: &Reply) -> String {
    assert_eq!((r.status, r.location.as_str()), (303, "/"), "login failed: {}", r.body);
    let cookie = r.cookies.iter().find(|c| c.starts_with("vaka_session=")).unwrap_or_else(|| panic!("{:?}", r.cookies));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie_value(r, "vaka_session").unwrap_or_default()
}

fn with_session(hub: &Hub, method: &str, path: &str, session: &str, csrf: Option<&str>) -> Reply {
    let url = format!("http://127.0.0.1:{}{path}", hub.http_port);
    let cookie = format!("vaka_session={session}");
    let r = match method {
        "GET" => agent().get(&url).header("Cookie", &cookie).call(),
        _ => {
            let mut req = agent().post(&url).header("Cookie", &cookie);
            if let Some(t) = csrf {
                req = req.header("x-csrf-token", t);
            }
            req.send_json(json!({}))
        }
    };
    reply(r.unwrap_or_else(|e| panic!("{method} {path}: {e}")))
}

fn put_user(hub: &Hub, token: &str, name: &str, body: Value) -> (u16, Value) {
    hub.send("PUT", &format!("/api/v1/users/{name}"), token, &body)
}

#[test]
fn staff_log_in_with_a_password_forms_need_csrf_wrong_passwords_lock_and_sessions_end() {
    let dir = temp_dir("accounts");
    let hub = Hub::start(
        dir.path(),
        HubOpts {
            http: format!("session_idle = \"{IDLE_S}s\"\n\n[[http.tokens]]\nname = \"anna.token\"\nrole = \"night_staff\"\ntoken = \"{STAFF}\""),
            ..Default::default()
        },
    );
    let anna = json!({"role": "night_staff", "teams": ["centrum"], "password": PASSWORD});

    // 1. Only an administrator manages accounts; a short password is refused with the reason.
    assert_eq!(put_user(&hub, STAFF, "anna", anna.clone()).0, 403);
    let (status, body) = put_user(&hub, &hub.token, "anna", json!({"role": "night_staff", "teams": ["centrum"], "password": "kort"}));
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("at least 10"), "{body}");
    let (status, body) = put_user(&hub, &hub.token, "anna", anna.clone());
    assert_eq!(status, 200, "{body}");
    let users = hub.get("/api/v1/users");
    assert_eq!(users[0]["name"], "anna", "{users}");
    assert!(!users.to_string().contains("argon2"), "password hashes are never shown: {users}");

    // 2. The login form must come from this hub (its cookie and field match).
    let base = format!("http://127.0.0.1:{}", hub.http_port);
    let forged = reply(
        agent()
            .post(&format!("{base}/login"))
            .send_form([("name", "anna"), ("password", PASSWORD), ("login_csrf", "made-up")])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let wrong = login(&hub, "anna", "fel-lösenord-1");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Fel användarnamn eller lösenord"), "{}", wrong.body);
    let nobody = login(&hub, "nobody", PASSWORD);
    assert_eq!(nobody.status, 401, "an unknown name gets the same answer");
    let session = session_of(&login(&hub, "anna", PASSWORD));

    // 3. The session reads; the page carries its CSRF token and says who is logged in.
    assert_eq!(with_session(&hub, "GET", "/api/v1/devices", &session, None).status, 200);
    let page = with_session(&hub, "GET", "/", &session, None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("anna (night_staff)"), "{}", page.body);
    let csrf = scrape(&page.body, "<meta name=\"csrf-token\" content=\"");
    assert_eq!(csrf.len(), 43, "{}", page.body);

    // 4. A change without the CSRF token (or with another) is refused and does nothing; with it
    //    the request goes through to the handler (here: an unknown device, 404).
    let path = "/api/v1/devices/home-nope/camera-check";
    let r = with_session(&hub, "POST", path, &session, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("csrf"), "{}", r.body);
    assert_eq!(with_session(&hub, "POST", path, &session, Some("x".repeat(43).as_str())).status, 403);
    assert_eq!(with_session(&hub, "POST", path, &session, Some(&csrf)).status, 404);
    let logout_without = with_session(&hub, "POST", "/logout", &session, None);
    assert_eq!(logout_without.status, 403, "logout is a change too");
    assert_eq!(with_session(&hub, "GET", "/api/v1/devices", &session, None).status, 200, "still logged in");

    // 5. Five wrong passwords in a row lock the account; the right one is refused while locked.
    for i in 1..=5 {
        let r = login(&hub, "anna", &format!("gissning-{i}-fel"));
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let locked = login(&hub, "anna", PASSWORD);
    assert_eq!(locked.status, 423, "{}", locked.body);
    assert!(locked.body.contains("låst"), "{}", locked.body);
    // An administrator changing the account unlocks it (and ends its sessions).
    assert_eq!(put_user(&hub, &hub.token, "anna", anna).0, 200);
    assert_eq!(with_session(&hub, "GET", "/api/v1/devices", &session, None).status, 401, "sessions of the old account end");
    let session = session_of(&login(&hub, "anna", PASSWORD));

    // 6. A session left idle past the limit ends; the API says why, a page sends to the login.
    std::thread::sleep(Duration::from_secs(IDLE_S + 2));
    let expired = with_session(&hub, "GET", "/api/v1/devices", &session, None);
    assert_eq!(expired.status, 401);
    assert!(expired.body.contains("session_expired"), "{}", expired.body);
    let again = with_session(&hub, "GET", "/", &session, None);
    assert_eq!((again.status, again.location.as_str()), (303, "/login"));

    // 7. Logout (the page's form: CSRF as a form field) ends the session.
    let session = session_of(&login(&hub, "anna", PASSWORD));
    let page = with_session(&hub, "GET", "/", &session, None);
    let csrf = scrape(&page.body, "<meta name=\"csrf-token\" content=\"");
    let out = reply(
        agent()
            .post(&format!("{base}/logout"))
            .header("Cookie", &format!("vaka_session={session}"))
            .send_form([("csrf", csrf.as_str())])
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!((out.status, out.location.as_str()), (303, "/login"), "{}", out.body);
    assert_eq!(with_session(&hub, "GET", "/api/v1/devices", &session, None).status, 401);

    // 8. All of it is in the audit log, and its chain is intact.
    let audit = hub.get("/api/v1/audit?limit=200");
    let actions: Vec<&str> = audit.as_array().unwrap().iter().rev().filter(|r| r["actor"] == "anna").filter_map(|r| r["action"].as_str()).collect();
    for expected in ["login_failed", "login", "account_locked", "login_refused_locked", "session_expired", "logout"] {
        assert!(actions.contains(&expected), "no {expected} in {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| **a == "login_failed").count(), 1 + 4, "{actions:?}");
    let verdict = hub.get("/api/v1/audit/verify");
    assert_eq!(verdict["status"], "intact", "{verdict}");
}
