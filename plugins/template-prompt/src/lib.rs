//! builtin:template-prompt
