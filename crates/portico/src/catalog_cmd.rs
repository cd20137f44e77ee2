//! `portico providers|models|keys|configs|guardrails ...`: the catalog of a running
//! instance, through its admin API (docs/cli.md).
//!
//! Lists print one aligned line per item (`--json` prints the API's JSON instead); changes
//! print what changed. A new key's secret is printed once, on stdout, like `portico serve`
//! prints generated keys.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::Fatal;
use crate::admin_client::{AdminArgs, AdminClient, segment};

/// `portico configs ...`
#[derive(Debug, clap::Args)]
pub struct ConfigsArgs {
    #[command(subcommand)]
    action: ConfigsAction,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigsAction {
    /// List the routing configs.
    List(ListArgs),
    /// Print one config's JSON.
    Get {
        /// The config id.
        id: String,
    },
    /// Add a config (Portkey's config JSON; validated, errors name the field path).
    Add {
        /// The config id keys and `x-portkey-config` name it by.
        id: String,
        #[command(flatten)]
        source: JsonSource,
    },
    /// Replace a config's JSON.
    Update {
        /// The config id.
        id: String,
        #[command(flatten)]
        source: JsonSource,
    },
    /// Remove a config (refused while a key uses it).
    Remove {
        /// The config id.
        id: String,
    },
}

/// `portico guardrails ...`
#[derive(Debug, clap::Args)]
pub struct GuardrailsArgs {
    #[command(subcommand)]
    action: GuardrailsAction,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Subcommand)]
enum GuardrailsAction {
    /// List the named guardrails (the catalog file's and the admin API's).
    List(ListArgs),
    /// Print one guardrail's JSON.
    Get {
        /// The guardrail id.
        id: String,
    },
    /// Add a named guardrail (Portkey's guardrail JSON: `checks`, `deny`; compiled, errors
    /// name the field path).
    Add {
        /// The id routing configs name it by in `input_guardrails` / `output_guardrails`.
        id: String,
        #[command(flatten)]
        source: JsonSource,
    },
    /// Replace a guardrail's JSON.
    #[command(visible_alias = "update")]
    Replace {
        /// The guardrail id.
        id: String,
        #[command(flatten)]
        source: JsonSource,
    },
    /// Remove a guardrail (configs that name it then answer 400 until they change).
    Remove {
        /// The guardrail id.
        id: String,
    },
}

/// `portico keys ...`
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// List the gateway keys (secrets are never shown, only hints).
    List(ListArgs),
    /// Create a key; its secret is printed once.
    Add {
        /// A unique name.
        name: String,
        /// `service`, `user` or `gateway` (a `portico gateway`'s token to this control plane).
        #[arg(long = "type", default_value = "service", value_name = "TYPE")]
        key_type: String,
        /// The person of a user key.
        #[arg(long)]
        user: Option<String>,
        /// A routing config to attach (its id).
        #[arg(long)]
        config: Option<String>,
        /// `@slug` or `@slug/model` the key may use (repeatable; none: all).
        #[arg(long = "allow", value_name = "PATTERN")]
        allowed_models: Vec<String>,
        /// Do not store this key's request and response payloads in the request log.
        #[arg(long)]
        no_payloads: bool,
        /// When the key stops working, RFC 3339 (`2027-01-31T00:00:00Z`); default: never.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Attach a routing config to a key, or detach it with `--none`.
    SetConfig {
        /// The key's name or id.
        key: String,
        /// The config id.
        #[arg(required_unless_present = "none")]
        config: Option<String>,
        /// Detach the key's config.
        #[arg(long, conflicts_with = "config")]
        none: bool,
    },
    /// Revoke a key (it stays listed, for its logs).
    Revoke {
        /// The key's name or id.
        key: String,
    },
    /// Give a key a new secret, printed once; the old one stops working at once. The key
    /// keeps its id, settings and spend.
    Rotate {
        /// The key's name or id.
        key: String,
    },
    /// Set when a key stops working (RFC 3339), or with `--never` that it does not expire.
    SetExpiry {
        /// The key's name or id.
        key: String,
        /// The time, like 2027-01-31T00:00:00Z.
        #[arg(required_unless_present = "never", value_name = "TIME")]
        time: Option<String>,
        /// The key does not expire.
        #[arg(long, conflicts_with = "time")]
        never: bool,
    },
}

