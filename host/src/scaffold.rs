//! `portcullis plugin new NAME --lang rust|python|js`: a plugin project that builds and
//! passes its own test as made, from the templates in `sdk/templates/`. Python and
//! JavaScript projects carry their own copy of the SDK module and of `wit/plugin.wit` (what
//! this gateway was built with), so they build wherever they are made; a Rust project
//! depends on the SDK crate of the source tree this binary was built from.

use std::path::{Path, PathBuf};

/// The languages a project can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

const WIT: &str = include_str!("../../wit/plugin.wit");

/// Each language's files: path in the project, contents (with `{{name}}`-style holes), and
/// whether it is a script to make executable.
fn files(lang: Lang) -> &'static [(&'static str, &'static str, bool)] {
    macro_rules! t {
        ($path:literal) => {
            include_str!(concat!("../../sdk/templates/", $path))
        };
    }
    match lang {
        Lang::Python => &[
            ("app.py", t!("python/app.py"), false),
            ("build.sh", t!("python/build.sh"), true),
            ("test.sh", t!("test.sh"), true),
            ("README.md", t!("python/README.md"), false),
            (".gitignore", t!("python/gitignore"), false),
            ("tests/allowed.http", t!("python/tests/allowed.http"), false),
            ("tests/refused.http", t!("python/tests/refused.http"), false),
            (
                "portcullis/__init__.py",
                include_str!("../../sdk/python/portcullis/__init__.py"),
                false,
            ),
            ("wit/plugin.wit", WIT, false),
        ],
        Lang::Js => &[
            ("plugin.js", t!("js/plugin.js"), false),
            ("package.json", t!("js/package.json"), false),
            ("build.sh", t!("js/build.sh"), true),
            ("test.sh", t!("test.sh"), true),
            ("README.md", t!("js/README.md"), false),
            (".gitignore", t!("js/gitignore"), false),
            ("tests/allowed.http", t!("js/tests/allowed.http"), false),
            ("tests/refused.http", t!("js/tests/refused.http"), false),
            (
                "portcullis.js",
                include_str!("../../sdk/js/portcullis.js"),
                false,
            ),
            ("wit/plugin.wit", WIT, false),
        ],
        Lang::Rust => &[
            ("Cargo.toml", t!("rust/Cargo.toml"), false),
            // The gateway's own lock: the SDK's dependencies resolve to the versions it was
            // tested with (cargo drops the entries the plugin does not use).
            ("Cargo.lock", include_str!("../../Cargo.lock"), false),
            ("src/lib.rs", t!("rust/src/lib.rs"), false),
            ("README.md", t!("rust/README.md"), false),
            (".gitignore", t!("rust/gitignore"), false),
        ],
    }
}

/// Makes the project `name` in `parent`, and returns its folder. Refuses a name that is not
/// lowercase letters, digits and dashes (it names the component, a header and a crate),
/// and a folder that already exists (nothing is overwritten).
pub fn new_project(name: &str, lang: Lang, parent: &Path) -> Result<PathBuf, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(format!(
            "{name:?} cannot name a plugin: use lowercase letters, digits and dashes, starting \
             with a letter (such as `require-tenant`)"
        ));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(format!(
            "{} already exists: choose another name or folder",
            dir.display()
        ));
    }
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let sdk = sdk.canonicalize().unwrap_or(sdk);
    let crate_name = name.replace('-', "_");
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    for (path, template, script) in files(lang) {
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string());
        let to = dir.join(path);
        if let Some(folder) = to.parent() {
            std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        }
        std::fs::write(&to, text).map_err(|e| format!("{}: {e}", to.display()))?;
        if *script {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    Ok(dir)
}

/// What to do next, printed after the project is made.
pub fn next_steps(dir: &Path, lang: Lang) -> String {
    let dir = dir.display();
    match lang {
        Lang::Python | Lang::Js => format!(
            "made {dir}\n  cd {dir} && ./test.sh    # builds the plugin and runs its tests in the sandbox\n  (README.md says how to reference it from a route)\n"
        ),
        Lang::Rust => format!(
            "made {dir}\n  cd {dir} && cargo test && cargo build --release --target wasm32-wasip2\n  (README.md says how to reference it from a route)\n"
        ),
    }
}
