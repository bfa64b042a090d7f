//! GPS tracker (placeholder note, rewritten below).

pub mod fix;
pub mod gpsd;
pub mod nmea;
