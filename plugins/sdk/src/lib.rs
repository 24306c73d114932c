//! modelcall plugin SDK
