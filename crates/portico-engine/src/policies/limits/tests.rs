//! The limits policy in the real pipeline against the HTTP mock upstream, on a manual clock:
//! each subject kind, refusals before any upstream call, provider budgets per attempt with a
//! fallback, period rollover and window sliding, streams charged from their usage (or their
//! estimate when cut off before it), and the status the admin API lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue};
use portico_core::{
    BudgetSpec, Clock, Endpoint, KeyHash, Limits, ManualClock, NamedBudget, Period, ProviderKind,
    RateLimitSpec, RequestRecord, Secret,
};
use portico_limits::{Ledger, prompt_tokens};
use portico_store::{ConfigRecord, KeyRecord, KeyType, ProviderRecord, RecordSource};
use portico_testkit::{MockReply, MockUpstream, SseScript};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{LimitStatus, LimitsPolicy, StatusKind};
use crate::pipeline::policy::{Policy, PolicyRequest};
use crate::pipeline::{Family, Reply};
use crate::snapshot::KeyEntry;
use crate::{AccessLog, Gateway, Snapshot};

/// 2026-12-06 13:00 UTC, a Sunday.
const SUNDAY_1PM: i64 = 1_796_562_000_000;
const HOUR: i64 = 3_600_000;

fn tokens_per_day(tokens: u64) -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: None,
            tokens: Some(tokens),
            period: Period::Day,
        }),
        rate_limit: None,
    }
}

fn per_minute(requests: u64) -> Limits {
    Limits {
        budget: None,
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: Some(requests),
            tokens_per_minute: None,
        }),
    }
}

fn provider(slug: &str, upstream: &MockUpstream, limits: Limits) -> ProviderRecord {
    ProviderRecord {
        slug: slug.to_owned(),
        kind: ProviderKind::OpenAi,
        base_url: Some(upstream.base_url()),
        api_key: Some(Secret::new("sk-limits-upstream-000")),
        settings: json!({}),
        credentials: Default::default(),
        models: None,
        source: RecordSource::File,
        limits,
    }
}

fn key(name: &str, key_type: KeyType, user: Option<&str>, limits: Limits) -> KeyRecord {
    KeyRecord {
        id: format!("id-{name}"),
        name: name.to_owned(),
        key_type,
        user: user.map(str::to_owned),
        hash: KeyHash::of(&secret(name)),
        hint: String::new(),
        allowed_models: None,
        log_payloads: false,
        config: None,
        source: RecordSource::File,
        created_at_ms: 0,
        revoked_at_ms: None,
        limits,
        expires_at_ms: None,
    }
}

fn secret(name: &str) -> String {
    format!("prt-limits-test-{name}-0000")
}

struct Setup {
    gateway: Arc<Gateway>,
    upstream: Arc<MockUpstream>,
    clock: Arc<ManualClock>,
    policy: Arc<LimitsPolicy>,
}

