"""TFLite conversion, LiteRT latency measurement, runners and latency lookup tables."""

from tfnas.latency.lookup_table import LookupTable, build_table, operation_signature
from tfnas.latency.runners import AdbRunner, LocalRunner, Runner, make_runner
from tfnas.latency.tflite import convert, save_tflite
from tfnas.latency.timing import RUNTIMES, LatencyReport, measure

__all__ = [
    "RUNTIMES",
    "AdbRunner",
    "LatencyReport",
    "LocalRunner",
    "LookupTable",
    "Runner",
    "build_table",
    "convert",
    "make_runner",
    "measure",
    "operation_signature",
    "save_tflite",
]
