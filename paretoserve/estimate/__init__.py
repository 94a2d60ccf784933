"""Roofline model of decoding: predict step time, throughput and the bounding component for a model on a device,
and calibrate its efficiency factors on a measured sweep. Every figure it gives is `predicted`, never measured.

    geometry = load_geometry("default")                    # or a .gguf file, or a Hugging Face config.json
    hardware = load_hardware("h100")                       # or "cpu", or a YAML spec
    step = predict(geometry, hardware, 64, Workload(128, 128), ENGINES["vllm"], default_efficiency(hardware))
    model = calibrate("sweep-dir", geometry, hardware, ENGINES["llama.cpp"])
    model.predict(96, Workload(128, 128)).output_throughput  # tok/s at an untested batch size
"""

import importlib

# Name -> module, imported on first use: advise and sweep import estimate's small modules (the GGUF reader,
# the roofline) at start-up, and must not pay for numpy-heavy calibration they may never run.
_EXPORTS = {
    "calibrate": ("CalibratedModel", "CalibrationError", "calibrate", "load_points"),
    "geometry": ("GeometryError", "ModelGeometry", "load_geometry"),
    "hardware": ("HardwareError", "HardwareSpec", "hardware_names", "load_hardware"),
    "roofline": ("ENGINES", "Efficiency", "EngineAssumptions", "StepPrediction", "Workload", "default_efficiency",
                 "max_batch_fitting", "predict"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'paretoserve.estimate' has no attribute {name!r}")
    return getattr(importlib.import_module(f"paretoserve.estimate.{_MODULE_OF[name]}"), name)
