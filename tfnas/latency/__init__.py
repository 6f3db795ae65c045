"""TFLite conversion and LiteRT latency measurement."""

from tfnas.latency.tflite import convert, save_tflite
from tfnas.latency.timing import LatencyReport, measure

__all__ = ["LatencyReport", "convert", "measure", "save_tflite"]
