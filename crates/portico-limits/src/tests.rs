//! The ledger's contract, driven by a manual clock: reservations, settlement, period
//! rollover, window sliding, atomic admission across subjects, the overspend bound under
//! concurrency, and the state persistence reads and writes back.

use std::sync::{Arc, Barrier};

use portico_core::{
    BudgetSpec, Clock, LimitKind, Limits, ManualClock, Period, RateLimitSpec, Subject,
};

use super::*;

/// 2026-12-06 13:00 UTC, a Sunday.
const SUNDAY_1PM: i64 = 1_796_562_000_000;
const HOUR: i64 = 3_600_000;

fn tokens_budget(tokens: u64, period: Period) -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: None,
            tokens: Some(tokens),
            period,
        }),
        rate_limit: None,
    }
}

fn cost_budget(usd: f64) -> Limits {
    Limits {
        budget: Some(BudgetSpec {
            cost_usd: Some(usd),
            tokens: None,
            period: Period::Month,
        }),
        rate_limit: None,
    }
}

fn rate(requests: Option<u64>, tokens: Option<u64>) -> Limits {
    Limits {
        budget: None,
        rate_limit: Some(RateLimitSpec {
            requests_per_minute: requests,
            tokens_per_minute: tokens,
        }),
    }
}

fn key(name: &str) -> Arc<Account> {
    Arc::new(Account::new(Subject::Key(name.to_owned())))
}

fn charge(tokens: u64) -> Charge {
    Charge {
        cost_usd: 0.0,
        tokens,
    }
}

#[test]
fn the_estimate_is_held_while_in_flight_and_replaced_by_the_charge() {
    let clock = ManualClock::at(SUNDAY_1PM);
    let account = key("svc");
    let limits = tokens_budget(100, Period::Day);
    let hold = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(20, 20),
    )
    .unwrap();
    let status = account.budget_status(Period::Day, clock.now_ms());
    assert_eq!((status.tokens_spent, status.tokens_reserved), (0, 40));
    // 40 held + 61 asked > 100: no room, though nothing is spent yet.
    let refusal = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(1, 60),
    )
    .unwrap_err();
    assert_eq!(refusal.kind(), LimitKind::Budget);
    hold.settle(charge(15), clock.now_ms());
    let status = account.budget_status(Period::Day, clock.now_ms());
    assert_eq!((status.tokens_spent, status.tokens_reserved), (15, 0));
    assert_eq!(status.resets_at_ms, SUNDAY_1PM + 11 * HOUR);
    // Now it fits: 15 + 61 <= 100.
    Hold::reserve(account, limits, clock.now_ms(), &Estimate::tokens(1, 60))
        .unwrap()
        .settle(charge(61), clock.now_ms());
}

#[test]
fn an_exhausted_budget_refuses_even_a_request_estimated_at_nothing() {
    let account = key("svc");
    let limits = cost_budget(1.0);
    let hold = Hold::reserve(
        Arc::clone(&account),
        limits,
        SUNDAY_1PM,
        &Estimate::tokens(1, 1).priced(0.4),
    )
    .unwrap();
    hold.settle(
        Charge {
            cost_usd: 1.25,
            tokens: 2,
        },
        SUNDAY_1PM,
    );
    let refusal = Hold::reserve(account, limits, SUNDAY_1PM, &Estimate::default()).unwrap_err();
    let error = refusal.to_api_error();
    assert_eq!(error.status, 412);
    assert!(
        error
            .message
            .starts_with("budget `key:svc` is exhausted: $1.25 of $1.00 spent this month"),
        "{}",
        error.message
    );
}

#[test]
fn the_spend_resets_when_the_period_rolls_over() {
    let clock = ManualClock::at(SUNDAY_1PM);
    for (period, next) in [
        (Period::Day, SUNDAY_1PM + 11 * HOUR),
        // The ISO week ends on Monday 00:00.
        (Period::Week, SUNDAY_1PM + 11 * HOUR),
        // December ends on January 1st.
        (Period::Month, SUNDAY_1PM + 11 * HOUR + 25 * 24 * HOUR),
    ] {
        clock.set(SUNDAY_1PM);
        let account = key(period.as_str());
        let limits = tokens_budget(10, period);
        Hold::reserve(
            Arc::clone(&account),
            limits,
            clock.now_ms(),
            &Estimate::tokens(5, 5),
        )
        .unwrap()
        .settle(charge(10), clock.now_ms());
        clock.set(next - 1);
        let refused = Hold::reserve(
            Arc::clone(&account),
            limits,
            clock.now_ms(),
            &Estimate::default(),
        );
        let Err(Refusal::Budget { resets_at_ms, .. }) = refused else {
            panic!("{period}: still the old period, still exhausted: {refused:?}");
        };
        assert_eq!(resets_at_ms, next, "{period}");
        clock.set(next);
        let hold = Hold::reserve(
            Arc::clone(&account),
            limits,
            clock.now_ms(),
            &Estimate::tokens(5, 5),
        )
        .unwrap_or_else(|r| panic!("{period}: a new period: {r:?}"));
        hold.settle(charge(3), clock.now_ms());
        assert_eq!(
            account.budget_status(period, clock.now_ms()).tokens_spent,
            3,
            "{period}"
        );
    }
}

