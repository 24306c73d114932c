//! What every endpoint answers with: the boxed response body, a JSON response, and
//! [`DropConnection`], the error that makes hyper drop the connection without an answer.
//!
//! Its own module because the chat endpoint, the Batch API endpoints and the router all build
//! these replies; none of them owns the others' shapes.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::Value;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder().status(status).header("content-type", "application/json").body(full(v.to_string())).expect("valid response")
}

#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated dropped connection")
    }
}

impl std::error::Error for DropConnection {}
