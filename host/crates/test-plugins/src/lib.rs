//! Paths of the fixture plugins built from tests/plugins.
