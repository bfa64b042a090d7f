use super::*;
use serialport::SerialPort;
use std::io::Write;
use tokio::io::AsyncReadExt;

async fn next(rx: &mut mpsc::Receiver<LineEvent>) -> LineEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no line event within 10 s"))
        .unwrap_or_else(|| panic!("the line source stopped"))
}

/// The next event that is a line, as (number, text); connection notices are skipped.
async fn next_line(rx: &mut mpsc::Receiver<LineEvent>) -> (u64, String) {
    loop {
        match next(rx).await {
            LineEvent::Line { number, text, .. } => return (number, text),
            LineEvent::Connected { .. } => {}
            other => panic!("expected a line, got {other:?}"),
        }
    }
}

#[test]
fn splitter_numbers_lines_strips_crlf_and_reports_bad_lines_by_number() {
    let origin: Arc<str> = "test".into();
    let mut s = Splitter::default();
    let line = |e: Option<LineEvent>| match e {
        Some(LineEvent::Line { number, text, .. }) => (number, text),
        other => panic!("{other:?}"),
    };
    assert_eq!(line(s.event(&origin, b"$GPGGA,1*00\r\n")), (1, "$GPGGA,1*00".into()));
    match s.event(&origin, b"\xff\xfe\n") {
        Some(LineEvent::Problem { number: Some(2), message, .. }) => {
            assert!(message.contains("UTF-8"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match s.event(&origin, &vec![b'x'; MAX_LINE + 1]) {
        Some(LineEvent::Problem { number: Some(3), message, .. }) => {
            assert!(message.contains("longer"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(line(s.event(&origin, b"last")), (4, "last".into()));
}

#[tokio::test]
async fn replay_reads_every_line_of_the_file_and_says_when_it_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("track.nmea");
    std::fs::write(&path, "one\r\ntwo\nthree").unwrap();
    let mut rx = spawn(LineSource::Replay { path });
    assert_eq!(next_line(&mut rx).await, (1, "one".into()));
    assert_eq!(next_line(&mut rx).await, (2, "two".into()));
    assert_eq!(next_line(&mut rx).await, (3, "three".into()));
    assert!(matches!(next(&mut rx).await, LineEvent::Ended { .. }));
}

#[tokio::test]
async fn a_missing_replay_file_is_a_problem_not_a_crash() {
    let mut rx = spawn(LineSource::Replay { path: "/nonexistent/track.nmea".into() });
    match next(&mut rx).await {
        LineEvent::Problem { message, .. } => assert!(message.contains("cannot open"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next(&mut rx).await, LineEvent::Ended { .. }));
}

#[tokio::test]
async fn socket_accepts_several_bridges_each_numbering_its_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispenser.sock");
    let mut rx = spawn(LineSource::Socket { path: path.clone() });
    let mut first = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::UnixStream::connect(&path).await {
            first = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = first.unwrap_or_else(|| panic!("socket never listened"));
    first.write_all(b"a1\na2\n").await.unwrap();
    assert_eq!(next_line(&mut rx).await, (1, "a1".into()));
    assert_eq!(next_line(&mut rx).await, (2, "a2".into()));
    drop(first);
    let mut second = tokio::net::UnixStream::connect(&path).await.unwrap();
    second.write_all(b"b1\n").await.unwrap();
    assert_eq!(next_line(&mut rx).await, (1, "b1".into()));
}

#[tokio::test]
async fn tcp_source_greets_the_server_and_reconnects_when_it_closes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let greeting = "?WATCH={\"enable\":true,\"json\":true};\n".to_string();
    let mut rx = spawn(LineSource::Tcp { address, greeting: Some(greeting.clone()) });
    for round in 1..=2 {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut got = vec![0u8; greeting.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, greeting.as_bytes());
        stream.write_all(format!("{{\"class\":\"VERSION\",\"round\":{round}}}\n").as_bytes()).await.unwrap();
        assert_eq!(next_line(&mut rx).await.0, 1, "numbering restarts per connection");
        drop(stream);
        match next(&mut rx).await {
            LineEvent::Problem { message, .. } => assert!(message.contains("reconnecting")),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn serial_source_reads_lines_from_a_pseudo_terminal() {
    let (mut device, port) = serialport::TTYPort::pair().unwrap();
    let path: PathBuf = port.name().unwrap_or_else(|| panic!("pty without a name")).into();
    let mut rx = spawn(LineSource::Serial { path, baud: 9600 });
    assert!(matches!(next(&mut rx).await, LineEvent::Connected { .. }));
    device.write_all(b"$GPGGA,first\r\n$GPRMC,second\r\n").unwrap();
    assert_eq!(next_line(&mut rx).await, (1, "$GPGGA,first".into()));
    assert_eq!(next_line(&mut rx).await, (2, "$GPRMC,second".into()));
    drop(port);
}
