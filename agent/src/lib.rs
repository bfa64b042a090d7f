pub mod config;
pub mod link;
pub mod outbox;
