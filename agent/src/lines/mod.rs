//! Line sources: where the agent reads a device's text lines from.
//!
//! Medication dispensers (through a bridge), GPS receivers (NMEA 0183), gpsd and alarm
//! buttons all speak in lines. This module turns each kind of connection into one stream of
//! [`LineEvent`]s, so the dispenser and GPS services only ever see numbered lines:
//! - [`LineSource::Serial`]: a serial device (USB-serial dongle, UART), opened with its baud
//!   rate through the `serialport` crate, read on its own thread; reopened when it goes away
//!   (a receiver unplugged and plugged in again);
//! - [`LineSource::Socket`]: a Unix socket the agent listens on; any number of local bridges
//!   may connect, each connection numbers its own lines;
//! - [`LineSource::Stdin`]: the agent's standard input (a bridge that starts the agent);
//! - [`LineSource::Replay`]: a recorded file (installers' dry runs and tests), then
//!   [`LineEvent::Ended`]; the consumer paces it (e.g. one GPS epoch per interval), and the
//!   bounded channel makes the reader wait for it;
//! - [`LineSource::Tcp`]: a TCP server such as gpsd; an optional greeting (gpsd's `?WATCH`)
//!   is written after connecting; reconnected with back-off.
//!
//! Invariants: a source never stops the agent. A line that is not UTF-8 or longer than
//! [`MAX_LINE`] becomes a [`LineEvent::Problem`] naming its number, and reading goes on. A
//! connection that fails is retried (from 1 s, doubling with jitter up to 60 s) and reported
//! once per failure streak. The channel is bounded: a slow consumer slows the reader, it does not grow memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tracing::debug;

/// Longest accepted line. NMEA sentences are at most 82 characters, dispenser and gpsd lines
/// a few hundred bytes.
pub const MAX_LINE: usize = 4096;

/// How long to wait before retrying a connection that failed, at first and at most (the
/// uplink's jittered exponential back-off).
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

fn backoff() -> crate::uplink::backoff::Backoff {
    crate::uplink::backoff::Backoff::new(RETRY_MIN, RETRY_MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineSource {
    Serial { path: PathBuf, baud: u32 },
    Socket { path: PathBuf },
    Stdin,
    Replay { path: PathBuf },
    Tcp { address: String, greeting: Option<String> },
}

impl std::fmt::Display for LineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineSource::Serial { path, baud } => write!(f, "serial {} at {baud} baud", path.display()),
            LineSource::Socket { path } => write!(f, "socket {}", path.display()),
            LineSource::Stdin => write!(f, "standard input"),
            LineSource::Replay { path } => write!(f, "replay of {}", path.display()),
            LineSource::Tcp { address, .. } => write!(f, "tcp {address}"),
        }
    }
}

/// What a source reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A line, without its line ending; `number` counts from 1 per connection.
    Line { origin: Arc<str>, number: u64, text: String },
    /// A line that could not be read as text, or a connection problem. Reading goes on.
    Problem { origin: Arc<str>, number: Option<u64>, message: String },
    /// A connection was opened (or reopened).
    Connected { origin: Arc<str> },
    /// The source has no more lines (end of a replay or of standard input).
    Ended { origin: Arc<str> },
}

/// Starts reading `source` in the background; events arrive on the returned channel until
/// the source ends or the receiver is dropped.
pub fn spawn(source: LineSource) -> mpsc::Receiver<LineEvent> {
    let (tx, rx) = mpsc::channel(1024);
    match source {
        LineSource::Serial { path, baud } => {
            let spawned = std::thread::Builder::new()
                .name("vaka-serial".into())
                .spawn({
                    let tx = tx.clone();
                    let path = path.clone();
                    move || serial::run(path, baud, tx)
                });
            if let Err(e) = spawned {
                let origin: Arc<str> = format!("serial {}", path.display()).into();
                let message = format!("cannot start the serial reader thread: {e}");
                let _ = tx.try_send(LineEvent::Problem { origin, number: None, message });
            }
        }
        LineSource::Socket { path } => {
            tokio::spawn(socket(path, tx));
        }
        LineSource::Stdin => {
            tokio::spawn(async move {
                let origin: Arc<str> = "stdin".into();
                let reader = BufReader::new(tokio::io::stdin());
                let _ = tx.send(LineEvent::Connected { origin: origin.clone() }).await;
                read_lines(reader, &origin, &tx).await;
                let _ = tx.send(LineEvent::Ended { origin }).await;
            });
        }
        LineSource::Replay { path } => {
            tokio::spawn(replay(path, tx));
        }
        LineSource::Tcp { address, greeting } => {
            tokio::spawn(tcp(address, greeting, tx));
        }
    }
    rx
}

