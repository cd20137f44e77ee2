//! `portico apply -f FILE [--dry-run]`: a catalog file applied to a running instance through
//! its admin API, as Terraform applies a configuration: the plan, one line per object
//! created (`+`), changed (`~`, with the fields) or removed (`-`), then the apply.
//!
//! The file is read here and `${VAR}` replaced from this shell's environment, where the user
//! keeps the secrets the file names. The instance validates the result exactly as
//! `portico serve --config` would (errors are the same line, exit code 2), works out the plan
//! with the code a start applies the file with, and applies it in one transaction. Secrets
//! are never printed, only that one changes, except a generated key's secret, once, as
//! `portico serve` prints it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Fatal;
use crate::admin_client::{AdminArgs, AdminClient};

/// `portico apply`
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The catalog file (YAML; `${VAR}` is replaced from this environment); `-` reads stdin.
    #[arg(long, short = 'f', value_name = "FILE")]
    file: PathBuf,

    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,

    /// Where the admin API is, and its key.
    #[command(flatten)]
    admin: AdminArgs,
}

/// Runs `portico apply`.
pub(crate) async fn run(args: ApplyArgs) -> Result<(), Fatal> {
    let (text, origin) = read(&args.file)?;
    let env = |name: &str| std::env::var(name).ok();
    // The same words as `portico serve --config` for the same mistake, and the same exit code.
    let document = portico_config::substitute_to_json(&text, &origin, &env)
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let api = AdminClient::new(&args.admin)?;
    let query = [
        ("dry_run", args.dry_run.to_string()),
        ("file", origin.clone()),
    ];
    let answer = api
        .exchange(reqwest::Method::POST, "/apply", &query, Some(document))
        .await?;
    if answer.status == 400 {
        // The file's fault: the instance's message is the line serve would print.
        return Err(Fatal::usage(answer.message()));
    }
    let plan = answer.into_result()?;
    for line in render(&plan, &origin, api.base()) {
        print_line(&line);
    }
    Ok(())
}

/// The file's text and the name messages give it (as given on the command line).
fn read(path: &Path) -> Result<(String, String), Fatal> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Fatal::usage(format!("cannot read the catalog from stdin: {e}")))?;
        return Ok((text, "stdin".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|source| {
        Fatal::usage(
            portico_config::ConfigError::Io {
                path: path.to_owned(),
                source,
            }
            .to_string(),
        )
    })?;
    Ok((text, path.display().to_string()))
}

