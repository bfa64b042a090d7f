//! The intake socket: local producers hand events to the agent, one JSON object per line.
//!
//! ```text
//! → {"kind":"test_alarm","body":{"note":"x"}}
//! → {"kind":"position","body":{"lat":64.75,"lon":20.95},"severity":"warning"}
//! ← {"accepted":1,"id":"019a…"}
//! ← {"error":"field `body.lat` is invalid: 95 is outside -90..=90"}
//! ```
//! Promise: an `accepted` answer is written only after the event is committed (fsynced) to the
//! outbox; see the `outbox` module note. Answers come in the order of the lines. A bad line
//! gets an `error` answer and the connection stays open; a line longer than
//! [`MAX_LINE_BYTES`] ends the connection after its error answer. Any number of clients may be
//! connected. A client may write many lines before reading answers: lines are queued to the
//! outbox as they arrive, so a burst is committed in groups.
//!
//! `severity` is optional (default: the kind's default severity).

use crate::outbox::{Acceptance, NewEvent, OutboxError, OutboxHandle};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use vaka_protocol::{EventBody, Severity};

/// Longest accepted line; an event envelope is at most 16 KiB.
pub const MAX_LINE_BYTES: usize = 32 * 1024;

#[derive(Debug, Error)]
pub enum IntakeError {
    #[error("intake socket {path}: cannot create its directory: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("intake socket {path}: cannot remove the stale socket file: {source}")]
    RemoveStale { path: PathBuf, source: std::io::Error },
    #[error("intake socket {path}: cannot listen: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    kind: String,
    #[serde(default = "empty_object")]
    body: serde_json::Value,
    #[serde(default)]
    severity: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Decodes and validates one line into an event. Pure.
pub fn parse_line(line: &[u8]) -> Result<NewEvent, String> {
    let line: Line =
        serde_json::from_slice(line).map_err(|e| format!("not a valid intake line: {e}"))?;
    let tagged = serde_json::json!({ "kind": line.kind, "body": line.body });
    let body: EventBody =
        serde_json::from_value(tagged).map_err(|e| format!("kind `{}`: {e}", line.kind))?;
    body.validate().map_err(|e| e.to_string())?;
    let severity = match line.severity.as_deref() {
        None => body.default_severity(),
        Some(s) => Severity::parse(s)
            .ok_or_else(|| format!("severity `{s}` is not one of alarm, warning, info"))?,
    };
    Ok(NewEvent { body, severity })
}

fn answer(result: Result<Acceptance, OutboxError>) -> serde_json::Value {
    match result {
        Ok(Acceptance::Accepted { seq, id }) => serde_json::json!({ "accepted": seq, "id": id }),
        Ok(Acceptance::Dropped { reason }) => serde_json::json!({ "error": reason }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

/// Binds the socket: creates the parent directory and removes a stale socket file.
pub fn bind(path: &Path) -> Result<UnixListener, IntakeError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| IntakeError::CreateDir { path: path.to_path_buf(), source })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => debug!(path = %path.display(), "Removed stale intake socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(IntakeError::RemoveStale { path: path.to_path_buf(), source }),
    }
    let listener = UnixListener::bind(path)
        .map_err(|source| IntakeError::Bind { path: path.to_path_buf(), source })?;
    info!(path = %path.display(), "Intake socket listening");
    Ok(listener)
}

/// Accepts clients for ever.
pub async fn serve(listener: UnixListener, outbox: OutboxHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, outbox.clone()));
            }
            Err(e) => {
                warn!(error = %e, "Intake accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

enum Pending {
    Ready(serde_json::Value),
    Waiting(oneshot::Receiver<Result<Acceptance, OutboxError>>),
}

async fn client(stream: UnixStream, outbox: OutboxHandle) {
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    // The writer answers in line order, each once its event is durable.
    let writer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            let value = match p {
                Pending::Ready(v) => v,
                Pending::Waiting(r) => answer(r.await.unwrap_or(Err(OutboxError::Stopped))),
            };
            let mut line = value.to_string().into_bytes();
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(read);
    let mut buf = Vec::new();
    let (mut lines, mut bad) = (0u64, 0u64);
    loop {
        buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "Intake client read failed");
                break;
            }
        }
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            let msg = format!("line longer than {MAX_LINE_BYTES} bytes; closing");
            let _ = tx.send(Pending::Ready(serde_json::json!({ "error": msg })));
            break;
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let pending = match parse_line(line) {
            Ok(event) => Pending::Waiting(outbox.submit(event)),
            Err(reason) => {
                bad += 1;
                debug!(reason, "Intake line refused");
                Pending::Ready(serde_json::json!({ "error": reason }))
            }
        };
        if tx.send(pending).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
    debug!(lines, bad, "Intake client done");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_with_kind_and_body_gets_the_kinds_default_severity() {
        let e = parse_line(br#"{"kind":"test_alarm","body":{"note":"x"}}"#).unwrap();
        assert_eq!(e.severity, Severity::Alarm);
        assert_eq!(e.body.kind(), "test_alarm");
        let e = parse_line(br#"{"kind":"tamper","severity":"alarm"}"#).unwrap();
        assert_eq!((e.body.kind(), e.severity), ("tamper", Severity::Alarm));
    }

    #[test]
    fn bad_lines_are_refused_with_a_reason_naming_the_problem() {
        for (line, needle) in [
            (&br#"{"kind":"teleport","body":{}}"#[..], "teleport"),
            (br#"{"kind":"position","body":{"lat":95.0,"lon":20.0}}"#, "body.lat"),
            (br#"{"kind":"test_alarm","body":{"colour":"red"}}"#, "colour"),
            (br#"{"kind":"test_alarm","severity":"panic"}"#, "panic"),
            (br#"{"kind":"test_alarm","extra":1}"#, "extra"),
            (b"not json", "not a valid intake line"),
        ] {
            let err = parse_line(line).unwrap_err();
            assert!(err.contains(needle), "{needle} not in {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_an_event_or_a_reason_and_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn any_valid_position_line_is_accepted_as_info(lat in -90.0f64..=90.0, lon in -180.0f64..=180.0) {
            let line = serde_json::json!({"kind": "position", "body": {"lat": lat, "lon": lon}}).to_string();
            let e = parse_line(line.as_bytes()).map_err(proptest::test_runner::TestCaseError::fail)?;
            proptest::prop_assert_eq!(e.severity, Severity::Info);
        }
    }
}
