//! NMEA 0183 from a GPS receiver (serial line or recorded file) into [`Fix`]es.
//!
//! The [`nmea`] crate parses each sentence and verifies its checksum; [`NmeaDecoder`] is
//! fed one line at a time and combines the sentences of one receiver *epoch* (one solution,
//! normally one per second) into one [`Fix`]:
//! - **GGA** (position, fix quality, satellites, HDOP, altitude), **RMC** (position, valid
//!   flag, speed, date), **GNS** and **GLL** (position and validity) carry the epoch's UTC
//!   time; sentences with the same time belong to one epoch. A second sentence of a type the
//!   epoch already has also starts a new epoch (receivers without time send empty times).
//! - **GSA** (2D/3D mode, HDOP) and **VTG** (speed) carry no time; receivers send them before
//!   or after the timed sentences, so the most recent one is used if it arrived during this
//!   epoch or the one before.
//! - Any talker: `GP`, `GN` (multi-constellation), `GL`, `GA`, `BD`…
//!
//! # When a fix comes out
//! An epoch is *complete* when it has every sentence type the previous epoch had; it is
//! returned at once (for a receiver sending RMC and GGA: on the second of the two). An
//! epoch that never completes is returned when the next epoch begins, or by
//! [`NmeaDecoder::flush`] (end of a file, or a quiet line). At most one fix comes back per
//! line: if a line both ends an unfinished epoch and completes a new one, the newer fix wins
//! and the older, superseded one is dropped.
//!
//! # What a fix says
//! - **No fix** when any sentence of the epoch says so (RMC status `V`, GGA quality 0 or a
//!   non-measured quality such as 6 = dead reckoning, GLL/GNS invalid) or none has a
//!   position.
//! - **2D/3D** from GSA; a receiver that sends no GSA gets 3D when GGA/GNS give an altitude,
//!   else 2D (so `require_3d` refuses RMC-only receivers rather than trusting them blindly).
//! - HDOP from GGA (else GNS, else GSA); speed from RMC (else VTG), knots → m/s.
//! - `time` only when the epoch has an RMC with date and time (GGA has no date).
//!
//! # Errors
//! Each error concerns one line; the decoder stays usable. Sentence types the crate does
//! not read (GSV, TXT, ZDA…), and proprietary or unknown ones with a correct checksum, are
//! ignored (`Ok(None)`). Blank lines are ignored.

use super::fix::{measurement, valid_lat_lon, Fix, FixQuality, MPS_PER_KNOT};
use ::nmea::sentences::gsa::GsaMode2;
use ::nmea::sentences::rmc::RmcStatusOfFix;
use ::nmea::sentences::FixType;
use ::nmea::ParseResult;
use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};
use thiserror::Error;

/// Why one line was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NmeaError {
    #[error("checksum mismatch: computed {computed:02X}, sentence says {stated:02X}")]
    Checksum { computed: u8, stated: u8 },
    #[error("not an NMEA sentence: {reason}")]
    NotNmea { reason: &'static str },
    #[error("{sentence} sentence is malformed: {reason}")]
    Malformed { sentence: String, reason: String },
}

/// Sentence types that carry an epoch time, as bits.
const GGA: u8 = 1;
const RMC: u8 = 2;
const GNS: u8 = 4;
const GLL: u8 = 8;

/// The parts of one epoch gathered so far.
#[derive(Debug, Clone)]
struct Epoch {
    number: u64,
    time: Option<NaiveTime>,
    kinds: u8,
    emitted: bool,
    /// Position with the rank of its source (lower is preferred: GGA, GNS, RMC, GLL).
    position: Option<(u8, f64, f64)>,
    /// Some sentence said the receiver has no valid fix.
    invalid: bool,
    altitude: bool,
    hdop: Option<f64>,
    satellites: Option<u32>,
    speed_mps: Option<f64>,
    date: Option<NaiveDate>,
}

impl Epoch {
    fn new(number: u64, time: Option<NaiveTime>) -> Epoch {
        Epoch {
            number,
            time,
            kinds: 0,
            emitted: false,
            position: None,
            invalid: false,
            altitude: false,
            hdop: None,
            satellites: None,
            speed_mps: None,
            date: None,
        }
    }

