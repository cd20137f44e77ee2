//! Prometheus metrics (in progress).
