//! What a power cut left at the end of the outbox's write-ahead log, told before SQLite opens
//! it.
//!
//! # Why
//! The outbox commits with `synchronous = FULL` in WAL mode: a transaction's frames are
//! appended to `outbox.db-wal` and fsynced before `commit` returns. A power cut (or a crash of
//! the kernel) *during* a commit can leave any part of that transaction's frames on disk: none,
//! a prefix, or a mix of written and unwritten sectors. SQLite's recovery copes on its own:
//! every frame carries a checksum chained from the WAL header and the salts of the current WAL
//! generation, and recovery keeps frames up to the last valid *commit* frame and ignores the
//! rest. So a torn transaction simply never happened, and every transaction whose commit
//! returned (every accepted event) is kept. (Checkpoints copy committed pages into the main
//! file and fsync it before the WAL is reused, so a cut during a checkpoint is redone from the
//! intact WAL.)
//!
//! SQLite does this silently. An unfinished transaction means a producer was waiting for an
//! answer that never came (the intake closes the connection with the crash; the event was
//! never acknowledged as accepted, so it is not lost by the outbox's promise, but a producer
//! that does not retry loses it). That deserves a line in the log and a counter, so this
//! module reads the WAL the way SQLite's recovery does and reports what recovery will drop.
//!
//! # The WAL format (sqlite.org/fileformat2.html, "WAL file format")
//! A 32-byte header (magic, version, page size, checkpoint seq, two salts, two checksum
//! words), then frames of a 24-byte header (page number, database size after commit or 0,
//! the two salts, two checksum words) and one page. Checksums are running sums over 32-bit
//! words, in the byte order the magic names, starting from the header's checksum. Frames
//! after the last valid commit frame are discarded by recovery. Frames whose salts differ from
//! the header's are left over from an older generation of the file (the WAL is rewritten from
//! its start after a checkpoint) and are no sign of a torn write.
//!
//! Pure: [`inspect`] takes any reader and never writes.

use std::io::{self, Read};

const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
const HEADER: usize = 32;
const FRAME_HEADER: usize = 24;

/// What recovery will make of a WAL file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalTail {
    /// Length of the file.
    pub file_bytes: u64,
    /// Frames of committed transactions that recovery keeps.
    pub committed_frames: u64,
    /// Frames of the current generation that recovery drops: an unfinished transaction, a
    /// frame whose checksum fails, or a frame of zeros where the file grew but its data never
    /// reached the disk.
    pub discarded_frames: u64,
    /// Bytes of an incomplete frame at the end of the file.
    pub partial_bytes: u64,
    /// The file is not empty but its header is not a valid WAL header: recovery ignores the
    /// whole file.
    pub bad_header: bool,
}