#[test]
fn a_request_that_spans_the_rollover_is_charged_to_the_period_it_ends_in() {
    let clock = ManualClock::at(SUNDAY_1PM + 10 * HOUR);
    let account = key("svc");
    let limits = tokens_budget(100, Period::Day);
    let hold = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(10, 10),
    )
    .unwrap();
    clock.advance(2 * HOUR);
    // The new day sees the request in flight: its estimate is still held.
    let status = account.budget_status(Period::Day, clock.now_ms());
    assert_eq!((status.tokens_spent, status.tokens_reserved), (0, 20));
    hold.settle(charge(30), clock.now_ms());
    let status = account.budget_status(Period::Day, clock.now_ms());
    assert_eq!((status.tokens_spent, status.tokens_reserved), (30, 0));
}

#[test]
fn requests_slide_out_of_the_window_a_minute_later() {
    let clock = ManualClock::at(SUNDAY_1PM);
    let account = key("svc");
    let limits = rate(Some(2), None);
    for _ in 0..2 {
        Hold::reserve(
            Arc::clone(&account),
            limits,
            clock.now_ms(),
            &Estimate::default(),
        )
        .unwrap()
        .settle(Charge::ZERO, clock.now_ms());
        clock.advance(10_000);
    }
    // At +20 s: the first request (at 0 s) leaves the window at +60 s.
    let refusal = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::default(),
    )
    .unwrap_err();
    let Refusal::Rate {
        kind,
        retry_after_ms,
        used,
        ..
    } = &refusal
    else {
        panic!("{refusal:?}");
    };
    assert_eq!(*kind, LimitKind::RequestsPerMinute);
    assert_eq!(*used, 2);
    assert_eq!(*retry_after_ms, Some(40_000));
    assert_eq!(refusal.to_api_error().retry_after, Some(40));
    clock.advance(39_999);
    assert!(
        Hold::reserve(
            Arc::clone(&account),
            limits,
            clock.now_ms(),
            &Estimate::default()
        )
        .is_err()
    );
    clock.advance(1);
    Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::default(),
    )
    .unwrap()
    .settle(Charge::ZERO, clock.now_ms());
    assert_eq!(account.window_status(clock.now_ms()).requests, 2);
}

#[test]
fn tokens_per_minute_count_the_estimate_until_the_real_usage_replaces_it() {
    let clock = ManualClock::at(SUNDAY_1PM);
    let account = key("svc");
    let limits = rate(None, Some(100));
    let first = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(10, 50),
    )
    .unwrap();
    assert_eq!(account.window_status(clock.now_ms()).tokens, 60);
    let refusal = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(10, 50),
    )
    .unwrap_err();
    assert_eq!(refusal.kind(), LimitKind::TokensPerMinute);
    clock.advance(5_000);
    first.settle(charge(12), clock.now_ms());
    assert_eq!(account.window_status(clock.now_ms()).tokens, 12);
    let second = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(10, 50),
    )
    .unwrap();
    // A request longer than the window: its estimate has left, its tokens count when it ends.
    clock.advance(120_000);
    assert_eq!(account.window_status(clock.now_ms()).tokens, 0);
    second.settle(charge(70), clock.now_ms());
    assert_eq!(account.window_status(clock.now_ms()).tokens, 70);
    // More than the limit itself can never fit: no wait would help.
    let never = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(1, 200),
    )
    .unwrap_err();
    assert!(matches!(
        never,
        Refusal::Rate {
            retry_after_ms: None,
            ..
        }
    ));
}

#[test]
fn a_refusal_by_one_subject_takes_back_the_others_reservations() {
    let key_account = key("svc");
    let user = Arc::new(Account::new(Subject::User("alice".into())));
    let key_limits = Limits {
        budget: tokens_budget(1_000, Period::Day).budget,
        rate_limit: rate(Some(10), Some(1_000)).rate_limit,
    };
    // Nothing left on the user's budget.
    Hold::reserve(
        Arc::clone(&user),
        tokens_budget(10, Period::Day),
        SUNDAY_1PM,
        &Estimate::tokens(5, 5),
    )
    .unwrap()
    .settle(charge(10), SUNDAY_1PM);
    let refusal = reserve_all(
        [
            (Arc::clone(&key_account), key_limits),
            (Arc::clone(&user), tokens_budget(10, Period::Day)),
        ],
        SUNDAY_1PM,
        &Estimate::tokens(5, 5),
    )
    .unwrap_err();
    assert_eq!(refusal.subject(), "user:alice");
    let budget = key_account.budget_status(Period::Day, SUNDAY_1PM);
    assert_eq!(budget.tokens_reserved, 0);
    let window = key_account.window_status(SUNDAY_1PM);
    assert_eq!((window.requests, window.tokens), (0, 0), "never counted");
}

