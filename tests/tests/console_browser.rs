//! The console in a real browser: Debian's headless Chromium, driven through chromedriver
//! (WebDriver), against a real hub and real agents (a simulated camera, a GPS alarm through
//! the agent's intake).
//!
//! One night-staff member of team `centrum` logs in, sees a GPS alarm appear on the Now view
//! without reloading, acknowledges it with the keyboard, assigns it to a patrol and resolves it;
//! cannot open a person of team `byar` (page and API); looks at an unclear camera check's
//! snapshot in tonight's round and sees it removed after the viewing span; the month's report
//! counts the alarm with its response times. An installer registers a device for a person and
//! sees its first event arrive live, then draws the person's safe areas and finds them in the
//! device's agent configuration, and calibrates a camera's bed zone: refused until installer
//! mode is on at the device, then drags a corner over the calibration picture, moves another
//! with the arrow keys and saves; the running agent keeps the zone. The text of the dark
//! theme is checked for contrast. A screenshot of each main view is saved in
//! `target/console-screenshots/` (kept as CI artefacts).

use fantoccini::actions::{InputSource, KeyAction, KeyActions, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vaka_e2e::*;

const NURSE: &str = "browser-nurse-token-0123456789";
const PASSWORD: &str = "webbläsare-2026";
/// Round time runs this many times faster than real time.
const SPEED: f64 = 2.0;

fn screenshots() -> PathBuf {
    let dir = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace_root().join("target")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "screenshot {name} is not a PNG");
    let path = screenshots().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Polls `check` (an async closure's future factory) every 200 ms until `Some`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn text_of(c: &Client, css: &str) -> Option<String> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.text().await.ok()
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Status of a `fetch` from the page (the session's cookie goes along).
async fn fetch_status(c: &Client, path: &str) -> u64 {
    let v = c
        .execute_async(&format!("const done = arguments[0]; fetch('{path}').then(r => done(r.status), () => done(0));"), vec![])
        .await
        .unwrap_or_else(|e| panic!("fetch {path}: {e}"));
    v.as_u64().unwrap_or(0)
}

/// Body of a `fetch` from the page, as text (empty when it failed).
async fn fetch_text(c: &Client, path: &str) -> String {
    let v = c
        .execute_async(&format!("const done = arguments[0]; fetch('{path}').then(r => r.text()).then(done, () => done(''));"), vec![])
        .await
        .unwrap_or_else(|e| panic!("fetch {path}: {e}"));
    v.as_str().unwrap_or_default().to_string()
}

async fn login(c: &Client, base: &str, name: &str, shot_name: Option<&str>) {
    c.goto(&format!("{base}/login")).await.unwrap_or_else(|e| panic!("{e}"));
    c.find(Locator::Css("input[name=name]")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASSWORD).await.unwrap();
    if let Some(n) = shot_name {
        shot(c, n).await;
    }
    c.find(Locator::Css("form button[type=submit], form input[type=submit]")).await.unwrap().click().await.unwrap();
    eventually(Duration::from_secs(10), "the console after login", || async {
        let who = text_of(c, ".who").await?;
        who.contains(name).then_some(())
    })
    .await;
}

async fn logout(c: &Client) {
    c.find(Locator::Css("form.logout button")).await.unwrap().click().await.unwrap();
    eventually(Duration::from_secs(10), "the login form after logout", || async {
        c.find(Locator::Css("input[name=password]")).await.ok().map(|_| ())
    })
    .await;
}

/// WCAG contrast ratios of the text of `selectors` against the nearest opaque background.
async fn contrast(c: &Client, selectors: &[&str]) -> Vec<(String, f64)> {
    let script = r#"
const lum = c => { const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const bg = el => { for (let e = el; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; const a = c.match(/[\d.]+/g); if (a && (a.length < 4 || Number(a[3]) > 0.5)) return c; } return "rgb(255,255,255)"; };
return arguments[0].map(sel => { const el = document.querySelector(sel); if (!el) return [sel, 0]; const a = lum(getComputedStyle(el).color), b = lum(bg(el)); return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
"#;
    let v = c.execute(script, vec![json!(selectors)]).await.unwrap_or_else(|e| panic!("contrast: {e}"));
    v.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap())).collect()
}

fn person(id: &str, name: &str, team: &str, device: &str, checks: Value) -> Value {
    json!({
        "id": id, "name": name, "address": format!("{name}s väg 1"), "team": team,
        "position": {"lat": 64.75, "lon": 20.95}, "devices": [device], "camera_device": device,
        "checks": checks,
        "consent": {"windows": ["00:00-23:59"], "record": {"given": "2026-09-14", "basis": "samtycke"}}
    })
}

fn alarm_of(hub: &Hub, kind: &str) -> Option<Value> {
    hub.try_get("/api/v1/alarms")?.as_array()?.iter().find(|a| a["kind"] == kind).cloned()
}

struct Driver(Proc);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

async fn browser(dir: &std::path::Path) -> (Driver, Client) {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(std::path::Path::new(tool).exists(), "{tool} is missing: scripts/test installs Debian's chromium and chromium-driver");
    }
    let port = free_port();
    let driver = Driver(Proc::spawn("chromedriver", "/usr/bin/chromedriver", &[&format!("--port={port}")], dir.join("chromedriver.log")));
    wait_until(Duration::from_secs(30), "chromedriver", || port_open(port).then_some(()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900", "--lang=sv-SE"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
    (driver, client)
}

/// One key press, sent to whatever has the focus (as a person's keyboard does).
async fn press(c: &Client, key: Key) {
    let k: char = key.into();
    let keys = KeyActions::new("keyboard".into()).then(KeyAction::Down { value: k }).then(KeyAction::Up { value: k });
    c.perform_actions(keys).await.unwrap_or_else(|e| panic!("key press: {e}"));
}

async fn find(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn night_staff_and_installer_work_the_console_in_a_real_browser() {
    let dir = temp_dir("browser");
    // Round time 21:59:30 at the anchor; the shift starts at 22:00, the camera check is at 22:01.
    let anchor = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(20);
    let extra = format!(
        "[cameras]\ncheck_open = \"180s\"\nsnapshot_view_span = \"5s\"\n\n[rounds]\nshift = \"22:00-06:00\"\n[rounds.simulated_clock]\nstart = \"2026-11-23T21:59:30+01:00\"\nanchor = \"{anchor}\"\nspeed = {SPEED}\n"
    );
    let http = format!("alarm_signal = \"5s\"\n[[http.tokens]]\nname = \"sara.ssk\"\nrole = \"nurse\"\ntoken = \"{NURSE}\"\n");
    let hub = Hub::start(dir.path(), HubOpts { extra, http, ..HubOpts::default() });
    let base = format!("http://127.0.0.1:{}", hub.http_port);

    // Accounts (by the administrator) and care plans (by a nurse).
    for (name, role, team) in [("anna", "night_staff", "centrum"), ("ivar", "installer", "centrum"), ("alva", "admin", "centrum")] {
        let (status, body) = hub.send("PUT", &format!("/api/v1/users/{name}"), &hub.token, &json!({"role": role, "teams": [team], "password": PASSWORD}));
        assert_eq!(status, 200, "{body}");
    }
    let plans = [
        ("person-a", person("person-a", "Astrid Ek", "centrum", "home-a", json!([{"at": "22:01", "method": "camera"}]))),
        ("person-b", person("person-b", "Bertil Lund", "byar", "home-b", json!([]))),
    ];
    // Someone the patrol visits at 23:30, a few kilometres out.
    let mut visited = person("person-c", "Cecilia Berg", "centrum", "home-c", json!([{"at": "23:30", "method": "visit", "notes": "Vända i sängen"}]));
    visited["position"] = json!({"lat": 64.77, "lon": 21.02});
    let (status, body) = hub.send("PUT", "/api/v1/care/recipients/person-c", NURSE, &visited);
    assert_eq!(status, 200, "{body}");
    for (id, plan) in &plans {
        let (status, body) = hub.send("PUT", &format!("/api/v1/care/recipients/{id}"), NURSE, plan);
        assert_eq!(status, 200, "{body}");
    }
    let patrol = json!({"id": "bil-1", "team": "centrum", "name": "Bil 1", "start": {"lat": 64.75, "lon": 20.95}, "end": {"lat": 64.75, "lon": 20.95}, "shift_start": "21:45", "shift_end": "06:30"});
    let (status, body) = hub.send("PUT", "/api/v1/care/patrols/bil-1", NURSE, &patrol);
    assert_eq!(status, 200, "{body}");

    // Astrid's home: a camera that sees the room lit (its verdict is `unclear`).
    let mut opts = AgentOpts::new("home-a", hub.broker());
    opts.extra = "[camera]\nsource = \"simulator\"\nscenario = \"lights_on\"\nseed = 7\nframes = 3\nspan = \"1s\"\nwidth = 320\nheight = 240\n\n[camera.consent]\nwindows = [\"00:00-23:59\"]\n[camera.consent.record]\ngiven = 2026-09-14\nbasis = \"samtycke\"\n".into();
    let home_a = Agent::start(dir.path(), opts);

    let (_driver, c) = browser(dir.path()).await;

    // 1. Log in; the Now view is empty.
    login(&c, &base, "anna", Some("01-login")).await;
    let items = text_of(&c, "#items").await.unwrap_or_default();
    assert!(items.contains("Inget larm"), "{items}");

    // 2. A GPS alarm appears without a reload, with the unacknowledged signal.
    let marker = js(&c, "window.__same_page = 'yes'; return 1;").await;
    assert_eq!(marker, json!(1));
    home_a.intake().accept(r#"{"kind":"geofence_left","body":{"area":"hemma","lat":64.76,"lon":20.97,"distance_outside_m":140.0}}"#);
    eventually(Duration::from_secs(20), "the GPS alarm on the Now view", || async {
        c.find(Locator::Css("article[data-kind=geofence_left][data-unacked]")).await.ok().map(|_| ())
    })
    .await;
    assert_eq!(js(&c, "return window.__same_page || 'reloaded';").await, json!("yes"), "the page was reloaded");
    let item = text_of(&c, "article[data-kind=geofence_left]").await.unwrap();
    assert!(item.contains("GPS") && item.contains("Astrid Ek") && item.contains("Ej kvitterat"), "{item}");
    eventually(Duration::from_secs(10), "the unacknowledged-alarm banner", || async {
        let class = find(&c, "#signal").await.attr("class").await.ok()??;
        class.contains("show").then_some(())
    })
    .await;
    shot(&c, "02-now-alarm").await;

    // 3. Acknowledge with the keyboard only: Tab from the top of the page to the button, Enter.
    let alarm = alarm_of(&hub, "geofence_left").expect("the alarm at the hub");
    let id = alarm["id"].as_i64().unwrap();
    js(&c, "document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); return 1;").await;
    let mut reached = false;
    for _ in 0..40 {
        press(&c, Key::Tab).await;
        let active = c.active_element().await.unwrap().attr("id").await.unwrap_or_default().unwrap_or_default();
        if active == format!("ack-{id}") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the acknowledge button");
    press(&c, Key::Enter).await;
    eventually(Duration::from_secs(10), "the acknowledgement", || async {
        let a = alarm_of(&hub, "geofence_left")?;
        (a["handling"]["acked_by"] == "anna").then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the acknowledgement on the page", || async {
        text_of(&c, &format!("#alarm-{id}")).await.filter(|t| t.contains("Kvitterat av anna")).map(|_| ())
    })
    .await;

    // 4. Assign to the patrol, then resolve with an outcome and a note.
    find(&c, &format!("#patrol-{id} option[value=bil-1]")).await.click().await.unwrap();
    find(&c, &format!("#assign-patrol-{id}")).await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the assignment", || async {
        (alarm_of(&hub, "geofence_left")?["handling"]["assigned_to"] == "patrol:bil-1").then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the assignment on the page", || async {
        text_of(&c, &format!("#alarm-{id}")).await.filter(|t| t.contains("Bil 1")).map(|_| ())
    })
    .await;
    find(&c, &format!("#outcome-{id} option[value=helped]")).await.click().await.unwrap();
    find(&c, &format!("#note-{id}")).await.send_keys("Hittad vid busshållplatsen, följd hem").await.unwrap();
    find(&c, &format!("#resolve-{id}")).await.click().await.unwrap();
    let resolved = eventually(Duration::from_secs(10), "the resolution", || async {
        let a = alarm_of(&hub, "geofence_left")?;
        (a["handling"]["outcome"] == "helped").then_some(a)
    })
    .await;
    assert_eq!(resolved["handling"]["resolved_by"], "anna");
    assert_eq!(resolved["handling"]["note"], "Hittad vid busshållplatsen, följd hem");
    eventually(Duration::from_secs(10), "the resolved alarm to leave the Now view", || async {
        c.find(Locator::Css(&format!("#alarm-{id}"))).await.err().map(|_| ())
    })
    .await;
    let audit: Vec<String> = hub.get("/api/v1/audit").as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap_or_default().to_string()).collect();
    for step in ["alarm_acknowledged", "alarm_assigned", "alarm_resolved"] {
        assert!(audit.contains(&step.to_string()), "{step} not audited: {audit:?}");
    }
    // The month's report counts the alarm with its response times. A month runs from its first
    // night's shift start (22:00 here) to the next month's.
    let raised: jiff::Timestamp = resolved["raised_at"].as_str().unwrap().parse().unwrap();
    let local = raised.in_tz("Europe/Stockholm").unwrap().checked_sub(jiff::SignedDuration::from_hours(22)).unwrap();
    let report = hub.get(&format!("/api/v1/reports/months/{}", local.strftime("%Y-%m")));
    let centrum = report["teams"].as_array().unwrap().iter().find(|t| t["team"] == "centrum").cloned().unwrap_or_default();
    assert!(centrum["alarms"].as_u64().unwrap_or(0) >= 1, "{report}");
    let acked = &centrum["alarm_to_acknowledged_min"];
    let done = &centrum["alarm_to_resolved_min"];
    assert!(acked["count"].as_u64().unwrap_or(0) >= 1 && done["count"].as_u64().unwrap_or(0) >= 1, "{centrum}");
    assert!(acked["max"].as_f64().unwrap() <= done["max"].as_f64().unwrap(), "{centrum}");

    // 5. Night-time contrast of the dark theme (WCAG: 4.5:1 for text, 7:1 aimed for body text).
    for (sel, ratio) in contrast(&c, &["body", "h2", "nav a", "#conn", ".who", "main p"]).await {
        assert!(ratio >= 7.0 || (sel != "body" && ratio >= 4.5), "{sel}: contrast {ratio:.1}:1");
    }

    // 6. A person of another team: neither the page nor the API.
    c.goto(&format!("{base}/people/person-b")).await.unwrap();
    let page = text_of(&c, "main").await.unwrap_or_default();
    assert!(page.contains("Finns inte") && !page.contains("Bertil"), "{page}");
    assert_eq!(fetch_status(&c, "/api/v1/care/recipients/person-b").await, 404);
    assert_eq!(fetch_status(&c, "/api/v1/care/recipients/person-a").await, 200);
    c.goto(&format!("{base}/people/person-a")).await.unwrap();
    let page = text_of(&c, "main").await.unwrap_or_default();
    assert!(page.contains("Astrid Ek") && page.contains("home-a") && page.contains("geofence_left"), "{page}");
    shot(&c, "03-person").await;

    // 7. Tonight's round: the unclear check, its snapshot shown for the viewing span and gone.
    let check = eventually(Duration::from_secs(150), "the 22:01 camera check to be unclear", || async {
        let current = hub.try_get("/api/v1/rounds/current")?;
        current["checks"].as_array()?.iter().find(|c| c["state"] == "awaiting_staff").cloned()
    })
    .await;
    let check_id = check["id"].as_str().unwrap().to_string();
    c.goto(&format!("{base}/round")).await.unwrap();
    let row = format!("tr[id='row-{check_id}']");
    find(&c, &format!("{row} button[data-act=look]")).await.click().await.unwrap();
    let img = eventually(Duration::from_secs(30), "the snapshot on screen", || async {
        let img = c.find(Locator::Css(&format!("{row} .snap img"))).await.ok()?;
        let loaded = c.execute("return arguments[0].complete && arguments[0].naturalWidth", vec![serde_json::to_value(&img).ok()?]).await.ok()?;
        (loaded.as_u64()? > 0).then_some(img)
    })
    .await;
    assert!(img.attr("src").await.unwrap().unwrap_or_default().starts_with("blob:"), "the picture is held only in the page's memory");
    let shown = Instant::now();
    shot(&c, "04-round-snapshot").await;
    eventually(Duration::from_secs(20), "the snapshot to be removed", || async {
        let text = text_of(&c, &format!("{row} .snap")).await?;
        (c.find(Locator::Css(&format!("{row} .snap img"))).await.is_err() && text.contains("Bilden är borttagen")).then_some(())
    })
    .await;
    let on_screen = shown.elapsed();
    assert!(on_screen >= Duration::from_secs(4), "removed after {on_screen:?}, before the 5 s span");
    // Fetched once: a second look gets nothing.
    let camera = check["attempts"][0]["camera_check"].as_str().unwrap().to_string();
    assert_eq!(fetch_status(&c, &format!("/api/v1/checks/{camera}/snapshot")).await, 404);
    find(&c, &format!("{row} button[data-act=well]")).await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the decision to end the check", || async {
        let current = hub.try_get("/api/v1/rounds/current")?;
        let c = current["checks"].as_array()?.iter().find(|c| c["id"] == check_id.as_str())?.clone();
        (c["outcome"]["outcome"] == "checked_by_camera").then_some(())
    })
    .await;
    let audit: Vec<String> = hub.get("/api/v1/audit").as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap_or_default().to_string()).collect();
    assert!(audit.contains(&"snapshot_viewed".to_string()), "{audit:?}");
    c.goto(&format!("{base}/round")).await.unwrap();
    shot(&c, "05-round").await;
    c.goto(&format!("{base}/patrols")).await.unwrap();
    let patrols = text_of(&c, "main").await.unwrap_or_default();
    assert!(patrols.contains("Bil 1") && patrols.contains("Cecilia Berg"), "{patrols}");
    assert_eq!(js(&c, "return document.querySelectorAll('svg.map circle').length;").await, json!(1), "one visit on the map");
    shot(&c, "06-patrols").await;
    // The month's report: the round's night in the chart.
    c.goto(&format!("{base}/reports?month=2026-11")).await.unwrap();
    assert!(js(&c, "return document.querySelectorAll('svg rect').length;").await.as_u64().unwrap_or(0) >= 1, "no bar in the chart");
    let report = text_of(&c, "main").await.unwrap_or_default();
    assert!(report.contains("centrum") && report.contains("Väckningar undvikna"), "{report}");
    assert!(report.contains("Larm → kvitterat"), "{report}");
    let response = js(&c, "return document.querySelectorAll('#response-chart, #response-none').length;").await;
    assert_eq!(response, json!(1), "the response-time chart (or its empty note)");
    shot(&c, "09-reports").await;
    // The language toggle.
    c.goto(&format!("{base}/lang/en")).await.unwrap();
    let nav = text_of(&c, "nav").await.unwrap_or_default();
    assert!(nav.contains("Tonight's round"), "{nav}");
    c.goto(&format!("{base}/lang/sv")).await.unwrap();

    // 8. The installer registers a device for Astrid and sees its first event.
    logout(&c).await;
    login(&c, &base, "ivar", None).await;
    c.goto(&format!("{base}/devices")).await.unwrap();
    find(&c, "#reg-device").await.send_keys("home-a2").await.unwrap();
    find(&c, "#reg-recipient option[value=person-a]").await.click().await.unwrap();
    find(&c, "#reg-gps").await.click().await.unwrap();
    shot(&c, "07-devices").await;
    find(&c, "#reg-submit").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the new device's page", || async {
        let first = c.find(Locator::Css("#first")).await.ok()?.attr("class").await.ok()??;
        first.contains("waiting").then_some(())
    })
    .await;
    assert_eq!(js(&c, "window.__same_device_page = 'yes'; return 1;").await, json!(1));
    let toml = fetch_text(&c, "/devices/home-a2/agent.toml").await;
    assert!(toml.contains("device_id = \"home-a2\""), "{toml}");
    assert_eq!(fetch_status(&c, "/devices/home-a2/bundle.tar").await, 200, "the provisioning bundle");
    let new_home = Agent::start(dir.path(), AgentOpts::new("home-a2", hub.broker()));
    new_home.intake().accept(r#"{"kind":"position","body":{"lat":64.75,"lon":20.95}}"#);
    eventually(Duration::from_secs(20), "the first event indicator", || async {
        let first = c.find(Locator::Css("#first")).await.ok()?;
        (first.attr("class").await.ok()??.contains("seen")).then_some(())
    })
    .await;
    assert_eq!(js(&c, "return window.__same_device_page || 'reloaded';").await, json!("yes"));
    // The test check: this device has no camera, and says so.
    find(&c, "#test-check").await.click().await.unwrap();
    eventually(Duration::from_secs(30), "the test check's answer", || async {
        text_of(&c, "#test-result").await.filter(|t| t.contains("camera_fault")).map(|_| ())
    })
    .await;
    shot(&c, "08-device-first-event").await;
    let plan = hub.get("/api/v1/care/recipients/person-a");
    assert!(plan["devices"].as_array().unwrap().contains(&json!("home-a2")), "{plan}");
    assert_eq!(plan["gps_device"], "home-a2", "{plan}");

    // 8b. The installer draws Astrid's safe areas: a circle round the home (its centre put by
    // a click on the drawing), a polygon from typed corners; a polygon of two corners is
    // refused with the device's own words; the agent configuration carries both areas.
    c.goto(&format!("{base}/people/person-a")).await.unwrap();
    assert!(text_of(&c, "#areas-none").await.is_some(), "no areas yet");
    find(&c, "#area-centre").await.clear().await.unwrap();
    find(&c, "#area-map").await.click().await.unwrap();
    let centre = js(&c, "return document.getElementById('area-centre').value;").await;
    let ll: Vec<f64> = centre.as_str().unwrap_or_default().split(',').filter_map(|s| s.trim().parse().ok()).collect();
    assert!(ll.len() == 2 && (ll[0] - 64.75).abs() < 0.001 && (ll[1] - 20.95).abs() < 0.002, "a click mid-drawing is the home: {centre}");
    find(&c, "#area-name").await.send_keys("Hemma").await.unwrap();
    find(&c, "#area-radius").await.clear().await.unwrap();
    find(&c, "#area-radius").await.send_keys("200").await.unwrap();
    find(&c, "#area-active").await.send_keys("20:00-08:00").await.unwrap();
    find(&c, "#area-add").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the circle in the list", || async {
        text_of(&c, "#areas").await.filter(|t| t.contains("Hemma") && t.contains("200 m")).map(|_| ())
    })
    .await;
    let add_polygon = |name: &'static str, corners: &'static str| {
        let c = c.clone();
        async move {
            find(&c, "#area-kind option[value=polygon]").await.click().await.unwrap();
            find(&c, "#area-name").await.send_keys(name).await.unwrap();
            find(&c, "#area-points").await.send_keys(corners).await.unwrap();
            find(&c, "#area-add").await.click().await.unwrap();
        }
    };
    add_polygon("Halvt", "64.751, 20.949\n64.752, 20.951").await;
    eventually(Duration::from_secs(10), "the refusal", || async {
        text_of(&c, "#area-result").await.filter(|t| t.contains("safe_areas[1].polygon: has 2 corner(s)")).map(|_| ())
    })
    .await;
    c.goto(&format!("{base}/people/person-a")).await.unwrap();
    add_polygon("Kvarteret", "64.753, 20.944\n64.753, 20.956\n64.749, 20.960\n64.7465, 20.950").await;
    eventually(Duration::from_secs(10), "the polygon in the list", || async {
        text_of(&c, "#areas").await.filter(|t| t.contains("Kvarteret")).map(|_| ())
    })
    .await;
    assert_eq!(js(&c, "return document.querySelectorAll('#area-map circle, #area-map polygon').length;").await, json!(2));
    shot(&c, "13-safe-areas").await;
    let areas = hub.get("/api/v1/care/recipients/person-a")["safe_areas"].clone();
    assert_eq!(areas[0]["circle"]["radius_m"], 200.0, "{areas}");
    assert_eq!(areas[0]["active"], json!(["20:00-08:00"]));
    assert_eq!(areas[1]["polygon"].as_array().map(Vec::len), Some(4), "{areas}");
    let toml = fetch_text(&c, "/devices/home-a2/agent.toml").await;
    assert!(toml.contains("[[gps.areas]]") && toml.contains("name = \"Hemma\"") && toml.contains("name = \"Kvarteret\""), "{toml}");
    let audit: Vec<String> = hub.get("/api/v1/audit").as_array().unwrap().iter().map(|a| a["detail"].as_str().unwrap_or_default().to_string()).collect();
    assert!(audit.iter().any(|d| d.contains("safe areas [Hemma, Kvarteret]")), "{audit:?}");
    assert_eq!(fetch_status(&c, "/people/person-b").await, 404);
    assert_eq!(fetch_status(&c, "/admin").await, 403);

    // 8c. The installer calibrates Astrid's camera: refused until installer mode is switched
    // on at the device; then a corner of the bed zone is dragged over the calibration picture,
    // another moved with the keyboard, and the zone saved reaches the running agent.
    c.goto(&format!("{base}/devices/home-a")).await.unwrap();
    find(&c, "#calibrate").await.click().await.unwrap();
    eventually(Duration::from_secs(30), "the device's refusal", || async {
        text_of(&c, "#cal-status").await.filter(|t| t.contains("installer-mode")).map(|_| ())
    })
    .await;
    let config = home_a.config.display().to_string();
    let out = std::process::Command::new(bin("vaka-agent")).args(["camera", "installer-mode", "--config", &config, "--minutes", "5"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    find(&c, "#calibrate").await.click().await.unwrap();
    eventually(Duration::from_secs(30), "the calibration picture with the zone", || async {
        let shown = js(&c, "return !document.getElementById('cal-editor').hidden && !!document.getElementById('cal-img').getAttribute('href') && document.querySelectorAll('.cal-corner').length;").await;
        (shown.as_i64().unwrap_or(0) >= 3).then_some(())
    })
    .await;
    let points = || async { js(&c, "return document.getElementById('cal-poly').getAttribute('points');").await };
    let before = points().await;
    let corner = find(&c, ".cal-corner[data-index='0']").await;
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement { element: corner, duration: None, x: 0.0, y: 0.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::MoveBy { duration: Some(Duration::from_millis(300)), x: 40.0, y: 30.0 })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    c.perform_actions(drag).await.unwrap();
    let dragged = points().await;
    assert_ne!(before, dragged, "the drag moved the corner");
    js(&c, "document.querySelector('.cal-corner[data-index=\"2\"]').focus(); return 1;").await;
    for _ in 0..3 {
        press(&c, Key::Left).await;
    }
    assert_ne!(points().await, dragged, "the arrow keys moved a corner");
    shot(&c, "13-calibration").await;
    find(&c, "#cal-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the zone saved", || async {
        text_of(&c, "#cal-status").await.filter(|t| t.contains("sparad")).map(|_| ())
    })
    .await;
    let kept = home_a.outbox.parent().unwrap().join("bed-zone.json");
    let device_zone = hub.get("/api/v1/devices/home-a/calibration")["device_zone"].clone();
    let kept: Value = eventually(Duration::from_secs(20), "the zone kept by the agent", || async {
        serde_json::from_str(&std::fs::read_to_string(&kept).ok()?).ok()
    })
    .await;
    assert_eq!(kept.as_array().map(Vec::len), device_zone.as_array().map(Vec::len), "{kept} {device_zone}");
    assert_ne!(kept[0], device_zone[0], "corner 0 was dragged: {kept} {device_zone}");
    assert_ne!(kept[2], device_zone[2], "corner 2 was moved: {kept} {device_zone}");

    // 9. The administrator adds an account on the admin page.
    logout(&c).await;
    login(&c, &base, "alva", None).await;
    c.goto(&format!("{base}/admin")).await.unwrap();
    find(&c, "#user-name").await.send_keys("nils").await.unwrap();
    find(&c, "#user-role option[value=nurse]").await.click().await.unwrap();
    find(&c, "#user-teams").await.send_keys("centrum, byar").await.unwrap();
    find(&c, "#user-password").await.send_keys("sjuksköterska-2026").await.unwrap();
    find(&c, "#user-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the new account in the list", || async {
        text_of(&c, "#users").await.filter(|t| t.contains("nils")).map(|_| ())
    })
    .await;
    let users = hub.get("/api/v1/users");
    let nils = users.as_array().unwrap().iter().find(|u| u["name"] == "nils").cloned().unwrap_or_default();
    assert_eq!((nils["role"].as_str(), nils["teams"].clone()), (Some("nurse"), json!(["centrum", "byar"])), "{users}");
    shot(&c, "10-admin").await;
    c.goto(&format!("{base}/people/person-c")).await.unwrap();
    let notes = js(&c, "return document.querySelector('#check-rows .check-notes').value + ' | ' + document.getElementById('plan').value;").await;
    assert_eq!(notes.as_str().unwrap_or_default().matches("Vända i sängen").count(), 2, "the plan's form and its JSON show the plan: {notes}");

    // 9b. A new person through the form, then their night checks: a camera check without a
    // consent record is refused with the API's words, a visit is stored.
    c.goto(&format!("{base}/people")).await.unwrap();
    for (id, text) in [("#person-id", "person-d"), ("#person-name", "Dagny Holm"), ("#person-address", "Byvägen 4"), ("#person-team", "centrum"), ("#person-position", "64.74, 20.97")] {
        find(&c, id).await.send_keys(text).await.unwrap();
    }
    find(&c, "#person-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the new person's page", || async {
        text_of(&c, "h2").await.filter(|t| t.contains("Dagny Holm")).map(|_| ())
    })
    .await;
    find(&c, "#check-add").await.click().await.unwrap();
    js(&c, "const row = document.querySelector('#check-rows .check-row:last-child'); row.querySelector('.check-at').value = '23:15'; row.querySelector('.check-notes').value = 'Titta till'; return 1;").await;
    find(&c, "#checks-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the refusal of a camera check without consent", || async {
        text_of(&c, "#checks-result").await.filter(|t| t.contains("checks[0].method: camera needs")).map(|_| ())
    })
    .await;
    find(&c, "#check-rows .check-row:last-child .check-method option[value=visit]").await.click().await.unwrap();
    find(&c, "#plan-nights").await.send_keys("2026-12-24").await.unwrap();
    find(&c, "#checks-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the stored visit", || async {
        let plan = hub.try_get("/api/v1/care/recipients/person-d")?;
        (plan["checks"][0]["method"] == "visit").then_some(())
    })
    .await;
    let plan = hub.get("/api/v1/care/recipients/person-d");
    assert_eq!((plan["checks"][0]["at"].as_str(), plan["checks"][0]["notes"].as_str()), (Some("23:15:00"), Some("Titta till")), "{plan}");
    assert_eq!(plan["opted_out_nights"], json!(["2026-12-24"]));
    c.goto(&format!("{base}/people/person-d")).await.unwrap();
    shot(&c, "14-plan-form").await;

    // 9c. A second patrol added on the patrols page, then removed.
    c.goto(&format!("{base}/patrols")).await.unwrap();
    for (id, text) in [("#patrol-id", "bil-2"), ("#patrol-name", "Bil 2: Omar"), ("#patrol-team", "centrum"), ("#patrol-start", "64.75, 20.95")] {
        find(&c, id).await.send_keys(text).await.unwrap();
    }
    find(&c, "#patrol-save").await.click().await.unwrap();
    eventually(Duration::from_secs(10), "the new patrol in the list", || async {
        text_of(&c, "#patrol-rows").await.filter(|t| t.contains("Bil 2: Omar") && t.contains("21:00–07:00")).map(|_| ())
    })
    .await;
    let patrols = hub.get("/api/v1/care/patrols");
    let bil2 = patrols.as_array().unwrap().iter().find(|p| p["id"] == "bil-2").cloned().unwrap_or_default();
    assert_eq!((bil2["end"]["lat"].as_f64(), bil2["shift_end"].as_str()), (Some(64.75), Some("07:00:00")), "{patrols}");
    shot(&c, "15-patrols-admin").await;
    find(&c, ".patrol-remove[data-id=bil-2]").await.click().await.unwrap();
    c.accept_alert().await.unwrap();
    eventually(Duration::from_secs(10), "the patrol removed", || async {
        let patrols = hub.try_get("/api/v1/care/patrols")?;
        (!patrols.as_array()?.iter().any(|p| p["id"] == "bil-2")).then_some(())
    })
    .await;

    // 10. On a phone-sized screen the views fit the width.
    c.set_window_size(390, 844).await.unwrap();
    for (path, name) in [("/", "11-phone-now"), ("/round", "12-phone-round")] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let overflow = js(&c, "return document.documentElement.scrollWidth - document.documentElement.clientWidth;").await;
        assert!(overflow.as_i64().unwrap_or(99) <= 1, "{path} is wider than a phone by {overflow} px");
        shot(&c, name).await;
    }

    c.close().await.unwrap();
}
