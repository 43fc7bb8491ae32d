"""Observability: traces (OpenTelemetry), resource usage of steps, worker metrics."""
