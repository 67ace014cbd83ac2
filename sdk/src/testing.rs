//! A native test harness: run a plugin's phases in `cargo test`, without the gateway.
//!
//! [`Harness`] checks the config like the gateway does at load time, then runs phases on a
//! [`TestRequest`] or [`TestResponse`], which enforce the gateway's rules for edits
//! (forbidden headers, invalid values, bodies that were not asked for). Host calls go to a
//! [`TestHost`] you can preset (clock, cache, outbound HTTP answers, verification results)
//! and inspect afterwards (logs, counters).

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;

use crate::capabilities::crypto::{Algorithm, KeySource, Verified, VerifyError};
use crate::capabilities::http::{HttpError, IncomingResponse, OutgoingRequest};
use crate::{Action, EditError, Identity, Level, Phases, Plugin, Request, Response};

/// Answers a plugin's outbound HTTP call in tests.
pub type HttpAnswer = Box<dyn FnMut(&OutgoingRequest) -> Result<IncomingResponse, HttpError>>;

/// Answers a plugin's `crypto::verify_jws` call in tests.
pub type VerifyAnswer =
    Box<dyn FnMut(&str, &KeySource, &[Algorithm]) -> Result<Verified, VerifyError>>;

/// What the plugin's host calls see and record during a harness call.
pub struct TestHost {
    pub config: String,
    pub now_millis: u64,
    /// State of the deterministic generator behind `host::random_bytes` in tests.
    pub random_state: u64,
    pub logs: Vec<(Level, String)>,
    pub counters: HashMap<String, u64>,
    pub cache: HashMap<String, Vec<u8>>,
    /// Answers outbound HTTP; unset means every call fails as not granted.
    pub http: Option<HttpAnswer>,
    /// Answers `crypto::verify_jws`; unset means every token is `invalid-signature`.
    pub verifier: Option<VerifyAnswer>,
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("config", &self.config)
            .field("now_millis", &self.now_millis)
            .field("logs", &self.logs)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl TestHost {
    /// Reproducible bytes (xorshift64), so tests of plugins that draw random numbers
    /// give the same answer every run.
    pub(crate) fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        (0..len.min(256))
            .map(|_| {
                let mut x = self.random_state;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.random_state = x;
                x.to_le_bytes()[0]
            })
            .collect()
    }
}

thread_local! {
    static HOST: RefCell<Option<TestHost>> = const { RefCell::new(None) };
}

/// Runs `f` on the host of the harness call in progress.
///
/// # Panics
/// When a host function is called outside a [`Harness`] call.
pub(crate) fn with_host<R>(f: impl FnOnce(&mut TestHost) -> R) -> R {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        let host = h
            .as_mut()
            .expect("portcullis-sdk host functions only work inside a testing::Harness call");
        f(host)
    })
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn outbound(request: &OutgoingRequest) -> Result<IncomingResponse, HttpError> {
    with_host(|h| match h.http.as_mut() {
        Some(answer) => answer(request),
        None => Err(HttpError::HostNotGranted(request.url.clone())),
    })
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn verify(
    token: &str,
    keys: &KeySource,
    allowed: &[Algorithm],
) -> Result<Verified, VerifyError> {
    with_host(|h| match h.verifier.as_mut() {
        Some(answer) => answer(token, keys, allowed),
        None => Err(VerifyError::InvalidSignature),
    })
}

/// Runs one plugin type with one config.
pub struct Harness<P: Plugin> {
    config: P::Config,
    phases: Phases,
    host: RefCell<Option<TestHost>>,
    _plugin: PhantomData<P>,
}

impl<P: Plugin> std::fmt::Debug for Harness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("phases", &self.phases)
            .finish_non_exhaustive()
    }
}

