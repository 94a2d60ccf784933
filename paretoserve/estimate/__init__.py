"""Roofline model of decoding: predict step time, throughput and the bounding component for a model on a device,
and calibrate its efficiency factors on a measured sweep. Every figure it gives is `predicted`, never measured.

    geometry = load_geometry("default")                    # paretoserve.geometry: a .gguf file or a config.json
    hardware = load_hardware("h100")                       # or "cpu", or a YAML spec
    step = predict(geometry, hardware, 64, Workload(128, 128), ENGINES["vllm"], default_efficiency(hardware))
    model = calibrate("sweep-dir", geometry, hardware, ENGINES["llama.cpp"])
    model.predict(96, Workload(128, 128)).output_throughput  # tok/s at an untested batch size
"""

from paretoserve.estimate.calibrate import CalibratedModel, CalibrationError, calibrate, load_points
from paretoserve.estimate.hardware import HardwareError, HardwareSpec, hardware_names, load_hardware
from paretoserve.estimate.roofline import (
                                           ENGINES,
                                           Efficiency,
                                           EngineAssumptions,
                                           StepPrediction,
                                           Workload,
                                           default_efficiency,
                                           max_batch_fitting,
                                           predict,
)
from paretoserve.geometry import GeometryError, ModelGeometry, load_geometry

__all__ = ["ENGINES", "CalibratedModel", "CalibrationError", "Efficiency", "EngineAssumptions", "GeometryError",
           "HardwareError", "HardwareSpec", "ModelGeometry", "StepPrediction", "Workload", "calibrate",
           "default_efficiency", "hardware_names", "load_geometry", "load_hardware", "load_points",
           "max_batch_fitting", "predict"]
