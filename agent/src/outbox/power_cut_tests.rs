//! R2 of the fault suite: a power cut while the outbox writes.
//!
//! One outbox runs a long random mix of transactions (accepts of 1–3 events of every
//! severity, acks of pending events), long enough for SQLite to checkpoint and start its WAL
//! over several times. At random transactions (and at every WAL restart) the test takes the
//! disk image just before the transaction and just after its commit returned, and builds what
//! a power cut *during* that transaction could leave on disk: nothing of it, all of it, a
//! prefix (the file cut anywhere), any mix of its 512-byte sectors written and unwritten
//! (holes read as zeros), one sector of garbage, or, when the commit also checkpointed, any mix
//! of old and new sectors of the main file. Each image is opened as the agent would after the
//! reboot, and must:
//!
//! - open (a torn tail is never a start-up failure);
//! - hold exactly the pending events before the transaction, or exactly those after it, and
//!   the latter only if every byte of the transaction reached the disk: every event whose
//!   accept returned survives, an ack's deletes are all or nothing;
//! - report a torn tail (ERROR and `torn_tails_dropped`) when a written part of the
//!   transaction was dropped, and never when nothing was dropped;
//! - go on: the next accepted event takes the next seq, and a second reopen keeps it.
//!
//! `VAKA_SEED` replays a run; the figures are printed.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vaka_protocol::kinds::TestAlarm;

const SECTOR: usize = 512;
const OPS: usize = 1500;

fn limits() -> Limits {
    Limits { max_in_flight: 1_000_000, ack_timeout: Duration::from_secs(30), max_bytes: 1 << 30 }
}

fn device() -> DeviceId {
    DeviceId::new("home-r2").unwrap_or_else(|e| panic!("{e}"))
}

/// Pending events by seq, with their ids.
type Pending = BTreeMap<u64, Uuid>;