#[test]
fn a_hold_dropped_without_settling_releases_and_charges_nothing() {
    let account = key("svc");
    let limits = Limits {
        budget: tokens_budget(100, Period::Day).budget,
        rate_limit: rate(Some(5), Some(100)).rate_limit,
    };
    let hold = Hold::reserve(
        Arc::clone(&account),
        limits,
        SUNDAY_1PM,
        &Estimate::tokens(30, 30),
    )
    .unwrap();
    drop(hold);
    let budget = account.budget_status(Period::Day, SUNDAY_1PM);
    assert_eq!((budget.tokens_spent, budget.tokens_reserved), (0, 0));
    let window = account.window_status(SUNDAY_1PM);
    assert_eq!(
        (window.requests, window.tokens),
        (1, 0),
        "the request happened"
    );
}

#[test]
fn a_pricier_attempt_raises_the_hold_if_the_budget_has_room() {
    let account = key("svc");
    let limits = cost_budget(1.0);
    let mut hold = Hold::reserve(
        Arc::clone(&account),
        limits,
        SUNDAY_1PM,
        &Estimate::tokens(1, 1).priced(0.25),
    )
    .unwrap();
    hold.raise_cost_to(0.75, SUNDAY_1PM).unwrap();
    assert_eq!(hold.reserved_cost_usd(), 0.75);
    assert_eq!(
        account
            .budget_status(Period::Month, SUNDAY_1PM)
            .cost_usd_reserved,
        0.75
    );
    assert!(hold.raise_cost_to(1.5, SUNDAY_1PM).is_err());
    hold.settle_as_estimated(SUNDAY_1PM);
    assert_eq!(
        account
            .budget_status(Period::Month, SUNDAY_1PM)
            .cost_usd_spent,
        0.75
    );
}

/// 50 requests arrive at once against a budget of `budget` tokens; each is estimated at
/// `estimate` and charged `charged` once all of them were admitted or refused. Returns the
/// number admitted and the tokens spent.
fn burst(budget: u64, estimate: u64, charged: u64) -> (u64, u64) {
    let account = key("burst");
    let limits = tokens_budget(budget, Period::Day);
    let gate = Arc::new(Barrier::new(50));
    let admitted_all = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let account = Arc::clone(&account);
            let gate = Arc::clone(&gate);
            let admitted_all = Arc::clone(&admitted_all);
            std::thread::spawn(move || {
                gate.wait();
                let hold =
                    Hold::reserve(account, limits, SUNDAY_1PM, &Estimate::tokens(0, estimate));
                // Every request is in flight before any ends: the worst case.
                admitted_all.wait();
                match hold {
                    Ok(hold) => {
                        hold.settle(charge(charged), SUNDAY_1PM);
                        1
                    }
                    Err(_) => 0,
                }
            })
        })
        .collect();
    let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let spent = account.budget_status(Period::Day, SUNDAY_1PM).tokens_spent;
    (admitted, spent)
}

#[test]
fn fifty_concurrent_requests_overspend_by_at_most_what_they_used_beyond_their_estimates() {
    // Estimates that cover the usage: never overspent.
    let (admitted, spent) = burst(95, 10, 8);
    assert_eq!(admitted, 9, "9 × 10 ≤ 95 < 10 × 10");
    assert_eq!(spent, 72);
    assert!(spent <= 95);
    // Requests that use more than estimated: overspent by exactly what the admitted ones
    // used beyond their estimates, the documented bound.
    let (admitted, spent) = burst(95, 10, 12);
    assert_eq!(admitted, 9);
    assert_eq!(spent, 108);
    assert!(spent <= 95 + admitted * (12 - 10));
}

#[test]
fn the_persisted_state_comes_back_after_a_restart() {
    let clock = ManualClock::at(SUNDAY_1PM);
    let ledger = Ledger::new();
    let subject = Subject::Key("svc".into());
    let limits = Limits {
        budget: tokens_budget(100, Period::Day).budget,
        rate_limit: rate(Some(1), None).rate_limit,
    };
    Hold::reserve(
        ledger.account(&subject),
        limits,
        clock.now_ms(),
        &Estimate::tokens(5, 5),
    )
    .unwrap()
    .settle(charge(40), clock.now_ms());
    let saved = ledger.take_changed(clock.now_ms());
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].tokens, 40);
    assert_eq!(saved[0].window.len(), 1);
    assert!(
        ledger.take_changed(clock.now_ms()).is_empty(),
        "nothing changed since"
    );

    clock.advance(30_000);
    let restarted = Ledger::new();
    restarted.restore(&saved, clock.now_ms());
    let account = restarted.account(&subject);
    assert_eq!(
        account
            .budget_status(Period::Day, clock.now_ms())
            .tokens_spent,
        40
    );
    // The window came back too: one request per minute, and it was 30 s ago.
    let refusal = Hold::reserve(
        Arc::clone(&account),
        limits,
        clock.now_ms(),
        &Estimate::tokens(1, 1),
    )
    .unwrap_err();
    assert_eq!(refusal.kind(), LimitKind::RequestsPerMinute);
    // A failed write is retried.
    restarted.mark_changed([subject.clone()]);
    assert_eq!(restarted.take_changed(clock.now_ms()).len(), 1);
}
