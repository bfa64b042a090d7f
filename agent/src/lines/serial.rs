//! The serial reader: a blocking thread, because serial ports are read with timeouts, not
//! with readiness. It opens the port with its baud rate (8N1, no flow control, as GPS
//! receivers and dispenser bridges use), reads lines, and reopens the port when it goes away.

use super::{backoff, LineEvent, Splitter, MAX_LINE};
use std::io::{ErrorKind, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long one read waits for bytes; also how quickly the thread notices that nobody
/// listens any more.
const READ_TIMEOUT: Duration = Duration::from_millis(500);

pub(super) fn run(path: PathBuf, baud: u32, tx: mpsc::Sender<LineEvent>) {
    let origin: Arc<str> = format!("serial {}", path.display()).into();
    let mut backoff = backoff();
    let mut reported = false;
    while !tx.is_closed() {
        let name = path.to_string_lossy();
        match serialport::new(name, baud).timeout(READ_TIMEOUT).open() {
            Ok(port) => {
                backoff.reset();
                reported = false;
                if tx.blocking_send(LineEvent::Connected { origin: origin.clone() }).is_err() {
                    return;
                }
                let message = read_port(port, &origin, &tx);
                let event = LineEvent::Problem { origin: origin.clone(), number: None, message };
                if tx.blocking_send(event).is_err() {
                    return;
                }
            }
            Err(e) if !reported => {
                reported = true;
                let message = format!("cannot open: {e}; retrying");
                let event = LineEvent::Problem { origin: origin.clone(), number: None, message };
                if tx.blocking_send(event).is_err() {
                    return;
                }
            }
            Err(_) => {}
        }
        std::thread::sleep(backoff.next(rand::random()));
    }
}

/// Reads lines until the port fails; returns why it stopped.
fn read_port(
    mut port: Box<dyn serialport::SerialPort>,
    origin: &Arc<str>,
    tx: &mpsc::Sender<LineEvent>,
) -> String {
    let mut splitter = Splitter::default();
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    loop {
        match port.read(&mut chunk) {
            Ok(0) => return "the port closed; reopening".into(),
            Ok(n) => {
                for &b in &chunk[..n] {
                    // An over-long line keeps MAX_LINE + 1 bytes, enough to be reported.
                    if line.len() <= MAX_LINE {
                        line.push(b);
                    }
                    if b == b'\n' {
                        if let Some(event) = splitter.event(origin, &line) {
                            if tx.blocking_send(event).is_err() {
                                return "nobody reads the port any more".into();
                            }
                        }
                        line.clear();
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::Interrupted => {
                if tx.is_closed() {
                    return "nobody reads the port any more".into();
                }
            }
            Err(e) => return format!("read failed: {e}; reopening"),
        }
    }
}
