//! Host bindings generated from `wit/`, the one place the contract is bound on the host side.
//!
//! Only the imports that may wait on the network are async (`outbound-http.send` and
//! `crypto.verify-jws`, which can fetch a key set); every other import is a plain call on the
//! store's data. Exports are async so that a plugin runs on a fiber: the epoch callback can
//! then yield it back to tokio every tick, and a deadline can cancel it.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin-full",
    imports: {
        "portcullis:plugin/outbound-http.send": async | trappable,
        "portcullis:plugin/crypto.verify-jws": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "portcullis:plugin/types.request": crate::plugin::state::RequestHandle,
        "portcullis:plugin/types.response": crate::plugin::state::ResponseHandle,
    },
});

pub use self::exports::portcullis::plugin::handler::Action;
pub use self::portcullis::plugin::types::{EditError, Identity, Phases, Reply};