    fn offer_position(&mut self, rank: u8, lat: Option<f64>, lon: Option<f64>) {
        if let (Some(lat), Some(lon)) = (lat, lon) {
            if self.position.is_none_or(|(r, _, _)| rank < r) {
                self.position = Some((rank, lat, lon));
            }
        }
    }
}

/// Combines a receiver's sentences into fixes; see the module note.
#[derive(Debug, Default)]
pub struct NmeaDecoder {
    open: Option<Epoch>,
    /// Sentence types of the last finished epoch: a new epoch with all of them is complete.
    usual: Option<u8>,
    /// Epochs begun so far; untimed sentences are stamped with it.
    epochs: u64,
    gsa: Option<(u64, GsaMode2, Option<f64>)>,
    vtg: Option<(u64, f64)>,
}

impl NmeaDecoder {
    pub fn new() -> NmeaDecoder {
        NmeaDecoder::default()
    }

    /// Feeds one line (with or without its line ending); returns a fix when an epoch is done.
    pub fn push_line(&mut self, line: &str) -> Result<Option<Fix>, NmeaError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let parsed = match ::nmea::parse_str(line) {
            Ok(parsed) => parsed,
            Err(e) => return refusal(line, e),
        };
        let out = match parsed {
            ParseResult::GGA(g) => {
                let (lat, lon) = on_earth(line, g.latitude, g.longitude)?;
                let closed = self.begin(GGA, g.fix_time);
                let e = self.epoch();
                e.offer_position(0, lat, lon);
                e.invalid |= !g.fix_type.is_some_and(FixType::is_valid);
                e.altitude |= g.altitude.is_some();
                e.hdop = e.hdop.or(widen(g.hdop));
                e.satellites = e.satellites.or(g.fix_satellites);
                closed
            }
            ParseResult::GNS(g) => {
                let (lat, lon) = on_earth(line, g.lat, g.lon)?;
                let closed = self.begin(GNS, g.fix_time);
                let e = self.epoch();
                e.offer_position(1, lat, lon);
                e.invalid |= !FixType::from(g.faa_modes).is_valid();
                e.altitude |= g.alt.is_some();
                e.hdop = e.hdop.or(widen(g.hdop));
                e.satellites = e.satellites.or(Some(u32::from(g.nsattelites)));
                closed
            }
            ParseResult::RMC(r) => {
                let (lat, lon) = on_earth(line, r.lat, r.lon)?;
                let closed = self.begin(RMC, r.fix_time);
                let e = self.epoch();
                e.offer_position(2, lat, lon);
                e.invalid |= r.status_of_fix == RmcStatusOfFix::Invalid;
                e.speed_mps = widen(r.speed_over_ground).map(|k| k * MPS_PER_KNOT);
                e.date = r.fix_date;
                closed
            }
            ParseResult::GLL(g) => {
                let (lat, lon) = on_earth(line, g.latitude, g.longitude)?;
                let closed = self.begin(GLL, g.fix_time);
                let e = self.epoch();
                e.offer_position(3, lat, lon);
                e.invalid |= !g.valid || g.faa_mode.is_some_and(|m| !FixType::from(m).is_valid());
                closed
            }
            ParseResult::GSA(g) => {
                self.gsa = Some((self.epochs, g.mode2, widen(g.hdop)));
                return Ok(None);
            }
            ParseResult::VTG(v) => {
                self.vtg = widen(v.speed_over_ground).map(|k| (self.epochs, k * MPS_PER_KNOT));
                return Ok(None);
            }
            _ => return Ok(None),
        };
        Ok(self.complete().or(out))
    }

    /// Returns the epoch in progress, if it was not returned yet: for the end of a file, or
    /// when the receiver has been quiet for longer than an epoch.
    pub fn flush(&mut self) -> Option<Fix> {
        self.close()
    }

    /// Starts a new epoch for a timed sentence unless it belongs to the open one; returns
    /// the closed epoch's fix if it had not been returned.
    fn begin(&mut self, kind: u8, time: Option<NaiveTime>) -> Option<Fix> {
        let same = self.open.as_ref().is_some_and(|e| e.time == time && e.kinds & kind == 0);
        let closed = if same { None } else { self.close() };
        if self.open.is_none() {
            self.epochs += 1;
            self.open = Some(Epoch::new(self.epochs, time));
        }
        self.epoch().kinds |= kind;
        closed
    }

    fn epoch(&mut self) -> &mut Epoch {
        self.open.get_or_insert_with(|| Epoch::new(0, None))
    }

    fn close(&mut self) -> Option<Fix> {
        let e = self.open.take()?;
        self.usual = Some(e.kinds);
        (!e.emitted).then(|| self.finish(&e))
    }

    /// The open epoch's fix if it just became complete.
    fn complete(&mut self) -> Option<Fix> {
        let usual = self.usual?;
        let e = self.open.as_ref()?;
        if e.emitted || e.kinds & usual != usual {
            return None;
        }
        let fix = self.finish(e);
        self.epoch().emitted = true;
        Some(fix)
    }

    fn finish(&self, e: &Epoch) -> Fix {
        let recent = |stamp: u64| stamp + 1 >= e.number;
        let time = match (e.date, e.time) {
            (Some(d), Some(t)) => timestamp(d, t),
            _ => None,
        };
        let Some((_, lat, lon)) = e.position.filter(|_| !e.invalid) else {
            return Fix::no_fix(time);
        };
        let gsa = self.gsa.filter(|(stamp, _, _)| recent(*stamp));
        let quality = match gsa.map(|(_, mode, _)| mode) {
            Some(GsaMode2::Fix3D) => FixQuality::ThreeD,
            Some(GsaMode2::Fix2D) => FixQuality::TwoD,
            _ if e.altitude => FixQuality::ThreeD,
            _ => FixQuality::TwoD,
        };
        let vtg = self.vtg.filter(|(stamp, _)| recent(*stamp)).map(|(_, s)| s);
        Fix {
            time,
            lat,
            lon,
            quality,
            hdop: measurement(e.hdop.or(gsa.and_then(|(_, _, h)| h))),
            speed_mps: measurement(e.speed_mps.or(vtg)),
            satellites: e.satellites,
            accuracy_m: None,
        }
    }
}

