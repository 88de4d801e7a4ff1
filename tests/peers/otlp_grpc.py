"""Real OpenTelemetry gRPC clients for the integration tests.

  otlp_grpc.py export HOST:PORT   the SDK's OTLP span exporter sends one span;
                                  prints SUCCESS or FAILURE
  otlp_grpc.py raw HOST:PORT      the generated TraceService stub calls Export;
                                  prints OK, or the status code name and details
"""
import sys

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


class Capture(SpanProcessor):
    def __init__(self):
        self.spans = []

    def on_end(self, span):
        self.spans.append(span)


def export(addr):
    capture = Capture()
    provider = TracerProvider()
    provider.add_span_processor(capture)
    with provider.get_tracer("lgtm-proxy-e2e").start_as_current_span("through-the-proxy"):
        pass
    exporter = OTLPSpanExporter(endpoint=f"http://{addr}", insecure=True, timeout=10)
    print(exporter.export(capture.spans).name)


def raw(addr):
    with grpc.insecure_channel(addr) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        try:
            stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10,
                        metadata=[("authorization", "Bearer client-secret")])
            print("OK")
        except grpc.RpcError as e:
            print(e.code().name, e.details())


if __name__ == "__main__":
    {"export": export, "raw": raw}[sys.argv[1]](sys.argv[2])