#[derive(Clone)]
struct Image {
    db: Vec<u8>,
    wal: Vec<u8>,
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn take_image(db: &Path) -> Image {
    Image {
        db: std::fs::read(db).unwrap_or_default(),
        wal: std::fs::read(wal_path(db)).unwrap_or_default(),
    }
}

/// The byte range a transaction wrote: `[first, end)`, exact (not widened to sectors).
fn written(before: &[u8], after: &[u8]) -> Option<(usize, usize)> {
    let common = before.len().min(after.len());
    let first = (0..common).find(|&i| before[i] != after[i]).unwrap_or(common);
    if first == common && before.len() == after.len() {
        return None;
    }
    let end = if after.len() > before.len() {
        after.len()
    } else {
        (0..common).rev().find(|&i| before[i] != after[i]).map_or(common, |i| i + 1)
    };
    Some((first, end))
}

/// `before`, with each 512-byte sector that overlaps `[first, end)` either written (the new
/// bytes of `after` in it) or not (old bytes, or zeros where the file had not reached yet), as
/// `keep_new` says. Bytes outside the range are never changed (SQLite's "powersafe overwrite").
fn mix(before: &[u8], after: &[u8], (first, end): (usize, usize), mut keep_new: impl FnMut(usize) -> bool) -> Vec<u8> {
    let mut out = before.to_vec();
    out.resize(before.len().max(after.len()), 0);
    let mut start = first / SECTOR * SECTOR;
    while start < end {
        let (lo, hi) = (start.max(first), (start + SECTOR).min(end));
        if keep_new(start) && lo < after.len() {
            let hi = hi.min(after.len());
            out[lo..hi].copy_from_slice(&after[lo..hi]);
        }
        start += SECTOR;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Nothing of the transaction reached the disk.
    Nothing,
    /// All of it did (and the commit returned).
    All,
    /// A prefix of its bytes did: the file was cut there.
    Prefix,
    /// Any mix of its sectors did.
    Sectors,
    /// All of it, but one sector holds garbage.
    Garbage,
    /// The commit finished, then the checkpoint it started was cut: the WAL is whole, the
    /// main file any mix of old and new sectors.
    Checkpoint,
}

struct Figures {
    transactions: usize,
    crash_points: usize,
    at_wal_restart: usize,
    images: usize,
    kept_whole: usize,
    dropped: usize,
    torn_reported: usize,
    events_checked: usize,
}

/// Opens an image as the agent would after the reboot; returns the pending events, the
/// counters and the outbox.
fn reopen(dir: &Path, image: &Image) -> (Pending, Counters, Outbox) {
    let db = dir.join("outbox.db");
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::write(&db, &image.db).unwrap();
    if !image.wal.is_empty() {
        std::fs::write(wal_path(&db), &image.wal).unwrap();
    }
    let mut outbox = Outbox::open(&db, device(), limits())
        .unwrap_or_else(|e| panic!("the outbox does not open after a power cut: {e}"));
    let counters = outbox.counters();
    let pending = pending_of(&mut outbox);
    (pending, counters, outbox)
}

fn pending_of(outbox: &mut Outbox) -> Pending {
    let now = Instant::now();
    let _ = outbox.handle(now, Input::Disconnected).unwrap();
    let sends = outbox.handle(now, Input::Connected).unwrap();
    sends
        .into_iter()
        .map(|Publish { seq, payload }| {
            let e = Envelope::decode(&payload).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
            assert_eq!(e.seq, seq);
            (seq, e.id)
        })
        .collect()
}

/// One random transaction on the live outbox; returns the new model.
fn random_op(rng: &mut StdRng, outbox: &mut Outbox, model: &Pending) -> Pending {
    let mut model = model.clone();
    if model.len() > 4 && rng.random_bool(0.35) {
        let mut seqs: Vec<u64> = model.keys().copied().filter(|_| rng.random_bool(0.3)).take(3).collect();
        if seqs.is_empty() {
            seqs.extend(model.keys().next().copied());
        }
        let _ = outbox.ack(Instant::now(), &Ack::new(seqs.clone(), vec![])).unwrap();
        for s in seqs {
            model.remove(&s);
        }
        return model;
    }
    let n = rng.random_range(1..=3);
    let events = (0..n)
        .map(|_| {
            let note = "x".repeat(rng.random_range(1..=190));
            let severity = [Severity::Info, Severity::Warning, Severity::Alarm][rng.random_range(0..3)];
            NewEvent { body: EventBody::TestAlarm(TestAlarm { note: Some(note) }), severity }
        })
        .collect();
    let (outcomes, _) = outbox.accept_batch(Instant::now(), Timestamp::now(), events).unwrap();
    for o in outcomes {
        match o {
            Acceptance::Accepted { seq, id } => {
                model.insert(seq, id);
            }
            Acceptance::Dropped { reason } => panic!("dropped with a 1 GiB budget: {reason}"),
        }
    }
    model
}

#[test]
fn power_cut_during_any_outbox_write_keeps_every_accepted_event_and_reports_the_torn_tail() {
    let seed = std::env::var("VAKA_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    println!("R2 seed {seed} (VAKA_SEED={seed} replays this run)");
    let mut rng = StdRng::seed_from_u64(seed);
    // tmpfs when there is one: fsync is then free, and the test is about what SQLite makes of
    // the bytes, not about the disk.
    let base = if Path::new("/dev/shm").is_dir() { tempfile::tempdir_in("/dev/shm") } else { tempfile::tempdir() }.unwrap();
    let live = base.path().join("live/outbox.db");
    let scratch = base.path().join("reboot");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut outbox = Outbox::open(&live, device(), limits()).unwrap();
    let mut model = Pending::new();
    let mut next_seq = 1u64;
    let mut f = Figures {
        transactions: 0,
        crash_points: 0,
        at_wal_restart: 0,
        images: 0,
        kept_whole: 0,
        dropped: 0,
        torn_reported: 0,
        events_checked: 0,
    };
    let mut after = take_image(&live);
    for op in 0..OPS {
        let before = std::mem::replace(&mut after, Image { db: Vec::new(), wal: Vec::new() });
        let after_model = random_op(&mut rng, &mut outbox, &model);
        f.transactions += 1;
        after = take_image(&live);
        let after_next = after_model.keys().next_back().map_or(next_seq, |s| (s + 1).max(next_seq));
        let restart = before.wal.len() >= 24 && after.wal.len() >= 24 && before.wal[16..24] != after.wal[16..24];
        if restart || rng.random_bool(0.03) || op == OPS - 1 {
            f.crash_points += 1;
            f.at_wal_restart += usize::from(restart);
            let Some(region) = written(&before.wal, &after.wal) else {
                panic!("transaction {op} wrote nothing to the WAL")
            };
            let page = u32::from_be_bytes([after.wal[8], after.wal[9], after.wal[10], after.wal[11]]) as usize;
            let frames_written = (region.1 - region.0) / (page + 24);
            // Where the first frame the transaction wrote begins.
            let frame0 = if region.0 < 32 { 32 } else { 32 + (region.0 - 32) / (page + 24) * (page + 24) };
            // SQLite (synchronous = FULL) writes and fsyncs a restarted WAL's header before any
            // frame: a cut after that point finds the new header in place.
            let mut base = before.clone();
            if restart {
                base.wal[..32].copy_from_slice(&after.wal[..32]);
            }
            let mut cuts = vec![Cut::Nothing, Cut::All, Cut::Prefix, Cut::Prefix, Cut::Sectors, Cut::Sectors, Cut::Sectors, Cut::Garbage];
            if before.db != after.db {
                cuts.push(Cut::Checkpoint);
            }
            for cut in cuts {
                let (first, end) = region;
                let mut prefix_len = 0;
                let image = match cut {
                    Cut::Nothing => before.clone(),
                    Cut::All => Image { db: before.db.clone(), wal: after.wal.clone() },
                    Cut::Prefix => {
                        prefix_len = rng.random_range(1..end - first);
                        let at = first + prefix_len;
                        let mut wal = after.wal[..at.min(after.wal.len())].to_vec();
                        if at < base.wal.len() {
                            wal.extend_from_slice(&base.wal[at..]);
                        }
                        Image { db: before.db.clone(), wal }
                    }
                    Cut::Sectors => Image { db: before.db.clone(), wal: mix(&base.wal, &after.wal, region, |_| rng.random_bool(0.5)) },
                    Cut::Garbage => {
                        let mut wal = after.wal.clone();
                        // Garbage only where the transaction wrote: committed bytes before it
                        // are never touched by this write.
                        let sector = rng.random_range(first / SECTOR..end.div_ceil(SECTOR));
                        for b in &mut wal[(sector * SECTOR).max(first)..((sector + 1) * SECTOR).min(end)] {
                            *b = rng.random();
                        }
                        Image { db: before.db.clone(), wal }
                    }
                    Cut::Checkpoint => {
                        let db_region = written(&before.db, &after.db).unwrap_or((0, 0));
                        Image { db: mix(&before.db, &after.db, db_region, |_| rng.random_bool(0.5)), wal: after.wal.clone() }
                    }
                };
                f.images += 1;
                let whole = image.wal.len() >= after.wal.len() && image.wal[..after.wal.len()] == after.wal[..];
                let (pending, counters, mut reopened) = reopen(&scratch, &image);
                let torn = counters.torn_tails_dropped > 0;
                let context = format!("seed {seed}, transaction {op}, {cut:?} (restart {restart}, {frames_written} frames, prefix {prefix_len})");
                if whole {
                    assert_eq!(pending, after_model, "{context}: the committed transaction is not what reopened");
                    f.kept_whole += 1;
                } else {
                    assert_eq!(pending, model, "{context}: a cut transaction must leave the outbox as it was before");
                    f.dropped += 1;
                }
                f.events_checked += pending.len();
                f.torn_reported += usize::from(torn);
                assert!(!(torn && whole), "{context}: a torn tail reported though the transaction is whole");
                match cut {
                    Cut::Nothing | Cut::All | Cut::Checkpoint => assert!(!torn, "{context}: torn tail reported, nothing was dropped"),
                    // A prefix holding a whole frame header of the transaction, or any garbage
                    // in a transaction of two frames or more, is evidence recovery drops.
                    Cut::Prefix if region.0 + prefix_len >= frame0 + 24 && !whole => assert!(torn, "{context}: a cut prefix was not reported"),
                    Cut::Garbage if frames_written >= 2 => assert!(torn, "{context}: a garbage sector was not reported"),
                    _ => {}
                }
                // The outbox goes on: the next event takes the next seq, and survives a reopen.
                let expected_seq = if whole { after_next } else { next_seq };
                let (outcomes, _) = reopened.accept(Instant::now(), Timestamp::now(), NewEvent::new(EventBody::TestAlarm(TestAlarm { note: None }))).unwrap();
                let Acceptance::Accepted { seq, id } = outcomes else { panic!("{context}: not accepted") };
                assert_eq!(seq, expected_seq, "{context}: seq after recovery");
                drop(reopened);
                let mut again = Outbox::open(&scratch.join("outbox.db"), device(), limits()).unwrap();
                assert_eq!(again.counters().torn_tails_dropped, 0, "{context}: a clean close left a torn tail");
                let mut expected = if whole { after_model.clone() } else { model.clone() };
                expected.insert(seq, id);
                assert_eq!(pending_of(&mut again), expected, "{context}: second reopen");
            }
        }
        model = after_model;
        next_seq = after_next;
    }
    println!(
        "R2 figures: {} transactions, {} crash points ({} at a WAL restart), {} disk images reopened: {} kept the cut transaction whole, {} dropped it, {} torn tails reported; {} pending events checked after reopening, 0 lost, 0 start-up failures",
        f.transactions, f.crash_points, f.at_wal_restart, f.images, f.kept_whole, f.dropped, f.torn_reported, f.events_checked
    );
    assert!(f.at_wal_restart >= 1, "the run never reached a WAL restart; make it longer");
    assert!(f.torn_reported >= f.crash_points, "fewer torn tails than crash points: the cuts are not tearing anything");
}