/// A sentence's position, refused (before it touches the epoch) if it is not on Earth.
fn on_earth(
    line: &str,
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<(Option<f64>, Option<f64>), NmeaError> {
    match (lat, lon) {
        (Some(a), Some(o)) if !valid_lat_lon(a, o) => Err(NmeaError::Malformed {
            sentence: sentence_name(line),
            reason: format!("position {a}, {o} is not on Earth"),
        }),
        _ => Ok((lat, lon)),
    }
}

/// An `f32` field as the `f64` its decimal text meant (0.9, not 0.899999976…).
fn widen(value: Option<f32>) -> Option<f64> {
    value.and_then(|v| v.to_string().parse().ok())
}

/// UTC date and time of day into an instant; a leap second is read as the second before.
fn timestamp(date: NaiveDate, time: NaiveTime) -> Option<jiff::Timestamp> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(date.year()).ok()?,
        i8::try_from(date.month()).ok()?,
        i8::try_from(date.day()).ok()?,
        i8::try_from(time.hour()).ok()?,
        i8::try_from(time.minute()).ok()?,
        i8::try_from(time.second()).ok()?,
        i32::try_from(time.nanosecond().min(999_999_999)).ok()?,
    )
    .ok()?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// The `GPGGA` of a line, for error messages.
fn sentence_name(line: &str) -> String {
    line.trim_start_matches(['$', '!'])
        .split([',', '*'])
        .next()
        .unwrap_or("")
        .chars()
        .take(8)
        .collect()
}

