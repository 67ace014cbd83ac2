//! [`Request`] and [`Response`]: handles on the gateway's copy of the exchange.
//!
//! In a component they call into the gateway; in native tests they work on a
//! [`TestRequest`](crate::testing::TestRequest) or [`TestResponse`](crate::testing::TestResponse).
//! Either way the methods are the same, so a plugin is tested as it runs.

use crate::{EditError, Identity};

#[cfg(target_arch = "wasm32")]
type RequestInner<'a> = &'a crate::bindings::portcullis::plugin::types::Request;
#[cfg(not(target_arch = "wasm32"))]
type RequestInner<'a> = &'a mut crate::testing::TestRequest;

#[cfg(target_arch = "wasm32")]
type ResponseInner<'a> = &'a crate::bindings::portcullis::plugin::types::Response;
#[cfg(not(target_arch = "wasm32"))]
type ResponseInner<'a> = &'a mut crate::testing::TestResponse;

/// Header and body methods, the same on both handles.
macro_rules! forwarding_methods {
    ($body_phase:literal) => {
        /// The first value of a header.
        pub fn header(&self, name: &str) -> Option<String> {
            self.inner.header(name)
        }
        /// Every value of a header, in order.
        pub fn header_all(&self, name: &str) -> Vec<String> {
            self.inner.header_all(name)
        }
        /// Every header, in order; copies them all, so prefer `header`.
        pub fn headers(&self) -> Vec<(String, String)> {
            self.inner.headers()
        }
        /// Replaces every value of a header.
        pub fn set_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
            self.inner.set_header(name, value)
        }
        /// Adds a value to a header, keeping the others.
        pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), EditError> {
            self.inner.append_header(name, value)
        }
        pub fn remove_header(&mut self, name: &str) -> Result<(), EditError> {
            self.inner.remove_header(name)
        }
        #[doc = concat!("The body, if the plugin asked for `", $body_phase, "` in its phases.")]
        pub fn body(&self) -> Option<Vec<u8>> {
            self.inner.body()
        }
        /// Replaces the body (only when it was buffered for this plugin).
        pub fn set_body(&mut self, body: &[u8]) -> Result<(), EditError> {
            self.inner.set_body(body)
        }
    };
}

/// The request on its way to the upstream. Header names are case-insensitive.
#[derive(Debug)]
pub struct Request<'a> {
    inner: RequestInner<'a>,
}

/// The response on its way to the client.
#[derive(Debug)]
pub struct Response<'a> {
    inner: ResponseInner<'a>,
}

impl<'a> Request<'a> {
    #[doc(hidden)]
    pub fn new(inner: RequestInner<'a>) -> Self {
        Self { inner }
    }

    /// The method, such as `GET`.
    pub fn method(&self) -> String {
        self.inner.method()
    }
    pub fn set_method(&mut self, method: &str) -> Result<(), EditError> {
        self.inner.set_method(method)
    }
    /// The percent-encoded path, without the query.
    pub fn path(&self) -> String {
        self.inner.path()
    }
    pub fn set_path(&mut self, path: &str) -> Result<(), EditError> {
        self.inner.set_path(path)
    }
    /// The raw query string, without `?`.
    pub fn query(&self) -> Option<String> {
        self.inner.query()
    }
    pub fn set_query(&mut self, query: Option<&str>) -> Result<(), EditError> {
        self.inner.set_query(query)
    }
    forwarding_methods!("request-body");

    /// The client's address as the gateway determined it.
    pub fn client_ip(&self) -> String {
        self.inner.client_ip()
    }
    /// The matched route's id.
    pub fn route(&self) -> String {
        self.inner.route()
    }
    pub fn request_id(&self) -> String {
        self.inner.request_id()
    }
    /// The identity an earlier plugin attached.
    pub fn identity(&self) -> Option<Identity> {
        self.inner.identity()
    }
    /// Attaches the verified identity of this request, for later plugins, rate-limit keys
    /// and the access log.
    pub fn set_identity(&mut self, identity: &Identity) {
        self.inner.set_identity(identity)
    }
}

impl<'a> Response<'a> {
    #[doc(hidden)]
    pub fn new(inner: ResponseInner<'a>) -> Self {
        Self { inner }
    }

    pub fn status(&self) -> u16 {
        self.inner.status()
    }
    pub fn set_status(&mut self, status: u16) -> Result<(), EditError> {
        self.inner.set_status(status)
    }
    forwarding_methods!("response-body");

    pub fn identity(&self) -> Option<Identity> {
        self.inner.identity()
    }
}
