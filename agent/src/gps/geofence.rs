//! Safe areas and the per-area geofence: when does a person count as having left, and when
//! as back?
//!
//! An [`Area`] is a circle or a polygon on the Earth (degrees, WGS 84) with a [`Schedule`].
//! [`Shape::signed_distance_m`] is the distance to its border in metres, negative inside,
//! measured with `geo`: containment in the polygon, then the closest point of the border on the
//! sphere (haversine) and the geodesic (WGS 84 ellipsoid) distance to it. That is right at
//! Skellefteå's 64.75°N, where a degree of longitude is only 47.6 km.
//!
//! # Hysteresis and dwell ([`Geofence`])
//! GPS positions scatter by several metres, so the border has a band of `margin_m` on each
//! side in which nothing changes:
//! - **Leaving.** While *inside*, a position more than `margin_m` outside the border starts a
//!   dwell; every position that is not more than `margin_m` outside cancels it. When the dwell
//!   has lasted `dwell` the person is *outside* and [`Transition::Left`] is returned once.
//! - **Returning.** While *outside*, the same with positions more than `margin_m` inside:
//!   after `dwell` of those the person is *inside* again and [`Transition::Returned`] is
//!   returned once.
//! - A gap in the positions (no fix) neither cancels nor advances evidence: a dwell that began
//!   completes at `began + dwell` on a [`Geofence::tick`] unless a contrary position came in
//!   between. Absence of fixes is not evidence of return (the tracker raises `gps_no_fix`
//!   for that separately).
//! - A new geofence assumes the person is inside (at home, where the tracker is installed);
//!   someone already outside is reported after one dwell.
//!
//! # Schedules
//! An area with [`Schedule::Windows`] only *raises* while the local wall-clock reading of
//! `now` (jiff, in the schedule's zone) lies in one of its windows: `20:00-08:00` covers 02:30
//! both times round on the autumn fold night and jumps straight from 01:59 to 03:00 on the
//! spring gap night without a break. Outside the schedule a leaving dwell is cancelled, and
//! one in progress when the schedule ends is dropped. Someone outside when the schedule
//! starts is reported one dwell after the first position inside the schedule.
//!
//! An alarm raised stays raised when the schedule ends: a person who left at 03:00 and is
//! not back at 08:00 is still missing, so returning is watched at all hours and reported
//! with [`Transition::Returned`] whenever it happens.
//!
//! The geofence reads no clock: `now` comes with every call, and everything it must keep over
//! a restart is in [`FenceState`].

use crate::camera::consent::ConsentWindow;
use geo::{
    Closest, Contains, Destination, Distance, Geodesic, HaversineClosestPoint, LineString, Point,
    Polygon,
};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A safe area from the person's plan.
#[derive(Debug, Clone)]
pub struct Area {
    /// Shown to staff in `geofence_left` and `geofence_returned`.
    pub name: String,
    pub shape: Shape,
    pub schedule: Schedule,
}

/// Positions are `(lat, lon)` in degrees.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle {
        centre: (f64, f64),
        radius_m: f64,
    },
    /// At least three corners, not self-intersecting (checked by the config).
    Polygon {
        points: Vec<(f64, f64)>,
    },
}

/// When an area may raise an alarm.
#[derive(Debug, Clone)]
pub enum Schedule {
    Always,
    /// Daily local wall-clock windows, e.g. `20:00-08:00`.
    Windows {
        tz: TimeZone,
        windows: Vec<ConsentWindow>,
    },
}

impl Schedule {
    /// Whether the local wall-clock reading of `now` lies in one of the windows.
    pub fn is_active(&self, now: Timestamp) -> bool {
        match self {
            Schedule::Always => true,
            Schedule::Windows { tz, windows } => {
                let clock = tz.to_datetime(now).time();
                windows.iter().any(|w| w.contains_clock(clock))
            }
        }
    }
}

fn point(lat: f64, lon: f64) -> Point<f64> {
    Point::new(lon, lat)
}

