//! The price table: the built-in data file, parsed once, and the lookup by kind and model.

use std::collections::HashMap;
use std::sync::LazyLock;

use portico_core::ProviderKind;
use serde::Deserialize;

use crate::ModelPrice;
use crate::normalize::{
    BedrockScope, bedrock_model, last_segment, lowercase_into, strip_date, strip_gemini_version,
};

/// The data file compiled into the binary.
const BUILTIN_JSON: &str = include_str!("../prices.json");

/// Model names longer than this are lower-cased into a heap string instead of the stack.
const STACK_NAME_LEN: usize = 256;

/// The providers whose list prices the data file holds, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    Mistral,
    Groq,
    DeepSeek,
}

impl Family {
    const ALL: [Family; 7] = [
        Family::OpenAi,
        Family::Anthropic,
        Family::Gemini,
        Family::Bedrock,
        Family::Mistral,
        Family::Groq,
        Family::DeepSeek,
    ];

    /// The key of this family's list in the data file (the kind's catalog name).
    fn key(self) -> &'static str {
        self.kind().as_str()
    }

    /// The provider kind whose prices this family holds.
    fn kind(self) -> ProviderKind {
        match self {
            Family::OpenAi => ProviderKind::OpenAi,
            Family::Anthropic => ProviderKind::Anthropic,
            Family::Gemini => ProviderKind::Gemini,
            Family::Bedrock => ProviderKind::Bedrock,
            Family::Mistral => ProviderKind::Mistral,
            Family::Groq => ProviderKind::Groq,
            Family::DeepSeek => ProviderKind::DeepSeek,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a provider kind is priced.
enum Pricing {
    /// From one family's list.
    Listed(Family),
    /// Nothing is charged (a local Ollama server, the simulated `mock` provider).
    Free,
    /// The table cannot know: any server may stand behind the kind.
    Unknown,
}

fn pricing_of(kind: ProviderKind) -> Pricing {
    match kind {
        // Azure OpenAI bills OpenAI's list prices; its "model" is the deployment name, which
        // matches when the deployment is named after the model.
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => Pricing::Listed(Family::OpenAi),
        ProviderKind::Anthropic => Pricing::Listed(Family::Anthropic),
        ProviderKind::Gemini => Pricing::Listed(Family::Gemini),
        ProviderKind::Bedrock => Pricing::Listed(Family::Bedrock),
        ProviderKind::Mistral => Pricing::Listed(Family::Mistral),
        ProviderKind::Groq => Pricing::Listed(Family::Groq),
        ProviderKind::DeepSeek => Pricing::Listed(Family::DeepSeek),
        ProviderKind::Ollama | ProviderKind::Mock => Pricing::Free,
        ProviderKind::OpenAiCompatible | ProviderKind::Together => Pricing::Unknown,
    }
}

/// One priced model of the table.
#[derive(Debug, Clone, Copy)]
struct Entry {
    price: ModelPrice,
    /// Bedrock: the surcharge of geographic and in-region calls over global ones.
    regional_multiplier: f64,
}

/// Why a price data file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    /// The file is not the expected JSON.
    #[error("the price data is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// An entry has a price no provider charges.
    #[error("{provider}/{id}: {problem}")]
    Entry {
        /// The provider list holding the entry.
        provider: String,
        /// The entry's id.
        id: String,
        /// What is wrong.
        problem: String,
    },
}

/// Model prices by provider kind and model name (USD per million tokens).
///
/// [`PriceTable::builtin`] is the table compiled into the binary from `prices.json`; the
/// catalog's per-model `pricing` overrides it (see [`crate::cost_usd`]).
#[derive(Debug, Default)]
pub struct PriceTable {
    tables: [HashMap<Box<str>, Entry>; 7],
    checked: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(rename = "about")]
    _about: String,
    checked: String,
    #[serde(rename = "sources")]
    _sources: HashMap<String, String>,
    providers: HashMap<String, Vec<EntryFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    input_per_mtok: f64,
    output_per_mtok: f64,
    #[serde(default)]
    cache_read_per_mtok: Option<f64>,
    #[serde(default)]
    cache_write_per_mtok: Option<f64>,
    #[serde(default)]
    regional_multiplier: Option<f64>,
}

