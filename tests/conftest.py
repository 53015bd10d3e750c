import os
import tempfile

import torch
from hypothesis import HealthCheck, settings

# Property tests: no per-example deadline (the machine is shared and noisy), no flakiness from
# slow data generation; examples are drawn afresh each run, and a failure prints its reproducer.
settings.register_profile(
    "convlens",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "convlens"))

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

# auto reads a machine's calibration (convlens tune) from the user's cache folder: the tests see an
# empty one of their own, so a developer's calibration never changes what they check
os.environ["CONVLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="convlens-test-cache-")
