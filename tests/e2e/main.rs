//! End-to-end tests: the real gateway on 127.0.0.1:0 (in-process, or the built binary
//! where signals and log output matter), real upstreams, real TLS.

mod binary;
mod crypto;
mod edge;
mod instances;
mod jwt_auth;
mod key_auth;
mod languages;
mod limits;
mod pipeline;
mod plugins;
mod policies;
mod protocols;
mod readmes;
mod routing;
mod support;
mod tls;
mod transform;
mod upstreams;
mod validate;
mod wasi;
mod wasi_http;
