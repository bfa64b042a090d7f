//! Camera checks asked for from the console, and their one snapshot.
//!
//! ```text
//!  console ─POST camera-check─► row `requested` ─cmd camera_check─► device
//!  device ─camera_check event (outbox, events topic)─► writer: row `answered` (same commit)
//!  writer tick: deadline passed, still `requested` ─► `no_answer` + WARN (a visit may be due)
//!  console ─POST snapshot─► vault: requested ─cmd snapshot─► device
//!  device ─snapshot topic, QoS 0─► session ─[`intake::verify`]─► vault: available
//!  console ─GET snapshot─► audit row, then the picture, once; gone after the view span
//! ```
//!
//! Privacy promises, which the code below keeps by construction:
//! - a picture exists only in memory, in the [`SnapshotVault`]: never in the database (the
//!   ingest writer never sees `snapshot` topics, and `classify` keeps no excerpt of them), never
//!   in logs (pictures print as their size), never on disk;
//! - it is handed out at most once, only to care staff (`night_staff`, `nurse`), and every
//!   attempt to fetch one is written to the audit log before anything is shown;
//! - it is dropped, its bytes zeroed, at `received_at + snapshot_view_span` if nobody fetched it.
//!
//! Files: [`checks`] (pure rules of a check's life), [`intake`] (pure check of an incoming
//! snapshot), [`vault`] (pure in-memory store of pictures).

pub mod checks;
pub mod intake;
pub mod vault;

pub use vault::{NotAvailable, Picture, SnapshotState, SnapshotVault};