/// What to answer for a line the crate did not parse.
fn refusal(line: &str, error: ::nmea::Error<'_>) -> Result<Option<Fix>, NmeaError> {
    use ::nmea::Error as E;
    match error {
        E::ChecksumMismatch { calculated, found } => {
            Err(NmeaError::Checksum { computed: calculated, stated: found })
        }
        // Well-formed with a correct checksum, just not a sentence the tracker reads.
        E::DisabledSentence | E::Unsupported(_) => Ok(None),
        E::ASCII | E::Utf8Decoding => {
            Err(NmeaError::NotNmea { reason: "it contains non-ASCII characters" })
        }
        E::SentenceLength(_) => Err(NmeaError::NotNmea {
            reason: "it is longer than the longest sentence any receiver sends (102 characters)",
        }),
        other => {
            if ::nmea::parse_nmea_sentence(line).is_ok() {
                // A sentence type the crate knows, checksum correct, fields wrong.
                return Err(NmeaError::Malformed {
                    sentence: sentence_name(line),
                    reason: other.to_string(),
                });
            }
            unknown_sentence(line)
        }
    }
}

/// A line the crate does not recognise: a proprietary (`$PUBX,…`) or unknown sentence with a
/// good checksum is ignored; anything else is refused with the reason.
fn unknown_sentence(line: &str) -> Result<Option<Fix>, NmeaError> {
    let not = |reason| Err(NmeaError::NotNmea { reason });
    let Some(body) = line.strip_prefix(['$', '!']) else {
        return not("it does not start with '$'");
    };
    let Some((data, tail)) = body.rsplit_once('*') else {
        return not("it has no '*' checksum");
    };
    let hex = tail.len() == 2 && tail.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(stated) = hex.then(|| u8::from_str_radix(tail, 16).ok()).flatten() else {
        return not("its checksum is not two hex digits after '*'");
    };
    let address = data.split(',').next().unwrap_or("");
    let well_formed = data.contains(',')
        && (2..=6).contains(&address.len())
        && address.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !well_formed {
        return not("it does not begin with a sentence address such as $GPGGA,");
    }
    let computed = data.bytes().fold(0, |c, b| c ^ b);
    if computed != stated {
        return Err(NmeaError::Checksum { computed, stated });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use proptest::prelude::*;

    const CLASSIC: &str = include_str!("../../tests/fixtures/nmea/classic-gpsinformation.nmea");
    const UBLOX: &str = include_str!("../../tests/fixtures/nmea/ublox-receiver-description.nmea");
    const NEO6_NO_FIX: &str = include_str!("../../tests/fixtures/nmea/ublox-neo6-no-fix.nmea");
    const STATIONARY: &str = include_str!("../../tests/fixtures/nmea/stationary-receiver.nmea");
    const MOVING: &str = include_str!("../../tests/fixtures/nmea/moving-aircraft.nmea");
    const GN: &str = include_str!("../../tests/fixtures/nmea/gn-multi-constellation.nmea");
    const M8N_NO_FIX: &str = include_str!("../../tests/fixtures/nmea/ublox-m8n-gn-no-fix.nmea");
    const FORETREX: &str = include_str!("../../tests/fixtures/nmea/gpsd-foretrex-no-fix.nmea");
    const HELD: &str = include_str!("../../tests/fixtures/nmea/rmc-void-with-held-position.nmea");
    const CORRUPTED: &str = include_str!("../../tests/fixtures/nmea/corrupted.nmea");

    const GOOD: [&str; 9] =
        [CLASSIC, UBLOX, NEO6_NO_FIX, STATIONARY, MOVING, GN, M8N_NO_FIX, FORETREX, HELD];

    /// Degrees from a sentence's `ddmm.mmmm`, worked out by hand: degrees + minutes / 60.
    fn deg(degrees: f64, minutes: f64) -> f64 {
        degrees + minutes / 60.0
    }

    fn assert_near(actual: f64, expected: f64) {
        assert!((actual - expected).abs() <= 1e-6, "{actual} is not within 1e-6 of {expected}");
    }

    /// Every line through a fresh decoder, then a flush: the fixes and the errors.
    fn decode(text: &str) -> (Vec<Fix>, Vec<NmeaError>) {
        let mut decoder = NmeaDecoder::new();
        let (mut fixes, mut errors) = (Vec::new(), Vec::new());
        for line in text.lines() {
            match decoder.push_line(line) {
                Ok(Some(fix)) => fixes.push(fix),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        fixes.extend(decoder.flush());
        (fixes, errors)
    }

    /// A sentence with its checksum computed, for made-up epochs.
    fn sentence(body: &str) -> String {
        let checksum = body.bytes().fold(0, |c, b| c ^ b);
        format!("${body}*{checksum:02X}")
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn every_good_fixture_line_has_a_correct_checksum() {
        for line in GOOD.iter().flat_map(|f| f.lines()) {
            let (body, stated) = line[1..].rsplit_once('*').unwrap();
            let computed = body.bytes().fold(0u8, |c, b| c ^ b);
            assert_eq!(format!("{computed:02X}"), stated.to_uppercase(), "{line}");
        }
    }

    #[test]
    fn classic_gga_gsa_rmc_make_one_3d_fix_with_date_speed_and_hdop() {
        let (fixes, errors) = decode(CLASSIC);
        assert!(errors.is_empty(), "{errors:?}");
        let [fix] = fixes.as_slice() else { panic!("{fixes:?}") };
        assert_near(fix.lat, deg(48.0, 7.038));
        assert_near(fix.lon, deg(11.0, 31.000));
        assert_eq!(fix.quality, FixQuality::ThreeD);
        assert_eq!(fix.time, Some(ts("1994-03-23T12:35:19Z")));
        assert_eq!((fix.hdop, fix.satellites), (Some(0.9), Some(8)));
        assert_near(fix.speed_mps.unwrap(), 22.4 * 1852.0 / 3600.0);
    }

    #[test]
    fn ublox_example_sentences_each_give_their_own_fix() {
        let (fixes, errors) = decode(UBLOX);
        assert!(errors.is_empty(), "{errors:?}");
        let [gll, rmc] = fixes.as_slice() else { panic!("{fixes:?}") };
        assert_near(gll.lat, deg(47.0, 17.11364));
        assert_near(gll.lon, deg(8.0, 33.91565));
        assert_eq!(gll.time, None, "GLL has no date");
        assert_near(rmc.lat, deg(47.0, 17.11437));
        assert_near(rmc.lon, deg(8.0, 33.91522));
        assert_eq!(rmc.time, Some(ts("2002-12-09T08:35:59Z")));
        assert_near(rmc.speed_mps.unwrap(), 0.004 * 1852.0 / 3600.0);
        // The GSA in between says 3D with HDOP 1.18.
        assert_eq!((rmc.quality, rmc.hdop), (FixQuality::ThreeD, Some(1.18)));
    }

    #[test]
    fn a_moving_receiver_gives_one_fix_per_epoch_moving_east() {
        let (fixes, errors) = decode(MOVING);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(fixes.len(), 3);
        assert_near(fixes[0].lat, deg(55.0, 5.330990));
        assert_near(fixes[0].lon, deg(38.0, 58.587325));
        assert_near(fixes[2].lat, deg(55.0, 5.343905));
        assert_near(fixes[2].lon, deg(38.0, 58.720715));
        assert_eq!(fixes[0].time, Some(ts("2017-03-31T11:01:24Z")));
        assert_eq!(fixes[2].time, Some(ts("2017-03-31T11:01:26Z")));
        assert!(fixes.windows(2).all(|w| w[1].lon > w[0].lon));
        assert_near(fixes[1].speed_mps.unwrap(), 148.8 * 1852.0 / 3600.0);
        assert!(fixes.iter().all(|f| f.quality == FixQuality::ThreeD));
        assert_eq!(fixes[2].hdop, Some(1.1));
    }

    #[test]
    fn a_stationary_receiver_stays_within_a_metre_and_reports_walking_pace_at_most() {
        let (fixes, errors) = decode(STATIONARY);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(fixes.len(), 7, "six RMC+GGA epochs and a lone RMC at the end");
        assert_near(fixes[0].lat, deg(28.0, 31.4703));
        assert_near(fixes[0].lon, -deg(80.0, 41.0068));
        assert_eq!(fixes[0].time, Some(ts("2008-11-21T14:29:22.830Z")));
        assert_eq!(fixes[0].satellites, Some(10));
        for f in &fixes {
            // 0.0001′ of arc is about 0.19 m; the track moves by at most 0.0004′.
            assert!((f.lat - fixes[0].lat).abs() < 1e-5 && (f.lon - fixes[0].lon).abs() < 1e-5);
            assert!(f.speed_mps.unwrap() < 0.1, "{f:?}");
        }
    }

    #[test]
    fn a_multi_constellation_gn_receiver_is_read_through_its_no_fix_start() {
        let (fixes, errors) = decode(GN);
        assert!(errors.is_empty(), "{errors:?}");
        let [first, a, b] = fixes.as_slice() else { panic!("{fixes:?}") };
        assert_eq!(first.quality, FixQuality::NoFix);
        for f in [a, b] {
            assert_near(f.lat, deg(42.0, 10.472433));
            assert_near(f.lon, deg(24.0, 45.362882));
            assert_eq!(
                (f.quality, f.hdop, f.satellites),
                (FixQuality::ThreeD, Some(0.7), Some(12))
            );
        }
        assert_eq!(a.time, Some(ts("2022-04-13T05:23:45.77Z")));
        assert_eq!(b.time, Some(ts("2022-04-13T05:23:47Z")));
    }

    #[test]
    fn receivers_without_a_fix_give_no_fix_reports_and_no_errors() {
        for (text, epochs) in [(NEO6_NO_FIX, 2), (M8N_NO_FIX, 1), (FORETREX, 1), (HELD, 1)] {
            let (fixes, errors) = decode(text);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(fixes.len(), epochs, "{fixes:?}");
            assert!(fixes.iter().all(|f| f.quality == FixQuality::NoFix && !f.has_position()));
        }
    }

    #[test]
    fn corrupted_lines_are_refused_with_the_reason_and_the_decoder_goes_on() {
        let mut decoder = NmeaDecoder::new();
        let errors: Vec<NmeaError> =
            CORRUPTED.lines().map(|l| decoder.push_line(l).unwrap_err()).collect();
        assert_eq!(errors[0].to_string(), "checksum mismatch: computed 46, sentence says 47");
        assert_eq!(errors[1], NmeaError::Checksum { computed: 0x6A, stated: 0x6B });
        assert_eq!(errors[2], NmeaError::Checksum { computed: 0x0D, stated: 0x0E });
        assert_eq!(errors[3], NmeaError::Checksum { computed: 0x71, stated: 0x7F });
        assert_eq!(errors[4], NmeaError::Checksum { computed: 0x2B, stated: 0x58 });
        assert_eq!(errors[5], NmeaError::Checksum { computed: 0x00, stated: 0x01 });
        assert!(errors[6].to_string().contains("no '*' checksum"), "{}", errors[6]);
        assert!(errors[7].to_string().contains("does not start with '$'"), "{}", errors[7]);
        assert!(errors[8].to_string().contains("two hex digits"), "{}", errors[8]);
        assert!(errors[9].to_string().contains("non-ASCII"), "{}", errors[9]);
        assert!(matches!(errors[10], NmeaError::NotNmea { .. }));
        assert_eq!(decoder.flush(), None, "nothing from the refused lines reached an epoch");
        for line in CLASSIC.lines() {
            decoder.push_line(line).unwrap();
        }
        assert_near(decoder.flush().unwrap().lat, deg(48.0, 7.038));
    }

    #[test]
    fn a_gga_only_receiver_gets_each_fix_on_its_own_line_once_its_pattern_is_known() {
        let mut d = NmeaDecoder::new();
        let gga = |t: &str| {
            sentence(&format!("GPGGA,{t},6445.000,N,02057.000,E,1,07,1.2,40.0,M,25.0,M,,"))
        };
        assert_eq!(d.push_line(&gga("010000")).unwrap(), None, "the first epoch may still grow");
        assert!(d.push_line(&gga("010001")).unwrap().is_some());
        assert!(d.push_line(&gga("010002")).unwrap().is_some());
        assert_eq!(d.flush(), None, "already returned");
    }

    #[test]
    fn a_fix_comes_out_as_soon_as_the_epoch_has_its_usual_sentences() {
        let mut d = NmeaDecoder::new();
        let rmc =
            |t: &str| sentence(&format!("GNRMC,{t},A,6445.000,N,02057.000,E,0.5,,291026,,,A"));
        let gga = |t: &str| {
            sentence(&format!("GNGGA,{t},6445.000,N,02057.000,E,1,07,1.2,40.0,M,25.0,M,,"))
        };
        let gsa = sentence("GNGSA,A,2,01,02,03,,,,,,,,,,2.0,1.2,1.6");
        assert_eq!(d.push_line(&rmc("003000.00")).unwrap(), None);
        assert_eq!(d.push_line(&gga("003000.00")).unwrap(), None);
        let first = d.push_line(&rmc("003001.00")).unwrap().unwrap();
        assert_eq!(first.time, Some(ts("2026-10-29T00:30:00Z")));
        d.push_line(&gsa).unwrap();
        let second = d.push_line(&gga("003001.00")).unwrap().unwrap();
        assert_eq!(second.time, Some(ts("2026-10-29T00:30:01Z")));
        assert_eq!(second.quality, FixQuality::TwoD, "GSA mode 2");
        assert_near(second.lat, deg(64.0, 45.0));
    }

    #[test]
    fn dead_reckoning_and_positions_off_the_earth_are_not_fixes() {
        let (fixes, _) =
            decode(&sentence("GPGGA,120000,6445.000,N,02057.000,E,6,04,2.0,40.0,M,,M,,"));
        assert_eq!(fixes[0].quality, FixQuality::NoFix, "quality 6 is an estimate");
        let mut d = NmeaDecoder::new();
        let err =
            d.push_line(&sentence("GPGGA,120000,9907.038,N,01131.000,E,1,08,0.9,545.4,M,,M,,"));
        assert!(err.unwrap_err().to_string().contains("not on Earth"));
    }

    #[test]
    fn blank_lines_and_line_endings_are_ignored() {
        let mut d = NmeaDecoder::new();
        assert_eq!(d.push_line("").unwrap(), None);
        assert_eq!(d.push_line("\r\n").unwrap(), None);
        for line in CLASSIC.lines() {
            d.push_line(&format!("{line}\r\n")).unwrap();
        }
        assert!(d.flush().unwrap().has_position());
    }

    /// A fixture line with one character replaced, its checksum recomputed or not.
    fn mutated_line() -> impl Strategy<Value = String> {
        let lines: Vec<&'static str> = GOOD.iter().flat_map(|f| f.lines()).collect();
        (prop::sample::select(lines), any::<prop::sample::Index>(), any::<char>(), any::<bool>())
            .prop_map(|(line, at, c, fix_checksum)| {
                let mut chars: Vec<char> = line.chars().collect();
                let i = at.index(chars.len());
                chars[i] = c;
                let text: String = chars.into_iter().collect();
                match (fix_checksum, text.strip_prefix('$').and_then(|t| t.rsplit_once('*'))) {
                    (true, Some((body, _))) => sentence(body),
                    _ => text,
                }
            })
    }

    fn any_line() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..120)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            "\\$[A-Z]{5},[0-9A-Z.,-]{0,80}\\*[0-9A-F]{2}",
            mutated_line(),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic_and_every_fix_keeps_the_invariants(
            lines in prop::collection::vec(any_line(), 0..40),
        ) {
            let mut d = NmeaDecoder::new();
            let mut fixes = Vec::new();
            for line in &lines {
                if let Ok(Some(f)) = d.push_line(line) {
                    fixes.push(f);
                }
            }
            fixes.extend(d.flush());
            for f in fixes {
                if f.has_position() {
                    prop_assert!(valid_lat_lon(f.lat, f.lon), "{f:?}");
                } else {
                    prop_assert_eq!((f.lat, f.lon), (0.0, 0.0));
                }
                for m in [f.hdop, f.speed_mps, f.accuracy_m].into_iter().flatten() {
                    prop_assert!(m.is_finite() && m >= 0.0);
                }
            }
        }
    }
}