/// `portico providers ...`
#[derive(Debug, clap::Args)]
pub struct ProvidersArgs {
    #[command(subcommand)]
    action: ProvidersAction,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ProvidersAction {
    /// List the providers (API keys are never shown).
    List(ListArgs),
    /// Add a provider: the catalog file's provider object, as JSON.
    Add {
        #[command(flatten)]
        source: JsonSource,
    },
    /// Remove a provider.
    Remove {
        /// The provider's slug (with or without `@`).
        slug: String,
    },
}

/// `portico models ...`
#[derive(Debug, clap::Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    action: ModelsAction,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ModelsAction {
    /// List every `@slug/model` of the catalog with its price per million tokens.
    List(ListArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// A JSON document given inline or in a file.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct JsonSource {
    /// The JSON itself.
    #[arg(long)]
    json: Option<String>,
    /// A file holding the JSON (`-` reads stdin).
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<PathBuf>,
}

impl JsonSource {
    fn read(&self) -> Result<Value, Fatal> {
        let (text, from) = match (&self.json, &self.file) {
            (Some(text), _) => (text.clone(), "--json".to_owned()),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| Fatal::other(format!("cannot read stdin: {e}")))?;
                (text, "stdin".to_owned())
            }
            (None, Some(path)) => (
                std::fs::read_to_string(path)
                    .map_err(|e| Fatal::usage(format!("cannot read {}: {e}", path.display())))?,
                path.display().to_string(),
            ),
            (None, None) => return Err(Fatal::usage("give --json or --file")),
        };
        serde_json::from_str(&text)
            .map_err(|e| Fatal::usage(format!("{from} is not valid JSON: {e}")))
    }
}

/// Runs `portico configs ...`.
pub(crate) async fn configs(args: ConfigsArgs) -> Result<(), Fatal> {
    let api = AdminClient::new(&args.admin)?;
    match args.action {
        ConfigsAction::List(list) => {
            let answer = api.get("/configs").await?;
            print_list(&answer, list.json, &["id", "source", "updated_at"]);
        }
        ConfigsAction::Get { id } => {
            let answer = api.get(&format!("/configs/{}", segment(&id))).await?;
            print_json(&answer["config"]);
        }
        ConfigsAction::Add { id, source } => {
            let config = source.read()?;
            api.post("/configs", &json!({"id": id, "config": config}))
                .await?;
            print_line(&format!("added config {id}"));
        }
        ConfigsAction::Update { id, source } => {
            let config = source.read()?;
            api.put(
                &format!("/configs/{}", segment(&id)),
                &json!({"config": config}),
            )
            .await?;
            print_line(&format!("updated config {id}"));
        }
        ConfigsAction::Remove { id } => {
            api.delete(&format!("/configs/{}", segment(&id))).await?;
            print_line(&format!("removed config {id}"));
        }
    }
    Ok(())
}

/// Runs `portico guardrails ...`.
pub(crate) async fn guardrails(args: GuardrailsArgs) -> Result<(), Fatal> {
    let api = AdminClient::new(&args.admin)?;
    match args.action {
        GuardrailsAction::List(list) => {
            let mut answer = api.get("/guardrails").await?;
            if !list.json
                && let Some(items) = answer["data"].as_array_mut()
            {
                for item in items {
                    let checks = check_ids(&item["guardrail"]);
                    let deny = item["guardrail"]["deny"].as_bool().unwrap_or(false);
                    item["checks"] = json!(checks);
                    item["deny"] = json!(deny);
                }
            }
            print_list(
                &answer,
                list.json,
                &["id", "checks", "deny", "source", "updated_at"],
            );
        }
        GuardrailsAction::Get { id } => {
            let answer = api.get(&format!("/guardrails/{}", segment(&id))).await?;
            print_json(&answer["guardrail"]);
        }
        GuardrailsAction::Add { id, source } => {
            let guardrail = guardrail_json(&id, &source)?;
            api.post("/guardrails", &json!({"id": id, "guardrail": guardrail}))
                .await?;
            print_line(&format!("added guardrail {id}"));
        }
        GuardrailsAction::Replace { id, source } => {
            let guardrail = guardrail_json(&id, &source)?;
            api.put(
                &format!("/guardrails/{}", segment(&id)),
                &json!({"guardrail": guardrail}),
            )
            .await?;
            print_line(&format!("replaced guardrail {id}"));
        }
        GuardrailsAction::Remove { id } => {
            api.delete(&format!("/guardrails/{}", segment(&id))).await?;
            print_line(&format!("removed guardrail {id}"));
        }
    }
    Ok(())
}

/// The guardrail JSON of `source`; an `id` inside it (as in a catalog file's entry) must be
/// `id`, since the API would otherwise store it under `id` without a word.
fn guardrail_json(id: &str, source: &JsonSource) -> Result<Value, Fatal> {
    let guardrail = source.read()?;
    match guardrail.get("id") {
        Some(Value::String(given)) if given != id => Err(Fatal::usage(format!(
            "the guardrail JSON's id is `{given}`, but the command names `{id}`; make them \
             the same, or leave `id` out of the JSON"
        ))),
        _ => Ok(guardrail),
    }
}