/// A gateway over one mock upstream with the limits policy on a manual clock.
async fn setup(
    providers: impl FnOnce(&MockUpstream) -> Vec<ProviderRecord>,
    keys: Vec<KeyRecord>,
    configs: Vec<ConfigRecord>,
    budgets: Vec<NamedBudget>,
) -> Setup {
    let upstream = Arc::new(MockUpstream::start().await);
    let client = portico_providers::http::build_client(Default::default()).unwrap();
    let snapshot = Snapshot::build(providers(&upstream), keys, configs, &client)
        .unwrap()
        .with_budgets(budgets);
    let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
    let policy = Arc::new(LimitsPolicy::new(
        Arc::new(Ledger::new()),
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    let gateway = Arc::new(
        Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
            .with_clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .with_policy(Arc::clone(&policy) as Arc<dyn Policy>),
    );
    Setup {
        gateway,
        upstream,
        clock,
        policy,
    }
}

fn headers(key: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", secret(key))).unwrap(),
    );
    for (name, value) in extra {
        h.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    h
}

async fn send(setup: &Setup, family: Family, headers: &HeaderMap, body: &Value) -> Reply {
    let body = Bytes::from(body.to_string());
    setup
        .gateway
        .handle(
            family,
            headers,
            async { Ok(body) },
            &CancellationToken::new(),
        )
        .await
}

const CHAT: Family = Family::OpenAi(Endpoint::ChatCompletions);

/// The status of a whole answer or an error, and the error when there is one.
fn outcome(reply: Reply) -> (u16, Option<portico_core::ApiError>) {
    match reply {
        Reply::Whole { status, .. } => (status, None),
        Reply::Error { error, .. } => (error.status, Some(error)),
        Reply::Stream { status, .. } => (status, None),
    }
}

/// A chat body of `words` one-letter words with `max_tokens`: the mock reports `words`
/// prompt tokens and `words + 1` completion tokens (`echo:` and the words).
fn words_body(model: &str, words: usize, max_tokens: u64) -> Value {
    let text = vec!["a"; words].join(" ");
    json!({"model": model, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": text}]})
}

/// The estimate the policy reserves for `body`.
fn estimate_of(body: &Value) -> u64 {
    prompt_tokens(body.to_string().len()) + body["max_tokens"].as_u64().unwrap()
}

fn entry<'a>(status: &'a [LimitStatus], subject: &str, kind: StatusKind) -> &'a LimitStatus {
    status
        .iter()
        .find(|s| s.subject == subject && s.kind == kind)
        .unwrap_or_else(|| panic!("no {kind:?} for {subject}: {status:?}"))
}

#[tokio::test]
async fn an_exhausted_key_budget_refuses_before_the_upstream_until_the_day_rolls_over() {
    let body = words_body("@oa/m", 40, 1);
    let estimate = estimate_of(&body);
    // Room for one estimate; the answer then uses more than estimated (81 tokens).
    let s = setup(
        |u| vec![provider("oa", u, Limits::default())],
        vec![key(
            "svc",
            KeyType::Service,
            None,
            tokens_per_day(estimate + 2),
        )],
        Vec::new(),
        Vec::new(),
    )
    .await;
    let (status, _) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
    assert_eq!(status, 200);
    let (status, error) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
    let error = error.unwrap();
    assert_eq!(status, 412);
    assert_eq!(error.code_string(), "budget_exceeded");
    assert_eq!(
        error.message,
        format!(
            "budget `key:svc` is exhausted: 81 tokens of {} tokens spent this day; it resets \
             at 2026-12-07T00:00:00Z",
            estimate + 2
        )
    );
    assert_eq!(
        s.upstream.hits(),
        1,
        "the refusal never reached the upstream"
    );
    let status = s.policy.status();
    let budget = entry(&status, "key:svc", StatusKind::Budget);
    assert_eq!(budget.tokens_spent, 81);
    assert_eq!(budget.tokens_reserved, Some(0));
    assert_eq!(budget.resets_at_ms, Some(SUNDAY_1PM + 11 * HOUR));

    s.clock.set(SUNDAY_1PM + 11 * HOUR - 1);
    let (status, _) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
    assert_eq!(status, 412, "still Sunday");
    s.clock.set(SUNDAY_1PM + 11 * HOUR);
    let (status, _) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
    assert_eq!(status, 200, "Monday: a new day's budget");
    assert_eq!(s.upstream.hits(), 2);
}

#[tokio::test]
async fn a_rate_limit_refuses_with_retry_after_until_the_window_slides() {
    let s = setup(
        |u| vec![provider("oa", u, Limits::default())],
        vec![key("svc", KeyType::Service, None, per_minute(2))],
        Vec::new(),
        Vec::new(),
    )
    .await;
    let body = words_body("@oa/m", 2, 8);
    for _ in 0..2 {
        assert_eq!(
            outcome(send(&s, CHAT, &headers("svc", &[]), &body).await).0,
            200
        );
        s.clock.advance(15_000);
    }
    let (status, error) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
    let error = error.unwrap();
    assert_eq!(status, 429);
    assert_eq!(error.code_string(), "rate_limit_exceeded");
    // The first request (at 0 s) leaves the window at 60 s; it is now 30 s.
    assert_eq!(error.retry_after, Some(30));
    assert!(
        error.message.starts_with(
            "rate limit `key:svc` reached: 2 requests per minute (requests_per_minute)"
        ),
        "{}",
        error.message
    );
    // The Messages API refuses the same way, in Anthropic's shape.
    let messages = json!({"model": "@oa/m", "max_tokens": 8,
                          "messages": [{"role": "user", "content": "hi"}]});
    let reply = send(&s, Family::Messages, &headers("svc", &[]), &messages).await;
    let (status, error) = outcome(reply);
    assert_eq!(status, 429);
    let anthropic = Family::Messages.error_json(&error.unwrap());
    assert_eq!(anthropic["type"], "error");
    assert_eq!(anthropic["error"]["type"], "rate_limit_error");
    assert_eq!(s.upstream.hits(), 2);

    s.clock.advance(30_000);
    assert_eq!(
        outcome(send(&s, CHAT, &headers("svc", &[]), &body).await).0,
        200
    );
    let status = s.policy.status();
    let window = entry(&status, "key:svc", StatusKind::RateLimit);
    assert_eq!(
        window.requests_spent,
        Some(2),
        "the 15 s and the 60 s requests"
    );
    assert_eq!(window.period, "minute");
}

#[tokio::test]
async fn an_exhausted_provider_is_skipped_by_a_fallback_and_alone_is_the_answer() {
    let fallback = ConfigRecord {
        id: "fallback".into(),
        config: json!({"strategy": {"mode": "fallback"},
                       "targets": [{"provider": "@tight"}, {"provider": "@roomy"}]}),
        source: RecordSource::File,
        created_at_ms: 0,
        updated_at_ms: 0,
    };
    let s = setup(
        |u| {
            vec![
                provider("tight", u, tokens_per_day(1)),
                provider("roomy", u, Limits::default()),
            ]
        },
        vec![key("svc", KeyType::Service, None, Limits::default())],
        vec![fallback],
        Vec::new(),
    )
    .await;
    let body =
        json!({"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let reply = send(
        &s,
        CHAT,
        &headers("svc", &[("x-portkey-config", "fallback")]),
        &body,
    )
    .await;
    let Reply::Whole {
        status,
        headers: reply_headers,
        ..
    } = reply
    else {
        panic!("{reply:?}");
    };
    assert_eq!(status, 200);
    let mut answered = HeaderMap::new();
    reply_headers.apply(&mut answered);
    assert_eq!(answered["x-portkey-provider"], "@roomy");
    assert_eq!(s.upstream.hits(), 1);

    let direct = json!({"model": "@tight/m", "max_tokens": 4,
                        "messages": [{"role": "user", "content": "hi"}]});
    let (status, error) = outcome(send(&s, CHAT, &headers("svc", &[]), &direct).await);
    assert_eq!(status, 412);
    assert!(
        error
            .unwrap()
            .message
            .starts_with("budget `provider:tight` has no room"),
    );
    assert_eq!(s.upstream.hits(), 1);
}

#[tokio::test]
async fn a_users_keys_share_the_users_budget_and_metadata_budgets_match_their_values() {
    let team = NamedBudget {
        name: "team-backend".into(),
        matches: BTreeMap::from([("team".to_owned(), "backend".to_owned())]),
        limits: per_minute(1),
    };
    let s = setup(
        |u| vec![provider("oa", u, Limits::default())],
        vec![
            key(
                "alice-laptop",
                KeyType::User,
                Some("alice@example.com"),
                per_minute(2),
            ),
            key(
                "alice-phone",
                KeyType::User,
                Some("alice@example.com"),
                Limits::default(),
            ),
            key("svc", KeyType::Service, None, Limits::default()),
        ],
        Vec::new(),
        vec![team],
    )
    .await;
    let body = words_body("@oa/m", 2, 8);
    assert_eq!(
        outcome(send(&s, CHAT, &headers("alice-laptop", &[]), &body).await).0,
        200
    );
    assert_eq!(
        outcome(send(&s, CHAT, &headers("alice-phone", &[]), &body).await).0,
        200
    );
    let (status, error) = outcome(send(&s, CHAT, &headers("alice-phone", &[]), &body).await);
    assert_eq!(status, 429);
    assert!(error.unwrap().message.contains("`user:alice@example.com`"));

    let backend = [("x-portkey-metadata", r#"{"team":"backend"}"#)];
    assert_eq!(
        outcome(send(&s, CHAT, &headers("svc", &backend), &body).await).0,
        200
    );
    let (status, error) = outcome(send(&s, CHAT, &headers("svc", &backend), &body).await);
    assert_eq!(status, 429);
    assert!(error.unwrap().message.contains("`budget:team-backend`"));
    let search = [("x-portkey-metadata", r#"{"team":"search"}"#)];
    assert_eq!(
        outcome(send(&s, CHAT, &headers("svc", &search), &body).await).0,
        200
    );
    assert_eq!(
        outcome(send(&s, CHAT, &headers("svc", &[]), &body).await).0,
        200
    );

    let status = s.policy.status();
    let subjects: Vec<(&str, StatusKind)> = status
        .iter()
        .map(|s| (s.subject.as_str(), s.kind))
        .collect();
    assert_eq!(
        subjects,
        [
            ("budget:team-backend", StatusKind::RateLimit),
            ("user:alice@example.com", StatusKind::RateLimit),
        ]
    );
}

#[tokio::test]
async fn a_jwt_caller_gets_its_default_user_budget_through_the_key_entry() {
    let s = setup(
        |u| vec![provider("oa", u, Limits::default())],
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )
    .await;
    // What JWT authentication hands the pipeline: the user, and auth.jwt.budget.
    let caller = KeyEntry {
        id: "jwt".into(),
        name: "jwt".into(),
        key_type: KeyType::User,
        user: Some("bob@example.com".into()),
        allowed: None,
        log_payloads: false,
        config: None,
        limits: Limits::default(),
        default_user_limits: Some(tokens_per_day(10)),
        credential: crate::snapshot::Credential::Jwt,
        revoked_at_ms: None,
        expires_at_ms: None,
    };
    let mut record = RequestRecord::new("r".into(), 0, "chat.completions");
    let mut body = portico_core::JsonBody::parse(Bytes::from(
        json!({"model": "@oa/m", "max_tokens": 100, "messages": []}).to_string(),
    ))
    .unwrap();
    let request = PolicyRequest {
        family: CHAT,
        key: &caller,
        record: &mut record,
        headers: &http::HeaderMap::new(),
        config: None,
        body: &mut body,
        model: Some("@oa/m"),
    };
    let mut run = s.policy.begin(&request).expect("the user's budget applies");
    let mut request = request;
    let refused = run.before(&mut request).await.unwrap_err();
    assert_eq!(refused.status, 412);
    assert!(
        refused
            .message
            .starts_with("budget `user:bob@example.com` has no room"),
        "{}",
        refused.message
    );
    // Listed with the limits it was checked against.
    let status = s.policy.status();
    assert_eq!(
        entry(&status, "user:bob@example.com", StatusKind::Budget).tokens_limit,
        Some(10)
    );
    // A caller without limits, with no provider limited either, costs no run at all.
    let free = KeyEntry {
        default_user_limits: None,
        ..caller.clone()
    };
    let request = PolicyRequest {
        family: CHAT,
        key: &free,
        record: &mut record,
        headers: &http::HeaderMap::new(),
        config: None,
        body: &mut body,
        model: Some("@oa/m"),
    };
    assert!(s.policy.begin(&request).is_none());
}

/// The chunks of a stream that sends content and its usage, then hangs (the client leaves).
fn usage_then_hang(prompt: u64, completion: u64) -> SseScript {
    SseScript::new()
        .data(&portico_testkit::sse::chat_chunk(
            json!({"role": "assistant", "content": "hel"}),
            None,
        ))
        .data(&portico_testkit::sse::chat_chunk(
            json!({"content": "lo"}),
            Some("stop"),
        ))
        .data(
            &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [],
                      "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}),
        )
        .hang()
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_charged_its_usage_or_else_its_estimate() {
    let s = setup(
        |u| vec![provider("oa", u, Limits::default())],
        vec![key(
            "svc",
            KeyType::Service,
            None,
            tokens_per_day(1_000_000),
        )],
        Vec::new(),
        Vec::new(),
    )
    .await;
    // Usage arrived, then the client left: the usage is charged.
    s.upstream.enqueue(MockReply::sse(usage_then_hang(7, 11)));
    let body = json!({"model": "@oa/m", "stream": true, "max_tokens": 500,
                      "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]});
    let Reply::Stream {
        body: mut stream, ..
    } = send(&s, CHAT, &headers("svc", &[]), &body).await
    else {
        panic!("not a stream");
    };
    let mut seen = String::new();
    while !seen.contains("\"usage\"") {
        let chunk = stream.next().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(stream);
    let spent = |s: &Setup| entry(&s.policy.status(), "key:svc", StatusKind::Budget).tokens_spent;
    assert_eq!(spent(&s), 18);

    // Cut off before any usage came: the estimate is charged.
    s.upstream.enqueue(MockReply::sse(
        SseScript::new()
            .data(&portico_testkit::sse::chat_chunk(
                json!({"role": "assistant", "content": "x"}),
                None,
            ))
            .hang(),
    ));
    let Reply::Stream {
        body: mut stream, ..
    } = send(&s, CHAT, &headers("svc", &[]), &body).await
    else {
        panic!("not a stream");
    };
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert_eq!(spent(&s), 18 + estimate_of(&body));
    let budget = entry(&s.policy.status(), "key:svc", StatusKind::Budget).clone();
    assert_eq!(budget.tokens_reserved, Some(0), "nothing left held");
    // A failed request is charged nothing and holds nothing.
    s.upstream.enqueue(MockReply::error(500, "boom"));
    let (status, _) =
        outcome(send(&s, CHAT, &headers("svc", &[]), &words_body("@oa/m", 1, 5)).await);
    assert_eq!(status, 500);
    assert_eq!(spent(&s), 18 + estimate_of(&body));
}

/// The policy with a shared ledger: a fake backend over a second, "shared" `Ledger` (what
/// Redis is to many processes), recording what it was asked. `portico-redis` tests the real
/// one against Redis; these test the policy's use of the trait.
mod shared {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use portico_core::{ErrorCode, Subject};
    use portico_limits::{
        Account, Charge, Estimate, Hold, Ledger, SharedAdmission, SharedEnd, SharedLimits,
        SharedRefusal,
    };

    use super::*;

    #[derive(Default)]
    struct FakeShared {
        ledger: Ledger,
        /// `Some(open)`: the backend is away and fails open (`true`) or closed.
        away: Mutex<Option<bool>>,
        holds: Mutex<Vec<Hold>>,
        raised: Mutex<Vec<f64>>,
        unchecked_charges: Mutex<Vec<(String, Charge)>>,
    }

    #[async_trait]
    impl SharedLimits for FakeShared {
        async fn reserve(
            &self,
            subjects: &[(Arc<Account>, Limits)],
            now_ms: i64,
            estimate: &Estimate,
        ) -> Result<SharedAdmission, SharedRefusal> {
            if let Some(open) = *self.away.lock().unwrap() {
                if open {
                    return Ok(SharedAdmission::Unchecked);
                }
                return Err(SharedRefusal::Unavailable(Box::new(
                    portico_core::ApiError::new(ErrorCode::Unavailable, "the backend is away"),
                )));
            }
            let pairs = subjects
                .iter()
                .map(|(a, l)| (self.ledger.account(a.subject()), *l));
            let holds = portico_limits::reserve_all(pairs, now_ms, estimate)
                .map_err(SharedRefusal::Limit)?;
            let mut kept = self.holds.lock().unwrap();
            kept.clear();
            kept.extend(holds);
            // The fake's reservations: estimate on each, no window second.
            let reserved = subjects
                .iter()
                .map(|(_, l)| {
                    let budget = l.budget.is_some();
                    portico_limits::Reserved::new(
                        if budget { estimate.cost_usd } else { 0.0 },
                        if budget { estimate.tokens } else { 0 },
                        None,
                    )
                })
                .collect();
            Ok(SharedAdmission::Reserved {
                reserved,
                ticket: 1,
            })
        }

        fn raise(&self, _ticket: u64, _account: &Account, _limits: &Limits, extra_usd: f64) {
            self.raised.lock().unwrap().push(extra_usd);
        }

        fn end(&self, ticket: Option<u64>, ends: Vec<SharedEnd>, now_ms: Option<i64>) {
            let now = now_ms.unwrap_or(0);
            if ticket.is_none() {
                for end in ends {
                    if let Some(charge) = end.charge {
                        self.unchecked_charges
                            .lock()
                            .unwrap()
                            .push((end.account.label().to_string(), charge));
                    }
                }
                return;
            }
            let holds = std::mem::take(&mut *self.holds.lock().unwrap());
            for (hold, end) in holds.into_iter().zip(ends) {
                match end.charge {
                    Some(charge) => hold.settle(charge, now),
                    None => drop(hold),
                }
            }
        }
    }

    async fn shared_setup(
        providers: impl FnOnce(&MockUpstream) -> Vec<ProviderRecord>,
        keys: Vec<KeyRecord>,
    ) -> (Setup, Arc<FakeShared>) {
        let upstream = Arc::new(MockUpstream::start().await);
        let client = portico_providers::http::build_client(Default::default()).unwrap();
        let snapshot = Snapshot::build(providers(&upstream), keys, Vec::new(), &client).unwrap();
        let clock = Arc::new(ManualClock::at(SUNDAY_1PM));
        let fake = Arc::new(FakeShared::default());
        let policy = Arc::new(
            LimitsPolicy::new(
                Arc::new(Ledger::new()),
                Arc::clone(&clock) as Arc<dyn Clock>,
            )
            .with_shared(Arc::clone(&fake) as Arc<dyn SharedLimits>),
        );
        let gateway = Arc::new(
            Gateway::new(snapshot, client, Arc::new(AccessLog::discard()))
                .with_clock(Arc::clone(&clock) as Arc<dyn Clock>)
                .with_policy(Arc::clone(&policy) as Arc<dyn Policy>),
        );
        let setup = Setup {
            gateway,
            upstream,
            clock,
            policy,
        };
        (setup, fake)
    }

    #[tokio::test]
    async fn key_subjects_go_to_the_shared_ledger_and_providers_stay_local() {
        let body = words_body("@oa/m", 40, 1);
        let estimate = estimate_of(&body);
        let (s, fake) = shared_setup(
            |u| vec![provider("oa", u, tokens_per_day(10_000))],
            vec![key(
                "svc",
                KeyType::Service,
                None,
                tokens_per_day(estimate + 2),
            )],
        )
        .await;
        let (status, _) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
        assert_eq!(status, 200);
        let shared = fake
            .ledger
            .get(&Subject::Key("svc".into()))
            .expect("the key's account is the shared ledger's")
            .budget_status(Period::Day, SUNDAY_1PM);
        assert_eq!((shared.tokens_spent, shared.tokens_reserved), (81, 0));
        // The local key account is not charged (the backend's mirror fills it)...
        let local = s.policy.ledger().get(&Subject::Key("svc".into())).unwrap();
        assert_eq!(local.budget_status(Period::Day, SUNDAY_1PM).tokens_spent, 0);
        // ...but knows its limits, and the provider stays on the local ledger.
        assert!(local.last_limits().is_some());
        let provider = s
            .policy
            .ledger()
            .get(&Subject::Provider("oa".into()))
            .unwrap();
        assert_eq!(
            provider.budget_status(Period::Day, SUNDAY_1PM).tokens_spent,
            81
        );
        // The shared ledger refuses the second request as the local one would: a 412.
        let (status, error) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
        assert_eq!(status, 412);
        assert!(
            error
                .unwrap()
                .message
                .starts_with("budget `key:svc` is exhausted: 81 tokens of"),
        );
        assert_eq!(s.upstream.hits(), 1);
    }

    #[tokio::test]
    async fn a_shared_ledger_away_fails_closed_with_its_error_or_open_and_charges_later() {
        let body = words_body("@oa/m", 4, 8);
        let (s, fake) = shared_setup(
            |u| vec![provider("oa", u, Limits::default())],
            vec![key("svc", KeyType::Service, None, tokens_per_day(1_000))],
        )
        .await;
        *fake.away.lock().unwrap() = Some(false);
        let (status, error) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
        assert_eq!(status, 503);
        assert_eq!(error.unwrap().message, "the backend is away");
        assert_eq!(s.upstream.hits(), 0);
        *fake.away.lock().unwrap() = Some(true);
        let (status, _) = outcome(send(&s, CHAT, &headers("svc", &[]), &body).await);
        assert_eq!(status, 200, "fails open");
        let charges = fake.unchecked_charges.lock().unwrap();
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0].0, "key:svc");
        assert_eq!(charges[0].1.tokens, 4 + 5, "the reported usage");
    }
}
