//! The console's languages: English (the source text) and Korean.
//!
//! Every text the console shows is written in English in the code and passed through [`t`] (or [`tf`]
//! when it has `{placeholders}`). The English text is the key: the Korean catalog (`app/locales/ko/*.json`,
//! one flat `"English": "한국어"` object per area of the console) maps it to its translation. A missing
//! entry falls back to the English text, and a test (`catalog_covers_every_text`) fails when any `t`/`tf`
//! call in the code has no Korean entry, or an entry's placeholders differ from the English ones.
//!
//! Texts that come from the server (error messages, alert messages, reasons in HA timelines) are
//! English sentences that often carry names and figures. [`server_text`] translates them through the
//! templates in `ko/server.json`, whose `{placeholders}` match any text and are carried over.
//!
//! Switching the language re-renders the whole console (see `App`): the choice is rare, and the texts
//! then need not be reactive one by one. The choice is kept in the browser (`localStorage`) and, once
//! signed in, on the person's account, so it follows them to another browser.

use leptos::prelude::*;
use leptos::wasm_split::SplitLoaderError;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The languages of the console.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    /// The BCP 47 tag (`<html lang>`, the account setting, `localStorage`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language's own name, as a language menu shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ko => "한국어",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }
}

thread_local! {
    /// The language texts are translated into right now (the console runs on one thread).
    static CURRENT: Cell<Lang> = const { Cell::new(Lang::En) };
}

/// The language in force.
pub fn current() -> Lang {
    CURRENT.with(Cell::get)
}

/// Runs `body` with `lang` in force (host-side tests of translated output).
#[cfg(test)]
pub(crate) fn with_lang<R>(lang: Lang, body: impl FnOnce() -> R) -> R {
    let before = CURRENT.with(|current| current.replace(lang));
    let result = body();
    CURRENT.with(|current| current.set(before));
    result
}

/// The Korean catalog files. A text may appear in several (each area keeps its own), but must be
/// translated the same way in all of them.
const KO_FILES: &[(&str, &str)] = &[
    ("common", include_str!("../locales/ko/common.json")),
    ("dialog", include_str!("../locales/ko/dialog.json")),
    ("inventory", include_str!("../locales/ko/inventory.json")),
    ("vms", include_str!("../locales/ko/vms.json")),
    ("oobm", include_str!("../locales/ko/oobm.json")),
    ("ha", include_str!("../locales/ko/ha.json")),
    ("admin", include_str!("../locales/ko/admin.json")),
    ("wizard", include_str!("../locales/ko/wizard.json")),
    ("wizard_test", include_str!("../locales/ko/wizard_test.json")),
    ("ha_settings", include_str!("../locales/ko/ha_settings.json")),
];

/// Server sentences: templates with `{placeholders}` (see [`server_text`]).
const KO_SERVER: &str = include_str!("../locales/ko/server.json");

fn parse(name: &str, text: &str) -> Vec<(&'static str, &'static str)> {
    let map: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
        Ok(map) => map,
        Err(error) => {
            // The catalog test catches this before a build ships; a broken file only loses its texts.
            leptos::logging::warn!("locales/ko/{name}.json is not a JSON object of strings: {error}");
            return Vec::new();
        }
    };
    map.into_iter()
        .filter_map(|(english, korean)| match korean {
            serde_json::Value::String(korean) if !korean.is_empty() => {
                Some((&*Box::leak(english.into_boxed_str()), &*Box::leak(korean.into_boxed_str())))
            }
            _ => None,
        })
        .collect()
}

/// The Korean texts, parsed.
struct Korean {
    texts: HashMap<&'static str, &'static str>,
    server: (HashMap<&'static str, &'static str>, Vec<Template>),
}

static KOREAN: OnceLock<Korean> = OnceLock::new();

/// The catalog files (name, JSON) and the server templates (JSON).
type KoreanSources = (&'static [(&'static str, &'static str)], &'static str);

/// The Korean catalog files travel in a wasm module of their own (`korean`), downloaded only when
/// Korean is chosen: together they are about a tenth of the console's code.
#[leptos::wasm_split::wasm_split(korean, wasm_split_path = ::leptos::wasm_split, fallible)]
fn korean_sources() -> Result<KoreanSources, SplitLoaderError> {
    Ok((KO_FILES, KO_SERVER))
}

/// Downloads and parses the Korean texts (once; a failure is retried on the next call).
pub async fn load_korean() -> Result<(), SplitLoaderError> {
    if KOREAN.get().is_none() {
        let (files, server) = korean_sources().await?;
        let _ = KOREAN.set(Korean::parse(files, server));
    }
    Ok(())
}

