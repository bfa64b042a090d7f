//! The GPS shell with real inputs: a gpsd speaking JSON over TCP, and the button socket.

use super::*;
use crate::clock::system_clock;
use crate::decisions::testing::Memory;
use crate::gps::geofence::{Area, Schedule, Shape};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixStream};

const HOME: (f64, f64) = (64.7507, 20.9528);

fn tpv(lat: f64, lon: f64) -> String {
    format!(
        "{{\"class\":\"TPV\",\"device\":\"/dev/ttyACM0\",\"mode\":3,\"time\":\"{}\",\"lat\":{lat},\"lon\":{lon},\"alt\":45.0,\"speed\":1.2,\"eph\":4.5}}\n",
        Timestamp::now()
    )
}

async fn until(memory: &Memory, kind: &str) {
    for _ in 0..200 {
        if memory.kinds().contains(&kind) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} within 10 s: {:?}", memory.kinds());
}

#[tokio::test]
async fn positions_from_gpsd_and_a_press_on_the_sos_button_become_alarms() {
    let gpsd = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let buttons = dir.path().join("buttons.sock");
    let mut settings = GpsSettings::new(GpsSource::Gpsd { address: gpsd.local_addr().unwrap().to_string() });
    settings.buttons = Some(ButtonsInput::Socket(buttons.clone()));
    settings.dwell = Duration::from_secs(1);
    settings.areas = vec![Area {
        name: "hemmet".into(),
        shape: Shape::Circle { centre: HOME, radius_m: 150.0 },
        schedule: Schedule::Always,
    }];
    let memory = Memory::default();
    let clock = system_clock();
    let tracker = Tracker::new(&settings, clock());
    let service = tokio::spawn(run_with(settings, tracker, memory.clone(), clock));

    let (mut stream, _) = gpsd.accept().await.unwrap();
    stream.write_all(b"{\"class\":\"VERSION\",\"release\":\"3.25\",\"proto_major\":3,\"proto_minor\":15}\n").await.unwrap();
    stream.write_all(b"not json at all\n").await.unwrap();
    stream.write_all(tpv(HOME.0, HOME.1).as_bytes()).await.unwrap();
    until(&memory, "position").await;
    // 400 m north, for longer than the dwell.
    let north = HOME.0 + 400.0 / 111_320.0;
    for _ in 0..15 {
        stream.write_all(tpv(north, HOME.1).as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(&memory, "geofence_left").await;

    let mut button = UnixStream::connect(&buttons).await.unwrap();
    button.write_all(b"{\"event\":\"sos\"}\n{\"event\":\"battery\",\"percent\":9}\n").await.unwrap();
    until(&memory, "sos").await;
    until(&memory, "battery_low").await;
    let sos = memory.events().into_iter().find(|e| e.body.kind() == "sos").unwrap();
    assert_eq!(sos.severity.as_str(), "alarm");
    match sos.body {
        vaka_protocol::EventBody::Sos(s) => {
            assert!((s.lat.unwrap_or_default() - north).abs() < 1e-6, "the last good position: {s:?}")
        }
        other => panic!("{other:?}"),
    }
    let left = memory.kinds().iter().filter(|k| **k == "geofence_left").count();
    assert_eq!(left, 1, "{:?}", memory.kinds());
    service.abort();
}
