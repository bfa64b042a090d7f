//! The GPS shell: reads the receiver (NMEA over a serial line or a replayed file, or gpsd
//! over TCP) and the button input, and runs the [`Tracker`] in the decision shell
//! ([`crate::decisions`]), which records its events and state in the outbox together.
//!
//! Receiver lines that fail their checksum or do not parse are logged with their line number
//! and counted ([`crate::lines::decode`]); they never stop the reader. A replayed file is
//! paced one fix per `replay_interval`.

use super::buttons;
use super::config::{ButtonsInput, GpsSettings, GpsSource, NmeaInput};
use super::fix::Fix;
use super::gpsd::{GpsdDecoder, WATCH_COMMAND};
use super::nmea::NmeaDecoder;
use super::tracker::{Input, Tracker, TrackerState};
use crate::clock::Clock;
use crate::decisions::{self, Core};
use crate::lines::decode::{forward, LineDecoder};
use crate::lines::{self, LineSource};
use crate::outbox::{NewEvent, OutboxHandle};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::info;

/// The outbox state key of the tracker.
pub const STATE_KEY: &str = "gps";

/// The tracker as a decision core.
pub struct TrackerCore(pub Tracker);

impl Core for TrackerCore {
    type Input = Input;
    const KEY: &'static str = STATE_KEY;

    fn handle(&mut self, now: Timestamp, input: Option<Input>) -> Vec<NewEvent> {
        self.0.handle(now, input.unwrap_or(Input::Tick))
    }

    fn next_wake(&self) -> Option<Timestamp> {
        self.0.next_wake()
    }

    fn state(&self) -> Vec<u8> {
        decisions::encode_state(&self.0.state())
    }
}

/// The tracker as it was when the agent stopped, or a new one.
pub fn restore(settings: &GpsSettings, saved: Option<Vec<u8>>, now: Timestamp) -> Tracker {
    match decisions::decode_state::<TrackerState>(STATE_KEY, saved) {
        Some(state) => Tracker::restore(settings, state, now),
        None => Tracker::new(settings, now),
    }
}

struct Nmea(NmeaDecoder);

impl LineDecoder for Nmea {
    type Output = Input;
    fn line(&mut self, _: u64, text: &str) -> Result<Option<Input>, String> {
        self.0.push_line(text).map(|f| f.map(Input::Fix)).map_err(|e| e.to_string())
    }
    fn flush(&mut self) -> Option<Input> {
        self.0.flush().map(Input::Fix)
    }
}

struct Gpsd(GpsdDecoder);

impl LineDecoder for Gpsd {
    type Output = Input;
    fn line(&mut self, _: u64, text: &str) -> Result<Option<Input>, String> {
        self.0.push_line(text).map(|f: Option<Fix>| f.map(Input::Fix)).map_err(|e| e.to_string())
    }
}

struct Buttons;

impl LineDecoder for Buttons {
    type Output = Input;
    fn line(&mut self, _: u64, text: &str) -> Result<Option<Input>, String> {
        buttons::parse_line(text).map(Some)
    }
}

/// Runs the GPS service until the task is aborted.
pub async fn run(settings: GpsSettings, outbox: OutboxHandle, clock: Clock) {
    info!(settings = %settings.summary(), "GPS service starting");
    let saved = decisions::start_state(&outbox, STATE_KEY).await;
    let tracker = restore(&settings, saved, clock());
    run_with(settings, tracker, outbox, clock).await;
}

/// Reads the receiver and the buttons into `tracker` and records what it decides with
/// `recorder`.
pub async fn run_with(
    settings: GpsSettings,
    tracker: Tracker,
    recorder: impl decisions::Recorder,
    clock: Clock,
) {
    let (tx, rx) = mpsc::channel(64);
    let mut readers = Vec::new();
    match &settings.source {
        GpsSource::Nmea { path, input: NmeaInput::Serial { baud } } => {
            let lines = lines::spawn(LineSource::Serial { path: path.clone(), baud: *baud });
            readers.push(tokio::spawn(forward("GPS", lines, Nmea(NmeaDecoder::new()), tx.clone(), None)));
        }
        GpsSource::Nmea { path, input: NmeaInput::Replay { interval } } => {
            let lines = lines::spawn(LineSource::Replay { path: path.clone() });
            let pace = Some(*interval);
            readers.push(tokio::spawn(forward("GPS", lines, Nmea(NmeaDecoder::new()), tx.clone(), pace)));
        }
        GpsSource::Gpsd { address } => {
            let greeting = Some(format!("{WATCH_COMMAND}\n"));
            let lines = lines::spawn(LineSource::Tcp { address: address.clone(), greeting });
            readers.push(tokio::spawn(forward("GPS", lines, Gpsd(GpsdDecoder::new()), tx.clone(), None)));
        }
    }
    if let Some(input) = &settings.buttons {
        let source = match input {
            ButtonsInput::Stdin => LineSource::Stdin,
            ButtonsInput::Socket(path) => LineSource::Socket { path: path.clone() },
        };
        readers.push(tokio::spawn(forward("GPS button", lines::spawn(source), Buttons, tx.clone(), None)));
    }
    drop(tx);
    // Aborting this task drops the readers' handles but not the readers: they end when the
    // core's receiver is gone.
    decisions::run(TrackerCore(tracker), recorder, clock, 1.0, rx).await;
    for r in readers {
        r.abort();
    }
}

#[cfg(test)]
mod tests;
