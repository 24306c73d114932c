//! API track 0.1 (`modelcall:plugin@0.1.x`): the bindings generated from `wit/plugin.wit`,
//! the conversions between their types and the host types of [`crate::types`], and the
//! host imports (`types`, `context`, `host`) implemented on [`HostState`].
//!
//! Everything that names a 0.1 binding type lives in this file; the rest of the crate
//! sees only [`RolePre`]/[`RoleInstance`] through [`super`]. A new track is a sibling file
//! with the same shape.

use wasmtime::component::{HasSelf, InstancePre, Linker, Resource};
use wasmtime::Store;

use super::{GuestError, GuestInfo};
use crate::errors::ErrorKind;
use crate::imports::{CallContext, HostState};
use crate::types::{ChatMessage, ChatRole, ParseFailure, PreprocessInput, PreprocessOutcome, Prompt, Role, Score};

/// The track these bindings implement, as `loader::track_of` spells it.
pub(crate) const TRACK: &str = "0.1";

/// The imports-only world is generated once; the three per-role worlds reuse its types,
/// context resource and host interface through `with:`, so there is one `ChatMessage`, one
/// `PluginError` and one `Host` trait whatever the role.
pub(crate) mod base {
    wasmtime::component::bindgen!({
        path: "../../../wit",
        world: "modelcall:plugin/imports",
        with: {
            "modelcall:plugin/context.call-context": crate::imports::CallContext,
        },
        // Token counting runs outside fuel and epochs: the host checks the input size, the
        // call's deadline and bounds its own memory, and traps the guest past them.
        imports: {
            "modelcall:plugin/host.count-tokens": trappable,
            "modelcall:plugin/host.truncate-tokens": trappable,
        },
    });
}

macro_rules! role_world {
    ($module:ident, $world:literal) => {
        pub(crate) mod $module {
            wasmtime::component::bindgen!({
                path: "../../../wit",
                world: $world,
                with: {
                    "modelcall:plugin/types": super::base::modelcall::plugin::types,
                    "modelcall:plugin/context": super::base::modelcall::plugin::context,
                    "modelcall:plugin/host": super::base::modelcall::plugin::host,
                },
            });
        }
    };
}

role_world!(preprocessor, "modelcall:plugin/preprocessor-plugin");
role_world!(prompt_builder, "modelcall:plugin/prompt-builder-plugin");
role_world!(score_parser, "modelcall:plugin/score-parser-plugin");

use base::modelcall::plugin::{context, host, types as wit};
use preprocessor::exports::modelcall::plugin::preprocessor as pp;
use prompt_builder::exports::modelcall::plugin::prompt_builder as pb;
use score_parser::exports::modelcall::plugin::score_parser as sp;

/// Adds this track's host imports to the linker.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    base::Imports::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// The typed pre-instantiated component for the role it was loaded as.
pub(crate) enum RolePre {
    Preprocessor(preprocessor::PreprocessorPluginPre<HostState>),
    PromptBuilder(prompt_builder::PromptBuilderPluginPre<HostState>),
    ScoreParser(score_parser::ScoreParserPluginPre<HostState>),
}

/// One instance of a component, typed for its role.
pub(crate) enum RoleInstance {
    Preprocessor(preprocessor::PreprocessorPlugin),
    PromptBuilder(prompt_builder::PromptBuilderPlugin),
    ScoreParser(score_parser::ScoreParserPlugin),
}

impl RolePre {
    pub(crate) fn new(role: Role, pre: InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(match role {
            Role::Preprocessor => RolePre::Preprocessor(preprocessor::PreprocessorPluginPre::new(pre)?),
            Role::PromptBuilder => RolePre::PromptBuilder(prompt_builder::PromptBuilderPluginPre::new(pre)?),
            Role::ScoreParser => RolePre::ScoreParser(score_parser::ScoreParserPluginPre::new(pre)?),
        })
    }

    pub(crate) fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<RoleInstance> {
        Ok(match self {
            RolePre::Preprocessor(pre) => RoleInstance::Preprocessor(pre.instantiate(store)?),
            RolePre::PromptBuilder(pre) => RoleInstance::PromptBuilder(pre.instantiate(store)?),
            RolePre::ScoreParser(pre) => RoleInstance::ScoreParser(pre.instantiate(store)?),
        })
    }
}

impl super::TrackInstance for RoleInstance {
    fn init(&self, store: &mut Store<HostState>, config: &String) -> wasmtime::Result<Result<GuestInfo, GuestError>> {
        let result = match self {
            RoleInstance::Preprocessor(p) => p.modelcall_plugin_preprocessor().call_init(store, config)?,
            RoleInstance::PromptBuilder(p) => p.modelcall_plugin_prompt_builder().call_init(store, config)?,
            RoleInstance::ScoreParser(p) => p.modelcall_plugin_score_parser().call_init(store, config)?,
        };
        Ok(result.map(GuestInfo::from).map_err(GuestError::from))
    }