impl PriceTable {
    /// The table compiled into the binary, parsed on first use.
    ///
    /// The data file is checked by this crate's tests; were it ever unreadable, the table
    /// would be empty (every cost unknown) rather than the process failing.
    pub fn builtin() -> &'static PriceTable {
        static BUILTIN: LazyLock<PriceTable> =
            LazyLock::new(|| match PriceTable::from_json(BUILTIN_JSON) {
                Ok(table) => table,
                Err(err) => {
                    tracing::error!(
                        "the built-in price table is unusable, costs stay unknown: {err}"
                    );
                    PriceTable::default()
                }
            });
        &BUILTIN
    }

    /// Parses and checks a price data file in the format of the built-in `prices.json`.
    ///
    /// Every id and alias must be lower-case and unique within its provider, prices finite,
    /// input above zero and every other price zero or more.
    pub fn from_json(json: &str) -> Result<PriceTable, PriceTableError> {
        let file: PriceFile = serde_json::from_str(json)?;
        let mut table = PriceTable {
            checked: file.checked,
            ..PriceTable::default()
        };
        for (provider, entries) in file.providers {
            let family = Family::ALL
                .into_iter()
                .find(|f| f.key() == provider)
                .ok_or_else(|| PriceTableError::Entry {
                    provider: provider.clone(),
                    id: String::new(),
                    problem: "not a provider with list prices".to_owned(),
                })?;
            let map = &mut table.tables[family.index()];
            for raw in entries {
                let fail = |problem: &str| PriceTableError::Entry {
                    provider: provider.clone(),
                    id: raw.id.clone(),
                    problem: problem.to_owned(),
                };
                let entry = checked_entry(&raw).map_err(|p| fail(&p))?;
                for id in std::iter::once(&raw.id).chain(&raw.aliases) {
                    if *id != id.to_ascii_lowercase() || id.trim() != id || id.is_empty() {
                        return Err(fail(&format!("`{id}` must be a lower-case id")));
                    }
                    if map.insert(id.as_str().into(), entry).is_some() {
                        return Err(fail(&format!("`{id}` is listed twice")));
                    }
                }
            }
        }
        Ok(table)
    }

    /// When the prices were last checked against the providers' pages (`2026-11`).
    pub fn checked(&self) -> &str {
        &self.checked
    }

    /// The price of `model` on a provider of `kind`, or `None` when the table does not know it.
    ///
    /// The name is matched as a user would expect, without allocating: case-insensitively;
    /// a dated snapshot (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) falls back to its
    /// undated name when the snapshot itself is not listed; `-latest` falls back to the bare
    /// name; Gemini's `models/` or path prefix and `-001` suffix are dropped; Bedrock ids lose
    /// their ARN path, inference-profile prefix (`us.`, `eu.`, `global.`, ...) and version
    /// suffix (`-v1:0`), and Claude's regional surcharge applies unless the profile is
    /// `global.`. Azure OpenAI uses OpenAI's prices, matching the deployment name as a model
    /// name. Ollama and `mock` cost nothing; `openai-compatible` and `together` are unknown.
    pub fn lookup(&self, kind: ProviderKind, model: &str) -> Option<ModelPrice> {
        let family = match pricing_of(kind) {
            Pricing::Listed(family) => family,
            Pricing::Free => return Some(ModelPrice::FREE),
            Pricing::Unknown => return None,
        };
        let mut buf = [0u8; STACK_NAME_LEN];
        let heap;
        let lower = match lowercase_into(model.trim(), &mut buf) {
            Some(lower) => lower,
            None => {
                heap = model.trim().to_ascii_lowercase();
                heap.as_str()
            }
        };
        self.lookup_normalized(family, lower)
    }

    fn lookup_normalized(&self, family: Family, name: &str) -> Option<ModelPrice> {
        let map = &self.tables[family.index()];
        match family {
            Family::Bedrock => {
                let (id, scope) = bedrock_model(name);
                let entry = find(map, id)?;
                Some(match scope {
                    BedrockScope::Global => entry.price,
                    BedrockScope::Regional => entry.price.scaled(entry.regional_multiplier),
                })
            }
            Family::Gemini => {
                let id = last_segment(name);
                find(map, id)
                    .or_else(|| strip_gemini_version(id).and_then(|id| find(map, id)))
                    .map(|e| e.price)
            }
            // Groq's own ids carry an owner (`openai/gpt-oss-120b`); elsewhere a path-like
            // prefix (`openai/gpt-4o` from a router) is dropped when the whole name is unknown.
            Family::OpenAi
            | Family::Anthropic
            | Family::Mistral
            | Family::DeepSeek
            | Family::Groq => {
                let bare = last_segment(name);
                find(map, name)
                    .or_else(|| (bare != name).then(|| find(map, bare)).flatten())
                    .map(|e| e.price)
            }
        }
    }

    /// Every entry as `(kind, id, price)`, aliases included; Bedrock at its global price.
    pub fn entries(&self) -> impl Iterator<Item = (ProviderKind, &str, ModelPrice)> + '_ {
        Family::ALL.into_iter().flat_map(move |family| {
            self.tables[family.index()]
                .iter()
                .map(move |(id, entry)| (family.kind(), &**id, entry.price))
        })
    }
}

/// The entry for `name`: itself, else without its snapshot date, else without `-latest`.
fn find<'m>(map: &'m HashMap<Box<str>, Entry>, name: &str) -> Option<&'m Entry> {
    map.get(name)
        .or_else(|| strip_date(name).and_then(|n| map.get(n)))
        .or_else(|| name.strip_suffix("-latest").and_then(|n| map.get(n)))
}

fn checked_entry(raw: &EntryFile) -> Result<Entry, String> {
    let valid = |p: f64| p.is_finite() && p >= 0.0;
    if !(raw.input_per_mtok.is_finite() && raw.input_per_mtok > 0.0) {
        return Err("input_per_mtok must be above zero".to_owned());
    }
    let others = [
        Some(raw.output_per_mtok),
        raw.cache_read_per_mtok,
        raw.cache_write_per_mtok,
    ];
    if !others.into_iter().flatten().all(valid) {
        return Err("prices must be finite and zero or more".to_owned());
    }
    let regional_multiplier = raw.regional_multiplier.unwrap_or(1.0);
    if !(regional_multiplier.is_finite() && (1.0..=2.0).contains(&regional_multiplier)) {
        return Err("regional_multiplier must be between 1 and 2".to_owned());
    }
    Ok(Entry {
        price: ModelPrice {
            input_per_mtok: raw.input_per_mtok,
            output_per_mtok: raw.output_per_mtok,
            cache_read_per_mtok: raw.cache_read_per_mtok,
            cache_write_per_mtok: raw.cache_write_per_mtok,
        },
        regional_multiplier,
    })
}
