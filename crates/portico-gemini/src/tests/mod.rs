//! Fixture-driven tests.