/// The Korean texts once loaded. Host builds (the tests) read the files directly.
fn korean() -> Option<&'static Korean> {
    #[cfg(not(target_family = "wasm"))]
    return Some(KOREAN.get_or_init(|| Korean::parse(KO_FILES, KO_SERVER)));
    #[cfg(target_family = "wasm")]
    KOREAN.get()
}

static NO_TEXTS: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();

/// The console's Korean texts (empty until loaded).
fn ko_catalog() -> &'static HashMap<&'static str, &'static str> {
    match korean() {
        Some(korean) => &korean.texts,
        None => NO_TEXTS.get_or_init(HashMap::new),
    }
}

/// One server template split into literal text and placeholders.
struct Template {
    parts: Vec<Part>,
    korean: &'static str,
}

enum Part {
    Text(&'static str),
    Hole(&'static str),
}

fn split_template(template: &'static str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| open + close) else { break };
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        parts.push(Part::Hole(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    parts
}

impl Korean {
    fn parse(files: &[(&str, &'static str)], server: &'static str) -> Korean {
        let texts = files.iter().flat_map(|(name, text)| parse(name, text)).collect();
        let mut exact = HashMap::new();
        let mut templates = Vec::new();
        for (english, korean) in parse("server", server) {
            if english.contains('{') {
                templates.push(Template { parts: split_template(english), korean });
            } else {
                exact.insert(english, korean);
            }
        }
        // Longer literal text first: the more specific template wins.
        templates.sort_by_key(|template| {
            std::cmp::Reverse(
                template
                    .parts
                    .iter()
                    .map(|part| if let Part::Text(text) = part { text.len() } else { 0 })
                    .sum::<usize>(),
            )
        });
        Korean { texts, server: (exact, templates) }
    }
}

/// `text` in the current language. `text` is the English source text and the catalog key.
pub fn t(text: &'static str) -> &'static str {
    match current() {
        Lang::En => text,
        Lang::Ko => ko_catalog().get(text).copied().unwrap_or(text),
    }
}

/// [`t`] with its `{name}` placeholders filled in from `args`.
pub fn tf(text: &'static str, args: &[(&str, &str)]) -> String {
    fill(t(text), args)
}

fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|close| open + close) else { break };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        match args.iter().find(|(key, _)| *key == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Matches `message` against `parts`; the placeholders' texts by name.
fn match_template<'m>(parts: &[Part], message: &'m str) -> Option<Vec<(&'static str, &'m str)>> {
    let mut holes = Vec::new();
    let mut rest = message;
    let mut index = 0;
    while index < parts.len() {
        match parts[index] {
            Part::Text(text) => rest = rest.strip_prefix(text)?,
            Part::Hole(name) => match parts.get(index + 1) {
                None => {
                    if rest.is_empty() {
                        return None;
                    }
                    holes.push((name, rest));
                    rest = "";
                }
                Some(Part::Text(next)) => {
                    let end = rest.find(next).filter(|end| *end > 0)?;
                    holes.push((name, &rest[..end]));
                    rest = &rest[end..];
                }
                // Two placeholders in a row cannot be told apart: such a template never matches.
                Some(Part::Hole(_)) => return None,
            },
        }
        index += 1;
    }
    rest.is_empty().then_some(holes)
}

/// A sentence the server wrote in English (an error, an alert, a reason), in the current language.
/// Sentences the catalog does not know stay in English.
pub fn server_text(message: &str) -> String {
    if current() == Lang::En {
        return message.to_owned();
    }
    let Some(Korean { server: (exact, templates), .. }) = korean() else { return message.to_owned() };
    if let Some(korean) = exact.get(message) {
        return (*korean).to_owned();
    }
    // Several sentences joined by ": " (an error with its cause): translate each part.
    for template in templates {
        if let Some(holes) = match_template(&template.parts, message) {
            let translated: Vec<(&str, String)> =
                holes.into_iter().map(|(name, text)| (name, server_text_part(text))).collect();
            let args: Vec<(&str, &str)> = translated.iter().map(|(name, text)| (*name, text.as_str())).collect();
            return fill(template.korean, &args);
        }
    }
    message.to_owned()
}

/// A placeholder's text: translated when it is itself a known sentence or word, or matches a template
/// of its own (a cause inside a reason).
fn server_text_part(text: &str) -> String {
    let Some(Korean { texts, server: (exact, templates) }) = korean() else { return text.to_owned() };
    if let Some(korean) = exact.get(text).or_else(|| texts.get(text)) {
        return (*korean).to_owned();
    }
    if templates.iter().any(|template| match_template(&template.parts, text).is_some()) {
        return server_text(text);
    }
    text.to_owned()
}

const STORAGE_KEY: &str = "parapet.language";

/// The language context: a signal the whole console re-renders on.
#[derive(Clone, Copy)]
pub struct I18n {
    lang: RwSignal<Lang>,
}

impl I18n {
    /// Sets up the language for this browser ([`initial_language`]).
    pub fn provide() -> I18n {
        // main.rs downloads the Korean texts before the first render; without them (that failed) the
        // console starts in English and the language menu can try again.
        let initial = match initial_language() {
            Lang::Ko if korean().is_none() => Lang::En,
            lang => lang,
        };
        CURRENT.with(|current| current.set(initial));
        set_document_lang(initial);
        let i18n = I18n { lang: RwSignal::new(initial) };
        provide_context(i18n);
        i18n
    }

    pub fn expect() -> I18n {
        expect_context::<I18n>()
    }

    /// The language, tracked: views that read it are rebuilt when it changes.
    pub fn lang(self) -> Lang {
        self.lang.get()
    }

    /// Switches the console to `lang` and remembers it in this browser. (Remembering it on the account
    /// is the caller's part: it knows whether someone is signed in.)
    pub fn set(self, lang: Lang) {
        if let Some(storage) = local_storage() {
            let _ = storage.set_item(STORAGE_KEY, lang.tag());
        }
        self.apply(lang);
    }

    /// Switches to `lang` without storing it (the account's language, on sign-in).
    pub fn apply(self, lang: Lang) {
        if self.lang.get_untracked() == lang {
            return;
        }
        if lang == Lang::Ko && korean().is_none() {
            // The texts arrive in their own module; the console switches once they are here.
            leptos::task::spawn_local(async move {
                match load_korean().await {
                    Ok(()) => self.switch(lang),
                    Err(error) => leptos::logging::warn!("the Korean texts could not be downloaded: {error}"),
                }
            });
            return;
        }
        self.switch(lang);
    }

    fn switch(self, lang: Lang) {
        CURRENT.with(|current| current.set(lang));
        set_document_lang(lang);
        self.lang.set(lang);
    }
}

/// The language this browser starts in: the one chosen here before, else the browser's own if we
/// have it, else English.
pub fn initial_language() -> Lang {
    stored().or_else(browser_language).unwrap_or_default()
}

fn local_storage() -> Option<leptos::web_sys::Storage> {
    leptos::prelude::window().local_storage().ok().flatten()
}

fn stored() -> Option<Lang> {
    local_storage()?.get_item(STORAGE_KEY).ok().flatten().and_then(|tag| Lang::from_tag(&tag))
}

fn browser_language() -> Option<Lang> {
    leptos::prelude::window().navigator().language().and_then(|tag| Lang::from_tag(&tag))
}

/// `<html lang>`: screen readers pick their voice by it.
fn set_document_lang(lang: Lang) {
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("lang", lang.tag());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    fn placeholders(text: &str) -> BTreeSet<String> {
        split_template(Box::leak(text.to_owned().into_boxed_str()))
            .into_iter()
            .filter_map(|part| if let Part::Hole(name) = part { Some(name.to_owned()) } else { None })
            .collect()
    }

    /// Every `.rs` file of the console's sources, with its text.
    fn console_sources() -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    let source = std::fs::read_to_string(&path).unwrap();
                    out.push((path, source));
                }
            }
        }
        let mut out = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        out
    }

    /// The English texts of every `t("…")` and `tf("…"` call in the console (outside this file), each
    /// with its file.
    fn translated_texts() -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, source) in console_sources() {
            if path.ends_with("i18n.rs") {
                continue;
            }
            for opener in ["t(", "tf("] {
                let mut rest = source.as_str();
                while let Some(at) = rest.find(opener) {
                    let before = rest[..at].chars().next_back();
                    rest = &rest[at + opener.len()..];
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue; // `format(…`, `get(…` and the like
                    }
                    // rustfmt may break the line after the parenthesis.
                    let Some(literal) = rest.trim_start().strip_prefix('"') else { continue };
                    rest = literal;
                    let mut text = String::new();
                    let mut chars = rest.chars();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => match chars.next() {
                                Some('n') => text.push('\n'),
                                Some(other) => text.push(other),
                                None => break,
                            },
                            c => text.push(c),
                        }
                    }
                    out.push((path.display().to_string(), text));
                }
            }
        }
        out
    }

    #[test]
    fn catalog_covers_every_text() {
        let texts = translated_texts();
        assert!(texts.len() > 50, "found only {} t()/tf() calls; is the scan broken?", texts.len());
        let catalog = ko_catalog();
        let missing: BTreeSet<String> = texts
            .iter()
            .filter(|(_, text)| !catalog.contains_key(text.as_str()))
            .map(|(file, text)| format!("{file}: {text:?}"))
            .collect();
        assert!(
            missing.is_empty(),
            "{} texts have no Korean entry:\n{}",
            missing.len(),
            missing.into_iter().collect::<Vec<_>>().join("\n")
        );
    }

    /// Texts written straight into views (`>"Text"`) or into text attributes (`title="…"`,
    /// `aria-label="…"`, `placeholder="…"`) bypass translation. Only names and examples may.
    #[test]
    fn no_text_bypasses_translation() {
        const UNTRANSLATED: &[&str] = &[
            "Parapet",
            "web-01",
            "alice",
            "ssd, gpu",
            "smtp.example.com",
            "Parapet <parapet@example.com>",
            "×",
            "HTTPS",
            "HTTP",
        ];
        let mut found = Vec::new();
        for (path, source) in console_sources() {
            // Tests (at the end of a file) may spell texts out.
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            for (number, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                let mut literals = Vec::new();
                let mut rest = line;
                while let Some(at) = rest.find('"') {
                    let before = rest[..at].trim_end();
                    let Some(end) = rest[at + 1..].find('"') else { break };
                    let literal = &rest[at + 1..at + 1 + end];
                    let is_text_node = before.ends_with('>') && !before.ends_with("=>");
                    let is_text_attribute = ["title=", "aria-label=", "placeholder=", "alt="]
                        .iter()
                        .any(|attribute| before.ends_with(attribute));
                    if (is_text_node || is_text_attribute)
                        && literal.chars().any(char::is_alphabetic)
                        && !UNTRANSLATED.contains(&literal)
                    {
                        literals.push(literal.to_owned());
                    }
                    rest = &rest[at + 1 + end + 1..];
                }
                found.extend(
                    literals.into_iter().map(|literal| format!("{}:{}: {literal:?}", path.display(), number + 1)),
                );
            }
        }
        assert!(found.is_empty(), "texts that are not translated (use t/tf):\n{}", found.join("\n"));
    }

    #[test]
    fn catalogs_are_well_formed() {
        let mut seen = std::collections::BTreeMap::new();
        for (name, text) in KO_FILES.iter().chain([("server", KO_SERVER)].iter()) {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).unwrap_or_else(|error| panic!("ko/{name}.json: {error}"));
            for (english, korean) in map {
                let korean = korean.as_str().unwrap_or_else(|| panic!("ko/{name}.json: {english:?} is not a string"));
                assert!(!korean.trim().is_empty(), "ko/{name}.json: {english:?} has an empty translation");
                assert_eq!(
                    placeholders(&english),
                    placeholders(korean),
                    "ko/{name}.json: the placeholders of {english:?} and {korean:?} differ"
                );
                if *name != "server"
                    && let Some((other, earlier)) = seen.get(&english)
                {
                    assert_eq!(earlier, korean, "ko/{name}.json and ko/{other}.json translate {english:?} differently");
                }
                seen.insert(english.clone(), (*name, korean.to_owned()));
            }
        }
    }

    #[test]
    fn server_sentences_in_korean() {
        with_lang(Lang::Ko, || {
            // A template whose placeholder is itself a template.
            assert_eq!(
                server_text("HA restart on this host failed: no network heartbeat for 5012 ms"),
                "이 호스트에서 고가용성 재시작이 실패했습니다: 네트워크 하트비트가 5012 ms 동안 없습니다"
            );
            // Unknown sentences stay as the server wrote them.
            assert_eq!(server_text("something entirely new"), "something entirely new");
        });
        assert_eq!(server_text("OFF failed: timed out"), "OFF failed: timed out");
    }

    #[test]
    fn fill_and_templates() {
        assert_eq!(fill("Power off {host}?", &[("host", "kvm-b1")]), "Power off kvm-b1?");
        assert_eq!(fill("{a} and {missing}", &[("a", "x")]), "x and {missing}");
        let parts = split_template("host {host} has no BMC: {cause}");
        assert_eq!(
            match_template(&parts, "host kvm-a1 has no BMC: timed out"),
            Some(vec![("host", "kvm-a1"), ("cause", "timed out")])
        );
        assert_eq!(match_template(&parts, "host kvm-a1 has a BMC"), None);
        assert_eq!(match_template(&split_template("exact"), "exact"), Some(vec![]));
        assert_eq!(match_template(&split_template("exact"), "exact and more"), None);
        assert_eq!(Lang::from_tag("ko-KR"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("en_US"), Some(Lang::En));
        assert_eq!(Lang::from_tag("fr"), None);
    }
}
