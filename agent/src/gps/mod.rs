//! GPS tracker (placeholder note, rewritten below).

pub mod fix;
pub mod nmea;
