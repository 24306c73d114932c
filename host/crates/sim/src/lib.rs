//! Simulated OpenAI-compatible endpoint with fault injection, for tests, demos and benchmarks