/// The plan as printed: one line per change, the totals, what was left alone, and the
/// outcome (with generated secrets, once).
fn render(plan: &Value, file: &str, url: &str) -> Vec<String> {
    let empty = Vec::new();
    let changes = plan["changes"].as_array().unwrap_or(&empty);
    let dry_run = plan["dry_run"].as_bool().unwrap_or(false);
    let mut out = Vec::new();
    if changes.is_empty() {
        out.push(format!("No changes: {url} already matches {file}."));
    } else {
        out.push(format!(
            "Plan for {file} at {url} (+ create, ~ change, - delete; secrets are never shown):"
        ));
        out.push(String::new());
        out.extend(changes.iter().map(change_line));
        out.push(String::new());
        out.push(format!(
            "Plan: {} to create, {} to change, {} to delete.",
            count(plan, "create"),
            count(plan, "update"),
            count(plan, "delete")
        ));
    }
    if let Some(left) = unmanaged(&plan["unmanaged"]) {
        out.push(format!(
            "Left as they are: {left} created through the admin API (an apply changes only \
             what the file owns)."
        ));
    }
    let ignored: Vec<&str> = plan["ignored"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if !ignored.is_empty() {
        out.push(format!(
            "Not applied to a running instance: {} (start-up settings; a restart with the file \
             uses them).",
            ignored.join(", ")
        ));
    }
    if changes.is_empty() {
        return out;
    }
    if dry_run {
        out.push("Dry run: nothing was changed.".to_owned());
        return out;
    }
    out.push(format!(
        "Applied: {} created, {} changed, {} deleted.",
        count(plan, "create"),
        count(plan, "update"),
        count(plan, "delete")
    ));
    for change in changes {
        if let (Some(name), Some(secret)) = (change["name"].as_str(), change["secret"].as_str()) {
            out.push(format!(
                "portico: key {name} (shown once, store it now): {secret}"
            ));
        }
    }
    out
}

/// `  ~ provider @openai-prod: api_key (secret), base_url (from the environment)`
fn change_line(change: &Value) -> String {
    let symbol = match change["action"].as_str() {
        Some("create") => '+',
        Some("update") => '~',
        _ => '-',
    };
    let object = change["object"].as_str().unwrap_or("object");
    let name = change["name"].as_str().unwrap_or("?");
    let name = if object == "provider" {
        format!("@{name}")
    } else {
        name.to_owned()
    };
    let mut line = format!("  {symbol} {object} {name}");
    let fields: Vec<String> = change["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    let field = f["name"].as_str().unwrap_or("?");
                    if f["secret"].as_bool().unwrap_or(false) {
                        format!("{field} (secret)")
                    } else {
                        field.to_owned()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if !fields.is_empty() {
        line.push_str(": ");
        line.push_str(&fields.join(", "));
    }
    let mut notes = Vec::new();
    match change["source"].as_str() {
        Some("env") => notes.push("from the environment"),
        Some("default") => notes.push("built in"),
        _ => {}
    }
    if let Some(note) = change["note"].as_str() {
        notes.push(note);
    }
    if !notes.is_empty() {
        line.push_str(&format!(" ({})", notes.join("; ")));
    }
    line
}

fn count(plan: &Value, action: &str) -> u64 {
    plan["summary"][action].as_u64().unwrap_or(0)
}

/// `1 provider, 2 keys` for the records the file does not own; `None` when there are none.
fn unmanaged(counts: &Value) -> Option<String> {
    let parts: Vec<String> = [
        ("providers", "provider"),
        ("configs", "config"),
        ("keys", "key"),
        ("budgets", "budget"),
        ("guardrails", "guardrail"),
    ]
    .into_iter()
    .filter_map(|(field, noun)| {
        let n = counts[field].as_u64().filter(|n| *n > 0)?;
        Some(format!("{n} {noun}{}", if n == 1 { "" } else { "s" }))
    })
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[expect(clippy::print_stdout, reason = "the CLI's output")]
fn print_line(line: &str) {
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const URL: &str = "http://127.0.0.1:8787";

    fn plan(dry_run: bool) -> Value {
        json!({
            "dry_run": dry_run,
            "file": "portico.yaml",
            "changes": [
                {"action": "create", "object": "provider", "name": "claude", "source": "file",
                 "fields": [], "note": null},
                {"action": "update", "object": "provider", "name": "openai-prod",
                 "source": "file", "note": null,
                 "fields": [{"name": "base_url", "secret": false},
                            {"name": "api_key", "secret": true}]},
                {"action": "delete", "object": "provider", "name": "mock", "source": "default",
                 "fields": [], "note": null},
                {"action": "create", "object": "key", "name": "ci", "source": "file",
                 "fields": [], "note": "its secret is generated and shown once",
                 "secret": "prt-svc-generated"},
                {"action": "revoke", "object": "key", "name": "old", "source": "file",
                 "fields": [], "note": "revoked, not deleted"},
                {"action": "update", "object": "guardrail", "name": "pii-check",
                 "source": "file", "note": null,
                 "fields": [{"name": "deny", "secret": false}]}
            ],
            "summary": {"create": 2, "update": 2, "delete": 2},
            "unmanaged": {"providers": 1, "configs": 0, "keys": 2, "guardrails": 1},
            "ignored": ["admin_key"]
        })
    }

    #[test]
    fn a_plan_is_one_line_per_object_then_the_totals() {
        let lines = render(&plan(false), "portico.yaml", URL);
        assert_eq!(
            lines,
            [
                "Plan for portico.yaml at http://127.0.0.1:8787 (+ create, ~ change, - delete; secrets are never shown):",
                "",
                "  + provider @claude",
                "  ~ provider @openai-prod: base_url, api_key (secret)",
                "  - provider @mock (built in)",
                "  + key ci (its secret is generated and shown once)",
                "  - key old (revoked, not deleted)",
                "  ~ guardrail pii-check: deny",
                "",
                "Plan: 2 to create, 2 to change, 2 to delete.",
                "Left as they are: 1 provider, 2 keys, 1 guardrail created through the admin API (an apply changes only what the file owns).",
                "Not applied to a running instance: admin_key (start-up settings; a restart with the file uses them).",
                "Applied: 2 created, 2 changed, 2 deleted.",
                "portico: key ci (shown once, store it now): prt-svc-generated",
            ]
        );
    }

    #[test]
    fn a_dry_run_says_so_and_shows_no_secret() {
        let mut dry = plan(true);
        dry["changes"][3].as_object_mut().unwrap().remove("secret");
        let lines = render(&dry, "portico.yaml", URL);
        assert_eq!(lines.last().unwrap(), "Dry run: nothing was changed.");
        assert!(!lines.iter().any(|l| l.contains("prt-svc")));
    }

    #[test]
    fn nothing_to_do_is_said_in_one_line() {
        let answer = json!({"dry_run": false, "changes": [], "summary": {},
            "unmanaged": {"providers": 0, "configs": 0, "keys": 0}, "ignored": []});
        assert_eq!(
            render(&answer, "portico.yaml", URL),
            ["No changes: http://127.0.0.1:8787 already matches portico.yaml."]
        );
    }
}
