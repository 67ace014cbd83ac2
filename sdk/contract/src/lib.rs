//! The rules of the Portcullis plugin contract that the WIT types cannot say: which edits a
//! plugin may make to a request or response, and how a path it sets is made canonical.
//!
//! The gateway enforces them on every host call; the SDK's native test harness enforces
//! the same ones, from this crate, so a plugin that passes its `cargo test` is refused
//! nothing by the gateway (and `tests/in_process/conformance.rs` runs the same cases
//! through both to keep it so).
//!
//! ```
//! use portcullis_contract::edit::{self, Refusal};
//!
//! assert_eq!(edit::header_name("X-User").as_deref(), Ok("x-user"));
//! assert!(matches!(edit::header_name("Host"), Err(Refusal::Forbidden(_))));
//! assert!(edit::final_status(600).is_err());
//! assert_eq!(edit::path("/a/../b").as_deref(), Ok("/b"));
//! ```

pub mod edit;
pub mod path;
