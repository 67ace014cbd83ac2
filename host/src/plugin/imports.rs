//! The imports a plugin may call, implemented on its store's [`PluginState`].
//!
//! `types` (the request and response resources) and `host` are linked for every plugin;
//! `outbound-http`, `cache` and `crypto` only into the linker of an entry granted them, so a
//! plugin that imports one without the grant fails to link at load time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full, Limited};
use wasmtime::component::{HasSelf, Linker, Resource};

use super::bindings::portcullis::plugin::{cache, crypto, host, outbound_http, types};
use super::bindings::{EditError, Identity};
use super::info::Grants;
use super::jws::Keys;
use super::state::{
    PluginState, RequestHandle, ResponseHandle, all_values, edit_error, first_value, header_list,
    header_name, header_value,
};

type Edit = wasmtime::Result<Result<(), EditError>>;

/// A linker with the always-granted imports and those `grants` allows.
pub fn linker(engine: &wasmtime::Engine, grants: &Grants) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    super::wasi::add_to_linker(&mut linker)?;
    super::wasi_http::add_to_linker(&mut linker)?;
    types::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    host::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    if !grants.http.is_empty() {
        outbound_http::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    }
    if grants.cache.is_some() {
        cache::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    }
    if grants.crypto {
        crypto::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)?;
    }
    Ok(linker)
}

/// Each capability interface, the grant that links it, and how to write that grant.
pub const CAPABILITIES: &[(&str, &str, &str)] = &[
    (
        "portcullis:plugin/outbound-http",
        "http",
        "grants.http = [\"auth.example.com\"]",
    ),
    (
        "portcullis:plugin/cache",
        "cache",
        "grants.cache = \"my-namespace\"",
    ),
    ("portcullis:plugin/crypto", "crypto", "grants.crypto = true"),
];

fn set_header(
    headers: &mut HeaderMap,
    limits: crate::router::RequestLimits,
    name: &str,
    value: &str,
    append: bool,
) -> Result<(), EditError> {
    let name = header_name(name)?;
    let value = header_value(value)?;
    // Checked before the map grows: replacing a header counts as adding one, which only
    // errs on the strict side.
    if !limits.admits_header(headers, &name, &value) {
        return Err(EditError::InvalidValue(format!(
            "the head would pass its limits ({} headers, {} bytes)",
            limits.max_headers, limits.max_header_bytes
        )));
    }
    if append {
        headers.append(name, value);
    } else {
        headers.insert(name, value);
    }
    Ok(())
}

fn remove_header(headers: &mut HeaderMap, name: &str) -> Result<(), EditError> {
    let name = header_name(name)?;
    headers.remove(name);
    Ok(())
}

/// A body can be replaced only when it was buffered (the entry asked for it), and only
/// within the entry's cap.
/// A path and a query, each checked on its own by the edit that changed one of them, as
/// the one target they are sent upstream as.
fn joined(path: &str, query: Option<&str>) -> wasmtime::Result<http::uri::PathAndQuery> {
    let target = match query {
        Some(q) => http::uri::PathAndQuery::try_from(format!("{path}?{q}")),
        None => http::uri::PathAndQuery::try_from(path),
    };
    target.map_err(|_| wasmtime::Error::msg("a checked path and query did not join"))
}

fn replace_body(current: &mut Option<Bytes>, body: Vec<u8>, cap: u64) -> Result<(), EditError> {
    if current.is_none() {
        return Err(EditError::BodyNotBuffered);
    }
    if body.len() as u64 > cap {
        return Err(EditError::BodyTooLarge(cap));
    }
    *current = Some(Bytes::from(body));
    Ok(())
}

impl types::Host for PluginState {}

