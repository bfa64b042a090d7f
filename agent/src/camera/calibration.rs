//! Remote calibration: installer mode, and the bed zone the hub sends.
//!
//! The hub may ask for a calibration picture (`calibrate` command) so that an installer can
//! draw the bed zone in the console. That must not become a way to open the camera whenever the
//! hub likes: the device answers with a picture only while **installer mode** is on, and
//! installer mode is switched on only at the device itself, by someone who can run
//! `vaka-agent camera installer-mode --minutes N` there (local presence: a shell on the device,
//! with write access to the agent's data directory). It records an expiry in
//! [`INSTALLER_MODE_FILE`] in the data directory (the outbox's directory); the agent reads it
//! at each request, so no restart is needed and a restart forgets nothing. Outside installer
//! mode the agent answers with a refusal, the camera stays closed.
//!
//! A bed zone the hub sends (`set_bed_zone`) is judged with the same [`BedZone`] rules as the
//! config's, kept in [`BED_ZONE_FILE`] in the data directory, and used from the next check;
//! it wins over `camera.bed_zone` in the config until the file is removed.
//!
//! [`decide`] is the pure gate; the rest is small file IO. Neither file holds an image.

use super::analysis::{BedZone, ZoneError};
use jiff::{SignedDuration, Timestamp};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The expiry of installer mode (an RFC 3339 time, one line) in the data directory.
pub const INSTALLER_MODE_FILE: &str = "installer-mode";
/// The bed zone from the hub (JSON corners) in the data directory.
pub const BED_ZONE_FILE: &str = "bed-zone.json";
/// Longest installer mode one command may switch on: an afternoon's installation.
pub const MAX_MINUTES: u32 = 240;

/// Why the gate is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Never switched on (no file), or the file is unreadable.
    Off,
    /// Switched on, and ran out at this time.
    Ended(Timestamp),
}

impl Closed {
    /// A sentence for the installer, saying how to open the gate.
    pub fn explain(&self) -> String {
        let how = "switch it on at the device: vaka-agent camera installer-mode --config \
                   agent.toml --minutes 30";
        match self {
            Closed::Off => format!("installer mode is off on the device; {how}"),
            Closed::Ended(at) => format!("installer mode ended at {at}; {how}"),
        }
    }
}

/// Whether installer mode is on at `now`, given the recorded expiry. Pure.
pub fn decide(now: Timestamp, until: Option<Timestamp>) -> Result<Timestamp, Closed> {
    match until {
        None => Err(Closed::Off),
        Some(until) if now < until => Ok(until),
        Some(until) => Err(Closed::Ended(until)),
    }
}

/// When installer mode switched on at `now` for `minutes` ends, or why it may not.
pub fn expiry(now: Timestamp, minutes: u32) -> Result<Timestamp, String> {
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(format!("--minutes {minutes}: must be between 1 and {MAX_MINUTES}"));
    }
    now.checked_add(SignedDuration::from_mins(i64::from(minutes))).map_err(|e| e.to_string())
}

/// Records `until` as installer mode's expiry in `data_dir` (written whole, then renamed, so
/// a reader never sees half a time).
pub fn switch_on(data_dir: &Path, until: Timestamp) -> std::io::Result<PathBuf> {
    write_whole(&data_dir.join(INSTALLER_MODE_FILE), format!("{until}\n").as_bytes())
}

/// The recorded expiry; `None` when there is none or it cannot be read (the gate stays shut).
pub fn recorded_until(data_dir: &Path) -> Option<Timestamp> {
    std::fs::read_to_string(data_dir.join(INSTALLER_MODE_FILE)).ok()?.trim().parse().ok()
}

/// Judges corners from the hub with the config's rules.
pub fn zone_from_wire(corners: &[[f64; 2]]) -> Result<BedZone, ZoneError> {
    let points: Vec<(f64, f64)> = corners.iter().map(|&[x, y]| (x, y)).collect();
    BedZone::new(&points)
}

/// Keeps `zone` in `data_dir` for the next start.
pub fn save_zone(data_dir: &Path, zone: &BedZone) -> std::io::Result<PathBuf> {
    let corners: Vec<[f64; 2]> = zone.points().iter().map(|&(x, y)| [x, y]).collect();
    let text = serde_json::to_vec(&corners).map_err(std::io::Error::other)?;
    write_whole(&data_dir.join(BED_ZONE_FILE), &text)
}

/// The zone the hub sent earlier, if one is kept; a kept file that is not a valid zone is an
/// error (the caller logs it and uses the config's zone).
pub fn saved_zone(data_dir: &Path) -> Result<Option<BedZone>, String> {
    let path = data_dir.join(BED_ZONE_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let corners: Vec<[f64; 2]> =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    zone_from_wire(&corners).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn installer_mode_is_on_only_until_its_recorded_expiry() {
        let until = at("2026-11-23T14:30:00Z");
        assert_eq!(decide(at("2026-11-23T14:00:00Z"), None), Err(Closed::Off));
        assert_eq!(decide(at("2026-11-23T14:29:59Z"), Some(until)), Ok(until));
        assert_eq!(decide(until, Some(until)), Err(Closed::Ended(until)));
        assert!(Closed::Off.explain().contains("vaka-agent camera installer-mode"));
    }

    #[test]
    fn installer_mode_lasts_one_to_240_minutes() {
        let now = at("2026-11-23T14:00:00Z");
        assert_eq!(expiry(now, 30), Ok(at("2026-11-23T14:30:00Z")));
        for bad in [0, 241] {
            assert!(expiry(now, bad).unwrap_err().contains("between 1 and 240"));
        }
    }

    #[test]
    fn switched_on_installer_mode_is_read_back_and_a_garbled_file_keeps_it_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recorded_until(dir.path()), None);
        let until = at("2026-11-23T14:30:00Z");
        switch_on(dir.path(), until).unwrap();
        assert_eq!(recorded_until(dir.path()), Some(until));
        std::fs::write(dir.path().join(INSTALLER_MODE_FILE), "tomorrow").unwrap();
        assert_eq!(recorded_until(dir.path()), None);
    }

    #[test]
    fn zone_from_the_hub_is_judged_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(saved_zone(dir.path()), Ok(None));
        assert!(zone_from_wire(&[[0.1, 0.1], [0.2, 0.1]]).is_err());
        let zone = zone_from_wire(&[[0.2, 0.15], [0.75, 0.15], [0.75, 0.9], [0.2, 0.9]]).unwrap();
        save_zone(dir.path(), &zone).unwrap();
        assert_eq!(saved_zone(dir.path()), Ok(Some(zone)));
        std::fs::write(dir.path().join(BED_ZONE_FILE), "[[0.1,0.1],[2,0],[0,1]]").unwrap();
        assert!(saved_zone(dir.path()).unwrap_err().contains("outside the picture"));
    }
}
