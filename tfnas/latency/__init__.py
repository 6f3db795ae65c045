"""TFLite conversion and LiteRT latency measurement."""

from tfnas.latency.timing import LatencyReport, measure
from tfnas.latency.tflite import convert, save_tflite

__all__ = ["LatencyReport", "convert", "measure", "save_tflite"]