impl types::HostRequest for PluginState {
    fn method(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request_mut()?.method.as_str().to_owned())
    }

    fn set_method(&mut self, _: Resource<RequestHandle>, method: String) -> Edit {
        if let Err(refusal) = portcullis_contract::edit::method(&method) {
            return Ok(Err(edit_error(refusal)));
        }
        let Ok(m) = Method::from_bytes(method.as_bytes()) else {
            return Ok(Err(EditError::InvalidValue("not an HTTP method".into())));
        };
        self.request_mut()?.method = m;
        Ok(Ok(()))
    }

    fn path(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request_mut()?.target.path().to_owned())
    }

    fn set_path(&mut self, _: Resource<RequestHandle>, path: String) -> Edit {
        // Held to the rules a client's path is, in its canonical form (the contract's).
        let path = match portcullis_contract::edit::path(&path) {
            Ok(p) => p.into_owned(),
            Err(refusal) => return Ok(Err(edit_error(refusal))),
        };
        let request = self.request_mut()?;
        request.target = joined(&path, request.target.query())?;
        Ok(Ok(()))
    }

    fn query(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Option<String>> {
        Ok(self.request_mut()?.target.query().map(str::to_owned))
    }

    fn set_query(&mut self, _: Resource<RequestHandle>, query: Option<String>) -> Edit {
        if let Some(Err(refusal)) = query.as_deref().map(portcullis_contract::edit::query) {
            return Ok(Err(edit_error(refusal)));
        }
        let request = self.request_mut()?;
        let query = query.as_deref().filter(|q| !q.is_empty());
        request.target = joined(request.target.path(), query)?;
        Ok(Ok(()))
    }

    fn header(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(first_value(
            &self.request_mut()?.headers,
            &name.to_ascii_lowercase(),
        ))
    }

    fn header_all(
        &mut self,
        _: Resource<RequestHandle>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(all_values(
            &self.request_mut()?.headers,
            &name.to_ascii_lowercase(),
        ))
    }

    fn headers(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(header_list(&self.request_mut()?.headers))
    }

    fn set_header(&mut self, _: Resource<RequestHandle>, name: String, value: String) -> Edit {
        let request = self.request_mut()?;
        let limits = request.limits;
        Ok(set_header(
            &mut request.headers,
            limits,
            &name,
            &value,
            false,
        ))
    }

    fn append_header(&mut self, _: Resource<RequestHandle>, name: String, value: String) -> Edit {
        let request = self.request_mut()?;
        let limits = request.limits;
        Ok(set_header(
            &mut request.headers,
            limits,
            &name,
            &value,
            true,
        ))
    }

    fn remove_header(&mut self, _: Resource<RequestHandle>, name: String) -> Edit {
        Ok(remove_header(&mut self.request_mut()?.headers, &name))
    }

    fn body(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.request_mut()?.body.as_ref().map(|b| b.to_vec()))
    }

    fn set_body(&mut self, _: Resource<RequestHandle>, body: Vec<u8>) -> Edit {
        let cap = self.entry.budgets.body_bytes;
        Ok(replace_body(&mut self.request_mut()?.body, body, cap))
    }

    fn client_ip(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request_mut()?.client_ip.to_string())
    }

    fn route(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request_mut()?.route.to_string())
    }

    fn request_id(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<String> {
        Ok(self.request_mut()?.request_id.to_string())
    }

    fn identity(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<Option<Identity>> {
        Ok(self.request_mut()?.identity.clone())
    }

    fn set_identity(
        &mut self,
        _: Resource<RequestHandle>,
        identity: Identity,
    ) -> wasmtime::Result<()> {
        self.entry
            .attaches_identity
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let size: usize = identity.subject.as_ref().map_or(0, String::len)
            + identity.consumer.as_ref().map_or(0, String::len)
            + identity.scopes.iter().map(String::len).sum::<usize>()
            + identity.groups.iter().map(String::len).sum::<usize>()
            + identity
                .claims
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>();
        if size > MAX_IDENTITY_BYTES {
            return Err(self.output_too_large("identity larger than 64 KiB"));
        }
        self.request_mut()?.identity = Some(identity);
        Ok(())
    }

    fn drop(&mut self, _: Resource<RequestHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// An identity is read by every later stage and logged; it has no business being large.
const MAX_IDENTITY_BYTES: usize = 64 * 1024;

impl types::HostResponse for PluginState {
    fn status(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<u16> {
        Ok(self.response_mut()?.status.as_u16())
    }

    fn set_status(&mut self, _: Resource<ResponseHandle>, status: u16) -> Edit {
        let s = match super::state::final_status(status) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        self.response_mut()?.status = s;
        Ok(Ok(()))
    }

    fn header(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
    ) -> wasmtime::Result<Option<String>> {
        Ok(first_value(
            &self.response_mut()?.headers,
            &name.to_ascii_lowercase(),
        ))
    }

    fn header_all(
        &mut self,
        _: Resource<ResponseHandle>,
        name: String,
    ) -> wasmtime::Result<Vec<String>> {
        Ok(all_values(
            &self.response_mut()?.headers,
            &name.to_ascii_lowercase(),
        ))
    }

    fn headers(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(header_list(&self.response_mut()?.headers))
    }

    fn set_header(&mut self, _: Resource<ResponseHandle>, name: String, value: String) -> Edit {
        let response = self.response_mut()?;
        let limits = response.limits;
        Ok(set_header(
            &mut response.headers,
            limits,
            &name,
            &value,
            false,
        ))
    }

    fn append_header(&mut self, _: Resource<ResponseHandle>, name: String, value: String) -> Edit {
        let response = self.response_mut()?;
        let limits = response.limits;
        Ok(set_header(
            &mut response.headers,
            limits,
            &name,
            &value,
            true,
        ))
    }

    fn remove_header(&mut self, _: Resource<ResponseHandle>, name: String) -> Edit {
        Ok(remove_header(&mut self.response_mut()?.headers, &name))
    }

    fn body(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.response_mut()?.body.as_ref().map(|b| b.to_vec()))
    }

    fn set_body(&mut self, _: Resource<ResponseHandle>, body: Vec<u8>) -> Edit {
        let cap = self.entry.budgets.body_bytes;
        Ok(replace_body(&mut self.response_mut()?.body, body, cap))
    }

    fn identity(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<Option<Identity>> {
        Ok(self.response_mut()?.identity.clone())
    }

    fn drop(&mut self, _: Resource<ResponseHandle>) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl host::Host for PluginState {
    fn config(&mut self) -> wasmtime::Result<String> {
        Ok(self.entry.config.clone())
    }

    fn now_millis(&mut self) -> wasmtime::Result<u64> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        const MAX: u32 = 256;
        let mut bytes = vec![0; len.min(MAX) as usize];
        self.fill_random(&mut bytes)?;
        Ok(bytes)
    }

    fn log(&mut self, level: host::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            host::Level::Trace => tracing::Level::TRACE,
            host::Level::Debug => tracing::Level::DEBUG,
            host::Level::Info => tracing::Level::INFO,
            host::Level::Warn => tracing::Level::WARN,
            host::Level::Error => tracing::Level::ERROR,
        };
        self.entry
            .log_line(level, None, self.request_id.as_deref(), &message);
        Ok(())
    }

    fn count(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            self.entry.counter(&name).inc_by(delta);
        }
        Ok(())
    }
}

impl outbound_http::Host for PluginState {
    async fn send(
        &mut self,
        request: outbound_http::OutgoingRequest,
    ) -> wasmtime::Result<Result<outbound_http::IncomingResponse, outbound_http::HttpError>> {
        use outbound_http::HttpError;
        self.awaited = true;
        let Ok(uri) = request.url.parse::<http::Uri>() else {
            return Ok(Err(HttpError::InvalidRequest("not a URL".into())));
        };
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Ok(Err(HttpError::InvalidRequest(
                "the URL must be absolute (http:// or https://)".into(),
            )));
        };
        let port = match (uri.port_u16(), scheme) {
            (Some(p), _) => p,
            (None, "http") => 80,
            (None, "https") => 443,
            _ => return Ok(Err(HttpError::InvalidRequest("only http and https".into()))),
        };
        // Requests that would never be sent are refused before a call is counted.
        if super::info::has_user_info(&uri) {
            return Ok(Err(HttpError::InvalidRequest(
                "a URL with user info (`user@host`) is not sent".into(),
            )));
        }
        let Ok(method) = Method::from_bytes(request.method.as_bytes()) else {
            return Ok(Err(HttpError::InvalidRequest("not an HTTP method".into())));
        };
        // The client would turn it into a tunnel to the host, and log the URL's path.
        if method == Method::CONNECT {
            return Ok(Err(HttpError::InvalidRequest(
                "`CONNECT` is not sent for plugins".into(),
            )));
        }
        if !self.entry.grants.permits_url(&uri) {
            return Ok(Err(HttpError::HostNotGranted(format!("{host}:{port}"))));
        }
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &request.headers {
            let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value.as_bytes()),
            ) else {
                return Ok(Err(HttpError::InvalidRequest(format!(
                    "bad header `{name}`"
                ))));
            };
            // The grant checked the URL's host; a `Host` of the plugin's choosing would
            // reach another virtual host behind the same address.
            if n == http::header::HOST {
                return Ok(Err(HttpError::InvalidRequest(
                    "`host` comes from the URL and cannot be set".into(),
                )));
            }
            builder = builder.header(n, v);
        }
        if !self.take_outbound_call() {
            return Ok(Err(HttpError::BudgetExhausted));
        }
        let cap = self.entry.budgets.body_bytes;
        if request.body.len() as u64 > cap {
            return Err(self.output_too_large("outbound request body over `body_bytes`"));
        }
        let body = Full::new(Bytes::from(request.body))
            .map_err(|never| match never {})
            .boxed();
        let Ok(outgoing) = builder.body(body) else {
            return Ok(Err(HttpError::InvalidRequest("unusable request".into())));
        };

        // Never past the plugin's own deadline: the guest should see a timeout it can
        // handle, rather than be cut off.
        let left = self.deadline.saturating_duration_since(Instant::now());
        let timeout = request
            .timeout_millis
            .map_or(left, |ms| Duration::from_millis(u64::from(ms)).min(left));
        let client = self.entry.services.http.clone();
        let exchange = async move {
            let response = client
                .request(outgoing)
                .await
                .map_err(|e| HttpError::Transport(transport_text(&e)))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, usize::try_from(cap).unwrap_or(usize::MAX))
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::BodyTooLarge
                    } else {
                        HttpError::Transport(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(outbound_http::IncomingResponse {
                status: head.status.as_u16(),
                headers: header_list(&head.headers),
                body: body.to_vec(),
            })
        };
        // On the serving runtime even for a plugin on the lane: the client's connections
        // are shared with every route (`home::at_home`).
        // The timer too: made on the lane, it would be driven by the lane's timer wheel.
        let exchange =
            super::home::at_home(async move { tokio::time::timeout(timeout, exchange).await });
        Ok(match exchange.await {
            Some(Ok(result)) => result,
            Some(Err(_elapsed)) => Err(HttpError::Timeout),
            None => Err(HttpError::Transport("the gateway is shutting down".into())),
        })
    }
}

