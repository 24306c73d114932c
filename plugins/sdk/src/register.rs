//! What every `register_*!` macro expands to, written once: on wasm32, a type implementing the
//! kind's WIT `Guest` through [`crate::glue`] and exported as the component's implementation;
//! natively, only a check that the type implements the kind's trait, so a plugin crate still
//! builds (and unit-tests) with plain `cargo test`.

/// `register_*!` of the kind `$kind::$Trait`, whose bindings export with `$crate::$export!`;
/// `$calls` are the kind's `Guest` methods besides `init`, which is the same for every kind.
#[doc(hidden)]
#[macro_export]
macro_rules! __register_plugin {
    ($t:ty, $kind:ident :: $Trait:ident, $export:ident, { $($calls:tt)* }) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ModelcallPlugin;
            impl $crate::$kind::__glue::Guest for __ModelcallPlugin {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::glue::PluginInfo, $crate::glue::PluginError> {
                    $crate::glue::init(
                        &config,
                        <$t as $crate::$kind::$Trait>::new,
                        <$t as $crate::$kind::$Trait>::config_schema,
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                    )
                }
                $($calls)*
            }
            $crate::$export!(__ModelcallPlugin with_types_in $crate::$kind::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            fn __assert_plugin<T: $crate::$kind::$Trait>() {}
            let _ = __assert_plugin::<$t>;
        };
    };
}
