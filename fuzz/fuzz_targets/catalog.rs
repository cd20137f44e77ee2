//! The catalog file parser (portico-config): YAML or JSON text → a validated catalog, with
//! `${VAR}` references resolved against an environment that has only `FUZZ_VAR`.
//! Property: no panic, no unbounded allocation; parsing is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn env(name: &str) -> Option<String> {
    (name == "FUZZ_VAR").then(|| "fuzz-value".to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = portico_config::parse_str(text, "fuzz.yaml", &env);
    // The same text gives the same catalog (or the same error) a second time: no state
    // leaks from one parse into the next.
    let second = portico_config::parse_str(text, "fuzz.yaml", &env);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("the same catalog text parsed once and failed once"),
    }
});
