//! [`Route`]: where one attempt of a request goes.

use std::sync::Arc;

use portico_providers::Provider;

/// Where a request goes: the provider that answers and the model name sent to it.
#[derive(Clone)]
pub struct Route {
    /// The provider's slug (without `@`).
    pub slug: String,
    /// The model name sent upstream.
    pub model: String,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("slug", &self.slug)
            .field("model", &self.model)
            .finish()
    }
}