impl Shape {
    /// Metres from the position to the border: positive outside, negative inside.
    pub fn signed_distance_m(&self, lat: f64, lon: f64) -> f64 {
        let p = point(lat, lon);
        match self {
            Shape::Circle { centre, radius_m } => {
                Geodesic.distance(point(centre.0, centre.1), p) - radius_m
            }
            Shape::Polygon { points } => {
                let ring: LineString<f64> = points.iter().map(|&(lat, lon)| (lon, lat)).collect();
                let polygon = Polygon::new(ring, Vec::new());
                let border = match polygon.exterior().haversine_closest_point(&p) {
                    Closest::SinglePoint(q) | Closest::Intersection(q) => Geodesic.distance(q, p),
                    // Only for an empty ring, which the config refuses: far from everything.
                    Closest::Indeterminate => f64::INFINITY,
                };
                if polygon.contains(&p) {
                    -border
                } else {
                    border
                }
            }
        }
    }
}

/// The position `distance_m` from `(lat, lon)` towards `bearing` (degrees from north), on
/// the WGS 84 ellipsoid. For tests and simulators that need a point at a known distance.
pub fn destination(lat: f64, lon: f64, bearing: f64, distance_m: f64) -> (f64, f64) {
    let p = Geodesic.destination(point(lat, lon), bearing, distance_m);
    (p.y(), p.x())
}

/// What a geofence reports, once per change.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Outside for a whole dwell; `distance_m` outside the border at the last position.
    Left {
        distance_m: f64,
    },
    Returned,
}

/// What a geofence keeps over a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FenceState {
    /// The person counts as outside (an alarm was raised and they are not back).
    pub outside: bool,
    /// When positions beyond the margin on the other side began (a dwell in progress).
    pub since: Option<Timestamp>,
    /// Signed distance of the last position, metres.
    pub last_distance_m: Option<f64>,
}

/// One area's hysteresis and dwell; see the module note.
#[derive(Debug, Clone)]
pub struct Geofence {
    area: Area,
    margin_m: f64,
    dwell: SignedDuration,
    state: FenceState,
}

impl Geofence {
    pub fn new(area: Area, margin_m: f64, dwell: SignedDuration) -> Geofence {
        Geofence::restore(area, margin_m, dwell, FenceState::default())
    }

    pub fn restore(
        area: Area,
        margin_m: f64,
        dwell: SignedDuration,
        state: FenceState,
    ) -> Geofence {
        Geofence { area, margin_m, dwell, state }
    }

    pub fn area(&self) -> &Area {
        &self.area
    }

    pub fn state(&self) -> &FenceState {
        &self.state
    }

    pub fn is_outside(&self) -> bool {
        self.state.outside
    }

    /// A good position at `now`.
    pub fn observe(&mut self, now: Timestamp, lat: f64, lon: f64) -> Option<Transition> {
        let d = self.area.shape.signed_distance_m(lat, lon);
        self.state.last_distance_m = Some(d);
        let evidence = if self.state.outside {
            d < -self.margin_m
        } else {
            d > self.margin_m && self.area.schedule.is_active(now)
        };
        if evidence {
            self.state.since.get_or_insert(now);
        } else {
            self.state.since = None;
        }
        self.settle(now)
    }

    /// Time passes without a position: a dwell may complete, or the schedule may end.
    pub fn tick(&mut self, now: Timestamp) -> Option<Transition> {
        self.settle(now)
    }

    /// When a dwell in progress completes, if one is.
    pub fn next_wake(&self) -> Option<Timestamp> {
        self.state.since.map(|s| later(s, self.dwell))
    }

    fn settle(&mut self, now: Timestamp) -> Option<Transition> {
        let since = self.state.since?;
        if !self.state.outside && !self.area.schedule.is_active(now) {
            self.state.since = None;
            return None;
        }
        if now < later(since, self.dwell) {
            return None;
        }
        self.state.since = None;
        self.state.outside = !self.state.outside;
        Some(if self.state.outside {
            Transition::Left { distance_m: self.state.last_distance_m.unwrap_or(0.0).max(0.0) }
        } else {
            Transition::Returned
        })
    }
}

