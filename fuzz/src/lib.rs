//! What the fuzz targets share: the upstream client the dialects are built with, SSE parsing
//! of an input, the loop that drives a stream translator, and the checks every translation's
//! output must pass (docs/fuzzing.md).
//!
//! Not shipped: this crate is built only by `cargo fuzz` (a workspace of its own).

use std::sync::OnceLock;

use portico_core::Secret;
use portico_providers::ProviderSetup;
use portico_providers::SseEvent;
use portico_providers::dialect::Translate;
use portico_providers::http::{HttpClient, HttpOptions, build_client};
use portico_providers::sse::SseParser;

/// The most bytes one SSE event of a fuzz input may hold: far above any input libFuzzer
/// makes (`-max_len`), so the limit never cuts a real case short.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The gateway's shared upstream client, built once per process. The targets never send a
/// request with it (translation is pure); the dialects are built with it.
pub fn client() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| build_client(HttpOptions::default()).expect("the HTTP client builds"))
}

/// The setup of a catalog provider `slug` with a placeholder key and no base URL.
pub fn setup(slug: &'static str) -> ProviderSetup<'static> {
    static KEY: OnceLock<Secret> = OnceLock::new();
    ProviderSetup {
        slug,
        base_url: None,
        api_key: Some(KEY.get_or_init(|| Secret::new("fuzz-key".to_owned()))),
        client: client(),
    }
}

/// The events of `data` read as a `text/event-stream`, fed in chunks of `chunk` bytes; the
/// events before an error (an event over [`MAX_EVENT_BYTES`]) when there is one, and whether
/// there was.
pub fn sse_events(data: &[u8], chunk: usize) -> (Vec<SseEvent>, bool) {
    let mut parser = SseParser::with_max_event_bytes(MAX_EVENT_BYTES);
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        parser.push(piece);
        loop {
            match parser.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(_) => return (events, true),
            }
        }
    }
    loop {
        match parser.finish() {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return (events, false),
            Err(_) => return (events, true),
        }
    }
}

/// Runs `translator` over `inputs` the way the gateway's stream loop does (stop at the first
/// error or once done; the end otherwise), and checks what it wrote
/// ([`check_chunk_events`]).
pub fn drive<T: Translate>(mut translator: T, inputs: impl IntoIterator<Item = T::Input>) {
    let mut out = Vec::new();
    let mut failed = false;
    for input in inputs {
        if translator.is_done() {
            break;
        }
        if translator.on_input(input, &mut out).is_err() {
            failed = true;
            break;
        }
    }
    if !failed && !translator.is_done() {
        let _ = translator.on_end(&mut out);
    }
    check_chunk_events(&out);
}

/// Every event a translator writes for a client is `[DONE]` or holds one JSON value, and
/// reads back from its own encoding as the same event.
pub fn check_chunk_events(events: &[SseEvent]) {
    for event in events {
        if !event.is_done() {
            assert_json(&event.data);
        }
        let encoded = event.encode();
        let (back, failed) = sse_events(&encoded, encoded.len());
        assert!(!failed);
        assert_eq!(
            back.as_slice(),
            std::slice::from_ref(event),
            "an event reads back as itself"
        );
    }
}

/// `bytes` is one JSON value.
pub fn assert_json(bytes: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(bytes) {
        panic!(
            "a translation wrote invalid JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// `value` written as JSON, checked to read back as JSON.
pub fn write_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let bytes = serde_json::to_vec(value).expect("a translation's output serialises");
    assert_json(&bytes);
    bytes
}

/// The chunk size a target feeds `data` in: varies with the input, never 0.
pub fn chunk_size(data: &[u8]) -> usize {
    1 + data.len() % 17
}

/// The three translating dialects, built once per process as a catalog provider of each
/// kind would be (a placeholder key; Bedrock with its region set, so nothing is read from
/// the environment).
pub struct Dialects {
    /// Anthropic's Messages API.
    pub anthropic: portico_anthropic::Anthropic,
    /// Gemini's generateContent.
    pub gemini: portico_gemini::Gemini,
    /// Bedrock's Converse.
    pub bedrock: portico_bedrock::Bedrock,
}

/// The process's [`Dialects`].
pub fn dialects() -> &'static Dialects {
    use portico_providers::dialect::Dialect;
    use portico_providers::settings::{AnthropicSettings, BedrockSettings, GeminiSettings};
    static DIALECTS: OnceLock<Dialects> = OnceLock::new();
    DIALECTS.get_or_init(|| {
        let empty = serde_json::json!({});
        Dialects {
            anthropic: portico_anthropic::Anthropic::new(
                setup("anthropic"),
                &AnthropicSettings::parse("anthropic", &empty).expect("default settings"),
            )
            .expect("the Anthropic dialect builds"),
            gemini: portico_gemini::Gemini::with_env(
                setup("gemini"),
                &GeminiSettings::parse("gemini", &empty).expect("default settings"),
                |_| None,
            )
            .expect("the Gemini dialect builds"),
            bedrock: portico_bedrock::Bedrock::with_env(
                setup("bedrock"),
                &BedrockSettings {
                    region: Some("us-east-1".to_owned()),
                    keys: None,
                },
                |_| None,
            )
            .expect("the Bedrock dialect builds"),
        }
    })
}

/// What a translated answer is told besides the answer (a fixed model, time and id).
pub fn answered() -> portico_providers::dialect::Answered<'static> {
    portico_providers::dialect::Answered {
        model: "fuzz-model",
        created: 1_700_000_000,
        id: Some("chatcmpl-fuzz".to_owned()),
    }
}

/// Whether `data` is a whole JSON body (it starts with `{`, after blanks) rather than a
/// stream: the response targets take both, so their corpora hold the fixtures as they are.
pub fn is_whole_body(data: &[u8]) -> bool {
    data.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}