/// Splits bytes into numbered lines (`\n` or `\r\n`), enforcing [`MAX_LINE`]. Pure.
#[derive(Debug, Default)]
pub struct Splitter {
    number: u64,
}

impl Splitter {
    /// Turns one raw line (as read up to and including `\n`) into an event.
    pub fn event(&mut self, origin: &Arc<str>, raw: &[u8]) -> Option<LineEvent> {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        self.number += 1;
        let number = self.number;
        if raw.len() > MAX_LINE {
            let message = format!("line longer than {MAX_LINE} bytes; skipped");
            return Some(LineEvent::Problem { origin: origin.clone(), number: Some(number), message });
        }
        match std::str::from_utf8(raw) {
            Ok(text) => Some(LineEvent::Line {
                origin: origin.clone(),
                number,
                text: text.to_string(),
            }),
            Err(e) => Some(LineEvent::Problem {
                origin: origin.clone(),
                number: Some(number),
                message: format!("not UTF-8 text ({e}); skipped"),
            }),
        }
    }
}

/// Reads lines until end of stream or a read error. Returns false if the receiver is gone.
async fn read_lines(
    mut reader: impl AsyncBufRead + Unpin,
    origin: &Arc<str>,
    tx: &mpsc::Sender<LineEvent>,
) -> bool {
    let mut splitter = Splitter::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_bounded(&mut reader, &mut buf).await {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                let message = format!("read failed: {e}");
                return tx
                    .send(LineEvent::Problem { origin: origin.clone(), number: None, message })
                    .await
                    .is_ok();
            }
        }
        if let Some(event) = splitter.event(origin, &buf) {
            if tx.send(event).await.is_err() {
                return false;
            }
        }
    }
}

/// Reads one line into `buf`, keeping at most `MAX_LINE + 1` bytes of it (the rest of an
/// over-long line is read and discarded, so memory stays bounded).
async fn read_bounded(
    reader: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = (MAX_LINE + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        total += n;
        if done {
            return Ok(total);
        }
    }
}

async fn replay(path: PathBuf, tx: mpsc::Sender<LineEvent>) {
    let origin: Arc<str> = format!("replay {}", path.display()).into();
    match tokio::fs::File::open(&path).await {
        Ok(file) => {
            let _ = tx.send(LineEvent::Connected { origin: origin.clone() }).await;
            read_lines(BufReader::new(file), &origin, &tx).await;
        }
        Err(e) => {
            let message = format!("cannot open: {e}");
            let _ = tx.send(LineEvent::Problem { origin: origin.clone(), number: None, message }).await;
        }
    }
    let _ = tx.send(LineEvent::Ended { origin }).await;
}

async fn socket(path: PathBuf, tx: mpsc::Sender<LineEvent>) {
    let name = format!("socket {}", path.display());
    let listener = match crate::intake::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            let origin: Arc<str> = name.into();
            let _ = tx.send(LineEvent::Problem { origin, number: None, message: e.to_string() }).await;
            return;
        }
    };
    let mut connection = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                connection += 1;
                let origin: Arc<str> = format!("{name} connection {connection}").into();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(LineEvent::Connected { origin: origin.clone() }).await;
                    read_lines(BufReader::new(stream), &origin, &tx).await;
                    debug!(origin = %origin, "Line source connection closed");
                });
            }
            Err(e) => {
                debug!(error = %e, "Line socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

async fn tcp(address: String, greeting: Option<String>, tx: mpsc::Sender<LineEvent>) {
    let origin: Arc<str> = format!("tcp {address}").into();
    let mut backoff = backoff();
    let mut reported = false;
    while !tx.is_closed() {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(mut stream) => {
                let greeted = match &greeting {
                    Some(g) => stream.write_all(g.as_bytes()).await,
                    None => Ok(()),
                };
                if greeted.is_ok() {
                    backoff.reset();
                    reported = false;
                    let _ = tx.send(LineEvent::Connected { origin: origin.clone() }).await;
                    if !read_lines(BufReader::new(stream), &origin, &tx).await {
                        return;
                    }
                    let message = "connection closed; reconnecting".to_string();
                    let _ = tx.send(LineEvent::Problem { origin: origin.clone(), number: None, message }).await;
                }
            }
            Err(e) if !reported => {
                reported = true;
                let message = format!("cannot connect: {e}; retrying");
                let _ = tx.send(LineEvent::Problem { origin: origin.clone(), number: None, message }).await;
            }
            Err(_) => {}
        }
        tokio::time::sleep(backoff.next(rand::random())).await;
    }
}

pub mod decode;
mod serial;

#[cfg(test)]
mod tests;
