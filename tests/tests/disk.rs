//! R8 of the fault suite: the agent's disk fills up.
//!
//! The agent runs in its own mount namespace (`unshare -m`) with its outbox on a small tmpfs
//! (8 MiB), a real file system that answers ENOSPC; the mount lives and dies with the agent.
//! The test fills that file system to the last byte through `/proc/<pid>/root` (as a runaway
//! log would), then offers info events and alarms in turn. Every alarm must be accepted (from
//! the space the outbox holds in reserve) and reach the hub; every info event must be dropped
//! with an ERROR and counted; the hub must learn of the drops from an `outbox_overflow` report.
//! Once the filler is removed, the agent takes info events again. Every accepted event is
//! stored exactly once.
//!
//! This needs root and `unshare`. Without them the test fails and says so: it never passes
//! without having filled a disk.

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vaka_e2e::*;

const DELIVERY: Duration = Duration::from_secs(60);
const TMPFS: &str = "size=8m";
const RESERVE: u64 = 1024 * 1024;

/// Fails the test with a clear message unless this machine can mount a tmpfs in a private
/// mount namespace.
fn require_mount_namespaces(probe: &Path) {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(uid.as_deref().ok(), Some("0"), "R8 needs root (to mount a small tmpfs for the agent's disk); `id -u` says {uid:?}");
    std::fs::create_dir_all(probe).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs -o size=64k vaka-probe \"$0\" && umount \"$0\""])
        .arg(probe)
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("R8 needs `unshare -m` and `mount -t tmpfs` (a full disk of its own for the agent): {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("R8 needs util-linux's `unshare` (a full disk of its own for the agent): {e}"),
    }
}

/// Writes into `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut written = 0u64;
    for size in [1 << 16, 4096, 512, 1] {
        let chunk = vec![0xAAu8; size];
        while file.write_all(&chunk).is_ok() {
            written += size as u64;
        }
    }
    let _ = file.flush();
    written
}

