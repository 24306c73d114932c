//! What every API track's bindings share, as one macro: the generated worlds, the typed
//! pre-instance and instance per role, the `TrackInstance` calls that read the same on every
//! track, the conversions of the types no track has changed, and the host imports (thin
//! delegations to the track-independent [`HostState`](crate::imports::HostState)).
//!
//! A track's file (`since_v0_1.rs`, `since_v0_2.rs`) invokes [`track_bindings!`] with the
//! directory of its WIT and adds the conversions of what it changed: `outcome` (a
//! preprocessor's answer) and `parse_answer` (a score parser's).

/// Generates a track's bindings from the WIT in `$path` (relative to the crate) in the
/// calling module. The module must define `fn outcome(pp::Outcome) -> PreprocessOutcome` and
/// `fn parse_answer(Result<sp::Score, sp::ParseError>) -> GuestParse`.
macro_rules! track_bindings {
    ($path:literal) => {
        use wasmtime::component::{HasSelf, InstancePre, Linker, Resource};
        use wasmtime::Store;

        use crate::wit::{GuestError, GuestInfo, GuestParse};
        use crate::errors::ErrorKind;
        use crate::imports::{CallContext, HostState};
        use crate::types::{ChatMessage, ChatRole, PreprocessInput, PreprocessOutcome, Prompt, Role, Score};

        /// The imports-only world is generated once; the three per-role worlds reuse its
        /// types, context resource and host interface through `with:`, so there is one
        /// `ChatMessage`, one `PluginError` and one `Host` trait whatever the role.
        pub(crate) mod base {
            wasmtime::component::bindgen!({
                path: $path,
                world: "modelcall:plugin/imports",
                with: {
                    "modelcall:plugin/context.call-context": crate::imports::CallContext,
                },
                // Token counting runs outside fuel and epochs: the host checks the input
                // size, the call's deadline and bounds its own memory, and traps the guest
                // past them.
                imports: {
                    "modelcall:plugin/host.count-tokens": trappable,
                    "modelcall:plugin/host.truncate-tokens": trappable,
                },
            });
        }

        pub(crate) mod preprocessor {
            wasmtime::component::bindgen!({
                path: $path,
                world: "modelcall:plugin/preprocessor-plugin",
                with: {
                    "modelcall:plugin/types": super::base::modelcall::plugin::types,
                    "modelcall:plugin/context": super::base::modelcall::plugin::context,
                    "modelcall:plugin/host": super::base::modelcall::plugin::host,
                },
            });
        }

        pub(crate) mod prompt_builder {
            wasmtime::component::bindgen!({
                path: $path,
                world: "modelcall:plugin/prompt-builder-plugin",
                with: {
                    "modelcall:plugin/types": super::base::modelcall::plugin::types,
                    "modelcall:plugin/context": super::base::modelcall::plugin::context,
                    "modelcall:plugin/host": super::base::modelcall::plugin::host,
                },
            });
        }

        pub(crate) mod score_parser {
            wasmtime::component::bindgen!({
                path: $path,
                world: "modelcall:plugin/score-parser-plugin",
                with: {
                    "modelcall:plugin/types": super::base::modelcall::plugin::types,
                    "modelcall:plugin/context": super::base::modelcall::plugin::context,
                    "modelcall:plugin/host": super::base::modelcall::plugin::host,
                },
            });
        }

        use base::modelcall::plugin::{context, host, types as wit};
        #[allow(unused_imports)]
        use preprocessor::exports::modelcall::plugin::preprocessor as pp;
        use prompt_builder::exports::modelcall::plugin::prompt_builder as pb;
        #[allow(unused_imports)]
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

        impl crate::wit::TrackInstance for RoleInstance {
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
                Ok(result.map(outcome).map_err(GuestError::from))
            }

            fn build(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str) -> wasmtime::Result<Result<Prompt, GuestError>> {
                let RoleInstance::PromptBuilder(p) = self else { unreachable!("role checked at load") };
                let result = p.modelcall_plugin_prompt_builder().call_build(store, ctx, &record.to_string())?;
                Ok(result.map(Prompt::from).map_err(GuestError::from))
            }

            fn parse(&self, store: &mut Store<HostState>, ctx: Resource<CallContext>, record: &str, completion: &str) -> wasmtime::Result<GuestParse> {
                let RoleInstance::ScoreParser(p) = self else { unreachable!("role checked at load") };
                let result = p.modelcall_plugin_score_parser().call_parse(store, ctx, &record.to_string(), completion)?;
                Ok(parse_answer(result))
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
                // The host lends call contexts as borrows and deletes them itself after the
                // call; a drop only arrives for handles the guest somehow owns.
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
    };
}

pub(crate) use track_bindings;
