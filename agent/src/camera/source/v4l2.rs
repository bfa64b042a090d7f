//! A real USB/IR camera, read through nokhwa's V4L2 backend (Linux; cargo feature
//! `camera-v4l2`).
//!
//! [`V4l2Camera`] is configuration only: a device and a frame size. The device node is opened
//! only in [`CameraSource::open`], which picks a mode, starts the stream and returns a
//! capture; dropping the capture stops the stream and closes the device, so the camera (and
//! its indicator light) is off between checks. Frames are converted to greyscale in memory
//! and never written to disk.
//!
//! Mode choice: among the modes the camera offers in a format decoded here (GRAY, YUYV, NV12,
//! MJPEG, preferred in that order), the one nearest the configured size that is at least as
//! large, else the nearest smaller one; any frame rate, the highest. Frames always come out at
//! the configured size: a mode of another size is scaled, which may stretch the picture, but
//! the bed zone is given in fractions of the frame, so it still covers the bed. MJPEG is
//! decoded by `image` (nokhwa's own decoder, mozjpeg, is a C build we leave out).
//!
//! nokhwa needs `nokhwa_initialize` only on macOS (to ask for camera permission); on Linux it
//! is a no-op and is not called. nokhwa and the `v4l` crate panic in a few places (closing a
//! stream that fails to stop, odd size enumerations), so calls into them are guarded and a
//! panic there becomes a [`SourceError`]. A camera that stops delivering frames blocks
//! [`Capture::frame`]: V4L2 reads here have no timeout, and the check runner's deadline
//! (its blocking thread) is what bounds a check.
//!
//! Build requirement: the V4L2 bindings are generated with bindgen, which needs libclang
//! (Debian: `libclang-dev`; `scripts/test` installs it).

use std::cmp::Reverse;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{GrayImage, ImageFormat};
use nokhwa::utils::{CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType};
use nokhwa::Camera;
use tracing::{debug, warn};

use super::{CameraSource, Capture, SourceError};

/// Formats decoded here, most preferred first: greyscale as is, then uncompressed YUV (the
/// luma bytes are the greyscale), then MJPEG (lossy, and costs a decode).
const DECODABLE: [FrameFormat; 4] =
    [FrameFormat::GRAY, FrameFormat::YUYV, FrameFormat::NV12, FrameFormat::MJPEG];

/// Which V4L2 device to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V4l2Device {
    /// `/dev/video<N>`.
    Index(u32),
    /// A device node, or a link to one such as `/dev/v4l/by-id/usb-…-video-index0` (which
    /// survives replugging, unlike the index).
    Path(PathBuf),
}

impl fmt::Display for V4l2Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            V4l2Device::Index(n) => write!(f, "/dev/video{n}"),
            V4l2Device::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl V4l2Device {
    /// The V4L2 index nokhwa opens (`/dev/video<index>`), following links.
    fn index(&self) -> Result<u32, SourceError> {
        let path = match self {
            V4l2Device::Index(n) => PathBuf::from(format!("/dev/video{n}")),
            V4l2Device::Path(p) => p.clone(),
        };
        let not_found = |why: String| SourceError::NotFound(format!("{self}: {why}"));
        let node = path.canonicalize().map_err(|e| not_found(e.to_string()))?;
        video_index(&node).ok_or_else(|| {
            not_found(format!("{} is not a V4L2 video device (/dev/videoN)", node.display()))
        })
    }
}

/// `N` of `/dev/videoN`.
fn video_index(node: &Path) -> Option<u32> {
    if node.parent() != Some(Path::new("/dev")) {
        return None;
    }
    node.file_name()?.to_str()?.strip_prefix("video")?.parse().ok()
}

/// A V4L2 camera as configured: which device, and the frame size the checks want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4l2Camera {
    device: V4l2Device,
    width: u32,
    height: u32,
}

impl V4l2Camera {
    pub fn new(device: V4l2Device, width: u32, height: u32) -> Self {
        V4l2Camera { device, width, height }
    }
}

impl CameraSource for V4l2Camera {
    fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
        let device = self.device.to_string();
        if self.width == 0 || self.height == 0 {
            let size = format!("{}×{}", self.width, self.height);
            return Err(SourceError::Open(format!("{device}: no frame size {size}")));
        }
        let index = self.device.index()?;
        let camera = start(index, &device, self.width, self.height)?;
        Ok(Box::new(V4l2Capture { camera: Some(camera), device, size: (self.width, self.height) }))
    }

    fn describe(&self) -> String {
        format!("V4L2 camera {} at {}×{}", self.device, self.width, self.height)
    }

    /// USB cameras deliver their first frames after stream start dark or mid-adjustment.
    fn warm_up_frames(&self) -> usize {
        WARM_UP_FRAMES
    }
}

/// Frames discarded after the stream starts (about a third of a second at 10–30 fps).
const WARM_UP_FRAMES: usize = 5;

