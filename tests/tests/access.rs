//! The access matrix: every route of the hub's HTTP side × every role, with a bearer token and
//! with a login session, and without either; each answer is the expected one. A route added to
//! `hub/src/console/mod.rs` without a row here fails the test, so no route is left untested.
//! A session's request that changes something is refused without its CSRF token, on every
//! such route.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use vaka_e2e::*;

const STAFF: &str = "staff-token-0123456789abcdef";
const NURSE: &str = "nurse-token-0123456789abcdef";
const INSTALLER: &str = "installer-token-0123456789abcdef";
const PASSWORD: &str = "matris-lösen-2026";

/// What a cell of the matrix expects.
#[derive(Debug, Clone, Copy)]
enum Want {
    Is(u16),
    /// Let through to the handler, which finds nothing: no such check in tonight's round (404),
    /// or no round at all at this time of day (409).
    NotFoundOrNoRound,
}

use Want::{Is, NotFoundOrNoRound as NR};

impl Want {
    fn holds(self, status: u16) -> bool {
        match self {
            Is(s) => s == status,
            NR => status == 404 || status == 409,
        }
    }
}

enum Body {
    None,
    Json(Value),
    Form(&'static [(&'static str, &'static str)]),
}

struct Row {
    method: &'static str,
    /// As written in the router.
    route: &'static str,
    path: &'static str,
    body: Body,
    /// No credentials, night_staff, nurse, installer, admin.
    want: [Want; 5],
}

const ROLES: [&str; 4] = ["night_staff", "nurse", "installer", "admin"];

fn rows() -> Vec<Row> {
    let recipient = json!({
        "id": "matrix-person", "name": "Matris Person", "address": "Vägen 1",
        "position": {"lat": 64.75, "lon": 20.95}, "team": "centrum",
        "checks": [{"at": "23:00", "method": "visit"}]
    });
    let patrol = json!({
        "id": "matrix-bil", "team": "centrum", "name": "Bil M", "start": {"lat": 64.75, "lon": 20.95},
        "end": {"lat": 64.75, "lon": 20.95}, "shift_start": "21:45", "shift_end": "06:30"
    });
    let user = json!({"role": "night_staff", "teams": ["centrum"], "password": PASSWORD});
    let all = |s: u16| [Is(401), Is(s), Is(s), Is(s), Is(s)];
    let admin = |s: u16| [Is(401), Is(403), Is(403), Is(403), Is(s)];
    let planners = |s: u16| [Is(401), Is(403), Is(s), Is(403), Is(s)];
    let care = [Is(401), NR, NR, Is(403), Is(403)];
    // Console pages: a browser without a login is sent to the login form.
    let page = |s: u16| [Is(303), Is(s), Is(s), Is(s), Is(s)];
    let alarm_staff = [Is(401), Is(404), Is(404), Is(403), Is(403)];
    let r = |method, route, path, body, want| Row { method, route, path, body, want };
    vec![
        r("GET", "/healthz", "/healthz", Body::None, [Is(200); 5]),
        r("GET", "/login", "/login", Body::None, [Is(200); 5]),
        // A login post that did not come from this hub's form is refused, whoever sends it.
        r("POST", "/login", "/login", Body::Form(&[("name", "x"), ("password", "y")]), [Is(403); 5]),
        r("GET", "/assets/{file}", "/assets/console.js", Body::None, [Is(200); 5]),
        r("GET", "/lang/{code}", "/lang/en", Body::None, [Is(303); 5]),
        r("GET", "/", "/", Body::None, page(200)),
        r("GET", "/now/items", "/now/items", Body::None, page(200)),
        r("GET", "/round", "/round", Body::None, page(200)),
        r("GET", "/round/table", "/round/table", Body::None, page(200)),
        r("GET", "/patrols", "/patrols", Body::None, page(200)),
        r("GET", "/people", "/people", Body::None, page(200)),
        r("GET", "/people/{id}", "/people/no-such-person", Body::None, page(404)),
        r("GET", "/devices", "/devices", Body::None, page(200)),
        r("GET", "/devices/{id}", "/devices/no-such-home", Body::None, page(404)),
        r("GET", "/reports", "/reports", Body::None, [Is(303), Is(200), Is(200), Is(403), Is(200)]),
        r("GET", "/admin", "/admin", Body::None, [Is(303), Is(403), Is(403), Is(403), Is(200)]),
        r("GET", "/devices/{id}/agent.toml", "/devices/no-such-home/agent.toml", Body::None, [Is(303), Is(403), Is(403), Is(404), Is(404)]),
        r("GET", "/devices/{id}/bundle.tar", "/devices/no-such-home/bundle.tar", Body::None, [Is(303), Is(403), Is(403), Is(404), Is(404)]),
        r("POST", "/api/v1/alarms/{id}/acknowledge", "/api/v1/alarms/999999/acknowledge", Body::None, alarm_staff),
        r("POST", "/api/v1/alarms/{id}/assign", "/api/v1/alarms/999999/assign", Body::Json(json!({"to": "me"})), alarm_staff),
        r("POST", "/api/v1/alarms/{id}/resolve", "/api/v1/alarms/999999/resolve", Body::Json(json!({"outcome": "helped"})), alarm_staff),
        r("POST", "/api/v1/registrations", "/api/v1/registrations", Body::Json(json!({"device": "matrix-device", "site": "matrix"})), [Is(401), Is(403), Is(403), Is(201), Is(201)]),
        r("GET", "/api/v1/users", "/api/v1/users", Body::None, admin(200)),
        r("PUT", "/api/v1/users/{name}", "/api/v1/users/matrix-user", Body::Json(user), admin(200)),
        r("DELETE", "/api/v1/users/{name}", "/api/v1/users/no-such-user", Body::None, admin(404)),
        r("GET", "/api/v1/devices", "/api/v1/devices", Body::None, all(200)),
        r("GET", "/api/v1/events", "/api/v1/events", Body::None, all(200)),
        r("GET", "/api/v1/rejects", "/api/v1/rejects", Body::None, all(200)),
        r("GET", "/api/v1/alarms", "/api/v1/alarms", Body::None, all(200)),
        r("GET", "/api/v1/stats", "/api/v1/stats", Body::None, all(200)),
        r("GET", "/api/v1/status", "/api/v1/status", Body::None, all(200)),
        r("GET", "/api/v1/stream", "/api/v1/stream", Body::None, all(200)),
        r("POST", "/api/v1/devices/{id}/camera-check", "/api/v1/devices/no-such-home/camera-check", Body::Json(json!({})), all(404)),
        r("GET", "/api/v1/checks/{check_id}", "/api/v1/checks/0192e000-0000-7000-8000-000000000000", Body::None, all(404)),
        r("POST", "/api/v1/checks/{check_id}/snapshot", "/api/v1/checks/0192e000-0000-7000-8000-000000000000/snapshot", Body::None, [Is(401), Is(404), Is(404), Is(403), Is(403)]),
        r("GET", "/api/v1/checks/{check_id}/snapshot", "/api/v1/checks/0192e000-0000-7000-8000-000000000000/snapshot", Body::None, [Is(401), Is(404), Is(404), Is(403), Is(403)]),
        // Calibrating a camera: installers and admins; a device nobody registered or heard is 404.
        r("POST", "/api/v1/devices/{id}/calibration", "/api/v1/devices/no-such-home/calibration", Body::None, [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("GET", "/api/v1/devices/{id}/calibration", "/api/v1/devices/no-such-home/calibration", Body::None, [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("GET", "/api/v1/devices/{id}/calibration/picture", "/api/v1/devices/no-such-home/calibration/picture", Body::None, [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("PUT", "/api/v1/devices/{id}/bed-zone", "/api/v1/devices/no-such-home/bed-zone", Body::Json(json!([[0.2, 0.2], [0.8, 0.2], [0.8, 0.9]])), [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("POST", "/api/v1/devices/{id}/certificate", "/api/v1/devices/no-such-home/certificate", Body::None, [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("GET", "/api/v1/devices/{id}/certificates", "/api/v1/devices/no-such-home/certificates", Body::None, [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("POST", "/api/v1/devices/{id}/revoke", "/api/v1/devices/no-such-home/revoke", Body::Json(json!({"reason": "test"})), [Is(401), Is(403), Is(403), Is(404), Is(404)]),
        r("GET", "/api/v1/audit", "/api/v1/audit", Body::None, admin(200)),
        r("GET", "/api/v1/audit/verify", "/api/v1/audit/verify", Body::None, admin(200)),
        r("GET", "/api/v1/care/recipients", "/api/v1/care/recipients", Body::None, all(200)),
        r("PUT", "/api/v1/care/recipients/{id}", "/api/v1/care/recipients/matrix-person", Body::Json(recipient), planners(200)),
        r("GET", "/api/v1/care/recipients/{id}", "/api/v1/care/recipients/matrix-person", Body::None, all(200)),
        r("DELETE", "/api/v1/care/recipients/{id}", "/api/v1/care/recipients/no-such-person", Body::None, planners(404)),
        r("PUT", "/api/v1/care/recipients/{id}/safe-areas", "/api/v1/care/recipients/no-such-person/safe-areas", Body::Json(json!([])), [Is(401), Is(403), Is(404), Is(404), Is(404)]),
        r("GET", "/api/v1/care/patrols", "/api/v1/care/patrols", Body::None, all(200)),
        r("PUT", "/api/v1/care/patrols/{id}", "/api/v1/care/patrols/matrix-bil", Body::Json(patrol), planners(200)),
        r("DELETE", "/api/v1/care/patrols/{id}", "/api/v1/care/patrols/no-such-bil", Body::None, planners(404)),
        r("GET", "/api/v1/rounds/current", "/api/v1/rounds/current", Body::None, all(200)),
        r("GET", "/api/v1/rounds/{night}", "/api/v1/rounds/2026-01-01", Body::None, all(404)),
        r("POST", "/api/v1/rounds/checks/{id}/decision", "/api/v1/rounds/checks/no-such-check/decision", Body::Json(json!({"well": true})), care),
        r("POST", "/api/v1/rounds/checks/{id}/outcome", "/api/v1/rounds/checks/no-such-check/outcome", Body::Json(json!({"outcome": "checked_by_visit"})), care),
        r("GET", "/api/v1/reports/nights/{night}", "/api/v1/reports/nights/2026-01-01", Body::None, [Is(401), Is(200), Is(200), Is(403), Is(200)]),
        r("GET", "/api/v1/reports/months/{month}", "/api/v1/reports/months/2026-01", Body::None, [Is(401), Is(200), Is(200), Is(403), Is(200)]),
        // Last: with a session it ends the session.
        r("POST", "/logout", "/logout", Body::None, [Is(303); 5]),
    ]
}

/// How a request proves who sends it.
#[derive(Clone)]
enum Credential {
    Nothing,
    Bearer(String),
    /// Session cookie and whether to send its CSRF token.
    Session { id: String, csrf: Option<String> },
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

fn send(hub: &Hub, row: &Row, who: &Credential) -> u16 {
    let url = format!("http://127.0.0.1:{}{}", hub.http_port, row.path);
    let mut headers: Vec<(String, String)> = Vec::new();
    match who {
        Credential::Nothing => {}
        Credential::Bearer(t) => headers.push(("Authorization".into(), format!("Bearer {t}"))),
        Credential::Session { id, csrf } => {
            headers.push(("Cookie".into(), format!("vaka_session={id}")));
            if let Some(t) = csrf {
                headers.push(("x-csrf-token".into(), t.clone()));
            }
        }
    }
    let agent = agent();
    let result = match (row.method, &row.body) {
        ("GET", _) => {
            let mut req = agent.get(&url);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.call()
        }
        ("DELETE", _) => {
            let mut req = agent.delete(&url);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.call()
        }
        (method, body) => {
            let mut req = if method == "PUT" { agent.put(&url) } else { agent.post(&url) };
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            match body {
                Body::Json(v) => req.send_json(v),
                Body::Form(f) => req.send_form(f.iter().copied()),
                Body::None => req.send_empty(),
            }
        }
    };
    // The answer's head is enough (the live stream's body never ends).
    result.unwrap_or_else(|e| panic!("{} {}: {e}", row.method, row.path)).status().as_u16()
}

/// Logs in through the form; the session id and the page's CSRF token.
fn login(hub: &Hub, name: &str) -> (String, String) {
    let base = format!("http://127.0.0.1:{}", hub.http_port);
    let mut form = agent().get(&format!("{base}/login")).call().unwrap_or_else(|e| panic!("{e}"));
    let cookie = form.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().split(';').next().unwrap_or_default().to_string();
    let html = form.body_mut().read_to_string().unwrap_or_default();
    let csrf = html.split("name=\"login_csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
    let resp = agent()
        .post(&format!("{base}/login"))
        .header("Cookie", &cookie)
        .send_form([("name", name), ("password", PASSWORD), ("login_csrf", csrf.as_str())])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 303, "login as {name}");
    let id = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("vaka_session=").and_then(|c| c.split(';').next()).map(str::to_string))
        .unwrap_or_else(|| panic!("no session for {name}"));
    let mut page = agent().get(&format!("{base}/")).header("Cookie", &format!("vaka_session={id}")).call().unwrap_or_else(|e| panic!("{e}"));
    let html = page.body_mut().read_to_string().unwrap_or_default();
    let token = html.split("<meta name=\"csrf-token\" content=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string();
    assert_eq!(token.len(), 43, "no CSRF token on the page of {name}");
    (id, token)
}

/// Every `(method, path)` the router declares, read from its source.
fn declared_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../hub/src/console/mod.rs"))
        .unwrap_or_else(|e| panic!("router source: {e}"));
    let mut found = BTreeSet::new();
    for chunk in source.split(".route(").skip(1) {
        // The call's text up to its closing parenthesis.
        let mut depth = 1;
        let end = chunk
            .char_indices()
            .find_map(|(i, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                (depth == 0).then_some(i)
            })
            .unwrap_or(chunk.len());
        let call = &chunk[..end];
        let path = call.split('"').nth(1).unwrap_or_default().to_string();
        let methods = call.split('"').nth(2).unwrap_or_default();
        for m in ["get", "post", "put", "delete", "patch"] {
            let uses = methods.match_indices(&format!("{m}(")).any(|(i, _)| i == 0 || !methods[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':'));
            if uses {
                found.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn every_route_answers_every_role_as_the_matrix_says() {
    let dir = temp_dir("access");
    let tokens: String = [("anna.natt", "night_staff", STAFF), ("sara.ssk", "nurse", NURSE), ("ivar.inst", "installer", INSTALLER)]
        .iter()
        .map(|(name, role, token)| format!("\n[[http.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken = \"{token}\"\n"))
        .collect();
    let hub = Hub::start(dir.path(), HubOpts { http: tokens, ..Default::default() });

    // No route without its row.
    let rows = rows();
    let covered: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_string(), r.route.to_string())).collect();
    let declared = declared_routes();
    assert!(declared.len() >= 30, "the router source was not read right: {declared:?}");
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(missing.is_empty(), "routes without a row in the access matrix: {missing:?}");
    let stale: Vec<_> = covered.difference(&declared).collect();
    assert!(stale.is_empty(), "rows for routes the router does not have: {stale:?}");

    // One account per role for the session runs.
    for role in ROLES {
        let teams = if role == "admin" { json!([]) } else { json!(["centrum"]) };
        let (status, body) = hub.send("PUT", &format!("/api/v1/users/{role}-user"), &hub.token, &json!({"role": role, "teams": teams, "password": PASSWORD}));
        assert_eq!(status, 200, "{body}");
    }
    let bearer = [STAFF.to_string(), NURSE.to_string(), INSTALLER.to_string(), hub.token.clone()];
    let sessions: Vec<(String, String)> = ROLES.iter().map(|role| login(&hub, &format!("{role}-user"))).collect();

    let mut wrong = Vec::new();
    let mut cells = 0;
    for row in &rows {
        let mut check = |who: &str, cred: &Credential, want: Want| {
            let status = send(&hub, row, cred);
            cells += 1;
            if !want.holds(status) {
                wrong.push(format!("{} {} as {who}: {status}, expected {want:?}", row.method, row.path));
            }
        };
        check("nobody", &Credential::Nothing, row.want[0]);
        check("a stale session", &Credential::Session { id: "x".repeat(43), csrf: Some("y".repeat(43)) }, row.want[0]);
        for (i, role) in ROLES.iter().enumerate() {
            check(&format!("{role} (token)"), &Credential::Bearer(bearer[i].clone()), row.want[i + 1]);
            let (id, csrf) = &sessions[i];
            let changes = row.method != "GET" && row.path != "/login";
            if changes {
                // Without the session's CSRF token nothing that changes anything gets through.
                check(&format!("{role} (session, no CSRF token)"), &Credential::Session { id: id.clone(), csrf: None }, Is(403));
            }
            check(&format!("{role} (session)"), &Credential::Session { id: id.clone(), csrf: Some(csrf.clone()) }, row.want[i + 1]);
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} answers differ from the matrix:\n{}", wrong.len(), wrong.join("\n"));
    eprintln!("access matrix: {} routes, {cells} answers as expected", rows.len());
}

/// A login session for `name`: its id and CSRF token.
fn session(hub: &Hub, name: &str, role: &str, teams: Value) -> Credential {
    let (status, body) = hub.send("PUT", &format!("/api/v1/users/{name}"), &hub.token, &json!({"role": role, "teams": teams, "password": PASSWORD}));
    assert_eq!(status, 200, "{body}");
    let (id, csrf) = login(hub, name);
    Credential::Session { id, csrf: Some(csrf) }
}

fn person(id: &str, team: &str, device: &str) -> Value {
    json!({
        "id": id, "name": format!("Person {id}"), "address": "Vägen 2", "position": {"lat": 64.75, "lon": 20.95},
        "team": team, "devices": [device], "checks": [{"at": "23:30", "method": "visit"}]
    })
}

/// Status and JSON body of a request with `who`'s credentials.
fn ask(hub: &Hub, method: &'static str, path: &'static str, body: Body, who: &Credential) -> u16 {
    send(hub, &Row { method, route: "", path, body, want: [Is(0); 5] }, who)
}

fn listed(hub: &Hub, path: &str, who: &Credential, field: &str) -> Vec<String> {
    let Credential::Session { id, .. } = who else { panic!("a session") };
    let url = format!("http://127.0.0.1:{}{path}", hub.http_port);
    let mut r = agent().get(&url).header("Cookie", &format!("vaka_session={id}")).call().unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.body_mut().read_json().unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut values: Vec<String> = v.as_array().unwrap_or_else(|| panic!("{path}: {v}")).iter().filter_map(|x| x[field].as_str().map(str::to_string)).collect();
    values.sort();
    values
}

#[test]
fn a_night_nurse_of_one_team_neither_sees_nor_acts_on_another_teams_people() {
    let dir = temp_dir("teams");
    let hub = Hub::start(dir.path(), HubOpts::default());
    let mut agents = Vec::new();
    for device in ["home-a", "home-b"] {
        agents.push(Agent::start(dir.path(), AgentOpts::new(device, hub.broker())));
        wait_until(std::time::Duration::from_secs(60), "the hub to hear the device", || hub.device(device).map(|_| ()));
    }
    for (id, team, device) in [("person-a", "centrum", "home-a"), ("person-b", "byar", "home-b")] {
        let (status, body) = hub.send("PUT", &format!("/api/v1/care/recipients/{id}"), &hub.token, &person(id, team, device));
        assert_eq!(status, 200, "{body}");
    }
    let anna = session(&hub, "anna", "night_staff", json!(["centrum"]));
    let sara = session(&hub, "sara", "nurse", json!(["centrum"]));
    let admin = session(&hub, "chef", "admin", json!([]));

    // Lists hold only her team's people and devices; the administrator sees both teams.
    assert_eq!(listed(&hub, "/api/v1/care/recipients", &anna, "id"), ["person-a"]);
    assert_eq!(listed(&hub, "/api/v1/devices", &anna, "id"), ["home-a"]);
    assert_eq!(listed(&hub, "/api/v1/care/recipients", &admin, "id"), ["person-a", "person-b"]);
    assert_eq!(listed(&hub, "/api/v1/devices", &admin, "id"), ["home-a", "home-b"]);
    assert!(listed(&hub, "/api/v1/events?limit=500", &anna, "device").iter().all(|d| d == "home-a"));

    // The other team's person, device and its events are not there for her: 404, as if they
    // did not exist; her own are.
    assert_eq!(ask(&hub, "GET", "/api/v1/care/recipients/person-b", Body::None, &anna), 404);
    assert_eq!(ask(&hub, "GET", "/api/v1/care/recipients/person-a", Body::None, &anna), 200);
    assert_eq!(ask(&hub, "GET", "/api/v1/events?device=home-b", Body::None, &anna), 404);
    assert_eq!(ask(&hub, "POST", "/api/v1/devices/home-b/camera-check", Body::Json(json!({})), &anna), 404);
    assert_eq!(ask(&hub, "POST", "/api/v1/devices/home-a/camera-check", Body::Json(json!({})), &anna), 202);
    assert_eq!(ask(&hub, "GET", "/api/v1/care/recipients/person-b", Body::None, &admin), 200);

    // The console's devices page shows her team's home only.
    let Credential::Session { id, .. } = &anna else { unreachable!() };
    let mut page = agent().get(&format!("http://127.0.0.1:{}/devices", hub.http_port)).header("Cookie", &format!("vaka_session={id}")).call().unwrap_or_else(|e| panic!("{e}"));
    let html = page.body_mut().read_to_string().unwrap_or_default();
    assert!(html.contains("home-a") && !html.contains("home-b"), "{html}");

    // A nurse of the team cannot change the other team's person, nor move hers into it.
    let b = person("person-b", "byar", "home-b");
    let (status, _) = put_as(&hub, &sara, "/api/v1/care/recipients/person-b", &b);
    assert_eq!(status, 403);
    let moved = person("person-a", "byar", "home-a");
    assert_eq!(put_as(&hub, &sara, "/api/v1/care/recipients/person-a", &moved).0, 403);
    assert_eq!(put_as(&hub, &sara, "/api/v1/care/recipients/person-a", &person("person-a", "centrum", "home-a")).0, 200);
    assert_eq!(ask(&hub, "DELETE", "/api/v1/care/recipients/person-b", Body::None, &sara), 404);
    assert_eq!(listed(&hub, "/api/v1/care/recipients", &admin, "id"), ["person-a", "person-b"], "nothing of team byar changed");
    drop(agents);
}

fn put_as(hub: &Hub, who: &Credential, path: &str, body: &Value) -> (u16, String) {
    let Credential::Session { id, csrf } = who else { panic!("a session") };
    let url = format!("http://127.0.0.1:{}{path}", hub.http_port);
    let mut r = agent()
        .put(&url)
        .header("Cookie", &format!("vaka_session={id}"))
        .header("x-csrf-token", csrf.as_deref().unwrap_or_default())
        .send_json(body)
        .unwrap_or_else(|e| panic!("{e}"));
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
}
