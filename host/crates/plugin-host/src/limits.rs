//! Per-plugin resource limits. The YAML `limits:` block of a plugin deserializes straight
//! into [`Limits`]; any key left out keeps its default, and an unknown key is an error
//! (a typo such as `timeout: 5` must not silently keep the default).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock budget of one call (epoch interruption, 10 ms resolution; host functions
    /// such as token counting check it too).
    pub timeout_ms: u64,
    /// Wall-clock budget of `init(config)`, which may build tables or compile templates.
    pub init_timeout_ms: u64,
    /// Fuel (roughly: wasm instructions) per call; deterministic, so a budget failure reproduces.
    pub fuel: u64,
    /// Linear-memory cap per instance.
    pub memory_mib: u64,
    /// Cap on the total bytes a call returns (records, prompt text, score fields).
    pub max_output_bytes: u64,
    /// Cap on the number of records one preprocessor call keeps: a million tiny records fit
    /// under `max_output_bytes` but cost the host far more than their bytes.
    pub max_records_per_call: u64,
    /// Cap on bytes logged through `host.log` per call; the rest is dropped with a note.
    pub max_log_bytes: u64,
    /// A warm instance is discarded and rebuilt (with a fresh `init`) after this many calls.
    /// `1` gives a fresh instance per record.
    pub max_calls_per_instance: u32,
    /// After this many traps in a row the plugin is disabled and every call fails fatally.
    pub max_consecutive_traps: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 1_000,
            init_timeout_ms: 10_000,
            fuel: 1_000_000_000,
            memory_mib: 256,
            max_output_bytes: 16 * 1024 * 1024,
            max_records_per_call: 100_000,
            max_log_bytes: 64 * 1024,
            max_calls_per_instance: 1_000,
            max_consecutive_traps: 5,
        }
    }
}

/// A [`Limits`] value that deserializes but makes no sense; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("limits.{key} must be greater than 0")]
    Zero { key: &'static str },
    #[error("limits.memory_mib is {memory_mib}, but a 32-bit wasm memory holds at most 4096 MiB")]
    MemoryTooLarge { memory_mib: u64 },
}

impl LimitsError {
    /// The `limits` key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            LimitsError::Zero { key } => key,
            LimitsError::MemoryTooLarge { .. } => "memory_mib",
        }
    }
}

impl Limits {
    /// Checks values that deserialize but make no sense.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let positive = [
            ("timeout_ms", self.timeout_ms),
            ("init_timeout_ms", self.init_timeout_ms),
            ("fuel", self.fuel),
            ("memory_mib", self.memory_mib),
            ("max_output_bytes", self.max_output_bytes),
            ("max_records_per_call", self.max_records_per_call),
            ("max_calls_per_instance", self.max_calls_per_instance as u64),
            ("max_consecutive_traps", self.max_consecutive_traps as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(LimitsError::Zero { key });
            }
        }
        if self.memory_mib > 4096 {
            return Err(LimitsError::MemoryTooLarge { memory_mib: self.memory_mib });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_block_keeps_defaults() {
        let l: Limits = serde_json::from_str(r#"{"timeout_ms": 50, "memory_mib": 32}"#).unwrap();
        assert_eq!(l.timeout_ms, 50);
        assert_eq!(l.memory_mib, 32);
        assert_eq!(l.fuel, Limits::default().fuel);
        assert_eq!(l.max_records_per_call, 100_000);
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let err = serde_json::from_str::<Limits>(r#"{"timeout": 50}"#).unwrap_err().to_string();
        assert!(err.contains("timeout"), "{err}");
    }

    #[test]
    fn zero_is_rejected_by_name() {
        let l = Limits { fuel: 0, ..Limits::default() };
        let e = l.validate().unwrap_err();
        assert_eq!(e, LimitsError::Zero { key: "fuel" });
        assert_eq!(e.key(), "fuel");
        assert_eq!(e.to_string(), "limits.fuel must be greater than 0");
        let l = Limits { max_records_per_call: 0, ..Limits::default() };
        assert_eq!(l.validate().unwrap_err().key(), "max_records_per_call");
    }

    #[test]
    fn memory_over_4_gib_is_rejected() {
        let e = Limits { memory_mib: 5000, ..Limits::default() }.validate().unwrap_err();
        assert_eq!(e, LimitsError::MemoryTooLarge { memory_mib: 5000 });
        assert!(e.to_string().contains("4096 MiB"), "{e}");
    }
}