    fn process(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, input: PreprocessInput) -> wasmtime::Result<Result<PreprocessOutcome, GuestError>> {
        let RoleInstance::Preprocessor(p) = self else { unreachable!("role checked at load") };
        let input = match input {
            PreprocessInput::Record(json) => pp::Input::Record(json),
            PreprocessInput::File { path, bytes } => pp::Input::File(pp::RawFile { path, bytes }),
        };
        let result = p.modelcall_plugin_preprocessor().call_process(store, ctx, &input)?;
        Ok(result.map(PreprocessOutcome::from).map_err(GuestError::from))
    }

    fn build(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str) -> wasmtime::Result<Result<Prompt, GuestError>> {
        let RoleInstance::PromptBuilder(p) = self else { unreachable!("role checked at load") };
        let result = p.modelcall_plugin_prompt_builder().call_build(store, ctx, &record.to_string())?;
        Ok(result.map(Prompt::from).map_err(GuestError::from))
    }

    fn parse(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str, completion: &str) -> wasmtime::Result<Result<Score, ParseFailure>> {
        let RoleInstance::ScoreParser(p) = self else { unreachable!("role checked at load") };
        let result = p.modelcall_plugin_score_parser().call_parse(store, ctx, &record.to_string(), completion)?;
        Ok(result.map(Score::from).map_err(ParseFailure::from))
    }
}

// ---- WIT → host types. Every conversion moves the strings; nothing is copied. ----

impl From<wit::ErrorKind> for ErrorKind {
    fn from(k: wit::ErrorKind) -> Self {
        match k {
            wit::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            wit::ErrorKind::InvalidConfig => ErrorKind::InvalidConfig,
            wit::ErrorKind::Unsupported => ErrorKind::Unsupported,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        }
    }
}

impl From<wit::PluginError> for GuestError {
    fn from(e: wit::PluginError) -> Self {
        GuestError { kind: e.kind.into(), message: e.message }
    }
}

impl From<wit::PluginInfo> for GuestInfo {
    fn from(i: wit::PluginInfo) -> Self {
        GuestInfo { name: i.name, version: i.version, config_schema: i.config_schema }
    }
}

impl From<wit::Role> for ChatRole {
    fn from(r: wit::Role) -> Self {
        match r {
            wit::Role::System => ChatRole::System,
            wit::Role::User => ChatRole::User,
            wit::Role::Assistant => ChatRole::Assistant,
        }
    }
}

impl From<pp::Outcome> for PreprocessOutcome {
    fn from(o: pp::Outcome) -> Self {
        match o {
            pp::Outcome::Keep(records) => PreprocessOutcome::Keep(records),
            pp::Outcome::Skip(reason) => PreprocessOutcome::Skip(reason),
        }
    }
}

impl From<pb::Prompt> for Prompt {
    fn from(p: pb::Prompt) -> Self {
        Prompt {
            messages: p.messages.into_iter().map(|m| ChatMessage { role: m.role.into(), content: m.content }).collect(),
            max_tokens: p.max_tokens,
            temperature: p.temperature,
            stop: p.stop,
            response_schema: p.response_schema,
        }
    }
}

impl From<sp::Score> for Score {
    fn from(s: sp::Score) -> Self {
        Score { value: s.value, label: s.label, rationale: s.rationale, extra: s.extra }
    }
}

impl From<sp::ParseError> for ParseFailure {
    fn from(e: sp::ParseError) -> Self {
        match e {
            sp::ParseError::Retry(hint) => ParseFailure::Retry(hint),
            sp::ParseError::Invalid(message) => ParseFailure::Invalid(message),
        }
    }
}

impl From<wit::LogLevel> for tracing::Level {
    fn from(l: wit::LogLevel) -> Self {
        match l {
            wit::LogLevel::Trace => tracing::Level::TRACE,
            wit::LogLevel::Debug => tracing::Level::DEBUG,
            wit::LogLevel::Info => tracing::Level::INFO,
            wit::LogLevel::Warn => tracing::Level::WARN,
            wit::LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

// ---- The host imports of this track, delegating to the track-independent HostState. ----

impl wit::Host for HostState {}

impl context::Host for HostState {}

impl context::HostCallContext for HostState {
    fn task_name(&mut self, this: Resource<CallContext>) -> String {
        self.table.get(&this).map(|c| c.task_name.to_string()).unwrap_or_default()
    }
    fn record_id(&mut self, this: Resource<CallContext>) -> String {
        self.table.get(&this).map(|c| c.record_id.clone()).unwrap_or_default()
    }
    fn attempt(&mut self, this: Resource<CallContext>) -> u32 {
        self.table.get(&this).map(|c| c.attempt).unwrap_or(1)
    }
    fn drop(&mut self, rep: Resource<CallContext>) -> wasmtime::Result<()> {
        // The host lends call contexts as borrows and deletes them itself after the call;
        // a drop only arrives for handles the guest somehow owns.
        let _ = self.table.delete(rep);
        Ok(())
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        self.log_line(level.into(), &message);
    }

    fn count_tokens(&mut self, text: String) -> wasmtime::Result<u32> {
        self.count_tokens_bounded(&text)
    }

    fn truncate_tokens(&mut self, text: String, max_tokens: u32) -> wasmtime::Result<String> {
        self.truncate_tokens_bounded(text, max_tokens)
    }
}
