//! Encoding: every answer as JSON (objects, lists, Tables, `Status` errors), with
//! kube-apiserver's `Warning` headers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::Response;
use serde_json::Value;

use crate::error::ApiError;

/// The response body type.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(super) fn full(status: StatusCode, body: Vec<u8>, ct: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ct)
        .body(
            Full::new(Bytes::from(body))
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
        .expect("valid response")
}

pub(super) fn json_response(status: StatusCode, v: &Value, warnings: &[String]) -> Response<Body> {
    let mut r = full(
        status,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = http::HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

pub(super) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
        &[],
    )
}
