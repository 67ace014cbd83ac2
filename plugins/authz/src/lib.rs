//! `authz`: authorization by the identity an auth plugin verified earlier in the pipeline.
//! See `README.md` for the config.
//!
//! Every requirement given must hold (they combine with AND); within one, lists say which
//! values are accepted. A request with no verified identity is refused: this plugin only
//! makes sense after `jwt-auth`, `key-auth` or another plugin that attaches one.

use std::collections::BTreeMap;

use portcullis_sdk::{Action, Identity, Phases, Plugin, Reply, Request, checks, export_plugin};
use serde::Deserialize;

/// The entry's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scopes that must all be granted.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The identity must be in at least one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The identity must be in none of these groups.
    #[serde(default)]
    pub deny_groups: Vec<String>,
    /// The consumer must be one of these.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// The subject must be one of these.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Claims (attached by the auth plugin's `claims` list) with their accepted values.
    #[serde(default)]
    pub claims: BTreeMap<String, checks::Accepted>,
}

impl Config {
    fn is_empty(&self) -> bool {
        self.scopes.is_empty()
            && self.groups.is_empty()
            && self.deny_groups.is_empty()
            && self.consumers.is_empty()
            && self.subjects.is_empty()
            && self.claims.is_empty()
    }

    /// Why `identity` is not allowed, if it is not.
    fn refusal(&self, identity: &Identity) -> Option<String> {
        if let Some(missing) = self.scopes.iter().find(|s| !identity.scopes.contains(s)) {
            return Some(format!("scope `{missing}` is required"));
        }
        if !self.groups.is_empty() && !identity.groups.iter().any(|g| self.groups.contains(g)) {
            return Some("membership of an allowed group is required".into());
        }
        if identity.groups.iter().any(|g| self.deny_groups.contains(g)) {
            return Some("a group of this identity is denied".into());
        }
        let listed = |allowed: &[String], value: &Option<String>| {
            allowed.is_empty() || value.as_ref().is_some_and(|v| allowed.contains(v))
        };
        if !listed(&self.consumers, &identity.consumer) {
            return Some("this consumer is not allowed".into());
        }
        if !listed(&self.subjects, &identity.subject) {
            return Some("this subject is not allowed".into());
        }
        for (name, accepted) in &self.claims {
            let claim = identity
                .claims
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, json)| serde_json::from_str(json).ok());
            if !claim.is_some_and(|c| accepted.accepts(&c)) {
                return Some(format!("claim `{name}` does not have an allowed value"));
            }
        }
        None
    }
}

/// The plugin.
#[derive(Debug)]
pub struct Authz;

impl Plugin for Authz {
    type Config = Config;

    fn check(config: &Config) -> Result<Phases, String> {
        if config.is_empty() {
            return Err(
                "no requirement is set: give `scopes`, `groups`, `deny_groups`, `consumers`, `subjects` or `claims`"
                    .into(),
            );
        }
        if let Some(g) = config
            .groups
            .iter()
            .find(|g| config.deny_groups.contains(g))
        {
            return Err(format!("group `{g}` is both allowed and denied"));
        }
        Ok(Phases::ON_REQUEST)
    }

    fn on_request(config: &Config, request: &mut Request<'_>) -> portcullis_sdk::Result<Action> {
        let why = match request.identity() {
            None => Some("this route needs a verified identity".to_owned()),
            Some(identity) => config.refusal(&identity),
        };
        Ok(match why {
            None => Action::Continue,
            Some(why) => Action::Respond(Reply::problem(
                403,
                "forbidden",
                &format!("This request is not allowed: {why}."),
                &request.request_id(),
            )),
        })
    }
}

export_plugin!(Authz);