fn info(i: usize) -> String {
    format!(r#"{{"kind":"position","body":{{"lat":{},"lon":20.95}}}}"#, 64.75 + i as f64 * 1e-5)
}

fn alarm(note: &str) -> String {
    format!(r#"{{"kind":"test_alarm","body":{{"note":"{note}"}}}}"#)
}

fn accepted(answer: &Value) -> Option<Accepted> {
    Some(Accepted { seq: answer["accepted"].as_u64()?, id: answer["id"].as_str()?.to_string() })
}

#[test]
fn full_disk_on_the_agent_keeps_accepting_alarms_and_drops_info_with_an_error_and_a_count() {
    let dir = temp_dir("disk-full");
    require_mount_namespaces(&dir.path().join("probe"));
    let hub = Hub::start(dir.path(), HubOpts::default());
    let disk = dir.path().join("agent-home-r8/disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mut opts = AgentOpts::new("home-r8", hub.broker());
    opts.outbox_path = Some(disk.join("outbox.db"));
    opts.outbox_extra = format!("reserve_bytes = {RESERVE}\n");
    opts.launcher = ["unshare", "-m", "--propagation", "private", "sh", "-c"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("mount -t tmpfs -o {TMPFS} vaka-r8 \"$0\" && exec \"$@\""), disk.display().to_string()])
        .collect();
    let mut agent = Agent::start(dir.path(), opts);
    let pid = agent.proc.pid().expect("agent runs");
    // The agent's view of its disk: the tmpfs, seen from outside its mount namespace.
    let seen = PathBuf::from(format!("/proc/{pid}/root{}", disk.display()));
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    assert!(
        mounts.lines().any(|l| l.contains(&disk.display().to_string()) && l.contains("tmpfs")),
        "the agent's outbox is not on its own tmpfs:\n{mounts}"
    );
    let reserve = std::fs::metadata(seen.join("outbox.db.reserve")).map(|m| m.len()).unwrap_or(0);
    assert_eq!(reserve, RESERVE, "the agent did not write its reserve for alarms");

    let mut all = agent.burst("before", 50, None);
    wait_for_events(&hub, "home-r8", 50, DELIVERY);

    // A runaway log fills the disk to the last byte.
    let filler = seen.join("filler.log");
    let filled = fill(&filler);
    let mut intake = agent.intake();
    let (mut alarms_sent, mut alarms_accepted, mut infos_sent, mut infos_dropped) = (0, 0, 0, 0);
    let mut drop_reasons = Vec::new();
    for i in 0..20 {
        infos_sent += 1;
        let answer = intake.send(&info(i));
        match accepted(&answer) {
            Some(a) => panic!("info event {i} accepted (seq {}) on a full disk", a.seq),
            None => {
                infos_dropped += 1;
                drop_reasons.push(answer["error"].as_str().unwrap_or_default().to_string());
            }
        }
        alarms_sent += 1;
        let answer = intake.send(&alarm(&format!("disk full {i}")));
        let a = accepted(&answer).unwrap_or_else(|| panic!("alarm {i} refused on a full disk: {answer}"));
        alarms_accepted += 1;
        all.push(a);
    }
    let full_log: String = agent.proc.log_text().lines().map(|l| strip_ansi(l) + "\n").collect();
    let error_lines = full_log.lines().filter(|l| l.contains("ERROR") && l.contains("Disk is full; new event dropped")).count();
    let last_count = full_log
        .lines()
        .filter(|l| l.contains("Disk is full; new event dropped"))
        .filter_map(|l| l.split("dropped_disk_full=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .max();
    assert!(full_log.contains("Disk is full: the reserve is released for alarms"), "the agent never found its disk full:\n{full_log}");
    assert_eq!(error_lines, 20, "one ERROR per dropped info event");
    assert_eq!(last_count, Some(20), "the dropped_disk_full counter");

    // The alarms reach the hub while the disk is still full, and so does the report of drops.
    let last_alarm = all.last().cloned().unwrap_or_else(|| panic!("no alarm"));
    let events = wait_for_events(&hub, "home-r8", last_alarm.seq as usize, DELIVERY);
    let overflow: Vec<&Value> = events.iter().filter(|e| e["kind"] == "outbox_overflow").collect();
    assert!(!overflow.is_empty(), "the hub was not told of the dropped events");
    let reported: u64 = overflow.iter().filter_map(|e| e["body"]["dropped"].as_u64()).sum();

    // Room again: the agent writes its reserve back and takes info events again.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = Instant::now();
    let mut tries = 0;
    let back = wait_until(Duration::from_secs(30), "an info event accepted after the disk has room again", || {
        tries += 1;
        let answer = intake.send(&info(1000 + tries));
        let got = accepted(&answer);
        if got.is_none() {
            std::thread::sleep(Duration::from_millis(250));
        }
        got
    });
    let resumed_after = freed_at.elapsed();
    all.push(back);
    let last = intake.accept(&alarm("last"));
    all.push(last.clone());
    wait_for_events(&hub, "home-r8", last.seq as usize, DELIVERY);
    let stored = assert_stored_exactly_once(&hub, "home-r8", &all);
    let events = hub.events("home-r8");
    let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    println!("R8 first drop reason: {}", drop_reasons.first().cloned().unwrap_or_default());
    println!(
        "R8 figures: tmpfs {TMPFS}, reserve {RESERVE} bytes, filler {filled} bytes; on the full disk: alarms sent {alarms_sent}, accepted {alarms_accepted}; info sent {infos_sent}, dropped {infos_dropped} (ERROR lines {error_lines}, counter dropped_disk_full = {}); drops reported to the hub {reported} in {} outbox_overflow event(s); info accepted again {resumed_after:?} after the filler went ({tries} tries); accepted in all {}, stored {stored}, duplicates {}",
        last_count.unwrap_or_default(),
        overflow.len(),
        all.len(),
        events.len() - ids.len()
    );
    agent.proc.kill9();
}
