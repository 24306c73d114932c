//! OpenAI-compatible chat-completions client with typed errors and retries
