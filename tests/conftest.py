import os
import sys

# Keep the suite fast and deterministic on small CPU machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# No GPU in CI: Triton kernels are checked by its interpreter, which must be chosen before triton is imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(__file__))
