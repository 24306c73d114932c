//! `plugin check`: what a component is, what it imports and exports, and whether it loads.

use std::path::Path;

use anyhow::bail;
use modelcall_plugin_host::{LoadError, PluginRuntime, PluginSource, PluginSpec, Role};
use serde_json::Value;

use super::read_config;

pub(super) fn check(plugin: &str, role: Option<Role>, config: Option<&Path>) -> anyhow::Result<()> {
    let source = PluginSource::parse(plugin);
    let rt = PluginRuntime::new()?;
    let summary = rt.inspect(&source)?;
    let role = match role {
        Some(r) => r,
        None => match summary.roles.as_slice() {
            [r] => *r,
            [] => bail!(
                "plugin {plugin} exports no modelcall plugin role (exports: {}); build it with modelcall-plugin-sdk and one of register_preprocessor!/register_prompt_builder!/register_score_parser!",
                summary.exports.join(", ")
            ),
            many => bail!(
                "plugin {plugin} exports several roles ({}); pick one with --role",
                many.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            ),
        },
    };
    let mut spec = PluginSpec::new(source, role);
    spec.config = read_config(config)?;
    let loaded = match rt.load(spec) {
        Ok(p) => p,
        Err(e @ (LoadError::InvalidConfig { .. } | LoadError::ConfigSchema { .. })) if config.is_none() => {
            // Without a config, what can be checked without `init` still is.
            println!("plugin:      {}", summary.source);
            println!("sha256:      {}", summary.sha256);
            println!("size:        {} bytes", summary.size_bytes);
            println!("wit version: {}", summary.wit_version.as_deref().unwrap_or("none"));
            println!("imports:     {}", summary.imports.join(", "));
            println!("exports:     {}", summary.exports.join(", "));
            let (e, schema) = match &e {
                LoadError::ConfigSchema { schema, .. } => (e.to_string(), Some(schema.clone())),
                _ => split_schema(&e.to_string()),
            };
            println!("ok: loads as {role}; init skipped: it needs a config (pass one with --config cfg.yaml): {e}");
            print_schema(schema.as_deref());
            return Ok(());
        }
        Err(e @ LoadError::ConfigSchema { .. }) => {
            // The schema, next to the error, so the config can be fixed from this output; each
            // violation at its line in the config file.
            let LoadError::ConfigSchema { schema, .. } = &e else { unreachable!() };
            print_schema(Some(schema));
            let file = config.expect("a config file was given");
            bail!("{}", crate::plugin_pool::load_error_message(&e, file, Some(&[])).unwrap_or_else(|| e.to_string()));
        }
        Err(e @ LoadError::InvalidConfig { .. }) => {
            let (e, schema) = split_schema(&e.to_string());
            print_schema(schema.as_deref());
            bail!("{}: {e}", config.expect("a config file was given").display());
        }
        Err(e) => return Err(e.into()),
    };
    let d = loaded.info();
    println!("plugin:      {}", d.source);
    println!("name:        {}", d.name);
    println!("version:     {}", d.version);
    println!("role:        {}", d.role);
    println!("wit version: {}", d.wit_version);
    println!("sha256:      {}", d.sha256);
    println!("size:        {} bytes", d.size_bytes);
    match d.config_schema.as_deref() {
        Some(schema) => print_schema(Some(schema)),
        None => println!("config schema: none published"),
    }
    println!("imports:");
    for i in &d.imports {
        println!("  {i}");
    }
    println!("exports:");
    for e in &d.exports {
        println!("  {e}");
    }
    println!("ok: loads as {role}");
    Ok(())
}

/// An invalid-config message without the schema a plugin built with the SDK appends to it (after
/// a line `config schema: `), and that schema.
fn split_schema(message: &str) -> (String, Option<String>) {
    const MARK: &str = "\nconfig schema: ";
    match message.find(MARK) {
        Some(i) => {
            let rest = &message[i + MARK.len()..];
            // The schema is one line of JSON; the host may add its own words after it.
            let (schema, after) = rest.split_once('\n').unwrap_or((rest, ""));
            (format!("{}{}", &message[..i], if after.is_empty() { String::new() } else { format!("; {after}") }), Some(schema.to_string()))
        }
        None => (message.to_string(), None),
    }
}

fn print_schema(schema: Option<&str>) {
    match schema.map(|t| serde_json::from_str::<Value>(t).map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()).unwrap_or_else(|_| t.to_string())) {
        Some(schema) => println!("config schema:\n{schema}"),
        None => println!("config schema: not known (this plugin publishes it only from an init that accepts the config)"),
    }
}
