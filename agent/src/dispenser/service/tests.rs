//! Dose grace timers under paused tokio time, through the same shell the agent runs.

use super::*;
use crate::decisions::testing::Memory;
use crate::clock::tokio_clock;
use crate::dispenser::Rules;

const START: &str = "2026-11-23T20:00:00Z";
const MIN: u64 = 60;

fn settings() -> DispenserSettings {
    DispenserSettings { source: SourceSettings::Stdin, rules: Rules::default() }
}

/// A line as the bridge writes it, time-stamped by the (paused) clock.
fn line(clock: &Clock, number: u64, event: &str, dose: &str) -> Input {
    let text = serde_json::json!({
        "ts": clock().to_string(), "event": event, "dose_id": dose,
        "medication": "Waran 2,5 mg", "scheduled": START,
    })
    .to_string();
    Input::Line { number, line: parse_line(&text).unwrap_or_else(|e| panic!("{e}")) }
}

/// Starts the shell on the book restored from `memory`; returns its input and task.
fn start(memory: &Memory, clock: &Clock) -> (mpsc::Sender<Input>, tokio::task::JoinHandle<()>) {
    let book = restore(&settings(), memory.saved(), clock());
    let (tx, rx) = mpsc::channel(8);
    let core = BookCore { book, refused: 0 };
    (tx, tokio::spawn(decisions::run(core, memory.clone(), clock.clone(), 1.0, rx)))
}

fn missed(memory: &Memory) -> usize {
    memory.kinds().iter().filter(|k| **k == "dose_missed").count()
}

async fn sleep(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dose_not_taken_is_missed_after_its_grace_and_not_before() {
    let (memory, clock) = (Memory::default(), tokio_clock(START.parse().unwrap()));
    let (tx, task) = start(&memory, &clock);
    tx.send(line(&clock, 1, "dose_due", "evening")).await.unwrap();
    sleep(30 * MIN - 1).await;
    assert_eq!(missed(&memory), 0, "not before the 30 min grace: {:?}", memory.kinds());
    sleep(2).await;
    assert_eq!(missed(&memory), 1, "{:?}", memory.kinds());
    let raised = memory.events().into_iter().find(|e| e.body.kind() == "dose_missed").unwrap();
    assert_eq!(raised.severity.as_str(), "alarm");
    sleep(120 * MIN).await;
    assert_eq!(missed(&memory), 1, "once: {:?}", memory.kinds());
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn dose_taken_in_time_cancels_the_miss() {
    let (memory, clock) = (Memory::default(), tokio_clock(START.parse().unwrap()));
    let (tx, task) = start(&memory, &clock);
    tx.send(line(&clock, 1, "dose_due", "evening")).await.unwrap();
    sleep(29 * MIN).await;
    tx.send(line(&clock, 2, "dose_taken", "evening")).await.unwrap();
    sleep(120 * MIN).await;
    assert_eq!(missed(&memory), 0, "{:?}", memory.kinds());
    assert!(memory.kinds().contains(&"dose_taken"));
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn an_agent_restart_during_the_grace_period_still_raises_the_miss_on_time() {
    let (memory, clock) = (Memory::default(), tokio_clock(START.parse().unwrap()));
    let (tx, task) = start(&memory, &clock);
    tx.send(line(&clock, 1, "dose_due", "evening")).await.unwrap();
    sleep(10 * MIN).await;
    task.abort(); // the agent stops 20 minutes into the grace period...
    let _ = task.await;
    drop(tx);
    sleep(5 * MIN).await;
    let (_tx, task) = start(&memory, &clock); // ...and is back 5 minutes later
    sleep(15 * MIN - 1).await;
    assert_eq!(missed(&memory), 0, "{:?}", memory.kinds());
    sleep(2).await;
    assert_eq!(missed(&memory), 1, "raised at the end of the grace, by the restarted agent");
    task.abort();
}
