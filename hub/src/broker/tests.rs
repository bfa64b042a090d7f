//! What the hub relies on from rumqttd, proven with real clients over TCP.

use super::*;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};

fn client(broker: EmbeddedBroker, id: &str) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, broker.addr.ip().to_string(), broker.addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    AsyncClient::new(o, 64)
}

/// Polls until a publish arrives (or 5 s pass).
async fn next_publish(el: &mut EventLoop) -> rumqttc::Publish {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = el.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("no publish within 5 s")
}

async fn until_suback(el: &mut EventLoop) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("no suback");
}

fn drive(mut el: EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while el.poll().await.is_ok() {} })
}

#[tokio::test]
async fn embedded_broker_delivers_qos1_and_retained_messages_and_last_wills() {
    let broker = start("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_ne!(broker.addr.port(), 0);

    // A device publishes a retained status before anyone listens, and has a last will.
    let mut o = MqttOptions::new("dev-1", "127.0.0.1", broker.addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(512 * 1024, 512 * 1024);
    o.set_last_will(LastWill::new(
        "vaka/v1/s/dev-1/status",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (device, device_loop) = AsyncClient::new(o, 64);
    let device_task = drive(device_loop);
    device
        .publish("vaka/v1/s/dev-1/status", QoS::AtLeastOnce, true, "online")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (hub, mut hub_loop) = client(broker, "hub");
    hub.subscribe("vaka/v1/+/+/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    hub.subscribe("vaka/v1/+/+/events", QoS::AtLeastOnce)
        .await
        .unwrap();
    until_suback(&mut hub_loop).await;
    let retained = next_publish(&mut hub_loop).await;
    assert_eq!(
        (retained.payload.as_ref(), retained.retain),
        (b"online".as_ref(), true)
    );

    device
        .publish(
            "vaka/v1/s/dev-1/events",
            QoS::AtLeastOnce,
            false,
            vec![7u8; 200 * 1024],
        )
        .await
        .unwrap();
    let event = next_publish(&mut hub_loop).await;
    assert_eq!(
        (event.qos, event.payload.len()),
        (QoS::AtLeastOnce, 200 * 1024)
    );

    // The device vanishes without DISCONNECT: the broker publishes its will.
    device_task.abort();
    drop(device);
    let will = next_publish(&mut hub_loop).await;
    assert_eq!(
        (will.topic.as_str(), will.payload.as_ref()),
        ("vaka/v1/s/dev-1/status", b"offline".as_ref())
    );
}

#[test]
fn broker_on_a_taken_port_is_an_error_not_a_log_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = start(taken.local_addr().unwrap()).unwrap_err();
    assert!(matches!(err, BrokerError::Bind { .. }), "{err}");
}

#[tokio::test]
async fn embedded_broker_queues_qos1_messages_for_a_persistent_session_while_it_is_away() {
    let broker = start("127.0.0.1:0".parse().unwrap()).unwrap();
    let persistent = |id: &str| {
        let mut o = MqttOptions::new(id, "127.0.0.1", broker.addr.port());
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(false);
        AsyncClient::new(o, 64)
    };
    let (hub, mut hub_loop) = persistent("hub-session");
    hub.subscribe("vaka/v1/+/+/events", QoS::AtLeastOnce)
        .await
        .unwrap();
    until_suback(&mut hub_loop).await;
    hub.disconnect().await.unwrap();
    while !matches!(
        hub_loop.poll().await,
        Err(_) | Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))
    ) {}
    drop((hub, hub_loop));

    let (device, device_loop) = client(broker, "dev-2");
    let device_task = drive(device_loop);
    device
        .publish(
            "vaka/v1/s/dev-2/events",
            QoS::AtLeastOnce,
            false,
            "while away",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (_hub, mut hub_loop) = persistent("hub-session");
    let queued = next_publish(&mut hub_loop).await;
    assert_eq!(queued.payload.as_ref(), b"while away");
    device_task.abort();
}