impl<P: Plugin> Harness<P> {
    /// Parses and checks `config` as the gateway would at load time.
    pub fn new(config: serde_json::Value) -> Result<Self, String> {
        let text = config.to_string();
        let parsed: P::Config =
            serde_json::from_value(config).map_err(|e| format!("invalid config: {e}"))?;
        let host = TestHost {
            config: text,
            now_millis: 1_700_000_000_000,
            random_state: 0x2545_f491_4f6c_dd1d,
            logs: Vec::new(),
            counters: HashMap::new(),
            cache: HashMap::new(),
            http: None,
            verifier: None,
        };
        let harness = Self {
            config: parsed,
            phases: Phases::empty(),
            host: RefCell::new(Some(host)),
            _plugin: PhantomData,
        };
        let phases = harness.run(|| P::check(&harness.config))?;
        Ok(Self { phases, ..harness })
    }

    /// The phases the plugin asked for.
    pub fn phases(&self) -> Phases {
        self.phases
    }

    /// Changes the host before the next call (clock, cache, answers).
    pub fn host(&self, f: impl FnOnce(&mut TestHost)) {
        if let Some(h) = self.host.borrow_mut().as_mut() {
            f(h);
        }
    }

    /// Reads what the host recorded (logs, counters, cache).
    pub fn inspect<R>(&self, f: impl FnOnce(&TestHost) -> R) -> Option<R> {
        self.host.borrow().as_ref().map(f)
    }

    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let host = self.host.borrow_mut().take();
        HOST.with(|h| *h.borrow_mut() = host);
        let result = f();
        let host = HOST.with(|h| h.borrow_mut().take());
        *self.host.borrow_mut() = host;
        result
    }

    /// Runs the request phase.
    pub fn on_request(&self, request: &mut TestRequest) -> crate::Result<Action> {
        request.body_buffered = self.phases.contains(Phases::REQUEST_BODY);
        self.run(|| P::on_request(&self.config, &mut Request::new(request)))
    }

    /// Runs the response phase.
    pub fn on_response(&self, response: &mut TestResponse) -> crate::Result<()> {
        response.body_buffered = self.phases.contains(Phases::RESPONSE_BODY);
        self.run(|| P::on_response(&self.config, &mut Response::new(response)))
    }
}

// The edit rules are the gateway's own, from the contract's crate.
use portcullis_contract::edit as rules;

fn refused(refusal: rules::Refusal) -> EditError {
    match refusal {
        rules::Refusal::InvalidName(name) => EditError::InvalidName(name),
        rules::Refusal::Forbidden(name) => EditError::Forbidden(name),
        rules::Refusal::InvalidValue(why) => EditError::InvalidValue(why),
    }
}

fn check_name(name: &str) -> Result<String, EditError> {
    rules::header_name(name)
        .map(|n| n.into_owned())
        .map_err(refused)
}

fn check_value(value: &str) -> Result<(), EditError> {
    rules::header_value(value).map_err(refused)
}

/// An ordered, multi-valued header list with the gateway's edit rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestHeaders(pub Vec<(String, String)>);

