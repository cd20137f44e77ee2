//! OpenTelemetry trace export over OTLP, set up from the standard `OTEL_*` variables.
//!
//! On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
//! `OTEL_SDK_DISABLED` is not `true`, `OTEL_TRACES_EXPORTER` not `none`); off, nothing here
//! runs and the gateway gets no tracer. The protocol is `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
//! else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf` (the default the OTLP exporter
//! specification recommends); `grpc` exports with tonic. The exporter itself reads the
//! endpoint, `OTEL_EXPORTER_OTLP_HEADERS`, the timeout and compression variables; the SDK
//! reads `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and the
//! batch processor's `OTEL_BSP_*`.
//!
//! Spans are exported by a batch processor running on the tokio runtime: ending a span only
//! queues it (a full queue drops it), so an export never makes a request wait.
//! [`Otel::shutdown`] exports what is still queued when the gateway stops.
//!
//! What is traced, and how, is the engine's (`portico_engine::Tracing`).

use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use portico_engine::Tracing;

use crate::Fatal;

/// How long the export of the spans still queued may take at shutdown.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// The OTLP protocols Portico exports traces with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtlpProtocol {
    /// `http/protobuf`: protobuf over HTTP POST to `<endpoint>/v1/traces`.
    HttpProtobuf,
    /// `grpc`: the collector's `TraceService/Export` over HTTP/2.
    Grpc,
}

/// The running trace pipeline: the SDK's provider, with its batch processor and exporter.
pub(crate) struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// The pipeline the environment asks for, started; `None` when tracing is off.
    ///
    /// # Errors
    ///
    /// A usage error naming the variable when the protocol is not one Portico exports
    /// with, or the exporter cannot be built from the variables (an invalid endpoint).
    pub(crate) fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Otel>, Fatal> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"))
        {
            return Ok(None);
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        let (variable, protocol) = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(p) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Some(p)),
            None => (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                set("OTEL_EXPORTER_OTLP_PROTOCOL"),
            ),
        };
        let protocol = parse_protocol(protocol.as_deref()).map_err(|value| {
            Fatal::usage(format!(
                "{variable}={value} is not an OTLP protocol Portico exports traces with; use `http/protobuf` (the default) or `grpc`"
            ))
        })?;
        let exporter = match protocol {
            OtlpProtocol::HttpProtobuf => SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build(),
            OtlpProtocol::Grpc => SpanExporter::builder().with_tonic().build(),
        }
        .map_err(|e| {
            Fatal::usage(format!(
                "cannot export traces to the OTLP endpoint `{endpoint}` (OTEL_EXPORTER_OTLP_*): {e}"
            ))
        })?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource(&set))
            .build();
        tracing::info!(
            endpoint = %endpoint,
            protocol = ?protocol,
            "exporting traces over OTLP"
        );
        Ok(Some(Otel { provider }))
    }

    /// The engine's tracing, building its spans with this pipeline's tracer.
    pub(crate) fn tracing(&self) -> Tracing {
        let scope = InstrumentationScope::builder("portico")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Tracing::new(BoxedTracer::new(Box::new(
            self.provider.tracer_with_scope(scope),
        )))
    }

    /// Exports the spans still queued and stops the pipeline, waiting at most
    /// [`SHUTDOWN_FLUSH`]. Called once every request has been answered and recorded.
    pub(crate) async fn shutdown(self) {
        // The SDK's shutdown blocks its thread until the batch task (on this runtime) has
        // exported: on a blocking thread, so the runtime's workers stay free to run it.
        let provider = self.provider;
        let flush = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(SHUTDOWN_FLUSH, flush).await {
            Ok(Ok(Ok(()))) => tracing::info!("traces flushed"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not export the last traces"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not export the last traces"),
            Err(_) => tracing::warn!(
                "the last traces were not exported within {} s; leaving them",
                SHUTDOWN_FLUSH.as_secs()
            ),
        }
    }
}

/// The protocol a variable names (`None`: not set, the default); `Err` with the value
/// when it is not one Portico exports with (`http/json` included).
fn parse_protocol(value: Option<&str>) -> Result<OtlpProtocol, String> {
    match value.map(str::trim) {
        None | Some("http/protobuf") => Ok(OtlpProtocol::HttpProtobuf),
        Some("grpc") => Ok(OtlpProtocol::Grpc),
        Some(other) => Err(other.to_owned()),
    }
}

/// The process's resource: what the SDK reads from `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`, with `service.name` `portico` when neither names a service
/// (rather than the SDK's `unknown_service`).
fn resource(set: &dyn Fn(&str) -> Option<String>) -> Resource {
    let named = set("OTEL_SERVICE_NAME").is_some()
        || set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
            attrs
                .split(',')
                .any(|kv| kv.trim().starts_with("service.name="))
        });
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("portico").build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_defaults_to_http_protobuf() {
        assert_eq!(parse_protocol(None), Ok(OtlpProtocol::HttpProtobuf));
        assert_eq!(
            parse_protocol(Some("http/protobuf")),
            Ok(OtlpProtocol::HttpProtobuf)
        );
        assert_eq!(parse_protocol(Some(" grpc ")), Ok(OtlpProtocol::Grpc));
        assert_eq!(
            parse_protocol(Some("http/json")),
            Err("http/json".to_owned())
        );
    }

    #[test]
    fn tracing_is_off_without_an_endpoint_or_when_disabled() {
        let off = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let env =
                move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            Otel::from_env(&env).unwrap().is_none()
        };
        assert!(off(&[]));
        assert!(off(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]));
        assert!(off(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]));
        assert!(off(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces"
            ),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]));
    }

    #[test]
    fn an_unknown_protocol_is_a_usage_error_naming_the_variable() {
        let env = |name: &str| match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://127.0.0.1:4318".to_owned()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".to_owned()),
            _ => None,
        };
        let Err(err) = Otel::from_env(&env) else {
            panic!("http/json was accepted");
        };
        assert_eq!(err.code(), 2);
        assert!(
            err.message()
                .contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json")
        );
        assert!(err.message().contains("grpc"));
    }
}
