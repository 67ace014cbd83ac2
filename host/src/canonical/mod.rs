//! Canonical forms, decided once at the edge and used everywhere after: the authority
//! (from the target and `Host`) and the path (normalised). The router, the policies, the
//! plugins, the access log and the upstream all see these forms, never the client's own
//! spelling, so no two stages can disagree about what was asked for. (The third form,
//! the client address behind trusted proxies, is [`crate::proxy::client_ip`].)

//!
//! Path normalisation lives in the plugin contract's crate, so that a path a plugin sets is
//! held to the same rules in the gateway and in the SDK's native test harness.

mod authority;

pub use authority::{Authority, AuthorityError};
pub use portcullis_contract::path::{
    EscapedSlashes, PathError, PathOptions, Semicolons, normalize, percent_decode,
};
