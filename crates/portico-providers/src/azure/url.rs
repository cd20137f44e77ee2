//! Where a request goes on Azure OpenAI: the URL of an operation for a deployment, in the
//! classic API (deployment in the path, `api-version` in the query) or the v1 API (OpenAI's
//! paths under `/openai/v1`, the deployment as the body's `model`). Pure; no I/O.

use portico_core::Endpoint;
use reqwest::Url;

/// The `azure_api_version` that selects Azure's v1 API instead of a dated classic version.
pub(crate) const V1: &str = "v1";

/// The first dated API version that accepts `stream_options` (and so reports usage at the end
/// of a stream): `2024-08-01-preview`; GA from `2024-10-21` on.
const FIRST_WITH_STREAM_OPTIONS: &str = "2024-08-01";

/// Which of Azure OpenAI's two URL schemes a provider uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AzureApi {
    /// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V`.
    Classic {
        /// The `api-version` query value, like `2024-10-21` or `2025-04-01-preview`.
        api_version: String,
    },
    /// `{endpoint}/openai/v1/chat/completions`, no `api-version`.
    V1,
}

impl AzureApi {
    /// The scheme an `azure_api_version` setting selects.
    pub(crate) fn from_version(version: &str) -> AzureApi {
        if version == V1 {
            AzureApi::V1
        } else {
            AzureApi::Classic {
                api_version: version.to_owned(),
            }
        }
    }

    /// Whether requests may carry `stream_options`: older dated versions reject the field
    /// ("Unrecognized request argument supplied"), so it is dropped for them.
    pub(crate) fn accepts_stream_options(&self) -> bool {
        match self {
            AzureApi::V1 => true,
            // `YYYY-MM-DD[-preview]` compares as text.
            AzureApi::Classic { api_version } => {
                api_version.get(..10).unwrap_or(api_version) >= FIRST_WITH_STREAM_OPTIONS
            }
        }
    }
}

/// The URL of `endpoint` for `deployment` under the resource endpoint `base` (which may carry
/// a path prefix, as behind an API gateway).
///
/// The deployment is one path segment whatever it contains: a `/` or `?` in it is
/// percent-encoded, so a model name can never reach another path of the resource.
pub(crate) fn request_url(base: &Url, api: &AzureApi, endpoint: Endpoint, deployment: &str) -> Url {
    let mut url = base.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("openai");
        match api {
            AzureApi::Classic { .. } => segments.push("deployments").push(deployment),
            AzureApi::V1 => segments.push("v1"),
        };
        segments.extend(endpoint.path().split('/').filter(|s| !s.is_empty()));
    }
    if let AzureApi::Classic { api_version } = api {
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, api: &AzureApi, endpoint: Endpoint, deployment: &str) -> String {
        request_url(&Url::parse(base).unwrap(), api, endpoint, deployment).to_string()
    }

    fn classic(v: &str) -> AzureApi {
        AzureApi::from_version(v)
    }

    #[test]
    fn classic_urls_carry_the_deployment_and_the_version() {
        let api = classic("2024-10-21");
        let base = "https://res.openai.azure.com";
        assert_eq!(
            url(base, &api, Endpoint::ChatCompletions, "gpt-4o-mini"),
            "https://res.openai.azure.com/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            url(base, &api, Endpoint::Completions, "instruct"),
            "https://res.openai.azure.com/openai/deployments/instruct/completions?api-version=2024-10-21"
        );
        assert_eq!(
            url(base, &api, Endpoint::Embeddings, "embed-3"),
            "https://res.openai.azure.com/openai/deployments/embed-3/embeddings?api-version=2024-10-21"
        );
        // A path prefix (an API gateway in front of the resource) is kept.
        assert_eq!(
            url(
                "http://127.0.0.1:9/prefix/",
                &api,
                Endpoint::ChatCompletions,
                "d"
            ),
            "http://127.0.0.1:9/prefix/openai/deployments/d/chat/completions?api-version=2024-10-21"
        );
    }

    #[test]
    fn v1_urls_have_no_deployment_and_no_version() {
        assert_eq!(AzureApi::from_version("v1"), AzureApi::V1);
        assert_eq!(
            url(
                "https://res.openai.azure.com",
                &AzureApi::V1,
                Endpoint::ChatCompletions,
                "gpt-4o-mini"
            ),
            "https://res.openai.azure.com/openai/v1/chat/completions"
        );
        assert_eq!(
            url(
                "https://res.openai.azure.com",
                &AzureApi::V1,
                Endpoint::Embeddings,
                "e"
            ),
            "https://res.openai.azure.com/openai/v1/embeddings"
        );
    }

    #[test]
    fn a_deployment_stays_one_path_segment() {
        let api = classic("2024-10-21");
        let base = "https://res.openai.azure.com";
        assert_eq!(
            url(base, &api, Endpoint::ChatCompletions, "a/../../b?x=1#f"),
            "https://res.openai.azure.com/openai/deployments/a%2F..%2F..%2Fb%3Fx=1%23f/chat/completions?api-version=2024-10-21"
        );
        // `..` alone cannot climb either: it is dropped, and Azure answers 404.
        let climbed = url(base, &api, Endpoint::ChatCompletions, "..");
        assert!(
            climbed.starts_with("https://res.openai.azure.com/openai/deployments/"),
            "{climbed}"
        );
    }

    #[test]
    fn stream_options_need_a_recent_version() {
        assert!(AzureApi::V1.accepts_stream_options());
        assert!(classic("2024-10-21").accepts_stream_options());
        assert!(classic("2024-08-01-preview").accepts_stream_options());
        assert!(classic("2025-04-01-preview").accepts_stream_options());
        assert!(!classic("2024-06-01").accepts_stream_options());
        assert!(!classic("2024-02-15-preview").accepts_stream_options());
    }
}