impl TestHeaders {
    fn first(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
    fn all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.0
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn set(&mut self, name: &str, value: &str, append: bool) -> Result<(), EditError> {
        let name = check_name(name)?;
        check_value(value)?;
        if !append {
            self.0.retain(|(k, _)| *k != name);
        }
        self.0.push((name, value.to_owned()));
        Ok(())
    }
    fn remove(&mut self, name: &str) -> Result<(), EditError> {
        let name = check_name(name)?;
        self.0.retain(|(k, _)| *k != name);
        Ok(())
    }
}

/// The header and body methods both resources have, with the same rules.
macro_rules! shared_methods {
    () => {
        /// Adds a header before the plugin runs.
        pub fn with_header(mut self, name: &str, value: &str) -> Self {
            self.headers
                .0
                .push((name.to_ascii_lowercase(), value.to_owned()));
            self
        }

        /// Sets the body before the plugin runs.
        pub fn with_body(mut self, body: &[u8]) -> Self {
            self.body = Some(body.to_vec());
            self
        }

        /// The first value of a header after the plugin ran.
        pub fn header_value(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers
                .0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        }

        pub fn header(&self, name: &str) -> Option<String> {
            self.headers.first(name)
        }
        pub fn header_all(&self, name: &str) -> Vec<String> {
            self.headers.all(name)
        }
        pub fn headers(&self) -> Vec<(String, String)> {
            self.headers.0.clone()
        }
        pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
            self.headers.set(name, value, false)
        }
        pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
            self.headers.set(name, value, true)
        }
        pub fn remove_header(&mut self, name: &str) -> Result<(), EditError> {
            self.headers.remove(name)
        }
        pub fn body(&self) -> Option<Vec<u8>> {
            if self.body_buffered {
                Some(self.body.clone().unwrap_or_default())
            } else {
                None
            }
        }
        pub fn set_body(&mut self, body: &[u8]) -> Result<(), EditError> {
            if !self.body_buffered {
                return Err(EditError::BodyNotBuffered);
            }
            self.body = Some(body.to_vec());
            Ok(())
        }
    };
}

/// A request for native tests, with the methods of the gateway's request resource.
#[derive(Debug, Clone)]
pub struct TestRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: TestHeaders,
    pub body: Option<Vec<u8>>,
    pub identity: Option<Identity>,
    pub client_ip: String,
    pub route: String,
    pub request_id: String,
    body_buffered: bool,
}

impl TestRequest {
    /// A request with this method and target (`/path?query`).
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        Self {
            method: method.to_owned(),
            path,
            query,
            headers: TestHeaders::default(),
            body: None,
            identity: None,
            client_ip: "127.0.0.1".into(),
            route: "test".into(),
            request_id: "test-request".into(),
            body_buffered: false,
        }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    pub fn post(target: &str, body: &[u8]) -> Self {
        Self::new("POST", target).with_body(body)
    }

    // The methods below mirror the gateway's `request` resource, so `Request` forwards to
    // either with the same code.

    pub fn method(&self) -> String {
        self.method.clone()
    }
    pub fn set_method(&mut self, method: &str) -> Result<(), EditError> {
        rules::method(method).map_err(refused)?;
        self.method = method.to_owned();
        Ok(())
    }
    pub fn path(&self) -> String {
        self.path.clone()
    }
    pub fn set_path(&mut self, path: &str) -> Result<(), EditError> {
        self.path = rules::path(path).map_err(refused)?.into_owned();
        Ok(())
    }
    pub fn query(&self) -> Option<String> {
        self.query.clone()
    }
    pub fn set_query(&mut self, query: Option<&str>) -> Result<(), EditError> {
        if let Some(q) = query {
            rules::query(q).map_err(refused)?;
        }
        self.query = query.filter(|q| !q.is_empty()).map(str::to_owned);
        Ok(())
    }
    shared_methods!();

    pub fn client_ip(&self) -> String {
        self.client_ip.clone()
    }
    pub fn route(&self) -> String {
        self.route.clone()
    }
    pub fn request_id(&self) -> String {
        self.request_id.clone()
    }
    pub fn identity(&self) -> Option<Identity> {
        self.identity.clone()
    }
    pub fn set_identity(&mut self, identity: &Identity) {
        self.identity = Some(identity.clone());
    }
}

/// A response for native tests, with the methods of the gateway's response resource.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    pub headers: TestHeaders,
    pub body: Option<Vec<u8>>,
    pub identity: Option<Identity>,
    body_buffered: bool,
}

impl TestResponse {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: TestHeaders::default(),
            body: None,
            identity: None,
            body_buffered: false,
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }
    pub fn set_status(&mut self, status: u16) -> Result<(), EditError> {
        rules::final_status(status).map_err(refused)?;
        self.status = status;
        Ok(())
    }
    shared_methods!();

    pub fn identity(&self) -> Option<Identity> {
        self.identity.clone()
    }
}
