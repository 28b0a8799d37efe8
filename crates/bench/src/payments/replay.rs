//! The durability check: reopen a node's log, replay every input through a fresh
//! engine, and require the same state and, input by input, the same logged events.

use crate::payments::node::{self, DurableNode, Res};
use smartmesh_engine::codec::{decode_input, encode_events};
use smartmesh_engine::{Context, EngineConfig, NodeState, transition};
use smartmesh_primitives::PrivateKey;
use smartmesh_storage::{Storage, StorageOptions};
use std::path::Path;

/// Closes `node`, reopens its directory and replays it; returns the number of inputs.
pub fn check(node: DurableNode, dir: &Path, key: PrivateKey, config: &EngineConfig) -> Res<u64> {
    let (live, _) = node.close();
    let storage = Storage::open(dir, StorageOptions::default()).map_err(|e| e.to_string())?;
    let recovery = storage.recover().map_err(|e| e.to_string())?;
    if recovery.snapshot.is_some() {
        return Err("unexpected snapshot".into());
    }
    let mut state = NodeState::new(
        key.address(),
        node::CHAIN,
        node::token_network(),
        config.clone(),
    );
    let ctx = Context::new(key, &state);
    let mut n = 0u64;
    for sc in recovery.state_changes {
        let input = decode_input(&sc.data).map_err(|e| format!("seq {}: {e}", sc.seq))?;
        let events = transition(&mut state, &ctx, input);
        let logged = storage.events_of(sc.seq).map_err(|e| e.to_string())?;
        let replayed = if events.is_empty() {
            Vec::new()
        } else {
            vec![encode_events(&events).map_err(|e| e.to_string())?]
        };
        if logged != replayed {
            return Err(format!(
                "{}: events of seq {} differ on replay",
                dir.display(),
                sc.seq
            ));
        }
        n += 1;
    }
    if state != live {
        return Err(format!(
            "{}: replayed state differs from the live state",
            dir.display()
        ));
    }
    Ok(n)
}
