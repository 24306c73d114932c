//! modelcall: the scheduling engine and CLI wiring.

pub mod plugin_cmd;
