//! Logging through `tracing`: JSON (the default, for collectors) or text on standard error,
//! filtered by the `RUST_LOG` setting; spans also exported over OTLP (gRPC) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use osp_config::{LogFormat, LogSettings, TelemetrySettings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` does not parse as a filter.
    #[error("RUST_LOG: `{filter}` is not a log filter: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadyInitialised,
    /// The OTLP exporter could not be built.
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: cannot export to {endpoint}: {source}")]
    Otlp {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// Checks the filter, without installing anything.
pub fn filter(settings: &LogSettings) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(&settings.filter).map_err(|source| LoggingError::Filter {
        filter: settings.filter.clone(),
        source,
    })
}

/// Installs the global subscriber, writing to standard error; no export.
pub fn init(settings: &LogSettings) -> Result<(), LoggingError> {
    install(settings, None)
}

/// Keeps the OTLP pipeline alive; dropping it flushes the spans still buffered.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("otlp: flushing spans at exit failed: {error}");
        }
    }
}

/// Installs logging and, when an endpoint is configured, OTLP span export under
/// `service_name`. Must run inside the tokio runtime (the exporter lives on it).
pub fn init_with_telemetry(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    service_name: &'static str,
) -> Result<TelemetryGuard, LoggingError> {
    let Some(endpoint) = &telemetry.otlp_endpoint else {
        install(log, None)?;
        return Ok(TelemetryGuard { provider: None });
    };
    let otlp_error = |source| LoggingError::Otlp {
        endpoint: endpoint.clone(),
        source,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(otlp_error)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build(),
        )
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    install(log, Some(provider.tracer(service_name)))?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

fn install(
    settings: &LogSettings,
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> Result<(), LoggingError> {
    let filter = filter(settings)?;
    let output = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let export = tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .with(export)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInitialised)
}
