//! GPS tracker (placeholder note, rewritten below).

pub mod config;
pub mod fix;
pub mod geofence;
pub mod gpsd;
pub mod nmea;
