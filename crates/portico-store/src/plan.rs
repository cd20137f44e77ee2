//! What an apply does, object by object: the plan `portico apply` prints and
//! `POST /admin/v1/apply` answers, and the report of a start.
//!
//! Every write an apply makes is one [`Change`] in [`ApplyReport::changes`](crate::ApplyReport);
//! an object it leaves alone is not listed, so an apply with nothing to do reports no change.
//! Secret fields are named, never their values: a [`FieldChange`] says *that* a secret
//! changes.

use serde::Serialize;

use crate::RecordSource;

/// What an apply does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// Created: nothing of this kind and name was stored.
    Create,
    /// Changed in place: it keeps its id (and a key its spend).
    Update,
    /// Removed from the store (a provider with its models, a config, a guardrail).
    Delete,
    /// A key the catalog no longer declares: revoked, not deleted, so its logs and spend keep
    /// their reference; declaring it again restores it.
    Revoke,
}

impl ChangeAction {
    /// The name answered by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
            ChangeAction::Delete => "delete",
            ChangeAction::Revoke => "revoke",
        }
    }
}

/// The kind of object a change is about, in the order a plan lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A provider (addressed as `@slug`).
    Provider,
    /// A routing config.
    Config,
    /// A named guardrail of the `guardrails:` list.
    Guardrail,
    /// A gateway key.
    Key,
    /// A budget of the `budgets:` list.
    Budget,
}

impl ObjectKind {
    /// The name answered by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Provider => "provider",
            ObjectKind::Config => "config",
            ObjectKind::Guardrail => "guardrail",
            ObjectKind::Key => "key",
            ObjectKind::Budget => "budget",
        }
    }
}

/// One field an update changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field as the catalog file names it: `base_url`, `api_key`, `aws_region`,
    /// `mock.latency_ms`, `models`, `budget`, `config.targets`, a guardrail's `checks`, a
    /// key's `key`.
    pub name: String,
    /// A secret: its value is never shown, only that it changes.
    pub secret: bool,
}

/// One object an apply creates, changes or removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What happens to it.
    pub action: ChangeAction,
    /// What it is.
    pub object: ObjectKind,
    /// Its slug (without `@`), config id, guardrail id, key name or budget name.
    pub name: String,
    /// Whose it is: `file`, `env` or `default` (an apply never writes an `api` record). For a
    /// provider taken over by the file from the environment, the new owner.
    pub source: RecordSource,
    /// For an update, the fields that change, in the file's order; empty otherwise.
    pub fields: Vec<FieldChange>,
    /// What the reader should know that the action does not say (a revoked key is kept, a
    /// generated secret is shown once).
    pub note: Option<String>,
}

impl Change {
    /// A change without fields or note.
    pub fn new(
        action: ChangeAction,
        object: ObjectKind,
        name: impl Into<String>,
        source: RecordSource,
    ) -> Change {
        Change {
            action,
            object,
            name: name.into(),
            source,
            fields: Vec::new(),
            note: None,
        }
    }

    /// The same change with the fields an update changes.
    #[must_use]
    pub fn with_fields(mut self, fields: Vec<FieldChange>) -> Change {
        self.fields = fields;
        self
    }

    /// The same change with a note for the reader.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Change {
        self.note = Some(note.into());
        self
    }
}

/// How [`Store::apply_catalog_with`](crate::Store::apply_catalog_with) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOptions {
    /// Work out the report without writing: the same diff and the same writes as a real
    /// apply, in a transaction that is rolled back, so a plan cannot differ from what the
    /// apply then does (unless the catalog changes in between).
    pub dry_run: bool,
    /// A start without a catalog file: the records of source `file` (written by the last
    /// apply of a file, at a start or through `portico apply`) stay as they are, and only
    /// the environment's and the built-in providers are brought up to date. The catalog then
    /// holds no keys or configs, and no provider of source `file`.
    pub keep_file_records: bool,
}
