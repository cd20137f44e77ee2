//! What a cached answer is keyed by (Portkey's rule): the endpoint, the provider, the whole
//! body, the metadata and the namespace; never the gateway key or the trace id.

use portico_cache::{CacheKey, KeyBuilder};

use crate::pipeline::policy::PolicyRequest;
use crate::pipeline::request::{CACHE_NAMESPACE, CONFIG, METADATA};

/// The parts every key of `request` shares: all but the body. `domain` keeps the simple
/// cache's keys and the semantic cache's scopes apart.
pub(super) fn common(request: &PolicyRequest<'_>, domain: &str) -> KeyBuilder {
    let header = |name: &str| request.headers.get(name).map(|v| v.as_bytes());
    let mut key = KeyBuilder::new(domain);
    key.part("path", request.family.path().as_bytes())
        // Which provider answers: the body's `@slug/model` (in the body part), a bare
        // model's `x-portkey-provider` or `x-portkey-virtual-key`, or the routing config
        // (the key's by id, and a header's as sent).
        .optional(
            "provider",
            crate::pipeline::request::provider_header(request.headers).map(str::as_bytes),
        )
        .optional(
            "key_config",
            request.key.config.as_ref().map(|c| c.id.as_bytes()),
        )
        .optional("config", header(CONFIG))
        // Changes what a Messages upstream does.
        .optional("anthropic_beta", header("anthropic-beta"))
        // The metadata header as sent: the same object sent the same way hits.
        .optional("metadata", header(METADATA))
        .optional("namespace", header(CACHE_NAMESPACE));
    key
}

/// The simple cache's key of `request`: [`common`] and the whole body.
pub(super) fn simple(request: &PolicyRequest<'_>) -> CacheKey {
    let mut key = common(request, "simple");
    let chunks = request.body.to_chunks();
    key.part_chunks("body", chunks.iter().map(|c| &c[..]));
    key.finish()
}
