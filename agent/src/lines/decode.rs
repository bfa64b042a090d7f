//! From lines to a service's inputs: decode each line, forward what it means, and log and
//! count what it does not.
//!
//! Every refused line is logged at WARN with where it came from, its line number and the
//! reason (the first [`LOUD`] of a connection, then every hundredth, so a noisy serial line
//! cannot flood the log), and counted; the counts of good and bad lines are logged when a
//! source ends. Nothing here stops reading.

use super::LineEvent;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Refused lines logged one by one before logging only every hundredth.
const LOUD: u64 = 20;

/// Turns lines into inputs. Pure, apart from its own decoding state.
pub trait LineDecoder {
    type Output;
    /// `Ok(None)`: a good line that means nothing by itself (a heartbeat, half an epoch).
    fn line(&mut self, number: u64, text: &str) -> Result<Option<Self::Output>, String>;
    /// The source ended or reconnected: anything still held back.
    fn flush(&mut self) -> Option<Self::Output> {
        None
    }
}

/// Lines read and refused, in a pair so that a gap is visible.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounters {
    pub read: u64,
    pub refused: u64,
}

/// Reads `lines` until they end, decodes each with `decoder` and sends the results to `tx`;
/// with `pace`, waits that long after each result (replays). `what` names the device kind
/// in logs ("dispenser", "GPS"). Returns the counters.
pub async fn forward<D: LineDecoder>(
    what: &'static str,
    mut lines: mpsc::Receiver<LineEvent>,
    mut decoder: D,
    tx: mpsc::Sender<D::Output>,
    pace: Option<Duration>,
) -> LineCounters {
    let mut counters = LineCounters::default();
    let mut loud = 0u64;
    while let Some(event) = lines.recv().await {
        let output = match event {
            LineEvent::Line { origin, number, text } => {
                counters.read += 1;
                match decoder.line(number, &text) {
                    Ok(output) => output,
                    Err(reason) => {
                        counters.refused += 1;
                        loud += 1;
                        if loud <= LOUD || loud % 100 == 0 {
                            warn!(source = %origin, line = number, refused = counters.refused, "{what} line {number} refused: {reason}");
                        }
                        None
                    }
                }
            }
            LineEvent::Problem { origin, number, message } => {
                if number.is_some() {
                    counters.read += 1;
                    counters.refused += 1;
                }
                match number {
                    Some(n) => warn!(source = %origin, line = n, "{what} line {n} refused: {message}"),
                    None => warn!(source = %origin, "{what} source: {message}"),
                }
                None
            }
            LineEvent::Connected { origin } => {
                loud = 0;
                info!(source = %origin, "{what} source connected");
                decoder.flush()
            }
            LineEvent::Ended { origin } => {
                info!(source = %origin, read = counters.read, refused = counters.refused, "{what} source ended");
                decoder.flush()
            }
        };
        if let Some(output) = output {
            if tx.send(output).await.is_err() {
                break;
            }
            if let Some(pace) = pace {
                tokio::time::sleep(pace).await;
            }
        }
    }
    debug!(read = counters.read, refused = counters.refused, "{what} lines done");
    counters
}
