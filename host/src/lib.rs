//! modelcall: the scheduling engine and CLI wiring.
