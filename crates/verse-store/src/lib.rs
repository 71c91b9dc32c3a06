//! verse-store: the content-addressed store of Verse.
//!
//! File contents are stored once, named by their BLAKE3 hash; each directory is a tree
//! object (see [`tree`]) listing its entries; a layer is the hash of a root tree, so it
//! verifies everything below it. Layers are imported from directories or tars
//! ([`Store::import_dir`], [`Store::import_tar`]), materialised for running as hardlink
//! farms with owners shifted into an environment's uid range ([`Store::checkout`]),
//! checked before every start ([`Store::quick_check`]) or in full ([`Store::verify`]), and
//! collected ([`Store::gc`]). The on-disk layout is described in `store.rs`.

#![forbid(unsafe_code)]

mod checkout;
mod error;
mod export;
mod gc;
mod hash;
mod import;
mod manifest;
mod progress;
mod store;
pub mod tree;
mod upper;
mod verify;

pub use checkout::{NOBODY, host_id};
pub use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
pub use error::{Result, StoreError};
pub use gc::GcReport;
pub use hash::Hash;
pub use import::{
    Compression, ImportOptions, Layer, MAX_EXPANSION, MAX_FILE_SIZE, MAX_HEADER_BYTES,
    MIN_BOMB_LIMIT, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR,
};
pub use manifest::{
    Manifest, ManifestLayer, RunConfig, SignatureInfo, check_signature, decode_signing_key,
    encode_signing_key, env_list, generate_signing_key, key_id, parse_key_id,
};
pub use progress::{NoProgress, Progress};
pub use store::{LayerInfo, Store};
pub use verify::{Change, ChangeKind};