/// `t + d`, or the end of time if that does not exist.
pub(crate) fn later(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::camera::consent::time_zone;
    use proptest::prelude::*;

    /// A house in Skellefteå.
    pub(crate) const HOME: (f64, f64) = (64.7500, 20.9500);
    pub(crate) const RADIUS: f64 = 150.0;
    /// Corners of the pentagon are this far from HOME; its sides are 162 m from HOME.
    pub(crate) const CORNER: f64 = 200.0;
    const MARGIN: f64 = 25.0;
    const DWELL: SignedDuration = SignedDuration::from_secs(60);

    pub(crate) fn circle() -> Shape {
        Shape::Circle { centre: HOME, radius_m: RADIUS }
    }

    pub(crate) fn pentagon() -> Shape {
        let points = (0..5).map(|i| destination(HOME.0, HOME.1, 72.0 * i as f64, CORNER)).collect();
        Shape::Polygon { points }
    }

    fn area(shape: Shape, schedule: Schedule) -> Area {
        Area { name: "hemma".into(), shape, schedule }
    }

    pub(crate) fn nights() -> Schedule {
        Schedule::Windows {
            tz: time_zone("Europe/Stockholm").unwrap(),
            windows: vec!["20:00-08:00".parse().unwrap()],
        }
    }

    fn fence(shape: Shape) -> Geofence {
        Geofence::new(area(shape, Schedule::Always), MARGIN, DWELL)
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn secs(t: Timestamp, s: i64) -> Timestamp {
        t + SignedDuration::from_secs(s)
    }

    /// A position `d` metres outside the circle (negative: inside), due north.
    fn off_circle(d: f64) -> (f64, f64) {
        destination(HOME.0, HOME.1, 0.0, RADIUS + d)
    }

    /// Observes `(seconds after start, metres outside the circle)` in order.
    fn walk(fence: &mut Geofence, start: Timestamp, steps: &[(i64, f64)]) -> Vec<Transition> {
        steps
            .iter()
            .filter_map(|&(s, d)| {
                let (lat, lon) = off_circle(d);
                fence.observe(secs(start, s), lat, lon)
            })
            .collect()
    }

    #[test]
    fn circle_distance_is_metres_on_the_ellipsoid() {
        let (lat, lon) = destination(HOME.0, HOME.1, 123.0, 250.0);
        assert!((circle().signed_distance_m(lat, lon) - 100.0).abs() < 1e-6);
        assert!((circle().signed_distance_m(HOME.0, HOME.1) + RADIUS).abs() < 1e-9);
    }

    #[test]
    fn polygon_distance_is_right_at_skelleftea_latitude() {
        let square = Shape::Polygon {
            points: vec![(64.749, 20.949), (64.749, 20.951), (64.751, 20.951), (64.751, 20.949)],
        };
        // 0.001° east of the east side. A degree of longitude at latitude φ on WGS 84 is
        // π/180 · a·cos φ / √(1 − e² sin² φ): at 64.75° about 47.6 km, not the equator's 111 km.
        let (a, e2, phi) = (6_378_137.0_f64, 0.006_694_38_f64, 64.75_f64.to_radians());
        let expected = 0.001 * std::f64::consts::PI / 180.0 * a * phi.cos()
            / (1.0 - e2 * phi.sin().powi(2)).sqrt();
        let d = square.signed_distance_m(64.75, 20.952);
        assert!((d - expected).abs() < 0.1, "{d} m, expected {expected} m");
        // At the centre: 55.7 m from the north and south sides, 47.6 m from the east and west
        // sides; the nearest side counts.
        let inside = square.signed_distance_m(64.7505, 20.950);
        assert!(inside < 0.0 && (inside + 47.6).abs() < 0.2, "{inside}");
    }

    #[test]
    fn pentagon_sides_are_where_geometry_puts_them() {
        let side = CORNER * 36f64.to_radians().cos();
        let d = pentagon().signed_distance_m(HOME.0, HOME.1);
        assert!((d + side).abs() < 0.5, "{d}");
        let (lat, lon) = destination(HOME.0, HOME.1, 36.0, side + 100.0);
        assert!((pentagon().signed_distance_m(lat, lon) - 100.0).abs() < 0.5);
    }

    #[test]
    fn leaving_for_less_than_the_dwell_raises_nothing() {
        let mut f = fence(circle());
        let t = at("2026-11-03T02:00:00Z");
        assert!(walk(&mut f, t, &[(0, -50.0), (10, 100.0), (69, 100.0), (70, -50.0)]).is_empty());
        assert!(walk(&mut f, t, &[(80, 100.0), (130, 100.0), (131, 20.0), (200, 100.0)]).is_empty());
        assert!(!f.is_outside());
    }

    #[test]
    fn leaving_for_the_dwell_raises_once_and_coming_back_for_the_dwell_returns_once() {
        let mut f = fence(circle());
        let t = at("2026-11-03T02:00:00Z");
        let out = walk(&mut f, t, &[(0, 100.0), (30, 120.0), (59, 130.0)]);
        assert!(out.is_empty());
        let out = walk(&mut f, t, &[(60, 140.0), (70, 150.0), (300, 100.0)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!((out_distance(&out) - 140.0).abs() < 1e-6, "the distance at 60 s");
        // Back inside the margin band only: still outside.
        assert!(walk(&mut f, t, &[(400, -10.0), (500, 10.0)]).is_empty());
        let out = walk(&mut f, t, &[(600, -30.0), (630, -40.0), (660, -40.0), (700, -40.0)]);
        assert_eq!(out, [Transition::Returned]);
        assert!(!f.is_outside());
    }

    fn out_distance(out: &[Transition]) -> f64 {
        match out.first() {
            Some(Transition::Left { distance_m }) => *distance_m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_gap_in_fixes_does_not_cancel_the_dwell_and_a_tick_completes_it() {
        let mut f = fence(circle());
        let t = at("2026-11-03T02:00:00Z");
        assert!(walk(&mut f, t, &[(0, 100.0)]).is_empty());
        assert_eq!(f.next_wake(), Some(secs(t, 60)));
        assert_eq!(f.tick(secs(t, 59)), None);
        assert!(matches!(f.tick(secs(t, 60)), Some(Transition::Left { .. })));
        assert_eq!(f.next_wake(), None);
    }

    #[test]
    fn outside_its_schedule_an_area_raises_nothing() {
        let mut f = Geofence::new(area(circle(), nights()), MARGIN, DWELL);
        // 12:00 to 12:30 local (CET, UTC+1) in November.
        let t = at("2026-11-03T11:00:00Z");
        let steps: Vec<(i64, f64)> = (0..=30).map(|m| (m * 60, 300.0)).collect();
        assert!(walk(&mut f, t, &steps).is_empty());
        assert_eq!(f.next_wake(), None);
    }

    #[test]
    fn someone_already_outside_when_the_schedule_starts_is_raised_after_one_dwell() {
        let mut f = Geofence::new(area(circle(), nights()), MARGIN, DWELL);
        // From 19:58 local, a position every 30 s, 300 m outside all along.
        let t = at("2026-11-03T18:58:00Z");
        let steps: Vec<(i64, f64)> = (0..=10).map(|i| (i * 30, 300.0)).collect();
        // Up to 20:00:30: the dwell began with the position at 20:00:00.
        assert!(walk(&mut f, t, &steps[..=5]).is_empty());
        // 20:01:00 completes it.
        assert_eq!(walk(&mut f, t, &steps[6..=6]).len(), 1);
        assert!(walk(&mut f, t, &steps[7..]).is_empty(), "raised once");
    }

    #[test]
    fn a_dwell_in_progress_when_the_schedule_ends_is_dropped() {
        let mut f = Geofence::new(area(circle(), nights()), MARGIN, DWELL);
        // 07:59:30 local.
        let t = at("2026-11-04T06:59:30Z");
        assert!(walk(&mut f, t, &[(0, 200.0)]).is_empty());
        assert_eq!(f.tick(secs(t, 60)), None, "08:00:30: the schedule has ended");
        assert_eq!(f.next_wake(), None);
        assert!(!f.is_outside());
    }

    #[test]
    fn an_alarm_outlives_the_end_of_its_schedule_until_the_person_is_back() {
        let mut f = Geofence::new(area(circle(), nights()), MARGIN, DWELL);
        let t = at("2026-11-04T06:50:00Z"); // 07:50 local
        assert_eq!(walk(&mut f, t, &[(0, 200.0), (60, 200.0)]).len(), 1);
        // Still outside at 08:30 and 11:00: no new event, still outside.
        assert!(walk(&mut f, t, &[(2400, 300.0), (11400, 300.0)]).is_empty());
        assert!(f.is_outside());
        // Back at 11:10 (outside the schedule): returned after the dwell.
        assert_eq!(walk(&mut f, t, &[(12000, -80.0), (12060, -80.0)]), [Transition::Returned]);
    }

    #[test]
    fn a_restored_geofence_completes_the_dwell_it_had_begun() {
        let mut f = fence(circle());
        let t = at("2026-11-03T02:00:00Z");
        walk(&mut f, t, &[(0, 100.0)]);
        let saved = f.state().clone();
        let json = serde_json::to_string(&saved).unwrap();
        let back: FenceState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, saved);
        let mut g = Geofence::restore(area(circle(), Schedule::Always), MARGIN, DWELL, back);
        assert!(matches!(g.tick(secs(t, 61)), Some(Transition::Left { .. })));
    }

    fn stockholm(civil: &str, offset: &str) -> Timestamp {
        format!("{civil}{offset}[Europe/Stockholm]").parse::<jiff::Zoned>().unwrap().timestamp()
    }

    #[test]
    fn a_night_schedule_holds_through_the_autumn_fold_both_times_round() {
        let s = nights();
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
        assert!(s.is_active(stockholm("2026-10-25T02:30", "+02:00")));
        assert!(s.is_active(stockholm("2026-10-25T02:30", "+01:00")));
        assert_eq!(
            stockholm("2026-10-25T02:30", "+01:00") - SignedDuration::from_hours(1),
            stockholm("2026-10-25T02:30", "+02:00")
        );
        assert!(s.is_active(stockholm("2026-10-25T07:59", "+01:00")));
        assert!(!s.is_active(stockholm("2026-10-25T08:00", "+01:00")));
        assert!(!s.is_active(stockholm("2026-10-25T12:00", "+01:00")));
        assert!(s.is_active(stockholm("2026-10-25T20:00", "+01:00")));
    }

    #[test]
    fn a_night_schedule_holds_through_the_spring_gap() {
        let s = nights();
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 01:59:59 and 03:00:00 are a second apart.
        let before = stockholm("2026-03-29T01:59:59", "+01:00");
        let after = stockholm("2026-03-29T03:00:00", "+02:00");
        assert_eq!(after.duration_since(before), SignedDuration::from_secs(1));
        assert!(s.is_active(before) && s.is_active(after));
        assert!(!s.is_active(stockholm("2026-03-29T12:00", "+02:00")));
        // A window ending inside the gap ends at the jump.
        let short = Schedule::Windows {
            tz: time_zone("Europe/Stockholm").unwrap(),
            windows: vec!["22:00-02:30".parse().unwrap()],
        };
        assert!(short.is_active(before) && !short.is_active(after));
    }

    #[test]
    fn a_person_outside_through_the_fold_night_gets_exactly_one_alarm() {
        let mut f = Geofence::new(area(pentagon(), nights()), MARGIN, DWELL);
        // From 23:00 CEST on the 24th to 09:00 CET on the 25th, a position every 30 s, 400 m
        // from home (at least 200 m outside every side).
        let start = stockholm("2026-10-24T23:00", "+02:00");
        let mut events = Vec::new();
        let mut now = start;
        while now < stockholm("2026-10-25T09:00", "+01:00") {
            let (lat, lon) = destination(HOME.0, HOME.1, 200.0, 400.0);
            events.extend(f.observe(now, lat, lon));
            now = secs(now, 30);
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(f.is_outside());
    }

    /// A point on the pentagon's border: `along` in 0..1 walks once round it.
    fn on_pentagon_border(along: f64) -> (f64, f64) {
        let Shape::Polygon { points } = pentagon() else { unreachable!() };
        let x = along * points.len() as f64;
        let i = (x.floor() as usize).min(points.len() - 1);
        let (a, b) = (points[i], points[(i + 1) % points.len()]);
        let t = x - i as f64;
        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
    }

    /// A position within `r` metres of the border, for either shape.
    pub(crate) fn near_border(polygon: bool, along: f64, bearing: f64, offset: f64) -> (f64, f64) {
        if polygon {
            let (lat, lon) = on_pentagon_border(along);
            destination(lat, lon, bearing, offset.abs())
        } else {
            destination(HOME.0, HOME.1, along * 360.0, RADIUS + offset)
        }
    }

    /// A position at least 100 m outside (`far` true) or well inside, for either shape.
    pub(crate) fn away(polygon: bool, far: bool, bearing: f64, x: f64) -> (f64, f64) {
        let d = match (polygon, far) {
            (false, true) => RADIUS + 100.0 + 300.0 * x,
            (false, false) => (RADIUS - 50.0) * x,
            // Every corner is 200 m from HOME: 300 m out is at least 100 m from the border.
            (true, true) => CORNER + 100.0 + 300.0 * x,
            // Every side is 162 m from HOME: within 100 m of HOME is 62 m inside.
            (true, false) => 100.0 * x,
        };
        destination(HOME.0, HOME.1, bearing, d)
    }

    fn step() -> impl Strategy<Value = (i64, f64, f64, f64)> {
        (1i64..=120, 0.0..1.0, 0.0..360.0, -15.0..15.0)
    }

    proptest! {
        #[test]
        fn a_track_wobbling_15_m_around_the_border_never_raises(
            polygon in any::<bool>(),
            steps in prop::collection::vec(step(), 1..200),
        ) {
            let shape = if polygon { pentagon() } else { circle() };
            let mut f = fence(shape);
            let mut now = at("2026-11-03T01:00:00Z");
            for (dt, along, bearing, offset) in steps {
                now = secs(now, dt);
                let (lat, lon) = near_border(polygon, along, bearing, offset);
                prop_assert!(f.shape_distance_is_within(lat, lon, 15.5));
                prop_assert_eq!(f.observe(now, lat, lon), None);
                prop_assert_eq!(f.tick(secs(now, dt / 2)), None);
            }
            prop_assert!(!f.is_outside());
        }

        #[test]
        fn leaving_by_100_m_for_longer_than_the_dwell_raises_one_left_and_one_returned(
            polygon in any::<bool>(),
            before in prop::collection::vec((1i64..=30, 0.0..360.0, 0.0..1.0), 0..20),
            outside in prop::collection::vec((1i64..=90, 0.0..360.0, 0.0..1.0), 1..40),
            back in prop::collection::vec((1i64..=90, 0.0..360.0, 0.0..1.0), 1..40),
        ) {
            let shape = if polygon { pentagon() } else { circle() };
            let mut f = fence(shape);
            let mut now = at("2026-11-03T01:00:00Z");
            let mut seen = Vec::new();
            for &(dt, bearing, x) in &before {
                now = secs(now, dt);
                let (lat, lon) = away(polygon, false, bearing, x);
                seen.extend(f.observe(now, lat, lon));
            }
            for (phase, far) in [(&outside, true), (&back, false)] {
                // Go through the phase's steps, repeating them until a dwell has passed.
                let start = secs(now, phase[0].0);
                for &(dt, bearing, x) in phase.iter().cycle() {
                    now = secs(now, dt);
                    let (lat, lon) = away(polygon, far, bearing, x);
                    seen.extend(f.observe(now, lat, lon));
                    seen.extend(f.tick(secs(now, dt / 2)));
                    if now.duration_since(start) > DWELL + SignedDuration::from_secs(90) {
                        break;
                    }
                }
            }
            prop_assert_eq!(seen.len(), 2, "{:?}", seen);
            let left_far_enough = matches!(seen[0], Transition::Left { distance_m } if distance_m >= 99.5);
            prop_assert!(left_far_enough, "{:?}", seen);
            prop_assert_eq!(&seen[1], &Transition::Returned);
        }
    }

    impl Geofence {
        fn shape_distance_is_within(&self, lat: f64, lon: f64, r: f64) -> bool {
            self.area.shape.signed_distance_m(lat, lon).abs() <= r
        }
    }
}
