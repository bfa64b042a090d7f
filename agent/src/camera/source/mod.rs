//! Where frames come from: a real camera, a recorded directory, or the simulator.
//!
//! A [`CameraSource`] is configuration only; [`CameraSource::open`] opens the device and
//! returns a [`Capture`] that keeps it open until dropped. The check runner opens the camera
//! for one check (or one snapshot) and drops the capture straight after, so the camera is
//! never left running between checks.
//!
//! Everything here is blocking and runs on a blocking thread of its own (`spawn_blocking`), so
//! a camera that hangs cannot stall the agent's MQTT session. A source that fails (no device,
//! unplugged mid-check, unreadable directory) returns a [`SourceError`]; the check then
//! reports `camera_fault` with the error as its detail. Nothing here writes to disk.
//!
//! Implementations:
//! - [`simulated::SimulatedCamera`]: a synthetic bedroom (see `camera::synth`), for the demo
//!   and for tests;
//! - [`directory::DirectoryCamera`]: a recorded frame sequence in a directory, for installers'
//!   dry runs and tests;
//! - `v4l2::V4l2Camera` (cargo feature `camera-v4l2`): a real USB/IR camera through nokhwa.

pub mod directory;
pub mod simulated;
#[cfg(feature = "camera-v4l2")]
pub mod v4l2;

use image::GrayImage;
use thiserror::Error;

/// A camera as configured; opening it is what turns the device on.
pub trait CameraSource: Send {
    /// Opens the camera. It stays open until the returned capture is dropped.
    fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError>;

    /// What this is, for logs and the installer's tools ("V4L2 camera 0 at 640×480").
    fn describe(&self) -> String;

    /// Frames to discard after opening, while the sensor's exposure settles (real cameras
    /// deliver their first frames dark).
    fn warm_up_frames(&self) -> usize {
        0
    }

    /// The empty-bed reference frame and bed zone the source brings itself (the simulator's
    /// room has its own); `None` for real cameras, whose calibration comes from the config.
    fn own_calibration(&self) -> Option<(GrayImage, Vec<(f64, f64)>)> {
        None
    }
}

/// An open camera. Dropping it closes the device.
pub trait Capture {
    /// The next frame, as greyscale.
    fn frame(&mut self) -> Result<GrayImage, SourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SourceError {
    /// No such device (nothing plugged in, wrong index or path, empty directory).
    #[error("no camera found: {0}")]
    NotFound(String),
    /// The device exists but would not open or start streaming (busy, no permission, no
    /// supported format).
    #[error("the camera would not open: {0}")]
    Open(String),
    /// Opened, but delivered no usable frame (unplugged during the check, timeout, bad data).
    #[error("the camera gave no frame: {0}")]
    Capture(String),
}

#[cfg(test)]
pub(crate) mod testing {
    //! A source for tests that counts how often the camera was opened and whether it is open.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Shared view of a [`CountingCamera`]'s state.
    #[derive(Debug, Clone, Default)]
    pub struct Counts {
        pub opened: Arc<AtomicUsize>,
        pub open_now: Arc<AtomicUsize>,
        pub frames: Arc<AtomicUsize>,
    }

    impl Counts {
        pub fn opened(&self) -> usize {
            self.opened.load(Ordering::SeqCst)
        }
        pub fn open_now(&self) -> usize {
            self.open_now.load(Ordering::SeqCst)
        }
    }

    /// Wraps a source and counts opens, closes and frames.
    pub struct CountingCamera<S> {
        pub inner: S,
        pub counts: Counts,
    }

    struct CountingCapture<'a> {
        inner: Box<dyn Capture + 'a>,
        counts: Counts,
    }

    impl Capture for CountingCapture<'_> {
        fn frame(&mut self) -> Result<GrayImage, SourceError> {
            self.counts.frames.fetch_add(1, Ordering::SeqCst);
            self.inner.frame()
        }
    }

    impl Drop for CountingCapture<'_> {
        fn drop(&mut self) {
            self.counts.open_now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl<S: CameraSource> CameraSource for CountingCamera<S> {
        fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
            let inner = self.inner.open()?;
            self.counts.opened.fetch_add(1, Ordering::SeqCst);
            self.counts.open_now.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(CountingCapture { inner, counts: self.counts.clone() }))
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
        fn warm_up_frames(&self) -> usize {
            self.inner.warm_up_frames()
        }
        fn own_calibration(&self) -> Option<(GrayImage, Vec<(f64, f64)>)> {
            self.inner.own_calibration()
        }
    }
}
