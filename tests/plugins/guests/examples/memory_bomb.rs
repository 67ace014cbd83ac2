//! Allocates without end in the request phase: must be stopped at its memory cap.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

struct MemoryBomb;
impl Plugin for MemoryBomb {
    type Config = serde_json::Value;
    fn on_request(_: &Self::Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            if hoard.len() == usize::MAX {
                request.set_header("x-never", "reached")?;
            }
        }
    }
}
export_plugin!(MemoryBomb);
