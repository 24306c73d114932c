//! Task, model and prompt YAML configs: parsing, validation with file/line/key errors, env interpolation
