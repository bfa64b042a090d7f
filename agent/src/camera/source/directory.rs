//! A recorded frame sequence in a directory, for installers' dry runs and tests.
//!
//! The directory holds frames as image files (PNG, JPEG or PGM/PPM, as the `image`
//! crate reads; colour is turned to grey), used in file-name order. Each check reads on from
//! where the previous one stopped and wraps round at the end, so a directory of 50 frames
//! plays ten 5-frame checks before it repeats. The listing is read when the camera opens, so
//! frames can be added between checks. The files are only read, never written.
//!
//! A missing or empty directory is [`SourceError::NotFound`]; an unreadable file fails that
//! frame ([`SourceError::Capture`]), which the check reports as `camera_fault`.

use super::{CameraSource, Capture, SourceError};
use image::GrayImage;
use std::path::{Path, PathBuf};

pub struct DirectoryCamera {
    dir: PathBuf,
    /// Index (into the sorted listing) of the next frame to play.
    next: usize,
}

impl DirectoryCamera {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirectoryCamera {
            dir: dir.into(),
            next: 0,
        }
    }

    fn listing(&self) -> Result<Vec<PathBuf>, SourceError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            SourceError::NotFound(format!("frame directory {}: {e}", self.dir.display()))
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_frame(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SourceError::NotFound(format!(
                "frame directory {} holds no image files",
                self.dir.display()
            )));
        }
        Ok(files)
    }
}

fn is_frame(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(
        ext.as_deref(),
        Some("png" | "jpg" | "jpeg" | "pgm" | "ppm" | "pnm")
    )
}

struct DirectoryCapture<'a> {
    camera: &'a mut DirectoryCamera,
    files: Vec<PathBuf>,
}

impl Capture for DirectoryCapture<'_> {
    fn frame(&mut self) -> Result<GrayImage, SourceError> {
        let i = self.camera.next % self.files.len();
        self.camera.next = i + 1;
        let path = &self.files[i];
        image::open(path)
            .map(|img| img.into_luma8())
            .map_err(|e| SourceError::Capture(format!("frame {}: {e}", path.display())))
    }
}

impl CameraSource for DirectoryCamera {
    fn open(&mut self) -> Result<Box<dyn Capture + '_>, SourceError> {
        let files = self.listing()?;
        Ok(Box::new(DirectoryCapture {
            camera: self,
            files,
        }))
    }

    fn describe(&self) -> String {
        format!("recorded frames in {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: u8) -> GrayImage {
        GrayImage::from_pixel(8, 6, image::Luma([level]))
    }

    #[test]
    fn frames_play_in_name_order_and_wrap_round_across_checks() {
        let dir = tempfile::tempdir().unwrap();
        for (name, level) in [("b.png", 20), ("a.png", 10), ("c.pgm", 30)] {
            frame(level).save(dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), "not a frame").unwrap();
        let mut cam = DirectoryCamera::new(dir.path());
        let mut levels = Vec::new();
        for _ in 0..2 {
            let mut capture = cam.open().unwrap();
            for _ in 0..2 {
                levels.push(capture.frame().unwrap().get_pixel(0, 0).0[0]);
            }
        }
        assert_eq!(levels, [10, 20, 30, 10]);
    }

    #[test]
    fn missing_or_empty_directory_is_no_camera() {
        let dir = tempfile::tempdir().unwrap();
        let mut cam = DirectoryCamera::new(dir.path());
        assert!(
            matches!(cam.open().err(), Some(SourceError::NotFound(m)) if m.contains("no image files"))
        );
        let mut cam = DirectoryCamera::new(dir.path().join("gone"));
        assert!(matches!(cam.open().err(), Some(SourceError::NotFound(_))));
    }

    #[test]
    fn unreadable_frame_fails_that_frame_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"not a png").unwrap();
        frame(50).save(dir.path().join("b.png")).unwrap();
        let mut cam = DirectoryCamera::new(dir.path());
        let mut capture = cam.open().unwrap();
        assert!(matches!(capture.frame(), Err(SourceError::Capture(m)) if m.contains("a.png")));
        assert_eq!(capture.frame().unwrap().get_pixel(0, 0).0[0], 50);
    }
}