/// The full ids of the checks a guardrail runs, read as the gateway reads it (either of
/// Portkey's shapes, `wordCount` as `default.wordCount`, disabled checks left out); the ids
/// in its `checks` list if this build cannot read it (a newer instance's check).
fn check_ids(guardrail: &Value) -> Vec<String> {
    match portico_guardrails::Guardrail::parse(guardrail, "") {
        Ok(parsed) => parsed.checks.into_iter().map(|c| c.id).collect(),
        Err(_) => guardrail["checks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect(),
    }
}

/// Runs `portico keys ...`.
pub(crate) async fn keys(args: KeysArgs) -> Result<(), Fatal> {
    let api = AdminClient::new(&args.admin)?;
    match args.action {
        KeysAction::List(list) => {
            let answer = api.get("/keys").await?;
            print_list(
                &answer,
                list.json,
                &[
                    "name",
                    "type",
                    "user",
                    "hint",
                    "config",
                    "expires_at",
                    "revoked_at",
                ],
            );
        }
        KeysAction::Add {
            name,
            key_type,
            user,
            config,
            allowed_models,
            no_payloads,
            expires_at,
        } => {
            let mut body = json!({"name": name, "type": key_type, "log_payloads": !no_payloads});
            if let Some(expires_at) = expires_at {
                body["expires_at"] = json!(expires_at);
            }
            if let Some(user) = user {
                body["user"] = json!(user);
            }
            if let Some(config) = config {
                body["config"] = json!(config);
            }
            if !allowed_models.is_empty() {
                body["allowed_models"] = json!(allowed_models);
            }
            let answer = api.post("/keys", &body).await?;
            let secret = answer["secret"].as_str().ok_or_else(|| {
                Fatal::other("the key was created, but the answer carried no secret")
            })?;
            print_line(&format!(
                "portico: key {name} (shown once, store it now): {secret}"
            ));
        }
        KeysAction::SetConfig { key, config, none } => {
            let value = if none { Value::Null } else { json!(config) };
            api.patch(
                &format!("/keys/{}", segment(&key)),
                &json!({"config": value}),
            )
            .await?;
            print_line(&match config {
                Some(config) if !none => format!("key {key} now uses config {config}"),
                _ => format!("key {key} has no config now"),
            });
        }
        KeysAction::Revoke { key } => {
            api.delete(&format!("/keys/{}", segment(&key))).await?;
            print_line(&format!("revoked key {key}"));
        }
        KeysAction::Rotate { key } => {
            let answer = api
                .post(&format!("/keys/{}/rotate", segment(&key)), &json!({}))
                .await?;
            let secret = answer["secret"].as_str().ok_or_else(|| {
                Fatal::other("the key was rotated, but the answer carried no secret")
            })?;
            let name = answer["name"].as_str().unwrap_or(&key);
            print_line(&format!(
                "portico: key {name} rotated; its old secret no longer works. New secret (shown once, store it now): {secret}"
            ));
        }
        KeysAction::SetExpiry { key, time, never } => {
            let value = if never { Value::Null } else { json!(time) };
            let answer = api
                .patch(
                    &format!("/keys/{}", segment(&key)),
                    &json!({"expires_at": value}),
                )
                .await?;
            print_line(&match answer["expires_at"].as_str() {
                Some(at) => format!("key {key} expires at {at}"),
                None => format!("key {key} does not expire"),
            });
        }
    }
    Ok(())
}

/// Runs `portico providers ...`.
pub(crate) async fn providers(args: ProvidersArgs) -> Result<(), Fatal> {
    let api = AdminClient::new(&args.admin)?;
    match args.action {
        ProvidersAction::List(list) => {
            let answer = api.get("/providers").await?;
            print_list(
                &answer,
                list.json,
                &["slug", "kind", "base_url", "api_key_set", "source"],
            );
        }
        ProvidersAction::Add { source } => {
            let provider = source.read()?;
            let answer = api.post("/providers", &provider).await?;
            print_line(&format!(
                "added provider @{}",
                answer["slug"].as_str().unwrap_or("?")
            ));
        }
        ProvidersAction::Remove { slug } => {
            let slug = slug.trim_start_matches('@');
            api.delete(&format!("/providers/{}", segment(slug))).await?;
            print_line(&format!("removed provider @{slug}"));
        }
    }
    Ok(())
}

/// Runs `portico models ...`.
pub(crate) async fn models(args: ModelsArgs) -> Result<(), Fatal> {
    let api = AdminClient::new(&args.admin)?;
    match args.action {
        ModelsAction::List(list) => {
            let mut answer = api.get("/models").await?;
            if let Some(items) = answer["data"].as_array_mut() {
                for item in items {
                    let input = item["pricing"]["input_per_mtok"].as_f64();
                    let output = item["pricing"]["output_per_mtok"].as_f64();
                    item["input_per_mtok"] = json!(input);
                    item["output_per_mtok"] = json!(output);
                }
            }
            print_list(
                &answer,
                list.json,
                &["id", "name", "input_per_mtok", "output_per_mtok"],
            );
        }
    }
    Ok(())
}

/// Prints `answer["data"]` as aligned columns, or the whole answer as JSON.
fn print_list(answer: &Value, json: bool, columns: &[&str]) {
    if json {
        print_json(answer);
        return;
    }
    let empty = Vec::new();
    let items = answer["data"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| columns.iter().map(|c| cell(&item[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    print_line(&line(columns.iter().map(|c| c.to_uppercase()).collect()));
    for row in rows {
        print_line(&line(row));
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn print_json(value: &Value) {
    print_line(&serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

#[expect(clippy::print_stdout, reason = "the CLI's output")]
fn print_line(line: &str) {
    println!("{line}");
}
