"""OpenTelemetry for reconciles: one span per reconcile, W3C trace context carried on the object.

* Span ``reconcile <controller>`` with k8s semantic-convention attributes
  (``k8s.namespace.name``) and project-prefixed object attributes (there is no generic
  ``k8s.object.*`` convention); on failure status ERROR and ``error.type``.
* The object's annotation :data:`TRACE_CONTEXT_ANNOTATION` holds a JSON W3C carrier
  (``{"traceparent": ..., "tracestate": ...}``; a bare ``traceparent`` string is accepted too).
  When present — set by the creating client, or written by the controller the first time it
  reconciles the object — every reconcile span of that object is a child of it, so one job can
  be followed from ``kubectl apply`` to its end, across operator restarts.
* A client that creates an object inside a trace (``pyroclast job submit``, the SDK) writes that annotation
  on it (:func:`carry_current`), so the operator's reconciles join the trace the user started.
* :func:`configure_from_env` installs an OTLP/HTTP exporter when the standard ``OTEL_*``
  variables ask for one; otherwise the API's no-op tracer is used and spans cost nearly nothing.
"""

from __future__ import annotations

import json
import logging
import os

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from controller.runtime import objects
from controller.runtime.objects import JsonObject

log = logging.getLogger(__name__)

TRACE_CONTEXT_ANNOTATION = "pyroclast.dev/trace-context"
MAX_CARRIER_BYTES = 1024
_propagator = TraceContextTextMapPropagator()


_configured: list[trace.TracerProvider] = []


def configure_from_env(
    *, install_global: bool = True, service_name: str = "pyroclast-operator"
) -> trace.TracerProvider | None:
    """An SDK tracer provider with an OTLP/HTTP exporter, if ``OTEL_*`` asks for one (else None).

    Enabled when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
    set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. ``OTEL_SERVICE_NAME``
    and ``OTEL_RESOURCE_ATTRIBUTES`` are honoured (else the service is `service_name`: the operator,
    ``pyroclast-cli``, ...). Idempotent; installed as the global provider unless told not to.
    """
    if _configured:
        return _configured[0]
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return None
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not any(os.environ.get(name) for name in endpoints):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if install_global:
        trace.set_tracer_provider(provider)
        _configured.append(provider)
    log.info("OTLP trace export enabled")
    return provider


def carried_context(obj: JsonObject | None) -> otel_context.Context | None:
    """The trace context carried in the object's annotation, if any and valid."""
    if not obj:
        return None
    raw = objects.annotations(obj).get(TRACE_CONTEXT_ANNOTATION)
    if not raw or len(raw) > MAX_CARRIER_BYTES:
        return None
    carrier: dict[str, str]
    if raw.lstrip().startswith("{"):
        try:
            decoded = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(decoded, dict):
            return None
        carrier = {str(k): str(v) for k, v in decoded.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    else:
        carrier = {"traceparent": raw.strip()}
    ctx = _propagator.extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return ctx


def carrier_for(span: trace.Span) -> str | None:
    """The JSON carrier for ``span``'s context, or None when it is not a real (recorded) span."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return json.dumps(carrier, separators=(",", ":"))


def carry_current(obj: JsonObject) -> bool:
    """Write the current span's context on `obj` (a manifest about to be created), so the operator's
    reconciles of it join the caller's trace; an annotation already there wins. Whether it was written."""
    carrier = carrier_for(trace.get_current_span())
    if carrier is None:
        return False
    annotations: JsonObject = obj.setdefault("metadata", {}).setdefault("annotations", {})
    if TRACE_CONTEXT_ANNOTATION in annotations:
        return False
    annotations[TRACE_CONTEXT_ANNOTATION] = carrier
    return True


def annotation_patch(carrier: str) -> JsonObject:
    """A merge patch that writes the trace-context annotation."""
    return {"metadata": {"annotations": {TRACE_CONTEXT_ANNOTATION: carrier}}}


def reconcile_attributes(controller: str, namespace: str, name: str, kind: str) -> dict[str, str]:
    """Attributes of a reconcile span."""
    attrs = {
        "pyroclast.controller.name": controller,
        "pyroclast.k8s.object.kind": kind,
        "pyroclast.k8s.object.name": name,
    }
    if namespace:
        attrs["k8s.namespace.name"] = namespace
    return attrs
