//! `POST /admin/v1/apply`: a catalog file applied to this instance, as `portico apply` sends it.
//!
//! The body is the file as a JSON document, `${VAR}` already replaced by the client (see
//! `portico_config::substitute_to_json`). It is validated by the catalog file's own rules with
//! this process's environment, turned into the store's apply by the engine code a start uses,
//! and applied in one transaction, or with `dry_run=true` in one that is rolled back. So the
//! instance ends up as a restart with the file would leave it (the admin key and the other
//! start-up settings aside), and the plan answered is the apply's own report.
//!
//! What the file owns is its records (source `file`), plus the environment's providers and
//! `@mock` as `auto_providers` says; records created through the admin API are never
//! touched, only counted in the answer.

use axum::Json;
use axum::extract::{Query, State};
use bytes::Bytes;
use portico_config::{Catalog, ConfigError};
use portico_core::{ApiError, ErrorCode, Secret};
use portico_store::{Change, ChangeAction, RecordSource, Store, StoreError};
use serde_json::{Value, json};

use super::{audit, reload, store, store_error};
use crate::AppState;
use crate::error::ErrorResponse;
use crate::routes::admin::Admin;

/// The name messages give the document when the client names no file.
const DEFAULT_ORIGIN: &str = "request body";
/// Longest file name a client may give for messages.
const MAX_ORIGIN_CHARS: usize = 256;

/// The query of `POST /admin/v1/apply`.
struct Params {
    /// Answer the plan, change nothing.
    dry_run: bool,
    /// What messages call the document: the client's file name.
    origin: String,
}

impl Params {
    fn parse(query: &[(String, String)]) -> Result<Params, ApiError> {
        let mut params = Params {
            dry_run: false,
            origin: DEFAULT_ORIGIN.to_owned(),
        };
        for (name, value) in query {
            match name.as_str() {
                "dry_run" => {
                    params.dry_run = match value.as_str() {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(invalid(
                                "dry_run",
                                "`dry_run` is true or false".to_owned(),
                            ));
                        }
                    }
                }
                "file" => {
                    if value.trim().is_empty()
                        || value.chars().count() > MAX_ORIGIN_CHARS
                        || value.chars().any(char::is_control)
                    {
                        return Err(invalid(
                            "file",
                            format!(
                                "`file` names the catalog file in messages: 1 to \
                                 {MAX_ORIGIN_CHARS} characters, no control characters"
                            ),
                        ));
                    }
                    params.origin.clone_from(value);
                }
                other => {
                    return Err(invalid(
                        other,
                        format!(
                            "unknown query parameter `{other}`; this route takes dry_run and file"
                        ),
                    ));
                }
            }
        }
        Ok(params)
    }
}

fn invalid(param: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_param(param.to_owned())
}

/// `POST /admin/v1/apply[?dry_run=true][&file=NAME]`: the plan, applied unless `dry_run`.
pub(super) async fn apply(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Json<Value>, ErrorResponse> {
    let store = store(&state)?;
    let params = Params::parse(&query)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body is empty; send the catalog file as a JSON document (`{}` for an \
             empty catalog)",
        )
        .into());
    }
    // The environment this process runs in: what a restart with the file would see, both for
    // the rules that depend on it and for the providers it detects.
    let env = |name: &str| std::env::var(name).ok();
    let catalog =
        portico_config::parse_json_document(&body, &params.origin, &env).map_err(config_error)?;
    if let Some((param, message)) =
        portico_engine::bootstrap::refused_base_url(&catalog, state.gateway.upstream_allowlist())
    {
        return Err(ApiError::new(ErrorCode::InvalidParameter, message)
            .with_param(param)
            .into());
    }
    let applied = portico_engine::bootstrap::apply_file(
        store.as_ref(),
        &catalog,
        portico_config::detect_env_providers(&env),
        params.dry_run,
    )
    .await
    .map_err(|e| apply_error(e, &catalog))?;
    let changes = &applied.report.changes;
    if !params.dry_run && !changes.is_empty() {
        audit("catalog file applied", &params.origin);
        reload(&state, store.as_ref()).await?;
    }
    let unmanaged = unmanaged(store.as_ref()).await?;
    Ok(Json(json!({
        "dry_run": params.dry_run,
        "file": params.origin,
        "changes": changes
            .iter()
            .map(|c| change_json(c, &applied.generated_keys))
            .collect::<Vec<_>>(),
        "summary": summary(changes),
        "unmanaged": unmanaged,
        "ignored": ignored(&catalog),
    })))
}

/// One change as answered; a key created with a generated secret carries it, this once.
fn change_json(change: &Change, generated: &[(String, Secret)]) -> Value {
    let mut answer = json!({
        "action": change.action.as_str(),
        "object": change.object.as_str(),
        "name": change.name,
        "source": change.source.as_str(),
        "fields": change.fields,
        "note": change.note,
    });
    if change.action == ChangeAction::Create
        && let Some((_, secret)) = generated.iter().find(|(name, _)| *name == change.name)
    {
        answer["secret"] = Value::String(secret.expose().to_owned());
    }
    answer
}

