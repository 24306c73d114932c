//! Host bindings generated from `wit/plugin.wit`, track 0.1.
//!
//! The imports-only world is generated once; the three per-role worlds reuse its types,
//! context resource and host interface through `with:`, so there is one `ChatMessage`,
//! one `PluginError` and one `Host` trait whatever the role. A future track 0.2 would
//! get its own module here (see the research notes, §5.1) and convert into these types.

pub(crate) mod v0_1 {
    pub(crate) mod base {
        wasmtime::component::bindgen!({
            path: "../../../wit",
            world: "modelcall:plugin/imports",
            with: {
                "modelcall:plugin/context.call-context": crate::imports::CallContext,
            },
            // Token counting runs outside fuel and epochs: the host caps the input size and
            // traps the guest past it, so these two may trap.
            imports: {
                "modelcall:plugin/host.count-tokens": trappable,
                "modelcall:plugin/host.truncate-tokens": trappable,
            },
        });
    }

    pub(crate) mod preprocessor {
        wasmtime::component::bindgen!({
            path: "../../../wit",
            world: "modelcall:plugin/preprocessor-plugin",
            with: {
                "modelcall:plugin/types": super::base::modelcall::plugin::types,
                "modelcall:plugin/context": super::base::modelcall::plugin::context,
                "modelcall:plugin/host": super::base::modelcall::plugin::host,
            },
        });
    }

    pub(crate) mod prompt_builder {
        wasmtime::component::bindgen!({
            path: "../../../wit",
            world: "modelcall:plugin/prompt-builder-plugin",
            with: {
                "modelcall:plugin/types": super::base::modelcall::plugin::types,
                "modelcall:plugin/context": super::base::modelcall::plugin::context,
                "modelcall:plugin/host": super::base::modelcall::plugin::host,
            },
        });
    }

    pub(crate) mod score_parser {
        wasmtime::component::bindgen!({
            path: "../../../wit",
            world: "modelcall:plugin/score-parser-plugin",
            with: {
                "modelcall:plugin/types": super::base::modelcall::plugin::types,
                "modelcall:plugin/context": super::base::modelcall::plugin::context,
                "modelcall:plugin/host": super::base::modelcall::plugin::host,
            },
        });
    }

    pub(crate) use base::modelcall::plugin::types;
}
