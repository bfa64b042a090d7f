//! The dispenser shell: reads the bridge's lines (serial port, Unix socket, stdin) or runs
//! the simulated dispenser, and keeps the [`DoseBook`] in the decision shell
//! ([`crate::decisions`]), which stores the book's state with the events it raises in one
//! outbox transaction. So `dose_missed` is raised on the device at the end of the grace
//! period, even with the hub out of reach, and after a restart it is neither forgotten nor
//! raised twice.
//!
//! Lines that do not parse, and lines the book refuses (out of order, clock far ahead,
//! unknown dose), are logged at WARN with their line number and reason and counted; the
//! reader goes on.

use super::core::{DoseBook, DoseState, Input, Outcome};
use super::line::parse_line;
use super::simulator::Simulator;
use super::{DispenserSettings, SourceSettings};
use crate::clock::{self, Clock};
use crate::decisions::{self, Core};
use crate::lines::decode::{forward, LineDecoder};
use crate::lines::{self, LineEvent, LineSource};
use std::sync::Arc;
use crate::outbox::{NewEvent, OutboxHandle};
use jiff::Timestamp;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The outbox state key of the dose book.
pub const STATE_KEY: &str = "dispenser";

/// The dose book as a decision core; logs what the book refuses or remarks on.
pub struct BookCore {
    pub book: DoseBook,
    /// Lines the book refused (the parser's refusals are counted by the reader).
    pub refused: u64,
}

impl Core for BookCore {
    type Input = Input;
    const KEY: &'static str = STATE_KEY;

    fn handle(&mut self, now: Timestamp, input: Option<Input>) -> Vec<NewEvent> {
        let number = match &input {
            Some(Input::Line { number, .. }) => Some(*number),
            _ => None,
        };
        let Outcome { events, refused, note } = self.book.handle(now, input.unwrap_or(Input::Tick));
        let line = number.unwrap_or_default();
        if let Some(reason) = refused {
            self.refused += 1;
            warn!(line, refused = self.refused, "dispenser line {line} refused: {reason}");
        }
        if let Some(note) = note {
            info!(line, "dispenser line {line}: {note}");
        }
        events
    }

    fn next_wake(&self) -> Option<Timestamp> {
        self.book.next_deadline()
    }

    fn state(&self) -> Vec<u8> {
        decisions::encode_state(&self.book.state())
    }
}

/// The book as it was when the agent stopped, or a new one.
pub fn restore(settings: &DispenserSettings, saved: Option<Vec<u8>>, now: Timestamp) -> DoseBook {
    let rules = settings.rules.clone();
    match decisions::decode_state::<DoseState>(STATE_KEY, saved) {
        Some(state) => {
            let book = DoseBook::restore(rules, state, now);
            info!(open_doses = book.open_doses().count(), "Dose book restored");
            book
        }
        None => DoseBook::new(rules, now),
    }
}

/// Parses bridge lines; a refused line is logged by [`forward`] with its number.
struct Lines;

impl LineDecoder for Lines {
    type Output = Input;
    fn line(&mut self, number: u64, text: &str) -> Result<Option<Input>, String> {
        parse_line(text).map(|line| Some(Input::Line { number, line })).map_err(|e| e.to_string())
    }
}

/// Runs the dispenser service until the task is aborted.
pub async fn run(settings: DispenserSettings, outbox: OutboxHandle, clock: Clock, tz: jiff::tz::TimeZone) {
    info!(settings = %settings.summary(), "Dispenser service starting");
    let (tx, rx) = mpsc::channel(64);
    let (clock, speed) = match &settings.source {
        SourceSettings::Simulator { speed, .. } => (clock::simulated(clock(), *speed), *speed),
        _ => (clock, 1.0),
    };
    let saved = decisions::start_state(&outbox, STATE_KEY).await;
    let book = restore(&settings, saved, clock());
    let reader = match &settings.source {
        SourceSettings::Serial { path, baud } => {
            let lines = lines::spawn(LineSource::Serial { path: path.clone(), baud: *baud });
            tokio::spawn(forward("dispenser", lines, Lines, tx, None))
        }
        SourceSettings::Socket { path } => {
            let lines = lines::spawn(LineSource::Socket { path: path.clone() });
            tokio::spawn(forward("dispenser", lines, Lines, tx, None))
        }
        SourceSettings::Stdin => {
            tokio::spawn(forward("dispenser", lines::spawn(LineSource::Stdin), Lines, tx, None))
        }
        SourceSettings::Simulator { seed, speed } => {
            let (lines_tx, lines) = mpsc::channel(16);
            let sim = Simulator::new(*seed, clock(), tz);
            tokio::spawn(simulate(sim, clock.clone(), *speed, lines_tx));
            tokio::spawn(forward("dispenser", lines, Lines, tx, None))
        }
    };
    decisions::run(BookCore { book, refused: 0 }, outbox, clock, speed, rx).await;
    reader.abort();
}

/// Writes the simulated dispenser's lines at their (simulated) times, as a line source: they
/// go through the same parser, logging and counting as a real bridge's. Ends when nobody
/// reads them.
async fn simulate(sim: Simulator, clock: Clock, speed: f64, lines: mpsc::Sender<LineEvent>) {
    let origin: Arc<str> = "simulated dispenser".into();
    for (number, (at, text)) in (1..).zip(sim) {
        let wait = Duration::try_from(at.duration_since(clock())).unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait.div_f64(speed.max(1e-3))).await;
        if lines.send(LineEvent::Line { origin: origin.clone(), number, text }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
