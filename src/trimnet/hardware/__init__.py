"""FLOPs meet FLOPS: a hardware catalog, this machine's calibration, roofline estimates and recommendations.

    prof = tn.profile(model, (1, 3, 224, 224))
    tn.estimate(prof, device="h100-sxm", precision="bf16", batch=32)   # -> Estimate
    tn.calibrate()                                                     # measure this machine -> device "local"
    tn.estimate(prof, device="local", batch=32, backend="onnxruntime")
    tn.recommend(prof, target_latency=5e-3)                            # -> Recommendation
    train_time(tn.profile(model, (32, 3, 224, 224), training=True), samples=1_281_167, epochs=90)

See docs/hardware.md.
"""

from trimnet.hardware.accuracy import describe_error, predictor_error
from trimnet.hardware.calibrate import calibrate
from trimnet.hardware.calibration import Calibration, load_calibration
from trimnet.hardware.catalog import PRECISIONS, Device, get_device, load_catalog
from trimnet.hardware.estimate import Estimate, estimate
from trimnet.hardware.recommend import Candidate, Recommendation, recommend
from trimnet.hardware.roofline import LayerTime, roofline
from trimnet.hardware.training import TrainingTime, train_time

__all__ = ["PRECISIONS", "Calibration", "Candidate", "Device", "Estimate", "LayerTime", "Recommendation",
           "TrainingTime", "calibrate", "describe_error", "estimate", "get_device", "load_calibration",
           "load_catalog", "predictor_error", "recommend", "roofline", "train_time"]
