use super::*;
use super::testing::Memory;
use crate::clock::tokio_clock;
use vaka_protocol::kinds::TestAlarm;
use vaka_protocol::EventBody;

/// A toy core: an input arms a timer that raises one alarm when it runs out.
struct Timer {
    due: Option<Timestamp>,
}

impl Core for Timer {
    type Input = Duration;
    const KEY: &'static str = "timer";

    fn handle(&mut self, now: Timestamp, input: Option<Duration>) -> Vec<NewEvent> {
        if let Some(after) = input {
            self.due = Some(now + jiff::SignedDuration::try_from(after).unwrap());
            return Vec::new();
        }
        match self.due {
            Some(due) if now >= due => {
                self.due = None;
                vec![NewEvent::new(EventBody::TestAlarm(TestAlarm { note: Some(now.to_string()) }))]
            }
            _ => Vec::new(),
        }
    }

    fn next_wake(&self) -> Option<Timestamp> {
        self.due
    }

    fn state(&self) -> Vec<u8> {
        self.due.map(|d| d.to_string()).unwrap_or_default().into_bytes()
    }
}

fn restore(state: Option<Vec<u8>>) -> Timer {
    let due = state.and_then(|s| String::from_utf8(s).ok()).and_then(|s| s.parse().ok());
    Timer { due }
}

const START: &str = "2026-11-23T20:00:00Z";

#[tokio::test(start_paused = true)]
async fn the_shell_wakes_the_core_on_time_and_records_its_alarm_once() {
    let memory = Memory::default();
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(run(Timer { due: None }, memory.clone(), tokio_clock(START.parse().unwrap()), 1.0, rx));
    tx.send(Duration::from_secs(30 * 60)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30 * 60 - 1)).await;
    assert_eq!(memory.state(), b"2026-11-23T20:30:00Z");
    assert!(memory.notes().is_empty(), "not before the timer runs out");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(memory.state(), b"");
    assert_eq!(memory.notes(), ["2026-11-23T20:30:00Z"]);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(memory.notes().len(), 1);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_timer_that_ran_out_while_the_agent_was_down_fires_at_start_and_only_once() {
    let memory = Memory::default();
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(run(Timer { due: None }, memory.clone(), tokio_clock(START.parse().unwrap()), 1.0, rx));
    tx.send(Duration::from_secs(600)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    task.abort(); // the agent stops 9 minutes before the timer runs out
    let _ = task.await;

    // It starts again an hour later, and once more after that.
    for _ in 0..2 {
        let core = restore(memory.saved());
        let (_tx, rx) = mpsc::channel(4);
        let clock = tokio_clock("2026-11-23T21:00:00Z".parse().unwrap());
        let task = tokio::spawn(run(core, memory.clone(), clock, 1.0, rx));
        tokio::time::sleep(Duration::from_secs(1)).await;
        task.abort();
        let _ = task.await;
    }
    assert_eq!(memory.notes(), ["2026-11-23T21:00:00Z"], "raised at the first restart, not again");
}

#[tokio::test(start_paused = true)]
async fn a_timer_restored_before_it_runs_out_fires_on_time() {
    let memory = Memory::default();
    memory.set_state(b"2026-11-23T20:10:00Z".to_vec());
    let core = restore(memory.saved());
    let (_tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(run(core, memory.clone(), tokio_clock(START.parse().unwrap()), 1.0, rx));
    tokio::time::sleep(Duration::from_secs(599)).await;
    assert!(memory.notes().is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(memory.notes(), ["2026-11-23T20:10:00Z"]);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn state_changes_without_events_are_recorded_at_checkpoints_not_with_every_input() {
    let memory = Memory::default();
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(run(Timer { due: None }, memory.clone(), tokio_clock(START.parse().unwrap()), 1.0, rx));
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.send(Duration::from_secs(3600)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(memory.state(), b"", "not yet: the last record is under a checkpoint old");
    tokio::time::sleep(CHECKPOINT).await;
    assert_eq!(memory.state(), b"2026-11-23T21:00:01Z", "recorded at the checkpoint");
    task.abort();
}