/// Opens `/dev/video<index>`, sets the mode nearest `width`×`height` and starts the stream.
fn start(index: u32, device: &str, width: u32, height: u32) -> Result<Camera, SourceError> {
    let open_error = |e: nokhwa::NokhwaError| SourceError::Open(format!("{device}: {e}"));
    guarded(device, SourceError::Open, || {
        // nokhwa sets some decodable mode on opening; ours replaces it below.
        let any = RequestedFormat::with_formats(RequestedFormatType::None, &DECODABLE);
        let mut camera = Camera::new(CameraIndex::Index(index), any).map_err(open_error)?;
        let modes = camera.compatible_camera_formats().map_err(open_error)?;
        let mode = choose_mode(&modes, width, height).ok_or_else(|| {
            SourceError::Open(format!("{device}: no mode in GRAY, YUYV, NV12 or MJPEG"))
        })?;
        if camera.camera_format() != mode {
            let exact = RequestedFormatType::Exact(mode);
            camera
                .set_camera_requset(RequestedFormat::with_formats(exact, &DECODABLE))
                .map_err(open_error)?;
        }
        camera.open_stream().map_err(open_error)?;
        debug!(device, mode = %mode, "Camera opened");
        Ok(camera)
    })
}

/// An open, streaming camera; dropping it stops the stream and closes the device.
struct V4l2Capture {
    /// `Some` until dropped.
    camera: Option<Camera>,
    device: String,
    size: (u32, u32),
}

impl Capture for V4l2Capture {
    fn frame(&mut self) -> Result<GrayImage, SourceError> {
        let Some(camera) = self.camera.as_mut() else {
            return Err(SourceError::Capture(format!("{}: closed", self.device)));
        };
        let device = &self.device;
        let (width, height) = self.size;
        guarded(device, SourceError::Capture, || {
            let buffer =
                camera.frame().map_err(|e| SourceError::Capture(format!("{device}: {e}")))?;
            let res = buffer.resolution();
            let frame =
                to_gray(buffer.source_frame_format(), res.width(), res.height(), buffer.buffer())
                    .map_err(|why| SourceError::Capture(format!("{device}: {why}")))?;
            if frame.dimensions() == (width, height) {
                Ok(frame)
            } else {
                Ok(imageops::resize(&frame, width, height, FilterType::Triangle))
            }
        })
    }
}

impl Drop for V4l2Capture {
    fn drop(&mut self) {
        let Some(mut camera) = self.camera.take() else {
            return;
        };
        if let Err(e) = camera.stop_stream() {
            warn!(device = %self.device, error = %e, "Camera stream did not stop cleanly");
        }
        // Dropping closes the device node; nokhwa and v4l panic if stopping fails there.
        if catch_unwind(AssertUnwindSafe(move || drop(camera))).is_err() {
            warn!(device = %self.device, "Camera panicked while closing; it may still be on");
        }
    }
}

/// Runs a call into nokhwa, turning a panic in it into an error of the given kind.
fn guarded<T>(
    device: &str,
    kind: fn(String) -> SourceError,
    call: impl FnOnce() -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(kind(format!("{device}: the camera driver library panicked"))))
}

/// The mode to ask for: decodable; at least `width`×`height` if the camera has such a mode,
/// the nearest size otherwise; then the preferred format; then the highest frame rate.
fn choose_mode(modes: &[CameraFormat], width: u32, height: u32) -> Option<CameraFormat> {
    let rank = |f: FrameFormat| DECODABLE.iter().position(|&d| d == f);
    modes.iter().copied().filter(|m| rank(m.format()).is_some()).min_by_key(|m| {
        let too_small = m.width() < width || m.height() < height;
        let dx = i64::from(m.width()) - i64::from(width);
        let dy = i64::from(m.height()) - i64::from(height);
        (too_small, dx * dx + dy * dy, rank(m.format()), Reverse(m.frame_rate()))
    })
}

