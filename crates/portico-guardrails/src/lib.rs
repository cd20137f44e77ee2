//! Guardrails in Portkey's shape (spec section 7), evaluated locally and synchronously.
//!
//! What this is: the parsing of Portkey's guardrail objects (the full shape and the config
//! shorthand) into compiled [`Guardrail`]s, the deterministic checks (`default.*`), the
//! mutators (`default.addPrefix`, `default.regexReplace`), Portico's local checks
//! (`portico.pii`, `portico.moderation`, `portico.promptInjection`), the text a check reads
//! from a request or an answer (both API families), the `hook_results` JSON, and the
//! address guard that decides which URLs a `default.webhook` may call.
//!
//! What it is not: the pipeline policy that runs guardrails on requests (that is
//! `portico-engine`'s `policies::guardrails`, which also makes the webhook's HTTP call), nor
//! any network I/O: everything here is pure and needs no runtime.
//!
//! Main types: [`Guardrail`] and [`Check`] (compiled, parsed once: regexes are compiled and
//! size-limited at parse time), [`Subject`] (what a check reads), [`CheckResult`] (a
//! verdict, its explanation and duration), [`GuardrailError`] (a parse error with its field
//! path), [`AddressGuard`].

mod builtin;
mod checks;
pub mod injection;
pub mod moderation;
pub mod pii;
mod results;
mod schema;
mod shape;
pub mod text;
mod webhook;

pub use builtin::builtin_guardrails;
pub use checks::{
    Call, CheckKind, ModerationProvider, Mutation, Operator, Outcome, Prefix, Subject,
};
pub use results::{CheckResult, GuardrailResult, HookResults};
pub use shape::{Check, Guardrail, GuardrailError, Hook, valid_id};
pub use webhook::{AddressGuard, GuardError, Webhook};