/// How many objects are created, changed and removed (a revoked key counts as removed).
fn summary(changes: &[Change]) -> Value {
    let count = |wanted: &[ChangeAction]| {
        changes
            .iter()
            .filter(|c| wanted.contains(&c.action))
            .count()
    };
    json!({
        "create": count(&[ChangeAction::Create]),
        "update": count(&[ChangeAction::Update]),
        "delete": count(&[ChangeAction::Delete, ChangeAction::Revoke]),
    })
}

/// The records created through the admin API, which an apply never touches: counted so the
/// plan can say that they stay (revoked keys are not counted).
async fn unmanaged(store: &dyn Store) -> Result<Value, ApiError> {
    let api = |source: RecordSource| source == RecordSource::Api;
    let providers = store.list_providers().await.map_err(store_error)?;
    let configs = store.list_configs().await.map_err(store_error)?;
    let keys = store.list_keys().await.map_err(store_error)?;
    let budgets = store.list_budgets().await.map_err(store_error)?;
    let guardrails = store.list_guardrails().await.map_err(store_error)?;
    Ok(json!({
        "providers": providers.iter().filter(|p| api(p.source)).count(),
        "configs": configs.iter().filter(|c| api(c.source)).count(),
        "keys": keys
            .iter()
            .filter(|k| api(k.source) && k.revoked_at_ms.is_none())
            .count(),
        "budgets": budgets.iter().filter(|b| api(b.source)).count(),
        "guardrails": guardrails.iter().filter(|g| api(g.source)).count(),
    }))
}

/// The file's start-up settings, which a running instance does not take: a restart with the
/// file uses them (and `PORTICO_ADMIN_KEY` wins over `admin_key`). `auth` is one: the JWT
/// validator is built when the gateway starts.
fn ignored(catalog: &Catalog) -> Vec<&'static str> {
    let mut out = Vec::new();
    if catalog.listen.is_some() {
        out.push("listen");
    }
    if catalog.data_dir.is_some() {
        out.push("data_dir");
    }
    if catalog.admin_key.is_some() {
        out.push("admin_key");
    }
    if catalog.auth.jwt.is_some() {
        out.push("auth");
    }
    out
}

/// A file that fails validation: 400 with the line `portico serve --config` prints, and the
/// field path as `param`.
fn config_error(err: ConfigError) -> ApiError {
    let mut answer = ApiError::new(ErrorCode::InvalidParameter, err.to_string());
    if let Some(path) = err.path().filter(|p| !p.is_empty()) {
        answer = answer.with_param(path.to_owned());
    }
    answer
}

/// A valid file the catalog cannot take, worded as `portico serve --config` words it: a config
/// routing to a missing provider is the file's fault (400, `param` its path in the file), a
/// record of the admin API in the way is a conflict (409).
fn apply_error(err: StoreError, catalog: &Catalog) -> ApiError {
    match err {
        StoreError::InvalidConfig {
            ref id, ref path, ..
        } => {
            let mut answer = ApiError::new(
                ErrorCode::InvalidParameter,
                format!("cannot apply the catalog: {err}"),
            );
            if let Some(i) = catalog.configs.iter().position(|c| c.id == *id) {
                answer = answer.with_param(if path.is_empty() {
                    format!("configs[{i}].config")
                } else {
                    format!("configs[{i}].config.{path}")
                });
            }
            answer
        }
        StoreError::Conflict(message) => ApiError::new(
            ErrorCode::Conflict,
            format!("cannot apply the catalog: {message}"),
        ),
        other => store_error(other),
    }
}

#[cfg(test)]
mod tests {
    use portico_store::{FieldChange, ObjectKind};

    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_query_names_the_file_and_the_dry_run() {
        let p = Params::parse(&query(&[("dry_run", "true"), ("file", "portico.yaml")])).unwrap();
        assert!(p.dry_run);
        assert_eq!(p.origin, "portico.yaml");
        let p = Params::parse(&[]).unwrap();
        assert!(!p.dry_run);
        assert_eq!(p.origin, "request body");
        for bad in [
            ("dry_run", "maybe"),
            ("file", ""),
            ("file", "a\nb"),
            ("force", "1"),
        ] {
            let err = Params::parse(&query(&[bad])).err().unwrap();
            assert_eq!(err.param.as_deref(), Some(bad.0));
        }
    }

    #[test]
    fn a_generated_secret_is_answered_with_its_creation_only() {
        let generated = vec![("ci".to_owned(), Secret::new("prt-svc-generated"))];
        let created = Change::new(
            ChangeAction::Create,
            ObjectKind::Key,
            "ci",
            RecordSource::File,
        );
        assert_eq!(
            change_json(&created, &generated)["secret"],
            "prt-svc-generated"
        );
        let changed = Change::new(
            ChangeAction::Update,
            ObjectKind::Key,
            "ci",
            RecordSource::File,
        )
        .with_fields(vec![FieldChange {
            name: "key".to_owned(),
            secret: true,
        }]);
        let answer = change_json(&changed, &generated);
        assert!(answer.get("secret").is_none());
        assert_eq!(answer["fields"], json!([{"name": "key", "secret": true}]));
        assert_eq!(
            summary(&[created, changed]),
            json!({"create": 1, "update": 1, "delete": 0})
        );
    }
}
