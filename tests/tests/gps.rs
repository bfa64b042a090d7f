//! Issue 4, acceptance 4 (GPS): a replayed NMEA track that leaves the safe area reaches the
//! hub as a `geofence_left` alarm, decided on the device while the hub was down.

use std::time::Duration;
use vaka_e2e::*;

/// Home of the test person (Skellefteå) and the radius of the safe area around it.
const HOME: (f64, f64) = (64.7507, 20.9528);
const RADIUS_M: f64 = 150.0;

/// `ddmm.mmmm,H` / `dddmm.mmmm,H` as NMEA writes degrees.
fn nmea_angle(deg: f64, width: usize, pos: char, neg: char) -> String {
    let hemisphere = if deg >= 0.0 { pos } else { neg };
    let deg = deg.abs();
    let whole = deg.trunc();
    let minutes = (deg - whole) * 60.0;
    format!("{:0width$}{:07.4},{hemisphere}", whole as u32, minutes, width = width)
}

/// A sentence with its checksum.
fn sentence(body: &str) -> String {
    let sum = body.bytes().fold(0u8, |acc, b| acc ^ b);
    format!("${body}*{sum:02X}")
}

/// One receiver epoch (GGA + RMC, 3D fix, HDOP 0.9) at `second` past 22:00:00 UTC.
fn epoch(second: u32, lat: f64, lon: f64, knots: f64) -> String {
    let time = format!("22{:02}{:02}.00", second / 60, second % 60);
    let (lat, lon) = (nmea_angle(lat, 2, 'N', 'S'), nmea_angle(lon, 3, 'E', 'W'));
    let gga = sentence(&format!("GPGGA,{time},{lat},{lon},1,09,0.9,45.0,M,20.1,M,,"));
    let rmc = sentence(&format!("GPRMC,{time},A,{lat},{lon},{knots:.1},0.0,231126,,,A"));
    format!("{gga}\r\n{rmc}\r\n")
}

/// Stays home, walks 400 m north (250 m outside the area) for a while, comes back.
fn track() -> String {
    let north_400m = HOME.0 + 400.0 / 111_320.0;
    let mut s = String::new();
    let mut t = 0;
    for _ in 0..5 {
        s += &epoch(t, HOME.0, HOME.1, 0.0);
        t += 1;
    }
    for _ in 0..25 {
        s += &epoch(t, north_400m, HOME.1, 2.4);
        t += 1;
    }
    for _ in 0..25 {
        s += &epoch(t, HOME.0, HOME.1, 0.0);
        t += 1;
    }
    s
}

fn gps_section(dir: &std::path::Path) -> String {
    let path = dir.join("track.nmea");
    std::fs::write(&path, track()).unwrap_or_else(|e| panic!("{e}"));
    format!(
        r#"
[gps]
source = "nmea"
path = "{}"
replay_interval = "100ms"
margin_m = 25.0
dwell = "1s"
report_alarm = "1s"
report_idle = "15m"

[[gps.areas]]
name = "hemmet"
circle = {{ lat = {}, lon = {}, radius_m = {RADIUS_M} }}
"#,
        path.display(),
        HOME.0,
        HOME.1
    )
}

fn kinds(hub: &Hub, device: &str) -> Vec<String> {
    let mut events = hub.events(device);
    events.sort_by_key(|e| e["seq"].as_u64());
    events.iter().filter_map(|e| e["kind"].as_str().map(str::to_string)).collect()
}

#[test]
fn a_track_leaving_the_safe_area_raises_one_alarm_on_the_device_that_reaches_the_hub_after_it_was_down() {
    let dir = temp_dir("gps");
    let mosquitto = Mosquitto::start(dir.path(), None);
    let mut hub = Hub::start(dir.path(), HubOpts { external: Some(mosquitto.broker(None)), ..HubOpts::default() });
    hub.proc.terminate();

    // The hub is down while the person leaves: the agent decides alone.
    let mut opts = AgentOpts::new("gps-1", mosquitto.broker(None));
    opts.extra = gps_section(dir.path());
    let agent = Agent::start(dir.path(), opts);
    wait_until(Duration::from_secs(60), "the agent to raise geofence_left", || {
        agent.proc.log_text().contains("Alarm raised on the device: geofence_left").then_some(())
    });
    assert!(hub.try_get("/api/v1/events").is_none(), "the hub must still be down");

    hub.start_again();
    let events = wait_until(Duration::from_secs(60), "geofence_left and geofence_returned at the hub", || {
        let events = hub.events("gps-1");
        let has = |k: &str| events.iter().any(|e| e["kind"] == k);
        (has("geofence_left") && has("geofence_returned")).then_some(events)
    });
    let left: Vec<_> = events.iter().filter(|e| e["kind"] == "geofence_left").collect();
    assert_eq!(left.len(), 1, "one alarm, not one per position: {events:?}");
    let alarm = left[0];
    assert_eq!(alarm["severity"], "alarm", "{alarm}");
    assert_eq!(alarm["body"]["area"], "hemmet", "{alarm}");
    let outside = alarm["body"]["distance_outside_m"].as_f64().unwrap_or_default();
    assert!((200.0..=300.0).contains(&outside), "250 m outside, measured {outside} m: {alarm}");
    let lat = alarm["body"]["lat"].as_f64().unwrap_or_default();
    assert!((lat - (HOME.0 + 400.0 / 111_320.0)).abs() < 1e-5, "{alarm}");
    let speed = alarm["body"]["speed_mps"].as_f64().unwrap_or_default();
    assert!((speed - 2.4 * 0.514_444).abs() < 0.01, "2.4 knots: {alarm}");

    // While the alarm was active, positions were reported often; the alarm is closed at the
    // hub by the return.
    let kinds = kinds(&hub, "gps-1");
    let i_left = kinds.iter().position(|k| k == "geofence_left").unwrap_or_default();
    let i_back = kinds.iter().position(|k| k == "geofence_returned").unwrap_or_default();
    assert!(i_left < i_back, "{kinds:?}");
    assert!(kinds[i_left..i_back].iter().filter(|k| *k == "position").count() >= 1, "{kinds:?}");
    let alarms = hub.get("/api/v1/alarms");
    let geofence = alarms
        .as_array()
        .and_then(|a| a.iter().find(|x| x["device"] == "gps-1" && x["kind"] == "geofence_left").cloned())
        .unwrap_or_else(|| panic!("no geofence_left alarm in {alarms}"));
    assert!(geofence["cleared_at"].is_string(), "{geofence}");
}
