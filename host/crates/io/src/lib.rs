//! Streaming dataset sources and sinks (JSONL, gz, zst, Parquet) and the exactly-once journal
