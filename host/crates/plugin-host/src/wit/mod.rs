//! The WIT contract, one module per API track (the layout of Zed's extension host): each
//! `since_v*.rs` holds that track's generated bindings, its conversions into the host types
//! of [`crate::types`], and its host imports. This module dispatches over the tracks, so the
//! runner never names a generated type; supporting track 0.2 means adding
//! `since_v0_2.rs` (its `RolePre` and an `impl TrackInstance`) and one arm to `PluginPre`.

pub(crate) mod since_v0_1;

use wasmtime::component::{InstancePre, Linker, Resource};
use wasmtime::Store;

use crate::errors::ErrorKind;
use crate::imports::{CallContext, HostState};
use crate::types::{ParseFailure, PreprocessInput, PreprocessOutcome, Prompt, Role, Score};

/// What `init` returned (`plugin-info`), whatever the track.
#[derive(Debug, Clone)]
pub(crate) struct GuestInfo {
    pub name: String,
    pub version: String,
    pub config_schema: Option<String>,
}

/// A `plugin-error` the guest returned, whatever the track.
#[derive(Debug, Clone)]
pub(crate) struct GuestError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Adds the host imports of every supported track to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    since_v0_1::add_to_linker(linker)
}

/// A component pre-instantiated for one role on one track.
pub(crate) enum PluginPre {
    V0_1(since_v0_1::RolePre),
}

/// What the runner calls on a live instance, whatever its track.
pub(crate) trait TrackInstance: Send {
    #[allow(clippy::ptr_arg)] // the generated calls take `json` arguments as `&String`
    fn init(&self, store: &mut Store<HostState>, config: &String) -> wasmtime::Result<Result<GuestInfo, GuestError>>;
    fn process(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, input: PreprocessInput) -> wasmtime::Result<Result<PreprocessOutcome, GuestError>>;
    fn build(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str) -> wasmtime::Result<Result<Prompt, GuestError>>;
    fn parse(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str, completion: &str) -> wasmtime::Result<Result<Score, ParseFailure>>;
}

/// One live instance of a [`PluginPre`].
pub(crate) type PluginInstance = Box<dyn TrackInstance>;

impl PluginPre {
    /// `track` as `loader::track_of` gives it (`0.1`); the loader has refused other tracks.
    pub(crate) fn new(track: &str, role: Role, pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        match track {
            since_v0_1::TRACK => Ok(PluginPre::V0_1(since_v0_1::RolePre::new(role, pre)?)),
            other => wasmtime::bail!("this host has no bindings for plugin API track {other}"),
        }
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<PluginInstance> {
        match self {
            PluginPre::V0_1(pre) => pre.instantiate(store).map(|i| Box::new(i) as PluginInstance),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_supported_track_has_bindings() {
        assert_eq!(super::since_v0_1::TRACK, crate::types::SUPPORTED_TRACK);
    }
}