impl WalTail {
    /// Whether the file shows a write that did not finish.
    pub fn torn(&self) -> bool {
        self.discarded_frames > 0 || self.partial_bytes > 0 || self.bad_header
    }
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// SQLite's WAL checksum: continues `(s0, s1)` over `data` (a multiple of 8 bytes).
fn checksum(big_endian: bool, (mut s0, mut s1): (u32, u32), data: &[u8]) -> (u32, u32) {
    let read = |c: &[u8]| {
        let b = [c[0], c[1], c[2], c[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    for pair in data.chunks_exact(8) {
        s0 = s0.wrapping_add(read(&pair[0..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(read(&pair[4..8])).wrapping_add(s0);
    }
    (s0, s1)
}

/// Reads as much as `buf` holds; returns how many bytes were read (less only at the end).
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a WAL file from its start and says what recovery will keep and drop. Reads one frame
/// at a time, so memory stays at one page whatever the size of the file.
pub fn inspect(mut reader: impl Read) -> io::Result<WalTail> {
    let mut tail = WalTail::default();
    let mut header = [0u8; HEADER];
    let n = fill(&mut reader, &mut header)?;
    tail.file_bytes = n as u64;
    let magic = word(&header, 0);
    let page_size = word(&header, 8) as usize;
    let big_endian = magic == MAGIC_BE;
    let header_ok = n == HEADER
        && (magic == MAGIC_LE || magic == MAGIC_BE)
        && page_size.is_power_of_two()
        && (512..=65536).contains(&page_size)
        && checksum(big_endian, (0, 0), &header[..24]) == (word(&header, 24), word(&header, 28));
    if !header_ok {
        // Count the rest of the file too, for the report.
        tail.file_bytes += io::copy(&mut reader, &mut io::sink())?;
        tail.bad_header = tail.file_bytes > 0;
        return Ok(tail);
    }
    let salts = &header[16..24];
    let mut running = (word(&header, 24), word(&header, 28));
    let mut chain_intact = true;
    let mut uncommitted = 0u64;
    let mut frame = vec![0u8; FRAME_HEADER + page_size];
    loop {
        let n = fill(&mut reader, &mut frame)?;
        tail.file_bytes += n as u64;
        if n == 0 {
            break;
        }
        if n < frame.len() {
            tail.partial_bytes = n as u64;
            break;
        }
        let current = &frame[8..16] == salts;
        if chain_intact && current && word(&frame, 0) != 0 {
            let sum = checksum(big_endian, running, &frame[..8]);
            let sum = checksum(big_endian, sum, &frame[FRAME_HEADER..]);
            if sum == (word(&frame, 16), word(&frame, 20)) {
                running = sum;
                uncommitted += 1;
                if word(&frame, 4) != 0 {
                    tail.committed_frames += uncommitted;
                    uncommitted = 0;
                }
                continue;
            }
        }
        // Recovery stops at the first frame that is not valid; what follows is either an
        // older generation (harmless) or the rest of a torn write.
        chain_intact = false;
        if current || frame[..FRAME_HEADER].iter().all(|&b| b == 0) {
            tail.discarded_frames += 1;
        }
    }
    tail.discarded_frames += uncommitted;
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A WAL with `txs` committed transactions, as SQLite wrote it (the connection stays open so
    /// the WAL is not checkpointed away).
    fn wal_with(txs: usize) -> (tempfile::TempDir, Connection, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        for i in 0..txs {
            conn.execute("INSERT INTO t VALUES (?1)", [vec![i as u8; 100]]).unwrap();
        }
        let wal = std::fs::read(dir.path().join("t.db-wal")).unwrap();
        (dir, conn, wal)
    }

    fn frame_len(wal: &[u8]) -> usize {
        FRAME_HEADER + word(wal, 8) as usize
    }

    #[test]
    fn a_clean_wal_has_only_committed_frames() {
        let (_dir, _conn, wal) = wal_with(3);
        let tail = inspect(&wal[..]).unwrap();
        assert_eq!(tail.committed_frames as usize, (wal.len() - HEADER) / frame_len(&wal));
        assert!(!tail.torn(), "{tail:?}");
    }

    #[test]
    fn a_wal_cut_inside_its_last_frame_reports_the_partial_frame() {
        let (_dir, _conn, wal) = wal_with(3);
        let cut = &wal[..wal.len() - 100];
        let tail = inspect(cut).unwrap();
        assert_eq!(tail.partial_bytes as usize, frame_len(&wal) - 100);
        assert!(tail.torn());
    }

    #[test]
    fn a_corrupt_commit_frame_discards_its_whole_transaction() {
        let (_dir, _conn, mut wal) = wal_with(3);
        let before = inspect(&wal[..]).unwrap();
        let last = wal.len() - 10;
        wal[last] ^= 0xFF;
        let tail = inspect(&wal[..]).unwrap();
        assert!(tail.torn());
        assert!(tail.committed_frames < before.committed_frames);
        assert_eq!(tail.committed_frames + tail.discarded_frames, before.committed_frames);
    }

    #[test]
    fn zeros_where_the_file_grew_count_as_a_torn_write() {
        let (_dir, _conn, mut wal) = wal_with(2);
        let f = frame_len(&wal);
        wal.extend(std::iter::repeat_n(0u8, 2 * f));
        let tail = inspect(&wal[..]).unwrap();
        assert_eq!(tail.discarded_frames, 2);
    }

    #[test]
    fn frames_of_an_older_generation_are_not_a_torn_write() {
        let (_dir, _conn, mut wal) = wal_with(3);
        let f = frame_len(&wal);
        // An older generation's frame: same shape, other salts.
        let mut old = wal[HEADER..HEADER + f].to_vec();
        old[8] ^= 0x55;
        wal.extend(old);
        let tail = inspect(&wal[..]).unwrap();
        assert!(!tail.torn(), "{tail:?}");
    }

    #[test]
    fn a_torn_header_makes_the_whole_file_ignored() {
        let (_dir, _conn, mut wal) = wal_with(1);
        wal[20] ^= 1;
        let tail = inspect(&wal[..]).unwrap();
        assert!(tail.bad_header && tail.torn());
        assert_eq!(tail.file_bytes as usize, wal.len());
        assert_eq!(inspect(&[][..]).unwrap(), WalTail::default(), "an empty file is no torn write");
    }
}