/// The client error without addresses or internals beyond its kind.
fn transport_text(e: &hyper_util::client::legacy::Error) -> String {
    if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

impl cache::Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self
            .entry
            .grants
            .cache
            .as_ref()
            .and_then(|c| c.get(&key))
            .map(|b| b.to_vec()))
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_millis: u32) -> wasmtime::Result<()> {
        if let Some(c) = &self.entry.grants.cache {
            c.set(
                &key,
                Bytes::from(value),
                Duration::from_millis(u64::from(ttl_millis)),
            );
        }
        Ok(())
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if let Some(c) = &self.entry.grants.cache {
            c.delete(&key);
        }
        Ok(())
    }
}

impl crypto::Host for PluginState {
    async fn verify_jws(
        &mut self,
        token: String,
        keys: crypto::KeySource,
        allowed: Vec<crypto::Algorithm>,
    ) -> wasmtime::Result<Result<crypto::Verified, crypto::VerifyError>> {
        use crypto::{KeySource, VerifyError};
        self.awaited = true;
        let key_sets = &self.entry.services.key_sets;
        let keys = match &keys {
            KeySource::JwksUrl(url) => {
                let granted = url
                    .parse::<http::Uri>()
                    .is_ok_and(|u| self.entry.grants.permits_url(&u));
                if !granted {
                    return Ok(Err(VerifyError::InvalidKeys(format!(
                        "the host of `{url}` is not listed in grants.http"
                    ))));
                }
                Keys::Url(url)
            }
            KeySource::Jwks(text) => Keys::Inline(text),
            KeySource::Secret(secret) => Keys::Secret(secret),
        };
        Ok(key_sets.verify(&token, keys, &allowed).await)
    }
}
