//! Applies the edit script in its request body: every call a plugin can make on the
//! request, in any order and with any arguments, for the plugin host-call fuzz target.
//! Refused edits are ignored, as a careless plugin would; the host must stay sound.
//!
//! Script: a sequence of operations, each an opcode byte followed by its arguments;
//! strings are a length byte and that many bytes (read as lossy UTF-8), numbers are two
//! bytes big-endian. A script that ends mid-operation stops there.

#[allow(unused_imports)]
use portcullis_sdk::{
    Action, Identity, Phases, Plugin, Reply, Request, Response, cache, crypto, export_plugin, host,
    http,
};

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn number(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn text(&mut self) -> Option<String> {
        let len = usize::from(self.byte()?);
        let len = len.min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

struct Scripted;
impl Plugin for Scripted {
    type Config = serde_json::Value;
    fn check(_: &Self::Config) -> Result<Phases, String> {
        Ok(Phases::ON_REQUEST | Phases::REQUEST_BODY)
    }
    fn on_request(_: &Self::Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let body = request.body().unwrap_or_default();
        let mut s = Script(&body);
        while let Some(op) = s.byte() {
            if op % 12 == 8 {
                // A reply ends the script: it goes out, or the host refuses it.
                let (Some(status), Some(name), Some(value)) = (s.number(), s.text(), s.text())
                else {
                    break;
                };
                let mut reply = Reply::new(status);
                reply.headers.push((name, value.clone()));
                reply.body = value.into_bytes();
                return Ok(Action::Respond(reply));
            }
            let done = match op % 12 {
                0 => s.text().zip(s.text()).map(|(n, v)| {
                    let _ = request.set_header(&n, &v);
                }),
                1 => s.text().zip(s.text()).map(|(n, v)| {
                    let _ = request.append_header(&n, &v);
                }),
                2 => s.text().map(|n| {
                    let _ = request.remove_header(&n);
                }),
                3 => s.text().map(|p| {
                    let _ = request.set_path(&p);
                }),
                4 => s.text().map(|q| {
                    let _ =
                        request.set_query(Some(&q).filter(|q| !q.is_empty()).map(|q| q.as_str()));
                }),
                5 => s.text().map(|m| {
                    let _ = request.set_method(&m);
                }),
                6 => s.text().map(|b| {
                    let _ = request.set_body(b.as_bytes());
                }),
                7 => s.text().map(|subject| {
                    request.set_identity(&Identity::subject(&subject));
                }),
                9 => s.text().map(|m| host::log(host::Level::Info, &m)),
                10 => s.text().map(|n| host::count(&n, 1)),
                _ => s.number().map(|n| {
                    // Many appends of one header in a loop, as a runaway plugin would.
                    for i in 0..n {
                        if request.append_header("x-loop", &i.to_string()).is_err() {
                            break;
                        }
                    }
                }),
            };
            if done.is_none() {
                break;
            }
        }
        Ok(Action::Continue)
    }
}
export_plugin!(Scripted);
