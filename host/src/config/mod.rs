//! Reading the one TOML file that configures the gateway.
//!
//! [`load`] reads and parses; [`crate::runtime::Runtime::build`] then checks everything
//! semantic while building the live structures, so `portcullis validate` and `portcullis
//! run` perform exactly the same checks.

mod diagnostic;
mod model;

use std::path::{Path, PathBuf};

pub use diagnostic::{ConfigError, Diagnostic, Diagnostics};
pub use model::*;

// Each section's types live with the stage they configure; these names keep the schema
// readable from one place.
pub use crate::listener::config::{
    CertificateConfig, HstsConfig, ListenerConfig, ListenerLimits, ListenerTlsConfig, PathsConfig,
};
pub use crate::plugin::config::{
    BudgetsConfig, FailureConfig, GrantsConfig, KeySetsConfig, PipelineConfig, PluginEntryConfig,
    PluginsConfig, ReuseConfig,
};
pub use crate::policy::config::{CorsConfig, IpPolicyConfig, RateLimitConfig};
pub use crate::router::config::{
    PathMatchConfig, RewriteConfig, RouteConfig, RouteLimits, StaticResponseConfig,
    ValueMatchConfig,
};
pub use crate::upstream::config::{Balance, UpstreamConfig, UpstreamTlsConfig};

/// A parsed config together with its source, kept for positioning later errors.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: std::path::PathBuf,
    pub source: String,
    pub config: Config,
}

impl ConfigFile {
    pub fn diagnostics(&self) -> Diagnostics<'_> {
        Diagnostics::new(&self.path, &self.source)
    }
}

/// Reads and parses `path`; syntax and shape errors carry file:line:column.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::whole_file(
            path,
            format!("cannot read the config file: {e}"),
            Some("check the path given to --config"),
        )
    })?;
    parse(path, source)
}

/// Parses config text that was read from `path`.
pub fn parse(path: &Path, source: String) -> Result<ConfigFile, ConfigError> {
    match toml::from_str::<Config>(&source) {
        Ok(config) => {
            let file = ConfigFile {
                path: path.to_path_buf(),
                source,
                config,
            };
            if *file.config.version.get_ref() != 1 {
                let mut d = file.diagnostics();
                d.error(
                    file.config.version.span(),
                    format!(
                        "unsupported config version {}",
                        file.config.version.get_ref()
                    ),
                    Some("this Portcullis reads `version = 1`"),
                );
                return Err(d.into_error());
            }
            Ok(file)
        }
        Err(e) => {
            let mut d = Diagnostics::new(path, &source);
            let message = e.message().trim().to_owned();
            let hint = hint_for(&message);
            d.error(e.span().unwrap_or(0..0), message, hint);
            Err(d.into_error())
        }
    }
}

/// A short "what to do" for the common serde/TOML messages.
fn hint_for(message: &str) -> Option<&'static str> {
    if message.starts_with("unknown field") {
        Some("remove the key or fix its spelling; the keys allowed here are listed above")
    } else if message.starts_with("invalid type") {
        Some("change the value to the expected type")
    } else if message.starts_with("missing field") {
        Some("add the required key to this table")
    } else if message.starts_with("unknown variant") {
        Some("use one of the listed values")
    } else if message.contains("invalid value") {
        Some("check the value's range or format")
    } else if message.contains("duration") || message.contains("unit") {
        Some("durations look like \"500ms\", \"10s\", \"5m\"")
    } else {
        Some("see the configuration reference in README.md")
    }
}

/// `p` as written in the config: relative to the config file's folder.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        // Absolute, so a config given as `gw.toml` (whose folder is the empty path) still
        // names places that do not move with the working folder.
        let joined = base.join(p);
        std::path::absolute(&joined).unwrap_or(joined)
    }
}