/// One frame of `format` as greyscale, at the size it came in.
fn to_gray(format: FrameFormat, width: u32, height: u32, data: &[u8]) -> Result<GrayImage, String> {
    let pixels = width as usize * height as usize;
    let short = || format!("short {format} frame: {} bytes for {width}×{height}", data.len());
    let luma = match format {
        // NV12 is the luma plane followed by the chroma plane.
        FrameFormat::GRAY | FrameFormat::NV12 => data.get(..pixels).ok_or_else(short)?.to_vec(),
        // YUYV: Y0 U Y1 V, two pixels in four bytes.
        FrameFormat::YUYV => {
            data.get(..2 * pixels).ok_or_else(short)?.iter().step_by(2).copied().collect()
        }
        FrameFormat::MJPEG => {
            return image::load_from_memory_with_format(data, ImageFormat::Jpeg)
                .map(|img| img.to_luma8())
                .map_err(|e| format!("bad MJPEG frame: {e}"));
        }
        FrameFormat::RAWRGB | FrameFormat::RAWBGR => {
            return Err(format!("{format} frames are not decoded here"))
        }
    };
    GrayImage::from_raw(width, height, luma).ok_or_else(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ExtendedColorType, Luma};
    use nokhwa::utils::Resolution;

    fn mode(w: u32, h: u32, format: FrameFormat, fps: u32) -> CameraFormat {
        CameraFormat::new(Resolution::new(w, h), format, fps)
    }

    fn open_err(device: V4l2Device) -> SourceError {
        match V4l2Camera::new(device, 640, 480).open() {
            Ok(_) => panic!("a camera opened on a machine that should have none"),
            Err(e) => e,
        }
    }

    #[test]
    fn missing_camera_index_is_not_found_and_named() {
        let err = open_err(V4l2Device::Index(57));
        assert!(matches!(err, SourceError::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("/dev/video57"), "{err}");
    }

    #[test]
    fn missing_camera_path_is_not_found_and_named() {
        let err = open_err(V4l2Device::Path("/dev/video57".into()));
        assert!(matches!(err, SourceError::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("/dev/video57"), "{err}");
    }

    #[test]
    fn a_node_gone_before_nokhwa_opens_it_is_an_open_error_not_a_panic() {
        // The node is checked first; this is the race where it vanishes in between.
        let Err(err) = start(57, "/dev/video57", 640, 480) else { panic!("opened video57") };
        assert!(matches!(err, SourceError::Open(_)), "{err:?}");
        assert!(err.to_string().contains("/dev/video57"), "{err}");
    }

    #[test]
    fn a_device_that_is_no_video_node_is_not_found_and_named() {
        let err = open_err(V4l2Device::Path("/dev/null".into()));
        assert!(matches!(err, SourceError::NotFound(_)), "{err:?}");
        assert!(err.to_string().contains("/dev/null"), "{err}");
    }

    #[test]
    fn links_are_followed_to_the_video_node() {
        assert_eq!(video_index(Path::new("/dev/video12")), Some(12));
        assert_eq!(video_index(Path::new("/tmp/video12")), None);
        assert_eq!(video_index(Path::new("/dev/vbi0")), None);
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("usb-IR_Camera-video-index0");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let err = V4l2Device::Path(link.clone()).index().unwrap_err();
        // Named both as configured and as resolved.
        assert!(err.to_string().contains(&link.display().to_string()), "{err}");
        assert!(err.to_string().contains("/dev/null is not a V4L2"), "{err}");
    }

    #[test]
    fn describe_names_the_device_and_size() {
        let camera = V4l2Camera::new(V4l2Device::Index(0), 640, 480);
        assert_eq!(camera.describe(), "V4L2 camera /dev/video0 at 640×480");
        let by_id = V4l2Device::Path("/dev/v4l/by-id/usb-cam-video-index0".into());
        assert!(V4l2Camera::new(by_id, 320, 240).describe().contains("by-id/usb-cam"));
    }

    #[test]
    fn mode_is_the_smallest_that_covers_the_size_then_greyscale_then_fastest() {
        let modes = [
            mode(1920, 1080, FrameFormat::MJPEG, 30),
            mode(640, 480, FrameFormat::MJPEG, 30),
            mode(640, 480, FrameFormat::YUYV, 15),
            mode(640, 480, FrameFormat::YUYV, 30),
            mode(320, 240, FrameFormat::GRAY, 30),
            mode(640, 480, FrameFormat::RAWRGB, 60),
        ];
        assert_eq!(choose_mode(&modes, 640, 480), Some(mode(640, 480, FrameFormat::YUYV, 30)));
        // 800×600 is missing: scale 1920×1080 down rather than 640×480 up.
        assert_eq!(choose_mode(&modes, 800, 600), Some(modes[0]));
        // Larger than anything: the nearest.
        assert_eq!(choose_mode(&modes, 4000, 3000), Some(modes[0]));
        assert_eq!(choose_mode(&modes[5..], 640, 480), None, "RGB is not decoded here");
    }

    #[test]
    fn yuyv_and_nv12_frames_keep_their_luma() {
        let yuyv = [10, 128, 20, 128, 30, 128, 40, 128];
        let frame = to_gray(FrameFormat::YUYV, 2, 2, &yuyv).unwrap();
        assert_eq!(frame.into_raw(), [10, 20, 30, 40]);
        let nv12 = [1, 2, 3, 4, 128, 128];
        assert_eq!(to_gray(FrameFormat::NV12, 2, 2, &nv12).unwrap().into_raw(), [1, 2, 3, 4]);
    }

    #[test]
    fn short_frame_is_an_error_not_a_panic() {
        let err = to_gray(FrameFormat::YUYV, 640, 480, &[0; 1000]).unwrap_err();
        assert!(err.contains("1000 bytes for 640×480"), "{err}");
        assert!(to_gray(FrameFormat::GRAY, 4, 4, &[0; 15]).is_err());
        assert!(to_gray(FrameFormat::MJPEG, 4, 4, b"not a jpeg").is_err());
    }

    #[test]
    fn mjpeg_frame_is_decoded_to_greyscale() {
        let grey = GrayImage::from_pixel(32, 24, Luma([90]));
        let mut jpeg = Vec::new();
        JpegEncoder::new(&mut jpeg).encode(grey.as_raw(), 32, 24, ExtendedColorType::L8).unwrap();
        let frame = to_gray(FrameFormat::MJPEG, 32, 24, &jpeg).unwrap();
        assert_eq!(frame.dimensions(), (32, 24));
        assert!(frame.pixels().all(|p| p.0[0].abs_diff(90) <= 2));
    }
}
